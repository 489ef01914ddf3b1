//! Scans: planning into serialisable [`ScanTask`]s (one per data file that survives pruning) and
//! executing them (format-spec/data-files.md#reading).

use std::sync::Arc;

use arrow_array::{ArrayRef, RecordBatch, RecordBatchOptions, StringArray, UInt64Array};
use arrow_schema::{DataType as ArrowType, Field as ArrowField, Schema as ArrowSchema, SchemaRef};
use futures::{StreamExt, TryStreamExt};
use parquet::arrow::arrow_reader::{
    ArrowPredicate, ArrowPredicateFn, ArrowReaderMetadata, ArrowReaderOptions, RowFilter, RowSelection,
};
use parquet::arrow::async_reader::ParquetObjectReader;
use parquet::arrow::{ParquetRecordBatchStreamBuilder, ProjectionMask};
use parquet::file::metadata::PageIndexPolicy;
use roaring::RoaringTreemap;
use serde::{Deserialize, Serialize};
use vlake_format::schema::arrow_field_id;
use vlake_format::{DataFile, Error, Field, Result};
use vlake_io::TableLocation;

use crate::blob::{fetch_bytes, BlobMode};
use crate::rows::FileRows;
use crate::session::{CacheKind, Session, SessionOptions};
use crate::{vector_codec, BatchStream, Predicate, Table};

/// Name of the virtual row-id column.
pub const ROW_ID: &str = "_rowid";

/// Builds a scan of one table version.
#[derive(Debug, Clone)]
pub struct Scanner {
    table: Table,
    columns: Option<Vec<String>>,
    filter: Option<Predicate>,
    limit: Option<usize>,
    with_row_id: bool,
    batch_size: usize,
    blobs: BlobMode,
    view_types: bool,
}

/// A scan split into units of work that can run anywhere (they serialise to JSON).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ScanPlan {
    /// URI of the table.
    pub table_uri: String,
    /// Version scanned.
    pub version: u64,
    /// Files read, one task each (or one per range of rows after [`ScanPlan::split_files`]),
    /// in table order.
    pub tasks: Vec<ScanTask>,
    /// Files skipped by statistics.
    pub pruned_files: usize,
    /// Row limit over the whole scan.
    pub limit: Option<usize>,
}

impl ScanPlan {
    /// Splits every task of a file with more than `rows_per_task` rows into tasks that each read
    /// a range of at most that many of its rows, so that more readers can share a large file.
    /// A plan with a row limit is left as it is (each task stops at the limit on its own).
    pub fn split_files(mut self, rows_per_task: u64) -> Self {
        if self.limit.is_some() || rows_per_task == 0 {
            return self;
        }
        self.tasks = self
            .tasks
            .into_iter()
            .flat_map(|task| {
                let rows = task.file.num_rows;
                if rows <= rows_per_task || task.row_range.is_some() {
                    return vec![task];
                }
                (0..rows)
                    .step_by(usize::try_from(rows_per_task).unwrap_or(usize::MAX))
                    .map(|start| ScanTask {
                        row_range: Some(start..(start + rows_per_task).min(rows)),
                        ..task.clone()
                    })
                    .collect()
            })
            .collect();
        self
    }
}

/// Reads one data file: projection, filter and row ids.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ScanTask {
    /// The file.
    pub file: DataFile,
    /// Output columns.
    pub columns: Vec<Field>,
    /// Extra columns the filter needs.
    pub filter_columns: Vec<Field>,
    /// Row filter.
    pub filter: Option<Predicate>,
    /// Add the `_rowid` column.
    pub with_row_id: bool,
    /// Rows per batch.
    pub batch_size: usize,
    /// Stop after this many output rows.
    pub limit: Option<usize>,
    /// Read only these row positions of the file (ascending), when set; deleted positions
    /// are skipped either way.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub row_offsets: Option<Vec<u64>>,
    /// Read only the row positions in this range of the file, when set (a share of a file
    /// split between tasks; see [`ScanPlan::split_files`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub row_range: Option<std::ops::Range<u64>>,
    /// How BLOB columns are returned.
    #[serde(default)]
    pub blobs: BlobMode,
    /// Return strings and binaries as Arrow view types (see [`Scanner::view_types`]).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub view_types: bool,
}

