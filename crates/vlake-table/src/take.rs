//! Fetching rows by row id.

use std::collections::HashMap;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::UInt64Type;
use arrow_array::{RecordBatch, UInt32Array};
use futures::TryStreamExt;
use vlake_format::{Error, Result};

use crate::rows::FileRows;
use crate::{ScanTask, Table, ROW_ID};

impl Table {
    /// The rows with these row ids, in the given order, with `columns`. Reads only the files
    /// and rows that hold them. A row id that is not in this version (never added, or
    /// deleted) is a not-found error.
    pub async fn take_rows(&self, row_ids: &[u64], columns: &[String]) -> Result<RecordBatch> {
        let fields = self.table_schema().project(columns)?.fields;
        let schema = Arc::new(vlake_format::Schema { fields: fields.clone() }.to_arrow_read());
        let mut batches = Vec::new();
        for file in &self.manifest().data_files {
            let rows = FileRows::load(self.location(), self.session(), file).await?;
            let mut offsets: Vec<u64> = row_ids.iter().filter_map(|id| rows.position_of(*id)).collect();
            if offsets.is_empty() {
                continue;
            }
            offsets.sort_unstable();
            offsets.dedup();
            let task = ScanTask {
                row_offsets: Some(offsets),
                ..ScanTask::of_file(file, fields.clone(), true)
            };
            let mut stream = task.execute(self.location(), self.session()).await?;
            while let Some(b) = stream.try_next().await? {
                batches.push(b);
            }
        }
        let with_ids = match batches.first() {
            Some(first) => arrow_select::concat::concat_batches(&first.schema(), &batches)?,
            None if row_ids.is_empty() => return Ok(RecordBatch::new_empty(schema)),
            None => {
                return Err(Error::not_found(format!(
                    "row {} in version {} of {}",
                    row_ids[0],
                    self.version(),
                    self.uri()
                )))
            }
        };
        let position: HashMap<u64, u32> = with_ids
            .column_by_name(ROW_ID)
            .ok_or_else(|| Error::Internal("take lost _rowid".into()))?
            .as_primitive::<UInt64Type>()
            .values()
            .iter()
            .enumerate()
            .map(|(i, id)| (*id, i as u32))
            .collect();
        let indices = row_ids
            .iter()
            .map(|id| {
                position.get(id).copied().ok_or_else(|| {
                    Error::not_found(format!("row {id} in version {} of {}", self.version(), self.uri()))
                })
            })
            .collect::<Result<Vec<u32>>>()?;
        let indices = UInt32Array::from(indices);
        let columns = (0..fields.len())
            .map(|i| Ok(arrow_select::take::take(with_ids.column(i), &indices, None)?))
            .collect::<Result<Vec<_>>>()?;
        Ok(RecordBatch::try_new_with_options(
            schema,
            columns,
            &arrow_array::RecordBatchOptions::new().with_row_count(Some(row_ids.len())),
        )?)
    }
}
