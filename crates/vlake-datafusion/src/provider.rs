//! The vlake table provider: scans with projection, filter and limit pushdown, statistics, time
//! travel, and `INSERT INTO` as one commit; and the factory behind
//! `CREATE EXTERNAL TABLE t STORED AS VLAKE LOCATION '...'`.

use std::fmt;
use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::{Session, TableProvider, TableProviderFactory};
use datafusion::common::stats::Precision;
use datafusion::common::{plan_err, ColumnStatistics, DataFusionError, Result, ScalarValue, Statistics};
use datafusion::datasource::sink::{DataSink, DataSinkExec};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::dml::InsertOp;
use datafusion::logical_expr::{CreateExternalTable, Expr, TableProviderFilterPushDown, TableType};
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan};
use futures::{StreamExt, TryStreamExt};
use vlake_format::StatValue;
use vlake_table::{BatchStream, BlobMode, Predicate, Table, TableBuilder, TableLocation, VersionRef, WriteOptions};

use crate::convert::{df_err, from_df, to_predicate};
use crate::dml::{Dml, VlakeDmlExec};
use crate::scan::VlakeScanExec;

/// The vlake session (caches and their budgets) a DataFusion session reads tables through: the
/// `vlake_table::Session` in its config's extensions, which [`crate::session_with_config`] puts
/// there; a session without one gets a new vlake session per call, caching nothing between
/// them.
pub fn vlake_session(state: &dyn Session) -> vlake_table::Session {
    state
        .config()
        .get_extension::<vlake_table::Session>()
        .map(|s| s.as_ref().clone())
        .unwrap_or_default()
}

/// A vlake table as a DataFusion table.
///
/// The provider reads the version it was opened at, so every query of a session sees one
/// snapshot; an `INSERT INTO` through it commits and moves it to the new version. Tables opened
/// at an older version, timestamp or tag are read-only.
///
/// String and binary columns are `Utf8View` and `BinaryView` in SQL, as DataFusion reads
/// Parquet strings (`datafusion.execution.parquet.schema_force_view_types`): scans decode them
/// without copying. The table itself stores and returns plain `Utf8` and `Binary`.
#[derive(Debug)]
pub struct VlakeTable {
    table: Arc<RwLock<Table>>,
    schema: SchemaRef,
    pinned: bool,
    blobs: BlobMode,
    view_types: bool,
}

impl VlakeTable {
    /// A provider over `table`, pinned (read-only) when `pinned`, with view types; BLOB columns
    /// are descriptors.
    pub fn new(table: Table, pinned: bool) -> Self {
        Self {
            schema: sql_schema(&table, BlobMode::Descriptors, true),
            table: Arc::new(RwLock::new(table)),
            pinned,
            blobs: BlobMode::Descriptors,
            view_types: true,
        }
    }

    /// The provider with string and binary columns as view types (the default) or as the
    /// plain `Utf8` and `Binary` the table stores.
    pub fn with_view_types(self, yes: bool) -> Self {
        Self {
            schema: sql_schema(&self.table(), self.blobs, yes),
            view_types: yes,
            ..self
        }
    }

    /// This provider with BLOB columns returned as `mode` says (`Bytes`: as `LargeBinary`
    /// values, which `INSERT INTO` then takes too).
    pub fn with_blobs(self, mode: BlobMode) -> Self {
        Self {
            schema: sql_schema(&self.table(), mode, self.view_types),
            blobs: mode,
            ..self
        }
    }

    /// Opens the table at `uri` at a version (`VersionRef::Latest` for the newest, writable),
    /// reading through `session`'s caches.
    pub async fn open(uri: &str, at: VersionRef, session: vlake_table::Session) -> Result<Self> {
        let pinned = at != VersionRef::Latest;
        let table = Table::builder(uri)
            .version(at)
            .session(session)
            .open()
            .await
            .map_err(df_err)?;
        Ok(Self::new(table, pinned))
    }