impl Scanner {
    pub(crate) fn new(table: Table) -> Self {
        Self {
            table,
            columns: None,
            filter: None,
            limit: None,
            with_row_id: false,
            batch_size: 8192,
            blobs: BlobMode::Descriptors,
            view_types: false,
        }
    }

    /// How BLOB columns are returned: descriptors (the default) or their bytes.
    pub fn blobs(mut self, mode: BlobMode) -> Self {
        self.blobs = mode;
        self
    }

    /// Only these columns, in this order.
    pub fn columns(mut self, columns: &[impl AsRef<str>]) -> Self {
        self.columns = Some(columns.iter().map(|c| c.as_ref().to_string()).collect());
        self
    }

    /// Only rows matching `filter`.
    pub fn filter(mut self, filter: Predicate) -> Self {
        self.filter = Some(filter);
        self
    }

    /// Only rows matching the SQL expression `sql`.
    pub fn filter_sql(self, sql: &str) -> Result<Self> {
        Ok(self.filter(Predicate::parse(sql)?))
    }

    /// At most `n` rows.
    pub fn limit(mut self, n: usize) -> Self {
        self.limit = Some(n);
        self
    }

    /// Adds the stable row id as a `_rowid` UInt64 column.
    pub fn with_row_id(mut self, yes: bool) -> Self {
        self.with_row_id = yes;
        self
    }

    /// Rows per output batch.
    pub fn batch_size(mut self, n: usize) -> Self {
        self.batch_size = n.max(1);
        self
    }

    /// Return string and binary columns as Arrow's view types (`Utf8View`, `BinaryView`)
    /// instead of `Utf8` and `Binary`: Parquet pages decode into them without copying the
    /// values, which makes scans of string columns cheaper for engines that take views
    /// (DataFusion). Nested strings keep their plain types.
    pub fn view_types(mut self, yes: bool) -> Self {
        self.view_types = yes;
        self
    }

    fn output_fields(&self) -> Result<Vec<Field>> {
        let schema = self.table.table_schema();
        Ok(match &self.columns {
            Some(cols) => schema.project(cols)?.fields,
            None => schema.fields.clone(),
        })
    }

    /// The schema of the batches the scan produces.
    pub fn output_schema(&self) -> Result<SchemaRef> {
        Ok(output_schema(
            &self.output_fields()?,
            self.with_row_id,
            self.blobs,
            self.view_types,
        ))
    }

    /// Splits the scan into tasks, skipping files whose statistics rule out the filter.
    pub fn plan(&self) -> Result<ScanPlan> {
        let schema = self.table.table_schema();
        let columns = self.output_fields()?;
        let filter_columns = match &self.filter {
            Some(f) => f
                .columns()
                .into_iter()
                .filter(|c| !columns.iter().any(|o| o.name == *c))
                .map(|c| schema.field(c).cloned())
                .collect::<Result<Vec<_>>>()?,
            None => vec![],
        };
        let manifest = self.table.manifest();
        let mut tasks = Vec::new();
        let mut pruned_files = 0;
        for file in &manifest.data_files {
            if let Some(filter) = &self.filter {
                let lookup = |name: &str| {
                    let id = schema.field(name).ok()?.id;
                    file.stats.iter().find(|s| s.field_id == id)
                };
                if !filter.may_match(&lookup, file.num_rows) {
                    pruned_files += 1;
                    continue;
                }
            }
            tasks.push(ScanTask {
                file: file.clone(),
                columns: columns.clone(),
                filter_columns: filter_columns.clone(),
                filter: self.filter.clone(),
                with_row_id: self.with_row_id,
                batch_size: self.batch_size,
                limit: self.limit,
                row_offsets: None,
                row_range: None,
                blobs: self.blobs,
                view_types: self.view_types,
            });
        }
        Ok(ScanPlan {
            table_uri: self.table.uri().to_string(),
            version: manifest.version,
            tasks,
            pruned_files,
            limit: self.limit,
        })
    }

