//! Writing data files: conforming input batches to the table schema and encoding them as
//! Parquet with field ids and statistics (format-spec/data-files.md).

use std::collections::BTreeSet;
use std::sync::Arc;

use arrow_array::{Array, RecordBatch};
use arrow_schema::{DataType as ArrowType, Schema as ArrowSchema, SchemaRef};
use futures::StreamExt;
use parquet::arrow::async_writer::ParquetObjectWriter;
use std::io::Write;

use parquet::arrow::{ArrowSchemaConverter, ArrowWriter, AsyncArrowWriter};
use parquet::basic::{Compression, Encoding, ZstdLevel};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use vlake_format::layout::data_file_path;
use vlake_format::schema::blob_descriptor_type;
use vlake_format::{BlobFile, Error, Field, Result, Schema};
use vlake_io::TableLocation;

use crate::blob::BlobWriter;
use crate::stats::StatsCollector;
use crate::txn::{remove_files, StagedFile};
use crate::vector_codec;
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
    /// The primary-key columns of a table this write creates (or overwrites); empty for none.
    /// Appends to a table with a key must name the same columns or none.
    pub primary_key: Vec<String>,
}

impl Default for WriteOptions {
    fn default() -> Self {
        Self {
            max_rows_per_file: 1 << 20,
            target_row_group_bytes: 64 << 20,
            progress: None,
            primary_key: vec![],
        }
    }
}

impl std::fmt::Debug for WriteOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriteOptions")
            .field("max_rows_per_file", &self.max_rows_per_file)
            .field("target_row_group_bytes", &self.target_row_group_bytes)
            .field("primary_key", &self.primary_key)
            .finish_non_exhaustive()
    }
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
                if field.is_blob() {
                    return match got {
                        ArrowType::Binary | ArrowType::LargeBinary => Ok(Some(i)),
                        t if t.equals_datatype(&blob_descriptor_type()) => Ok(Some(i)),
                        t => Err(Error::invalid(format!(
                            "BLOB column '{}' has type {t} in the input; it takes binary values or blob descriptors",
                            field.name
                        ))),
                    };
                }
                if !expected.data_type().equals_datatype(&decoded_type(got)) {
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

/// `t` with every dictionary type, at any depth, replaced by its value type: the type a
/// dictionary-encoded input column is written as.
fn decoded_type(t: &ArrowType) -> ArrowType {
    let field = |f: &arrow_schema::FieldRef| Arc::new(f.as_ref().clone().with_data_type(decoded_type(f.data_type())));
    match t {
        ArrowType::Dictionary(_, value) => decoded_type(value),
        ArrowType::List(item) => ArrowType::List(field(item)),
        ArrowType::FixedSizeList(item, size) => ArrowType::FixedSizeList(field(item), *size),
        ArrowType::Struct(fields) => ArrowType::Struct(fields.iter().map(field).collect()),
        other => other.clone(),
    }
}

/// Rebuilds `batch` with the table's column order, types and field ids, vectors encoded for
/// the file and BLOB values stored by `blobs` (the blob files pointed into are added to `refs`).
async fn conform(
    batch: &RecordBatch,
    plan: &[Option<usize>],
    table: &Schema,
    file_schema: &SchemaRef,
    blobs: &mut BlobWriter,
    refs: &mut BTreeSet<String>,
) -> Result<RecordBatch> {
    let mut columns = Vec::with_capacity(plan.len());
    for ((source, field), file_field) in plan.iter().zip(&table.fields).zip(file_schema.fields()) {
        let Some(i) = source else {
            columns.push(arrow_array::new_null_array(file_field.data_type(), batch.num_rows()));
            continue;
        };
        let column = batch.column(*i);
        if !field.nullable && column.null_count() > 0 {
            return Err(Error::invalid(format!(
                "column '{}' is not nullable but {} input rows are null",
                field.name,
                column.null_count()
            )));
        }
        if field.is_blob() {
            columns.push(blobs.externalize(field, column, refs).await?);
            continue;
        }
        // Vectors are encoded from the table type; every other column takes the file type,
        // whose nested fields carry their field ids. The cast also decodes dictionaries.
        let vector_type;
        let target = if field.vector_dim().is_some() {
            vector_type = field.to_arrow(false).data_type().clone();
            &vector_type
        } else {
            file_field.data_type()
        };
        let column = if column.data_type() == target {
            column.clone()
        } else {
            arrow_cast::cast(column, target)
                .map_err(|e| Error::invalid(format!("cannot convert column '{}' to {target}: {e}", field.name)))?
        };
        columns.push(vector_codec::encode(field, &column)?);
    }
    let options = arrow_array::RecordBatchOptions::new().with_row_count(Some(batch.num_rows()));
    Ok(RecordBatch::try_new_with_options(
        file_schema.clone(),
        columns,
        &options,
    )?)
}

/// Target size of a data page of a column other than a vector column.
const PAGE_BYTES: usize = 16 << 10;
/// Target size of a dictionary page.
const DICTIONARY_PAGE_BYTES: usize = 32 << 10;
/// Target size of a data page of a vector column.
const VECTOR_PAGE_BYTES: usize = 32 << 10;

/// Writer properties (format-spec/data-files.md#writer-settings): vectors are written plain and
/// uncompressed without statistics (they neither compress nor prune); other columns use zstd.
/// Pages are small, so that fetching a few rows by row id (search results) reads and decodes a
/// few kilobytes per column through the offset index instead of whole column chunks.
fn writer_properties(schema: &Schema, file_schema: &ArrowSchema, opts: &WriteOptions) -> Result<WriterProperties> {
    let vector_bytes = |f: &Field| f.vector_dim().map(|(dim, _)| dim.max(1) as usize * 4);
    let row_bytes: usize = schema.fields.iter().map(|f| vector_bytes(f).unwrap_or(16)).sum();
    let rows_per_group = (opts.target_row_group_bytes / row_bytes.max(1)).clamp(1024, 1 << 20);
    // Page limits are checked once per write batch: batches of as many rows as a vector page
    // holds make vector pages that small.
    let widest_vector = schema.fields.iter().filter_map(vector_bytes).max();
    let write_batch = widest_vector.map_or(1024, |bytes| (VECTOR_PAGE_BYTES / bytes).clamp(8, 1024));
    let mut builder = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::default()))
        .set_max_row_group_row_count(Some(rows_per_group))
        .set_data_page_size_limit(PAGE_BYTES)
        .set_dictionary_page_size_limit(DICTIONARY_PAGE_BYTES)
        .set_write_batch_size(write_batch);
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
                .set_column_statistics_enabled(column.path().clone(), EnabledStatistics::None)
                .set_column_data_page_size_limit(column.path().clone(), VECTOR_PAGE_BYTES);
        }
    }
    Ok(builder.build())
}