    /// [`VlakeTable::open`] in the vlake session of the DataFusion session `state` (see
    /// [`vlake_session`]), with the view types its
    /// `datafusion.execution.parquet.schema_force_view_types` asks for.
    pub async fn open_for(state: &dyn Session, uri: &str, at: VersionRef) -> Result<Self> {
        let views = state.config_options().execution.parquet.schema_force_view_types;
        Ok(Self::open(uri, at, vlake_session(state)).await?.with_view_types(views))
    }

    /// The table version queries read now.
    pub fn table(&self) -> Table {
        self.table.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The table the provider reads, shared: it moves on when the provider commits.
    pub(crate) fn shared_table(&self) -> Arc<RwLock<Table>> {
        self.table.clone()
    }

    /// Fails unless the provider may `what` (it is not pinned to an old version).
    pub(crate) fn writable(&self, what: &str) -> Result<()> {
        if self.pinned {
            return plan_err!(
                "table {} is opened at version {}, which is read-only; open it at the latest version to {what} it",
                self.table().uri(),
                self.table().version()
            );
        }
        Ok(())
    }

    /// Moves the provider to `table`, a newer version this session committed.
    pub(crate) fn replace(&self, table: Table) {
        *self.table.write().unwrap_or_else(|e| e.into_inner()) = table;
    }

    /// The columns the scan of `projection` returns, by name.
    fn column_names(&self, projection: Option<&Vec<usize>>) -> Vec<String> {
        let fields = self.schema.fields();
        match projection {
            Some(p) => p.iter().map(|i| fields[*i].name().clone()).collect(),
            None => fields.iter().map(|f| f.name().clone()).collect(),
        }
    }
}

/// The table's columns as SQL sees them: with `view_types`, strings and binaries as views.
fn sql_schema(table: &Table, blobs: BlobMode, view_types: bool) -> SchemaRef {
    table
        .scan()
        .blobs(blobs)
        .view_types(view_types)
        .output_schema()
        .unwrap_or_else(|_| table.schema().clone())
}

/// The conjunction of the filters vlake can evaluate itself.
pub(crate) fn pushed_predicate(filters: &[Expr]) -> Option<Predicate> {
    let mut preds: Vec<Predicate> = filters.iter().filter_map(to_predicate).collect();
    match preds.len() {
        0 => None,
        1 => preds.pop(),
        _ => Some(Predicate::And(preds)),
    }
}

#[async_trait]
impl TableProvider for VlakeTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let table = self.table();
        let mut scanner = table
            .scan()
            .columns(&self.column_names(projection))
            .blobs(self.blobs)
            .view_types(self.view_types);
        if let Some(p) = pushed_predicate(filters) {
            scanner = scanner.filter(p);
        }
        if let Some(n) = limit {
            scanner = scanner.limit(n);
        }
        let schema = scanner.output_schema().map_err(df_err)?;
        let plan = scanner.plan().map_err(df_err)?;
        let partitions = state.config().target_partitions();
        let stats = match filters.is_empty() && limit.is_none() {
            // DataFusion answers `count(*)` from exact statistics without reading a row, so the
            // manifest's counts are checked against the files' (cached) footers first.
            true => {
                table.verify_row_counts().await.map_err(df_err)?;
                Some(statistics(&table, &self.schema, projection, true))
            }
            false => None,
        };
        Ok(Arc::new(VlakeScanExec::new(&table, plan, schema, partitions, stats)))
    }

    fn supports_filters_pushdown(&self, filters: &[&Expr]) -> Result<Vec<TableProviderFilterPushDown>> {
        // vlake evaluates what it can convert with the same semantics, so those are exact.
        Ok(filters
            .iter()
            .map(|f| match to_predicate(f) {
                Some(_) => TableProviderFilterPushDown::Exact,
                None => TableProviderFilterPushDown::Unsupported,
            })
            .collect())
    }

    fn statistics(&self) -> Option<Statistics> {
        Some(statistics(&self.table(), &self.schema, None, false))
    }

    async fn insert_into(
        &self,
        _state: &dyn Session,
        input: Arc<dyn ExecutionPlan>,
        insert_op: InsertOp,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        self.writable("insert into")?;
        if insert_op == InsertOp::Replace {
            return plan_err!("INSERT OR REPLACE is not supported on vlake tables; use INSERT OVERWRITE");
        }
        let sink = VlakeSink {
            table: self.table.clone(),
            schema: self.schema.clone(),
            storage: sql_schema(&self.table(), self.blobs, false),
            overwrite: insert_op == InsertOp::Overwrite,
        };
        Ok(Arc::new(DataSinkExec::new(input, Arc::new(sink), None)))
    }

    async fn delete_from(&self, _state: &dyn Session, filters: Vec<Expr>) -> Result<Arc<dyn ExecutionPlan>> {
        self.writable("delete from")?;
        Ok(Arc::new(VlakeDmlExec::new(self.table.clone(), Dml::delete(&filters)?)))
    }

    async fn update(
        &self,
        _state: &dyn Session,
        assignments: Vec<(String, Expr)>,
        filters: Vec<Expr>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        self.writable("update")?;
        let dml = Dml::update(&assignments, &filters)?;
        Ok(Arc::new(VlakeDmlExec::new(self.table.clone(), dml)))
    }
}