    /// Runs the scan.
    pub async fn execute(&self) -> Result<BatchStream> {
        let plan = self.plan()?;
        let schema = self.output_schema()?;
        let location = self.table.location().clone();
        let session = self.table.session().clone();
        let stream = futures::stream::iter(plan.tasks)
            .map(move |task| {
                let (location, session) = (location.clone(), session.clone());
                async move { task.execute(&location, &session).await }
            })
            .buffered(2)
            .try_flatten();
        Ok(BatchStream::new(schema, limit_stream(stream.boxed(), plan.limit)))
    }

    /// Runs the scan and collects the result.
    pub async fn collect(&self) -> Result<Vec<RecordBatch>> {
        self.execute().await?.collect_batches().await
    }

    /// Counts matching rows, reading only what the filter needs (without a filter, the
    /// manifest's counts after [`Table::verify_row_counts`]).
    pub async fn count_rows(&self) -> Result<u64> {
        let Some(filter) = &self.filter else {
            self.table.verify_row_counts().await?;
            let total = self.table.num_rows();
            return Ok(self.limit.map_or(total, |l| total.min(l as u64)));
        };
        let columns = filter.columns();
        let counting = Self {
            columns: Some(columns.iter().map(|c| c.to_string()).collect()),
            with_row_id: false,
            blobs: BlobMode::Descriptors,
            ..self.clone()
        };
        let batches = counting.collect().await?;
        Ok(batches.iter().map(|b| b.num_rows() as u64).sum())
    }
}

impl Table {
    /// Checks the row count the manifest gives each data file against the file's footer
    /// (`corrupt`, naming the file, when they differ). Footers are cached, so this reads each
    /// file's footer once per process; call it before answering from the counts alone, as
    /// [`Scanner::count_rows`] and the DataFusion `count(*)` statistics do.
    pub async fn verify_row_counts(&self) -> Result<()> {
        let location = self.location();
        // Futures collected first: a stream closure over borrowed files is not `Send` for
        // every lifetime, which async callers (DataFusion's scan) need.
        let loads: Vec<_> = self
            .manifest()
            .data_files
            .iter()
            .map(|file| load_footer(location, self.session(), file))
            .collect();
        futures::stream::iter(loads)
            .buffer_unordered(16)
            .try_for_each(|_| futures::future::ready(Ok(())))
            .await
    }
}

/// The Arrow schema of a scan of `columns`: BLOB columns as values or descriptors (`blobs`),
/// other string and binary columns as views with `view_types`.
fn output_schema(columns: &[Field], with_row_id: bool, blobs: BlobMode, view_types: bool) -> SchemaRef {
    let mut fields: Vec<ArrowField> = columns
        .iter()
        .map(|f| match (f.is_blob(), blobs) {
            (true, BlobMode::Bytes) => f.to_arrow(false),
            (true, BlobMode::Descriptors) => f.to_arrow_read(),
            (false, _) => read_field(f.to_arrow(false), view_types),
        })
        .collect();
    if with_row_id {
        fields.push(ArrowField::new(ROW_ID, ArrowType::UInt64, false));
    }
    Arc::new(ArrowSchema::new(fields))
}

/// The Arrow schema of `fields` as a scan returns them.
fn read_schema(fields: &[Field], view_types: bool) -> SchemaRef {
    output_schema(fields, false, BlobMode::Descriptors, view_types)
}

/// `field` as a scan returns it: with `view_types`, a top-level string or binary column as the
/// matching view type.
fn read_field(field: ArrowField, view_types: bool) -> ArrowField {
    let view = match field.data_type() {
        ArrowType::Utf8 | ArrowType::LargeUtf8 => ArrowType::Utf8View,
        ArrowType::Binary | ArrowType::LargeBinary => ArrowType::BinaryView,
        _ => return field,
    };
    if view_types {
        field.with_data_type(view)
    } else {
        field
    }
}