/// Where an open data file's batches go.
enum Sink {
    /// Any object store, through multipart uploads.
    Store(Box<AsyncArrowWriter<ParquetObjectWriter>>),
    /// Local disk: a thread encodes and writes while the caller prepares the next batch.
    Local {
        batches: tokio::sync::mpsc::Sender<RecordBatch>,
        done: tokio::sync::oneshot::Receiver<Result<u64>>,
    },
}

impl Sink {
    fn open(location: &TableLocation, path: &str, file_schema: &SchemaRef, props: &WriterProperties) -> Result<Self> {
        let Some(root) = location.direct_write_root() else {
            let object = ParquetObjectWriter::new(location.store().clone(), location.path(path));
            let writer = AsyncArrowWriter::try_new(object, file_schema.clone(), Some(props.clone()))
                .map_err(|e| Error::io(path, e))?;
            return Ok(Self::Store(Box::new(writer)));
        };
        let full = root.join(path);
        let (batches, mut rx) = tokio::sync::mpsc::channel::<RecordBatch>(2);
        let (tx, done) = tokio::sync::oneshot::channel();
        let (schema, props, name) = (file_schema.clone(), props.clone(), path.to_string());
        std::thread::spawn(move || {
            let result = (|| -> Result<u64> {
                let io = |e: std::io::Error| Error::io(&name, e);
                if let Some(dir) = full.parent() {
                    std::fs::create_dir_all(dir).map_err(io)?;
                }
                let file = std::io::BufWriter::with_capacity(4 << 20, std::fs::File::create(&full).map_err(io)?);
                let mut writer = ArrowWriter::try_new(file, schema, Some(props)).map_err(|e| Error::io(&name, e))?;
                while let Some(batch) = rx.blocking_recv() {
                    writer.write(&batch).map_err(|e| Error::io(&name, e))?;
                }
                writer.finish().map_err(|e| Error::io(&name, e))?;
                let bytes = writer.bytes_written() as u64;
                writer.inner_mut().flush().map_err(io)?;
                Ok(bytes)
            })();
            let _ = tx.send(result);
        });
        Ok(Self::Local { batches, done })
    }

    async fn write(&mut self, path: &str, batch: RecordBatch) -> Result<()> {
        match self {
            Self::Store(writer) => writer.write(&batch).await.map_err(|e| Error::io(path, e)),
            Self::Local { batches, done } => match batches.send(batch).await {
                Ok(()) => Ok(()),
                // The writer thread stopped: it failed, and says why.
                Err(_) => Err(done
                    .await
                    .map_err(|_| Error::Internal(format!("writer of {path} vanished")))?
                    .err()
                    .unwrap_or_else(|| Error::Internal(format!("writer of {path} stopped early")))),
            },
        }
    }

    /// Gives up on the file after a failure, once nothing can write it any more: the local
    /// writer thread has stopped (it would otherwise create or complete the file after the
    /// caller removed it), and an object-store upload is never completed.
    async fn close(self) {
        match self {
            Self::Store(writer) => drop(writer),
            Self::Local { batches, done } => {
                drop(batches);
                let _ = done.await;
            }
        }
    }