/// Row count and per-column null counts and bounds from the manifest, typed as `arrow` (the
/// provider's schema). Counts are exact only when `verified` (the row counts were checked
/// against the files, [`Table::verify_row_counts`]) and no rows are deleted.
fn statistics(table: &Table, arrow: &SchemaRef, projection: Option<&Vec<usize>>, verified: bool) -> Statistics {
    let manifest = table.manifest();
    let schema = table.table_schema();
    let exact = verified && manifest.data_files.iter().all(|f| f.deletion.is_none());
    let all: Vec<usize> = (0..schema.fields.len()).collect();
    let columns = projection.unwrap_or(&all);
    let column_statistics = columns
        .iter()
        .map(|&i| {
            let field = &schema.fields[i];
            let dtype = arrow.field(i).data_type();
            let mut nulls = Some(0u64);
            let (mut min, mut max): (Option<ScalarValue>, Option<ScalarValue>) = (None, None);
            let mut bounded = true;
            for f in &manifest.data_files {
                let s = f.stats.iter().find(|s| s.field_id == field.id);
                nulls = nulls.zip(s.map(|s| s.null_count)).and_then(|(a, b)| a.checked_add(b));
                let bounds = s.and_then(|s| {
                    Some((
                        stat_scalar(s.min.as_ref()?, dtype)?,
                        stat_scalar(s.max.as_ref()?, dtype)?,
                    ))
                });
                match bounds {
                    Some((lo, hi)) => {
                        min = Some(min.map_or(lo.clone(), |m| if lo < m { lo } else { m }));
                        max = Some(max.map_or(hi.clone(), |m| if hi > m { hi } else { m }));
                    }
                    // A file whose only rows are nulls has no bounds and changes nothing.
                    None if s.is_some_and(|s| s.null_count == f.num_rows) => {}
                    None => bounded = false,
                }
            }
            let precise = |v: Option<u64>| count_precision(v, exact);
            let bound = |v: Option<ScalarValue>| match v {
                Some(v) if bounded => Precision::Inexact(v),
                _ => Precision::Absent,
            };
            ColumnStatistics {
                null_count: precise(nulls),
                min_value: bound(min),
                max_value: bound(max),
                ..ColumnStatistics::new_unknown()
            }
        })
        .collect();
    let bytes = manifest
        .data_files
        .iter()
        .map(|f| f.size_bytes)
        .fold(0, u64::saturating_add);
    Statistics {
        num_rows: count_precision(Some(table.num_rows()), exact),
        total_byte_size: count_precision(Some(bytes), false),
        column_statistics,
    }
}

