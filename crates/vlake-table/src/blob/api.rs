//! The BLOB operations of [`Table`]: appending values streamed from files or readers, and
//! reading values back whole or as streams.

use std::sync::Arc;

use arrow_array::{ArrayRef, RecordBatch, RecordBatchOptions};
use arrow_schema::{Field as ArrowField, Schema as ArrowSchema};
use vlake_format::schema::blob_descriptor_type;
use vlake_format::{Error, Field, Result};

use super::{descriptor_array, descriptors, fetch_bytes, BlobReader, BlobSource};
use crate::txn::Action;
use crate::write::{write_with_blobs, WriteOptions};
use crate::{BatchStream, Table};

impl Table {
    /// The BLOB column `column`.
    fn blob_field(&self, column: &str) -> Result<&Field> {
        let field = self.table_schema().field(column)?;
        if field.is_blob() {
            Ok(field)
        } else {
            Err(Error::invalid(format!("column '{column}' is not a BLOB column")))
        }
    }

    /// Appends one row per source as one commit: BLOB column `column` gets the source's bytes,
    /// streamed into blob files (a large value is never in memory whole); the other columns
    /// come from `rows` (one row per source, without `column`) or are null.
    ///
    /// ```no_run
    /// # async fn demo(table: vlake_table::Table) -> vlake_table::Result<()> {
    /// use vlake_table::{BlobSource, WriteOptions};
    /// let sources = vec![BlobSource::File("movie.mp4".into()), BlobSource::Bytes("tiny".into())];
    /// let table = table.append_blobs("video", sources, None, &WriteOptions::default()).await?;
    /// # Ok(()) }
    /// ```
    pub async fn append_blobs(
        &self,
        column: &str,
        sources: Vec<BlobSource>,
        rows: Option<RecordBatch>,
        opts: &WriteOptions,
    ) -> Result<Table> {
        self.manifest().check_writable()?;
        let field = self.blob_field(column)?.clone();
        let n = sources.len();
        let (mut fields, mut columns): (Vec<ArrowField>, Vec<ArrayRef>) = match &rows {
            Some(rows) if rows.num_rows() != n => {
                return Err(Error::invalid(format!(
                    "{} rows of other columns for {n} blobs",
                    rows.num_rows()
                )))
            }
            Some(rows) if rows.schema().index_of(column).is_ok() => {
                return Err(Error::invalid(format!(
                    "the rows of other columns include BLOB column '{column}'"
                )))
            }
            Some(rows) => (
                rows.schema().fields().iter().map(|f| f.as_ref().clone()).collect(),
                rows.columns().to_vec(),
            ),
            None => (vec![], vec![]),
        };
        let mut blobs = self.blob_writer();
        let mut stored = Vec::with_capacity(n);
        for source in sources {
            match blobs.put(source).await {
                Ok(d) => stored.push(Some(d)),
                Err(e) => {
                    blobs.abort().await;
                    return Err(e);
                }
            }
        }
        fields.push(ArrowField::new(column, blob_descriptor_type(), field.nullable));
        columns.push(descriptor_array(&stored)?);
        let schema = Arc::new(ArrowSchema::new(fields));
        let options = RecordBatchOptions::new().with_row_count(Some(n));
        let batch = RecordBatch::try_new_with_options(schema.clone(), columns, &options);
        let batch = match batch {
            Ok(b) => b,
            Err(e) => {
                blobs.abort().await;
                return Err(e.into());
            }
        };
        let input = BatchStream::from_batches(schema, vec![batch]);
        let files = write_with_blobs(self.location(), self.table_schema(), input, opts, blobs).await?;
        self.commit_action(Action::Append { files }).await
    }

    /// Opens the value of BLOB column `column` in row `row_id` as a seekable stream that reads
    /// ranges on demand (constant memory, whatever the size). A null value is not found.
    pub async fn open_blob(&self, row_id: u64, column: &str) -> Result<BlobReader> {
        self.blob_field(column)?;
        let batch = self.take_rows(&[row_id], &[column.to_string()]).await?;
        let descriptor = descriptors(batch.column(0).as_ref())?.pop().flatten().ok_or_else(|| {
            Error::not_found(format!(
                "a value in BLOB column '{column}' of row {row_id} (it is null)"
            ))
        })?;
        Ok(BlobReader::new(
            self.location().clone(),
            descriptor.path.as_deref().unwrap_or_default(),
            descriptor.offset,
            descriptor.size,
        ))
    }

    /// The values of BLOB column `column` in the rows `row_ids`, in that order, as a
    /// `LargeBinary` array (read whole into memory).
    pub async fn take_blobs(&self, row_ids: &[u64], column: &str) -> Result<ArrayRef> {
        self.blob_field(column)?;
        let batch = self.take_rows(row_ids, &[column.to_string()]).await?;
        fetch_bytes(self.location(), batch.column(0).as_ref()).await
    }
}