/// Truncates a stream of batches after `limit` rows.
fn limit_stream(
    stream: futures::stream::BoxStream<'static, Result<RecordBatch>>,
    limit: Option<usize>,
) -> futures::stream::BoxStream<'static, Result<RecordBatch>> {
    let Some(limit) = limit else { return stream };
    stream
        .scan(limit, |left, batch| {
            let out = match batch {
                Err(e) => Some(Err(e)),
                Ok(_) if *left == 0 => None,
                Ok(b) => {
                    let take = b.num_rows().min(*left);
                    *left -= take;
                    Some(Ok(b.slice(0, take)))
                }
            };
            futures::future::ready(out)
        })
        .boxed()
}

impl ScanTask {
    /// Every live row of `file` with `columns` (descriptors for BLOB columns), and row ids when
    /// `with_row_id`, in batches of 8,192 rows.
    pub(crate) fn of_file(file: &DataFile, columns: Vec<Field>, with_row_id: bool) -> Self {
        Self {
            file: file.clone(),
            columns,
            filter_columns: vec![],
            filter: None,
            with_row_id,
            batch_size: 8192,
            limit: None,
            row_offsets: None,
            row_range: None,
            blobs: BlobMode::Descriptors,
            view_types: false,
        }
    }

    /// The schema of the batches this task produces.
    pub fn output_schema(&self) -> SchemaRef {
        output_schema(&self.columns, self.with_row_id, self.blobs, self.view_types)
    }

    /// Reads the file from the table at `location`: its footer (cached), the columns matched
    /// to table fields by field id, the live (and requested) rows, the filter applied while
    /// decoding where it can be, batches shaped to the output schema, and BLOB bytes fetched
    /// when asked for.
    pub async fn execute(&self, location: &TableLocation, session: &Session) -> Result<BatchStream> {
        let path = self.file.path.clone();
        let object = ParquetObjectReader::new(location.store().clone(), location.path(&path))
            .with_file_size(self.file.size_bytes);
        let metadata = self.reader_metadata(location, session).await?;
        let mut builder = ParquetRecordBatchStreamBuilder::new_with_metadata(object, metadata);
        let needed: Vec<Field> = self.columns.iter().chain(&self.filter_columns).cloned().collect();
        let (sources, roots) = match_columns(builder.schema(), &needed);
        let mask = ProjectionMask::roots(builder.parquet_schema(), roots.iter().copied());
        let (rows, selected) = self.selected_rows(location, session).await?;
        if let Some(positions) = &selected {
            let total = usize::try_from(self.file.num_rows)
                .map_err(|_| Error::corrupt(&path, format!("{} rows do not fit in memory", self.file.num_rows)))?;
            builder = builder.with_row_selection(RowSelection::from_consecutive_ranges(runs(positions), total));
        }
        // Late materialisation: rows are filtered on the filter's columns first, and the other
        // columns are decoded only for the rows that pass. Not with row ids (they count the
        // file's rows in order) or explicit row positions, nor when a filter column is absent
        // from the file (the shaper fills it with nulls).
        let mut shaper_filter = self.filter.clone();
        if let Some(predicate) = self
            .filter
            .as_ref()
            .filter(|_| !self.with_row_id && self.row_offsets.is_none())
            .and_then(|f| row_filter(f, &needed, &sources, builder.parquet_schema(), self.view_types))
        {
            builder = builder.with_row_filter(RowFilter::new(vec![predicate]));
            shaper_filter = None;
        }
        let stream = builder
            .with_projection(mask)
            .with_batch_size(self.batch_size)
            .build()
            .map_err(|e| Error::corrupt(&path, e.to_string()))?;
        let shaper = Shaper {
            needed_schema: read_schema(&needed, self.view_types),
            needed_fields: needed,
            sources: sources
                .iter()
                .map(|s| s.map(|i| roots.iter().position(|r| *r == i).unwrap_or(i)))
                .collect(),
            output_len: self.columns.len(),
            output_schema: output_schema(&self.columns, self.with_row_id, BlobMode::Descriptors, self.view_types),
            filter: shaper_filter,
            with_row_id: self.with_row_id,
        };
        // Row ids of the rows read, in order (only when asked for).
        let row_ids = self.with_row_id.then(|| rows.ids_at(selected.as_ref()));
        let file_path = path.clone();
        let store_location = location.clone();
        let shaped = stream
            .map_err(move |e| read_error(&store_location, &path, e))
            .scan(0usize, move |seen, batch| {
                let out = batch.and_then(|b| {
                    let n = b.num_rows();
                    let ids = match &row_ids {
                        Some(ids) => ids
                            .get(*seen..*seen + n)
                            .map(|s| UInt64Array::from(s.to_vec()))
                            .ok_or_else(|| Error::corrupt(&file_path, "more rows than the manifest says"))?,
                        None => UInt64Array::from(Vec::<u64>::new()),
                    };
                    *seen += n;
                    shaper.shape(&b, ids)
                });
                futures::future::ready(Some(out))
            })
            .try_filter(|b| futures::future::ready(b.num_rows() > 0));
        Ok(self.with_blob_bytes(location, limit_stream(shaped.boxed(), self.limit)))
    }