/// A count as a statistic: `Absent` when unknown or beyond what an `i64` holds (DataFusion
/// answers `count(*)` with it as one).
fn count_precision(count: Option<u64>, exact: bool) -> Precision<usize> {
    match count.filter(|n| i64::try_from(*n).is_ok()).map(usize::try_from) {
        Some(Ok(n)) if exact => Precision::Exact(n),
        Some(Ok(n)) => Precision::Inexact(n),
        _ => Precision::Absent,
    }
}

/// A statistics value as a scalar of the column's type.
fn stat_scalar(v: &StatValue, dtype: &datafusion::arrow::datatypes::DataType) -> Option<ScalarValue> {
    let raw = match v {
        StatValue::Bool(b) => ScalarValue::Boolean(Some(*b)),
        StatValue::Int(i) => ScalarValue::Int64(Some(*i)),
        StatValue::Uint(u) => ScalarValue::UInt64(Some(*u)),
        StatValue::Float(f) => ScalarValue::Float64(Some(*f)),
        StatValue::String(s) => ScalarValue::Utf8(Some(s.clone())),
    };
    raw.cast_to(dtype).ok()
}

/// Appends (or overwrites with) the rows of an `INSERT` as one commit.
struct VlakeSink {
    table: Arc<RwLock<Table>>,
    /// The provider's schema: what the rows arrive as.
    schema: SchemaRef,
    /// What they are written as: plain strings, not views (BLOB columns as the provider has them).
    storage: SchemaRef,
    overwrite: bool,
}

impl fmt::Debug for VlakeSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VlakeSink").field("overwrite", &self.overwrite).finish()
    }
}

impl DisplayAs for VlakeSink {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let table = self.table.read().unwrap_or_else(|e| e.into_inner());
        let verb = if self.overwrite { "overwrite" } else { "append" };
        write!(f, "VlakeSink: {verb} {}", table.uri())
    }
}

#[async_trait]
impl DataSink for VlakeSink {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    async fn write_all(&self, data: SendableRecordBatchStream, _context: &Arc<TaskContext>) -> Result<u64> {
        let current = self.table.read().unwrap_or_else(|e| e.into_inner()).clone();
        let rows = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let counter = rows.clone();
        let storage = self.storage.clone();
        let stream = data
            .inspect_ok(move |b| {
                counter.fetch_add(b.num_rows() as u64, std::sync::atomic::Ordering::Relaxed);
            })
            .map_err(from_df)
            .and_then(move |b| futures::future::ready(conform(&b, &storage)))
            .boxed();
        let stream = BatchStream::new(self.storage.clone(), stream);
        let opts = WriteOptions::default();
        let next = if self.overwrite {
            current.overwrite(stream, &opts).await
        } else {
            current.append(stream, &opts).await
        }
        .map_err(df_err)?;
        *self.table.write().unwrap_or_else(|e| e.into_inner()) = next;
        Ok(rows.load(std::sync::atomic::Ordering::Relaxed))
    }
}

/// `batch` (the provider's columns, in order) with the table's column types: views as the
/// plain types stored.
fn conform(batch: &RecordBatch, storage: &SchemaRef) -> vlake_table::Result<RecordBatch> {
    let columns = batch
        .columns()
        .iter()
        .zip(storage.fields())
        .map(|(c, f)| datafusion::arrow::compute::cast(c, f.data_type()))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    Ok(RecordBatch::try_new(storage.clone(), columns)?)
}