    /// Completes the file; returns its size in bytes.
    async fn finish(self, path: &str) -> Result<u64> {
        match self {
            Self::Store(mut writer) => {
                writer.finish().await.map_err(|e| Error::io(path, e))?;
                Ok(writer.bytes_written() as u64)
            }
            Self::Local { batches, done } => {
                drop(batches);
                done.await
                    .map_err(|_| Error::Internal(format!("writer of {path} vanished")))?
            }
        }
    }
}

/// One open data file.
struct OpenFile {
    path: String,
    sink: Sink,
    stats: StatsCollector,
    rows: u64,
    /// Blob files its descriptors point into.
    blob_refs: BTreeSet<String>,
}

/// Writes `input` as one or more data files of `schema`, with BLOB values and descriptors
/// handled by `blobs`. On failure the data and blob files written so far are removed (best
/// effort) and the error is returned.
pub(crate) async fn write_with_blobs(
    location: &TableLocation,
    schema: &Schema,
    input: BatchStream,
    opts: &WriteOptions,
    mut blobs: BlobWriter,
) -> Result<Vec<StagedFile>> {
    let mut written = Vec::new();
    let result = match write_inner(location, schema, input, opts, &mut blobs, &mut written).await {
        Ok(()) => blobs.finish().await,
        Err(e) => Err(e),
    };
    if let Err(e) = result {
        remove_files(location, written.iter().map(|f| f.path.as_str())).await;
        blobs.abort().await;
        return Err(e);
    }
    let mut unclaimed: BTreeSet<&str> = blobs.written().iter().map(|b| b.path.as_str()).collect();
    for file in &mut written {
        for blob in &mut file.blob_files {
            blob.size_bytes = blobs
                .file_size(&blob.path)
                .ok_or_else(|| Error::Internal(format!("lost track of blob file {}", blob.path)))?;
            if unclaimed.remove(blob.path.as_str()) {
                file.new_blobs.push(blob.path.clone());
            }
        }
    }
    // Values no row points to (none in practice) are not kept.
    remove_files(location, unclaimed.into_iter()).await;
    Ok(written)
}

/// Writes the data files (recorded in `written` before each is opened); a file still open
/// when this fails is closed before the error is returned, so that it can be removed.
async fn write_inner(
    location: &TableLocation,
    schema: &Schema,
    input: BatchStream,
    opts: &WriteOptions,
    blobs: &mut BlobWriter,
    written: &mut Vec<StagedFile>,
) -> Result<()> {
    let mut open: Option<OpenFile> = None;
    let result = write_files(location, schema, input, opts, blobs, written, &mut open).await;
    if let Some(file) = open {
        file.sink.close().await;
    }
    result
}

async fn write_files(
    location: &TableLocation,
    schema: &Schema,
    mut input: BatchStream,
    opts: &WriteOptions,
    blobs: &mut BlobWriter,
    written: &mut Vec<StagedFile>,
    open: &mut Option<OpenFile>,
) -> Result<()> {
    let plan = plan_conform(schema, input.schema())?;
    let file_schema = Arc::new(vector_codec::file_schema(schema));
    let props = writer_properties(schema, &file_schema, opts)?;
    let mut total = 0u64;
    while let Some(batch) = input.next().await {
        let batch = batch?;
        if batch.num_rows() == 0 {
            continue;
        }
        // Conform before opening a file, so that bad input leaves no file behind.
        let mut refs = BTreeSet::new();
        let batch = conform(&batch, &plan, schema, &file_schema, blobs, &mut refs).await?;
        let file = match open {
            Some(f) => f,
            None => {
                let path = data_file_path(&uuid::Uuid::new_v4().simple().to_string(), "parquet");
                let sink = Sink::open(location, &path, &file_schema, &props)?;
                // Record the file before writing so that a failure removes it.
                written.push(StagedFile {
                    path: path.clone(),
                    num_rows: 0,
                    size_bytes: 0,
                    stats: vec![],
                    deletion: None,
                    blob_files: vec![],
                    new_blobs: vec![],
                });
                open.insert(OpenFile {
                    path,
                    sink,
                    stats: StatsCollector::new(schema),
                    rows: 0,
                    blob_refs: BTreeSet::new(),
                })
            }
        };
        file.blob_refs.append(&mut refs);
        file.stats.update(&batch);
        let rows = batch.num_rows() as u64;
        file.sink.write(&file.path, batch).await?;
        file.rows += rows;
        total += rows;
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

async fn finish_file(file: OpenFile, written: &mut [StagedFile]) -> Result<()> {
    let size = file.sink.finish(&file.path).await?;
    let entry = written
        .iter_mut()
        .find(|w| w.path == file.path)
        .ok_or_else(|| Error::Internal(format!("lost track of {}", file.path)))?;
    entry.size_bytes = size;
    entry.num_rows = file.rows;
    entry.stats = file.stats.finish();
    // Sizes are filled in once every blob file is complete.
    entry.blob_files = file
        .blob_refs
        .into_iter()
        .map(|path| BlobFile { path, size_bytes: 0 })
        .collect();
    Ok(())
}