    /// The file's footer (cached), with strings and binaries decoded straight into view
    /// arrays when the task asks for view types: the file's own Arrow schema (field ids
    /// included) with those types swapped.
    async fn reader_metadata(&self, location: &TableLocation, session: &Session) -> Result<ArrowReaderMetadata> {
        let metadata = load_footer(location, session, &self.file).await?;
        if !self.view_types {
            return Ok(metadata);
        }
        let fields: Vec<ArrowField> = metadata
            .schema()
            .fields()
            .iter()
            .map(|f| read_field(f.as_ref().clone(), true))
            .collect();
        let hint = Arc::new(ArrowSchema::new_with_metadata(
            fields,
            metadata.schema().metadata().clone(),
        ));
        ArrowReaderMetadata::try_new(metadata.metadata().clone(), ArrowReaderOptions::new().with_schema(hint))
            .map_err(|e| read_error(location, &self.file.path, e))
    }

    /// The file's row ids, and the positions to read: the requested ones (or all) minus the
    /// deleted ones; `None` for every row.
    async fn selected_rows(
        &self,
        location: &TableLocation,
        session: &Session,
    ) -> Result<(FileRows, Option<RoaringTreemap>)> {
        let rows = FileRows::load(location, session, &self.file).await?;
        let mut selected = match (&self.row_offsets, rows.live_positions()) {
            (None, live) => live,
            (Some(offsets), live) => {
                let mut wanted: RoaringTreemap = offsets.iter().copied().collect();
                if let Some(live) = live {
                    wanted &= live;
                }
                Some(wanted)
            }
        };
        if let Some(range) = &self.row_range {
            let mut share = RoaringTreemap::new();
            share.insert_range(range.clone());
            selected = Some(match selected {
                Some(wanted) => wanted & share,
                None => share,
            });
        }
        Ok((rows, selected))
    }

    /// `stream` with the bytes of BLOB columns fetched in place of their descriptors, when the
    /// task asks for bytes.
    fn with_blob_bytes(
        &self,
        location: &TableLocation,
        stream: futures::stream::BoxStream<'static, Result<RecordBatch>>,
    ) -> BatchStream {
        let blob_columns: Vec<usize> = (0..self.columns.len())
            .filter(|&i| self.blobs == BlobMode::Bytes && self.columns[i].is_blob())
            .collect();
        let schema = self.output_schema();
        if blob_columns.is_empty() {
            return BatchStream::new(schema, stream);
        }
        let (out_schema, location) = (schema.clone(), location.clone());
        let with_bytes = stream.and_then(move |batch| {
            let (location, schema, blob_columns) = (location.clone(), out_schema.clone(), blob_columns.clone());
            async move {
                let mut columns = batch.columns().to_vec();
                for i in blob_columns {
                    columns[i] = fetch_bytes(&location, columns[i].as_ref()).await?;
                }
                Ok(RecordBatch::try_new(schema, columns)?)
            }
        });
        BatchStream::new(schema, with_bytes)
    }
}

/// For each of `needed`, the file column with its field id (`None`: not in the file), and the
/// file's root columns to decode, sorted.
fn match_columns(file_schema: &SchemaRef, needed: &[Field]) -> (Vec<Option<usize>>, Vec<usize>) {
    let sources: Vec<Option<usize>> = needed
        .iter()
        .map(|f| {
            file_schema
                .fields()
                .iter()
                .position(|c| arrow_field_id(c) == Some(f.id))
        })
        .collect();
    let mut roots: Vec<usize> = sources.iter().flatten().copied().collect();
    roots.sort_unstable();
    roots.dedup();
    (sources, roots)
}