/// Creates [`VlakeTable`]s for `CREATE EXTERNAL TABLE ... STORED AS VLAKE LOCATION '...'`.
///
/// `OPTIONS ('version' '3')`, `('tag' 'name')` or `('timestamp' '2026-11-22T08:00:00Z')` open
/// an older version read-only. When the location holds no table and the statement lists
/// columns, an empty table with those columns is created (`FLOAT[384]` is a vector column;
/// `('blob_columns' 'a,b')` makes the named `BYTEA` columns BLOB columns). `('blobs' 'bytes')`
/// returns BLOB columns as their values instead of descriptors (and `INSERT INTO` takes values).
#[derive(Debug, Default)]
pub struct VlakeTableFactory;

#[async_trait]
impl TableProviderFactory for VlakeTableFactory {
    async fn create(&self, state: &dyn Session, cmd: &CreateExternalTable) -> Result<Arc<dyn TableProvider>> {
        check_options(cmd)?;
        let views = state.config_options().execution.parquet.schema_force_view_types;
        let at = version_option(cmd)?;
        let blobs: BlobMode = match option(cmd, "blobs") {
            Some(mode) => mode.parse().map_err(df_err)?,
            None => BlobMode::Descriptors,
        };
        let blob_columns: Vec<&str> = option(cmd, "blob_columns")
            .map(|c| c.split(',').map(str::trim).filter(|c| !c.is_empty()).collect())
            .unwrap_or_default();
        let declared = storable(cmd.schema.as_arrow(), &blob_columns)?;
        match VlakeTable::open(&cmd.location, at.clone(), vlake_session(state))
            .await
            .map(|t| t.with_view_types(views))
        {
            Err(DataFusionError::External(e))
                if !declared.fields().is_empty()
                    && at == VersionRef::Latest
                    && e.downcast_ref::<vlake_table::Error>()
                        .is_some_and(|e| matches!(e, vlake_table::Error::NotFound { .. })) =>
            {
                let opts = WriteOptions {
                    primary_key: primary_key(cmd, &declared),
                    ..Default::default()
                };
                let location = TableLocation::parse(&cmd.location).map_err(df_err)?;
                let empty = BatchStream::from_batches(declared, vec![]);
                let table = TableBuilder::new(location)
                    .session(vlake_session(state))
                    .write(empty, vlake_table::WriteMode::Create, &opts)
                    .await
                    .map_err(df_err)?;
                let provider = VlakeTable::new(table, false).with_view_types(views);
                Ok(Arc::new(provider.with_blobs(blobs)))
            }
            Err(e) => Err(e),
            Ok(t) => {
                if !declared.fields().is_empty() && declared.fields().len() != t.schema.fields().len() {
                    return plan_err!(
                        "the columns declared for {} do not match the table at {} ({} columns)",
                        cmd.name,
                        cmd.location,
                        t.schema.fields().len()
                    );
                }
                Ok(Arc::new(t.with_blobs(blobs)))
            }
        }
    }
}

/// A declared schema with DataFusion's view types (`VARCHAR` is `Utf8View` in SQL) as the
/// plain types vlake stores, and the binary columns named in `blob_columns` as BLOB columns.
fn storable(schema: &datafusion::arrow::datatypes::Schema, blob_columns: &[&str]) -> Result<SchemaRef> {
    use datafusion::arrow::datatypes::{DataType, Field};
    if let Some(c) = blob_columns.iter().find(|c| schema.field_with_name(c).is_err()) {
        return plan_err!("option 'blob_columns' names '{c}', which is not a declared column");
    }
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| {
            let field = f.as_ref().clone();
            if blob_columns.contains(&f.name().as_str()) {
                return field
                    .with_data_type(DataType::LargeBinary)
                    .with_metadata([(vlake_format::schema::BLOB_KEY.to_string(), "true".to_string())].into());
            }
            let t = match f.data_type() {
                DataType::Utf8View => DataType::Utf8,
                DataType::BinaryView => DataType::Binary,
                other => other.clone(),
            };
            field.with_data_type(t)
        })
        .collect();
    Ok(Arc::new(datafusion::arrow::datatypes::Schema::new(fields)))
}

