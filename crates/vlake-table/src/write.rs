//! Writing data files: conforming input batches to the table schema and encoding them as
//! Parquet with field ids and statistics (format-spec/data-files.md).

use std::sync::Arc;

use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_schema::{Schema as ArrowSchema, SchemaRef};
use futures::StreamExt;
use parquet::arrow::async_writer::ParquetObjectWriter;
use parquet::arrow::{ArrowSchemaConverter, AsyncArrowWriter};
use parquet::basic::{Compression, Encoding, ZstdLevel};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use vlake_format::layout::data_file_path;
use vlake_format::{ColumnStats, Error, Result, Schema};
use vlake_io::TableLocation;

use crate::stats::StatsCollector;
use crate::BatchStream;

/// Called with the number of rows written so far.
pub type ProgressFn = Arc<dyn Fn(u64) + Send + Sync>;

/// Knobs of a write.
#[derive(Clone)]
pub struct WriteOptions {
    /// Start a new data file after this many rows.
    pub max_rows_per_file: usize,
    /// Target size of a Parquet row group in bytes (before encoding).
    pub target_row_group_bytes: usize,
    /// Reports progress in rows.
    pub progress: Option<ProgressFn>,
}

impl Default for WriteOptions {
    fn default() -> Self {
        Self {
            max_rows_per_file: 1 << 20,
            target_row_group_bytes: 64 << 20,
            progress: None,
        }
    }
}

impl std::fmt::Debug for WriteOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriteOptions")
            .field("max_rows_per_file", &self.max_rows_per_file)
            .field("target_row_group_bytes", &self.target_row_group_bytes)
            .finish_non_exhaustive()
    }
}

/// A data file written but not yet committed.
#[derive(Clone, Debug)]
pub(crate) struct WrittenFile {
    pub path: String,
    pub num_rows: u64,
    pub size_bytes: u64,
    pub stats: Vec<ColumnStats>,
}

/// Checks an input schema against the table schema and returns how to conform batches: for each
/// table column, the index of the input column (or `None` to fill with nulls).
pub(crate) fn plan_conform(table: &Schema, input: &ArrowSchema) -> Result<Vec<Option<usize>>> {
    if let Some(extra) = input.fields().iter().find(|f| table.field(f.name()).is_err()) {
        return Err(Error::invalid(format!(
            "input column '{}' is not in the table schema (table columns: {})",
            extra.name(),
            table.column_names().join(", ")
        )));
    }
    table
        .fields
        .iter()
        .map(|field| match input.index_of(&field.name) {
            Ok(i) => {
                let expected = field.to_arrow(false);
                let got = input.field(i).data_type();
                if !expected.data_type().equals_datatype(got) {
                    return Err(Error::invalid(format!(
                        "column '{}' has type {got} in the input but {} in the table",
                        field.name,
                        expected.data_type()
                    )));
                }
                Ok(Some(i))
            }
            Err(_) if field.nullable => Ok(None),
            Err(_) => Err(Error::invalid(format!(
                "input lacks column '{}', which is not nullable",
                field.name
            ))),
        })
        .collect()
}

/// Rebuilds `batch` with the table's column order, types and field ids.
pub(crate) fn conform(
    batch: &RecordBatch,
    plan: &[Option<usize>],
    table: &Schema,
    file_schema: &SchemaRef,
) -> Result<RecordBatch> {
    let columns = plan
        .iter()
        .zip(&table.fields)
        .zip(file_schema.fields())
        .map(|((source, field), target)| -> Result<ArrayRef> {
            let Some(i) = source else {
                return Ok(arrow_array::new_null_array(target.data_type(), batch.num_rows()));
            };
            let column = batch.column(*i);
            if !field.nullable && column.null_count() > 0 {
                return Err(Error::invalid(format!(
                    "column '{}' is not nullable but {} input rows are null",
                    field.name,
                    column.null_count()
                )));
            }
            if column.data_type() == target.data_type() {
                Ok(column.clone())
            } else {
                Ok(arrow_cast::cast(column, target.data_type())?)
            }
        })
        .collect::<Result<Vec<_>>>()?;
    let options = arrow_array::RecordBatchOptions::new().with_row_count(Some(batch.num_rows()));
    Ok(RecordBatch::try_new_with_options(
        file_schema.clone(),
        columns,
        &options,
    )?)
}