/// The runs of consecutive positions in `positions`, as ranges.
fn runs(positions: &RoaringTreemap) -> impl Iterator<Item = std::ops::Range<usize>> + '_ {
    let mut iter = positions.iter().peekable();
    std::iter::from_fn(move || {
        let start = iter.next()?;
        let mut end = start + 1;
        while iter.next_if_eq(&end).is_some() {
            end += 1;
        }
        Some(start as usize..end as usize)
    })
}

/// `filter` as a Parquet row filter over the file columns it reads (`sources[i]` is the file
/// column of `fields[i]`), or `None` when a filter column is not in the file.
fn row_filter(
    filter: &Predicate,
    fields: &[Field],
    sources: &[Option<usize>],
    parquet_schema: &parquet::schema::types::SchemaDescriptor,
    view_types: bool,
) -> Option<Box<dyn ArrowPredicate>> {
    let used: Vec<(Field, usize)> = filter
        .columns()
        .into_iter()
        .map(|name| {
            let i = fields.iter().position(|f| f.name == name)?;
            Some((fields[i].clone(), sources[i]?))
        })
        .collect::<Option<_>>()?;
    let mut roots: Vec<usize> = used.iter().map(|(_, s)| *s).collect();
    roots.sort_unstable();
    roots.dedup();
    let fields: Vec<Field> = used.iter().map(|(f, _)| f.clone()).collect();
    let arrow = read_schema(&fields, view_types);
    let shaper = Shaper {
        sources: used.iter().map(|(_, s)| roots.iter().position(|r| r == s)).collect(),
        needed_fields: fields,
        needed_schema: arrow.clone(),
        output_len: used.len(),
        output_schema: arrow,
        filter: None,
        with_row_id: false,
    };
    let filter = filter.clone();
    let mask = ProjectionMask::roots(parquet_schema, roots);
    let external = |e: Error| arrow_schema::ArrowError::ExternalError(Box::new(e));
    Some(Box::new(ArrowPredicateFn::new(mask, move |batch| {
        let shaped = shaper
            .shape(&batch, UInt64Array::from(Vec::<u64>::new()))
            .map_err(external)?;
        filter.evaluate(&shaped).map_err(external)
    })))
}

/// A failed read of data file `path`: the filter's own error when evaluating it failed, not
/// found when the object is missing, else corrupt.
fn read_error(location: &TableLocation, path: &str, e: parquet::errors::ParquetError) -> Error {
    use arrow_schema::ArrowError;
    match e {
        parquet::errors::ParquetError::External(inner) => match inner.downcast::<ArrowError>() {
            Ok(arrow) => match *arrow {
                ArrowError::ExternalError(e) => match e.downcast::<Error>() {
                    Ok(vlake) => *vlake,
                    Err(other) => Error::corrupt(format!("{}/{path}", location.uri()), other.to_string()),
                },
                other => Error::corrupt(format!("{}/{path}", location.uri()), other.to_string()),
            },
            Err(inner) if inner.to_string().contains("not found") => {
                Error::not_found(format!("data file {}/{path}", location.uri().trim_end_matches('/')))
            }
            Err(inner) => Error::corrupt(format!("{}/{path}", location.uri()), inner.to_string()),
        },
        other => Error::corrupt(format!("{}/{path}", location.uri()), other.to_string()),
    }
}