/// The options of `CREATE EXTERNAL TABLE ... STORED AS VLAKE`.
const TABLE_OPTIONS: [&str; 6] = ["version", "tag", "timestamp", "blobs", "blob_columns", "primary_key"];

/// Refuses an option that is not one of [`TABLE_OPTIONS`] (a misspelt `'verison'` must not be
/// ignored).
fn check_options(cmd: &CreateExternalTable) -> Result<()> {
    let mut keys: Vec<&String> = cmd.options.keys().collect();
    keys.sort();
    match keys
        .into_iter()
        .map(|k| k.strip_prefix("format.").unwrap_or(k))
        .find(|k| !TABLE_OPTIONS.contains(k))
    {
        Some(unknown) => Err(df_err(vlake_table::Error::invalid(format!(
            "unknown option '{unknown}' for table {} (options: {})",
            cmd.name,
            TABLE_OPTIONS.join(", ")
        )))),
        None => Ok(()),
    }
}

/// The external table option `key` (DataFusion may prefix it with `format.`).
fn option<'a>(cmd: &'a CreateExternalTable, key: &str) -> Option<&'a String> {
    cmd.options
        .get(key)
        .or_else(|| cmd.options.get(&format!("format.{key}")))
}

/// The primary key a new table declares: `PRIMARY KEY (a, b)` or `OPTIONS ('primary_key' 'a, b')`.
fn primary_key(cmd: &CreateExternalTable, schema: &SchemaRef) -> Vec<String> {
    use datafusion::common::Constraint;
    let from_constraint = cmd.constraints.iter().find_map(|c| match c {
        Constraint::PrimaryKey(columns) => Some(
            columns
                .iter()
                .filter_map(|i| schema.fields().get(*i).map(|f| f.name().clone()))
                .collect::<Vec<_>>(),
        ),
        Constraint::Unique(_) => None,
    });
    let from_option = || {
        option(cmd, "primary_key").map(|v| {
            v.split(',')
                .map(|c| c.trim().to_string())
                .filter(|c| !c.is_empty())
                .collect()
        })
    };
    from_constraint.or_else(from_option).unwrap_or_default()
}

/// The version an external table's options ask for.
fn version_option(cmd: &CreateExternalTable) -> Result<VersionRef> {
    let get = |k: &str| option(cmd, k);
    let chosen: Vec<VersionRef> = [
        get("version").map(|v| {
            v.parse()
                .map(VersionRef::Version)
                .map_err(|_| DataFusionError::Plan(format!("option 'version' must be a number, not '{v}'")))
        }),
        get("tag").map(|t| Ok(VersionRef::Tag(t.clone()))),
        get("timestamp").map(|t| parse_timestamp(t).map(VersionRef::Timestamp)),
    ]
    .into_iter()
    .flatten()
    .collect::<Result<_>>()?;
    match chosen.len() {
        0 => Ok(VersionRef::Latest),
        1 => Ok(chosen.into_iter().next().unwrap_or(VersionRef::Latest)),
        _ => plan_err!("give at most one of the options 'version', 'tag' and 'timestamp'"),
    }
}

/// Milliseconds since the epoch of an RFC 3339 time or of a number of milliseconds.
pub(crate) fn parse_timestamp(s: &str) -> Result<i64> {
    if let Ok(ms) = s.parse::<i64>() {
        return Ok(ms);
    }
    let v = ScalarValue::Utf8(Some(s.to_string()))
        .cast_to(&datafusion::arrow::datatypes::DataType::Timestamp(
            datafusion::arrow::datatypes::TimeUnit::Millisecond,
            None,
        ))
        .map_err(|_| DataFusionError::Plan(format!("'{s}' is not a timestamp such as 2026-11-22T08:00:00Z")))?;
    match v {
        ScalarValue::TimestampMillisecond(Some(ms), _) => Ok(ms),
        _ => plan_err!("'{s}' is not a timestamp"),
    }
}