/// Writer properties: vectors are written plain and uncompressed without statistics
/// (they neither compress nor prune); other columns use zstd.
fn writer_properties(schema: &Schema, file_schema: &ArrowSchema, opts: &WriteOptions) -> Result<WriterProperties> {
    let row_bytes: usize = schema
        .fields
        .iter()
        .map(|f| f.vector_dim().map_or(16, |(dim, _)| dim.max(1) as usize * 4))
        .sum();
    let rows_per_group = (opts.target_row_group_bytes / row_bytes.max(1)).clamp(1024, 1 << 20);
    let mut builder = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::default()))
        .set_max_row_group_row_count(Some(rows_per_group));
    let descriptor = ArrowSchemaConverter::new()
        .convert(file_schema)
        .map_err(|e| Error::Internal(format!("cannot derive the Parquet schema: {e}")))?;
    for column in descriptor.columns() {
        let root = column.path().parts().first().cloned().unwrap_or_default();
        if schema.field(&root).is_ok_and(|f| f.vector_dim().is_some()) {
            builder = builder
                .set_column_dictionary_enabled(column.path().clone(), false)
                .set_column_encoding(column.path().clone(), Encoding::PLAIN)
                .set_column_compression(column.path().clone(), Compression::UNCOMPRESSED)
                .set_column_statistics_enabled(column.path().clone(), EnabledStatistics::None);
        }
    }
    Ok(builder.build())
}

/// One open data file.
struct OpenFile {
    path: String,
    writer: AsyncArrowWriter<ParquetObjectWriter>,
    stats: StatsCollector,
    rows: u64,
}

/// Writes `input` as one or more data files of `schema`. On failure the files written so far
/// are removed (best effort) and the error is returned.
pub(crate) async fn write_data_files(
    location: &TableLocation,
    schema: &Schema,
    input: BatchStream,
    opts: &WriteOptions,
) -> Result<Vec<WrittenFile>> {
    let mut written = Vec::new();
    match write_inner(location, schema, input, opts, &mut written).await {
        Ok(()) => Ok(written),
        Err(e) => {
            remove_files(location, written.iter().map(|f| f.path.as_str())).await;
            Err(e)
        }
    }
}

/// Deletes uncommitted files, ignoring failures (cleanup removes what is left).
pub(crate) async fn remove_files(location: &TableLocation, paths: impl Iterator<Item = &str>) {
    for path in paths {
        let _ = location.delete(path).await;
    }
}

async fn write_inner(
    location: &TableLocation,
    schema: &Schema,
    mut input: BatchStream,
    opts: &WriteOptions,
    written: &mut Vec<WrittenFile>,
) -> Result<()> {
    let plan = plan_conform(schema, input.schema())?;
    let file_schema = Arc::new(schema.to_arrow_with_field_ids());
    let props = writer_properties(schema, &file_schema, opts)?;
    let mut open: Option<OpenFile> = None;
    let mut total = 0u64;
    while let Some(batch) = input.next().await {
        let batch = conform(&batch?, &plan, schema, &file_schema)?;
        if batch.num_rows() == 0 {
            continue;
        }
        let file = match &mut open {
            Some(f) => f,
            None => {
                let path = data_file_path(&uuid::Uuid::new_v4().simple().to_string(), "parquet");
                let object = ParquetObjectWriter::new(location.store().clone(), location.path(&path));
                let writer = AsyncArrowWriter::try_new(object, file_schema.clone(), Some(props.clone()))
                    .map_err(|e| Error::io(&path, e))?;
                // Record the file before writing so that a failure removes it.
                written.push(WrittenFile {
                    path: path.clone(),
                    num_rows: 0,
                    size_bytes: 0,
                    stats: vec![],
                });
                open.insert(OpenFile {
                    path,
                    writer,
                    stats: StatsCollector::new(schema),
                    rows: 0,
                })
            }
        };
        file.stats.update(&batch);
        file.writer.write(&batch).await.map_err(|e| Error::io(&file.path, e))?;
        file.rows += batch.num_rows() as u64;
        total += batch.num_rows() as u64;
        if let Some(progress) = &opts.progress {
            progress(total);
        }
        if file.rows >= opts.max_rows_per_file as u64 {
            if let Some(f) = open.take() {
                finish_file(f, written).await?;
            }
        }
    }
    if let Some(f) = open.take() {
        finish_file(f, written).await?;
    }
    Ok(())
}

async fn finish_file(mut file: OpenFile, written: &mut [WrittenFile]) -> Result<()> {
    file.writer.finish().await.map_err(|e| Error::io(&file.path, e))?;
    let entry = written
        .iter_mut()
        .find(|w| w.path == file.path)
        .ok_or_else(|| Error::Internal(format!("lost track of {}", file.path)))?;
    entry.size_bytes = file.writer.bytes_written() as u64;
    entry.num_rows = file.rows;
    entry.stats = file.stats.finish();
    Ok(())
}