/// The parsed Parquet footer of data file `file` (from the cache when it was read before),
/// checked against the manifest: a file whose footer counts other than `file.num_rows` rows is
/// corrupt. Every read of a data file's rows starts here, so no count from a manifest sizes
/// anything before the file has confirmed it.
pub(crate) async fn load_footer(
    location: &TableLocation,
    session: &Session,
    file: &DataFile,
) -> Result<ArrowReaderMetadata> {
    let path = &file.path;
    let key = (location.uri().to_string(), path.clone());
    let metadata = session
        .cache::<Footers>()
        .get_or_load(key, async {
            let mut object =
                ParquetObjectReader::new(location.store().clone(), location.path(path)).with_file_size(file.size_bytes);
            // The offset index (when the file has one) lets a read of a few rows fetch only
            // their pages.
            let options = ArrowReaderOptions::new().with_offset_index_policy(PageIndexPolicy::Optional);
            ArrowReaderMetadata::load_async(&mut object, options)
                .await
                .map_err(|e| read_error(location, path, e))
        })
        .await?;
    let rows = metadata.metadata().file_metadata().num_rows();
    if u64::try_from(rows).ok() != Some(file.num_rows) {
        return Err(Error::corrupt(
            format!("{}/{path}", location.uri()),
            format!(
                "the manifest says the data file has {} rows but its footer says {rows}",
                file.num_rows
            ),
        ));
    }
    Ok(metadata)
}

/// Parsed Parquet footers of data files, by table URI and path. Data files never change once
/// written, so an entry stays valid for as long as the file exists.
struct Footers;

impl CacheKind for Footers {
    type Key = (String, String);
    type Value = ArrowReaderMetadata;
    const NAME: &'static str = "footers";

    fn capacity(options: &SessionOptions) -> usize {
        options.metadata_cache_bytes
    }

    fn weigh(value: &ArrowReaderMetadata) -> usize {
        value.metadata().memory_size()
    }
}

/// Turns file batches into table-shaped, filtered output batches.
struct Shaper {
    needed_fields: Vec<Field>,
    /// For each needed field, its column in the file batch (or `None`: fill with nulls).
    sources: Vec<Option<usize>>,
    needed_schema: SchemaRef,
    output_len: usize,
    output_schema: SchemaRef,
    filter: Option<Predicate>,
    with_row_id: bool,
}

impl Shaper {
    fn shape(&self, batch: &RecordBatch, row_ids: UInt64Array) -> Result<RecordBatch> {
        let rows = batch.num_rows();
        let columns = self
            .sources
            .iter()
            .zip(self.needed_schema.fields())
            .zip(&self.needed_fields)
            .map(|((source, field), table_field)| -> Result<ArrayRef> {
                let c = match source {
                    Some(i) => vector_codec::decode(table_field, batch.column(*i), field.data_type())?,
                    None => match &table_field.initial_default {
                        Some(value) => default_array(table_field, value, rows)?,
                        None => arrow_array::new_null_array(field.data_type(), rows),
                    },
                };
                if c.data_type() == field.data_type() {
                    Ok(c)
                } else {
                    Ok(arrow_cast::cast(&c, field.data_type())?)
                }
            })
            .collect::<Result<Vec<_>>>()?;
        let options = RecordBatchOptions::new().with_row_count(Some(rows));
        let needed = RecordBatch::try_new_with_options(self.needed_schema.clone(), columns, &options)?;
        let mut out: Vec<ArrayRef> = needed.columns()[..self.output_len].to_vec();
        if self.with_row_id {
            out.push(Arc::new(row_ids));
        }
        let out = RecordBatch::try_new_with_options(self.output_schema.clone(), out, &options)?;
        match &self.filter {
            Some(filter) => {
                let mask = filter.evaluate(&needed)?;
                Ok(arrow_select::filter::filter_record_batch(&out, &mask)?)
            }
            None => Ok(out),
        }
    }
}

/// `rows` copies of `field`'s initial default `value`, of the field's Arrow type.
pub(crate) fn default_array(field: &Field, value: &serde_json::Value, rows: usize) -> Result<ArrayRef> {
    let text = match value {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let target = field.to_arrow(false).data_type().clone();
    let options = arrow_cast::CastOptions {
        safe: false,
        ..Default::default()
    };
    let one = StringArray::from(vec![text.as_str()]);
    let cast = arrow_cast::cast_with_options(&one, &target, &options).map_err(|e| {
        Error::invalid(format!(
            "default {value} does not convert to column '{}' of type {target}: {e}",
            field.name
        ))
    })?;
    let indices = arrow_array::UInt32Array::from(vec![0u32; rows]);
    Ok(arrow_select::take::take(cast.as_ref(), &indices, None)?)
}
