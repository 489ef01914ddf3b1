//! The native module of the `vlake` Python package. The binding is thin: Arrow data crosses as
//! Arrow IPC streams (decoded by pyarrow without a copy), the table logic stays in
//! `vlake-table` and `vlake-datafusion`, and the GIL is released during I/O and compute.

use std::sync::{Arc, Mutex};

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use arrow::ipc::reader::StreamReader;
use arrow::ipc::writer::StreamWriter;
use futures::StreamExt;
use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use vlake_datafusion::{from_df, VlakeTable};
use vlake_table::{
    AnalyzerConfig, BatchStream, BlobMode, BlobReader, BlobSource, CleanupOptions, Error, Fusion, HnswParams,
    HybridSearch, IndexOptions, IndexType, IvfParams, Metric, ScanTask, Session, StagedMode, StagedWrite, Table,
    TableBuilder, TableLocation, VersionRef, WriteMode, WriteOptions,
};

/// The runtime every call blocks on (with the GIL released), one per process. A process forked
/// after the runtime started (a DataLoader worker, a `multiprocessing` child) has none of its
/// threads, so it starts its own; the parent's is leaked there, as dropping it would wait for
/// threads that do not exist in the child.
fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: Mutex<Option<(u32, &'static tokio::runtime::Runtime)>> = Mutex::new(None);
    let pid = std::process::id();
    let mut current = RT.lock().unwrap_or_else(|e| e.into_inner());
    match *current {
        Some((owner, runtime)) if owner == pid => runtime,
        _ => {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .thread_name("vlake")
                .build()
                .unwrap_or_else(|e| unreachable!("cannot start the tokio runtime: {e}"));
            let runtime: &'static _ = Box::leak(Box::new(runtime));
            *current = Some((pid, runtime));
            runtime
        }
    }
}

/// The caches of this process's tables, one session per process (see `vlake_table::Session`).
fn session() -> &'static Session {
    static SESSION: std::sync::OnceLock<Session> = std::sync::OnceLock::new();
    SESSION.get_or_init(Session::default)
}

/// Runs `f` on the runtime without the GIL.
fn run<T: Send>(py: Python<'_>, f: impl std::future::Future<Output = Result<T, Error>> + Send) -> PyResult<T> {
    py.detach(|| runtime().block_on(f)).map_err(to_py)
}

/// A vlake error as the exception class of its kind, from `vlake.errors`.
fn to_py(e: Error) -> PyErr {
    let class = match &e {
        Error::CommitConflict { .. } => "ConflictError",
        Error::NotFound { .. } => "NotFoundError",
        Error::AlreadyExists { .. } => "AlreadyExistsError",
        Error::InvalidInput(_) => "InvalidInputError",
        Error::Corrupt { .. } => "CorruptDataError",
        Error::Unsupported { .. } => "UnsupportedError",
        _ => "VlakeError",
    };
    let message = e.to_string();
    Python::attach(|py| {
        match py
            .import("vlake.errors")
            .and_then(|m| m.getattr(class))
            .and_then(|c| c.call1((message.clone(),)))
        {
            Ok(exc) => PyErr::from_value(exc),
            Err(_) => PyRuntimeError::new_err(message),
        }
    })
}

/// Batches as one Arrow IPC stream.
fn ipc(py: Python<'_>, schema: &SchemaRef, batches: &[RecordBatch]) -> PyResult<Py<PyBytes>> {
    let bytes = py
        .detach(|| -> Result<Vec<u8>, arrow::error::ArrowError> {
            let mut out = Vec::new();
            let mut writer = StreamWriter::try_new(&mut out, schema)?;
            for b in batches {
                writer.write(b)?;
            }
            writer.finish()?;
            drop(writer);
            Ok(out)
        })
        .map_err(|e| to_py(Error::Internal(e.to_string())))?;
    Ok(PyBytes::new(py, &bytes).unbind())
}

/// The batches of one Arrow IPC stream.
fn from_ipc(bytes: &[u8]) -> Result<(SchemaRef, Vec<RecordBatch>), Error> {
    let reader = StreamReader::try_new(std::io::Cursor::new(bytes), None)
        .map_err(|e| Error::invalid(format!("not an Arrow IPC stream: {e}")))?;
    let schema = reader.schema();
    let batches = reader
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| Error::invalid(format!("bad Arrow IPC stream: {e}")))?;
    Ok((schema, batches))
}

/// Which version to open: at most one of a version, a time or a tag.
fn version_ref(version: Option<u64>, timestamp_ms: Option<i64>, tag: Option<String>) -> Result<VersionRef, Error> {
    match (version, timestamp_ms, tag) {
        (None, None, None) => Ok(VersionRef::Latest),
        (Some(v), None, None) => Ok(VersionRef::Version(v)),
        (None, Some(t), None) => Ok(VersionRef::Timestamp(t)),
        (None, None, Some(t)) => Ok(VersionRef::Tag(t)),
        _ => Err(Error::invalid("give at most one of version, timestamp and tag")),
    }
}

/// The batches of `stream`, an iterable of Arrow IPC streams of `schema`, read as they are
/// needed.
fn py_stream(py: Python<'_>, schema: SchemaRef, stream: Py<PyAny>) -> PyResult<BatchStream> {
    let iter = stream.bind(py).try_iter()?.unbind();
    let batches = futures::stream::unfold(Some(iter), |iter| async move {
        let iter = iter?;
        let next = Python::attach(|py| -> Option<Result<Vec<RecordBatch>, Error>> {
            let mut it = iter.bind(py).clone();
            match it.next()? {
                Ok(item) => Some(
                    // Decoded straight from the bytes object, without a copy into Rust.
                    item.cast::<PyBytes>()
                        .map_err(|e| Error::invalid(format!("expected Arrow IPC bytes: {e}")))
                        .and_then(|b| from_ipc(b.as_bytes()).map(|(_, batches)| batches)),
                ),
                Err(e) => Some(Err(Error::invalid(format!("reading the input failed: {e}")))),
            }
        });
        next.map(|n| (n, Some(iter)))
    })
    .flat_map(|item| match item {
        Ok(batches) => futures::stream::iter(batches.into_iter().map(Ok).collect::<Vec<_>>()),
        Err(e) => futures::stream::iter(vec![Err(e)]),
    });
    Ok(BatchStream::new(schema, batches.boxed()))
}

/// Schema changes from their JSON form (see `RawTable::alter_schema`).
fn schema_changes(json: &str, fields: &SchemaRef) -> Result<Vec<vlake_table::SchemaChange>, Error> {
    use vlake_table::{ColumnValue, Literal, SchemaChange, ValueExpr};
    let changes: Vec<serde_json::Value> =
        serde_json::from_str(json).map_err(|e| Error::invalid(format!("bad schema changes: {e}")))?;
    let text = |c: &serde_json::Value, key: &str| -> Result<String, Error> {
        c.get(key)
            .and_then(|v| v.as_str())
            .map(String::from)
            .ok_or_else(|| Error::invalid(format!("schema change {c} lacks '{key}'")))
    };
    let field = |c: &serde_json::Value| -> Result<arrow::datatypes::Field, Error> {
        c.get("field")
            .and_then(|v| v.as_u64())
            .and_then(|i| fields.fields().get(i as usize))
            .map(|f| f.as_ref().clone())
            .ok_or_else(|| Error::invalid(format!("schema change {c} names no field")))
    };
    changes
        .iter()
        .map(|c| {
            Ok(match text(c, "op")?.as_str() {
                "add" => {
                    let value = match (c.get("default"), c.get("expression").and_then(|e| e.as_str())) {
                        (_, Some(sql)) => ColumnValue::Expr(ValueExpr::parse(sql)?),
                        (None | Some(serde_json::Value::Null), None) => ColumnValue::Null,
                        (Some(v), None) => ColumnValue::Default(match v {
                            serde_json::Value::Bool(b) => Literal::Bool(*b),
                            serde_json::Value::String(s) => Literal::String(s.clone()),
                            serde_json::Value::Number(n) => match n.as_i64() {
                                Some(i) => Literal::Int(i),
                                None => Literal::Float(n.as_f64().unwrap_or(f64::NAN)),
                            },
                            other => return Err(Error::invalid(format!("default {other} is not a scalar"))),
                        }),
                    };
                    SchemaChange::AddColumn {
                        field: field(c)?,
                        value,
                    }
                }
                "drop" => SchemaChange::DropColumn(text(c, "column")?),
                "rename" => SchemaChange::RenameColumn {
                    from: text(c, "from")?,
                    to: text(c, "to")?,
                },
                "widen" => SchemaChange::WidenColumn {
                    column: text(c, "column")?,
                    to: field(c)?.data_type().clone(),
                },
                "nullable" => SchemaChange::MakeNullable(text(c, "column")?),
                other => return Err(Error::invalid(format!("unknown schema change '{other}'"))),
            })
        })
        .collect()
}

/// One version of a vlake table (the `vlake.Table` class wraps it).
#[pyclass(module = "vlake._vlake", frozen)]
struct RawTable {
    table: Table,
    /// Opened at an explicit version: SQL through it is read-only.
    pinned: bool,
}

impl RawTable {
    fn new(table: Table, pinned: bool) -> Self {
        Self { table, pinned }
    }

    /// A transaction on this version holding the staged writes `writes` (JSON).
    fn transaction(&self, writes: &[String]) -> PyResult<vlake_table::Transaction> {
        let mut txn = self.table.new_transaction();
        for json in writes {
            txn.add(StagedWrite::from_json(json).map_err(to_py)?).map_err(to_py)?;
        }
        Ok(txn)
    }

    /// A scan with the optional projection, SQL filter and batch size.
    fn scanner(
        &self,
        columns: Option<Vec<String>>,
        filter: Option<&str>,
        batch_size: Option<usize>,
    ) -> PyResult<vlake_table::Scanner> {
        let mut scanner = self.table.scan();
        if let Some(c) = &columns {
            scanner = scanner.columns(c);
        }
        if let Some(f) = filter {
            scanner = scanner.filter_sql(f).map_err(to_py)?;
        }
        if let Some(n) = batch_size {
            scanner = scanner.batch_size(n);
        }
        Ok(scanner)
    }
}

#[pymethods]
impl RawTable {
    /// Opens the table at `uri` at the latest version, a version, a time or a tag.
    #[staticmethod]
    #[pyo3(signature = (uri, version=None, timestamp_ms=None, tag=None))]
    fn open(
        py: Python<'_>,
        uri: &str,
        version: Option<u64>,
        timestamp_ms: Option<i64>,
        tag: Option<String>,
    ) -> PyResult<Self> {
        let at = version_ref(version, timestamp_ms, tag).map_err(to_py)?;
        let pinned = at != VersionRef::Latest;
        let table = run(py, Table::builder(uri).version(at).session(session().clone()).open())?;
        Ok(Self::new(table, pinned))
    }

    /// Writes the batches of `stream` (an iterable of Arrow IPC streams, schema `schema`) to
    /// `uri` as one commit: `create`, `append` or `overwrite`.
    #[staticmethod]
    #[pyo3(signature = (uri, mode, schema, stream, primary_key=None))]
    fn write(
        py: Python<'_>,
        uri: &str,
        mode: &str,
        schema: &[u8],
        stream: Py<PyAny>,
        primary_key: Option<Vec<String>>,
    ) -> PyResult<Self> {
        let mode = match mode {
            "create" => WriteMode::Create,
            "append" => WriteMode::Append,
            "overwrite" => WriteMode::Overwrite,
            other => {
                return Err(to_py(Error::invalid(format!(
                    "mode must be 'create', 'append' or 'overwrite', not '{other}'"
                ))))
            }
        };
        let (schema, _) = from_ipc(schema).map_err(to_py)?;
        let location = TableLocation::parse(uri).map_err(to_py)?;
        let data = py_stream(py, schema, stream)?;
        let opts = WriteOptions {
            primary_key: primary_key.unwrap_or_default(),
            ..Default::default()
        };
        let builder = TableBuilder::new(location).session(session().clone());
        let table = run(py, builder.write(data, mode, &opts))?;
        Ok(Self::new(table, false))
    }

    /// The table's URI.
    #[getter]
    fn uri(&self) -> String {
        self.table.uri().to_string()
    }

    /// The version number.
    #[getter]
    fn version(&self) -> u64 {
        self.table.version()
    }

    /// Whether the handle was opened at an explicit version (it does not follow writes).
    #[getter]
    fn pinned(&self) -> bool {
        self.pinned
    }

    /// Live rows.
    #[getter]
    fn num_rows(&self) -> u64 {
        self.table.num_rows()
    }

    /// The Arrow schema as an IPC stream with no batches.
    fn schema_ipc(&self, py: Python<'_>) -> PyResult<Py<PyBytes>> {
        ipc(py, self.table.schema(), &[])
    }

    /// The versions of the table, as JSON.
    fn versions_json(&self, py: Python<'_>) -> PyResult<String> {
        let versions = run(py, self.table.versions())?;
        serde_json::to_string(&versions).map_err(|e| to_py(Error::Internal(e.to_string())))
    }

    /// The tags, as JSON.
    fn tags_json(&self, py: Python<'_>) -> PyResult<String> {
        let tags = run(py, self.table.tags())?;
        serde_json::to_string(&tags).map_err(|e| to_py(Error::Internal(e.to_string())))
    }

    /// The indexes of this version, as JSON: name, type, column, metric, parameters, the
    /// version it was built at and the data files it covers.
    fn indexes_json(&self) -> String {
        let schema = self.table.table_schema();
        let list: Vec<serde_json::Value> = self
            .table
            .manifest()
            .indexes
            .iter()
            .map(|e| {
                let columns: Vec<&str> = e
                    .field_ids
                    .iter()
                    .filter_map(|id| schema.fields.iter().find(|f| f.id == *id).map(|f| f.name.as_str()))
                    .collect();
                serde_json::json!({
                    "name": e.name,
                    "type": e.index_type,
                    "column": columns.first(),
                    "metric": e.params.get("metric"),
                    "params": e.params,
                    "built_at_version": e.built_at_version,
                    "covered_files": e.covered_files,
                    "files": e.files,
                })
            })
            .collect();
        serde_json::Value::Array(list).to_string()
    }

    /// Tags `version` as `name`.
    fn create_tag(&self, py: Python<'_>, name: &str, version: u64) -> PyResult<()> {
        run(py, self.table.create_tag(name, version)).map(|_| ())
    }

    /// Deletes the tag `name`.
    fn delete_tag(&self, py: Python<'_>, name: &str) -> PyResult<()> {
        run(py, self.table.delete_tag(name))
    }

    /// Another version of the same table (the latest when nothing is given).
    #[pyo3(signature = (version=None, timestamp_ms=None, tag=None))]
    fn checkout(
        &self,
        py: Python<'_>,
        version: Option<u64>,
        timestamp_ms: Option<i64>,
        tag: Option<String>,
    ) -> PyResult<Self> {
        let at = version_ref(version, timestamp_ms, tag).map_err(to_py)?;
        let pinned = at != VersionRef::Latest;
        Ok(Self::new(run(py, self.table.checkout(at))?, pinned))
    }

    /// Makes this version's contents the newest version.
    fn restore(&self, py: Python<'_>) -> PyResult<Self> {
        Ok(Self::new(run(py, self.table.restore())?, false))
    }

    /// Removes versions older than `older_than_s` seconds (never the latest or tagged ones) and
    /// unreferenced files older than that and the minimum file age (`unsafe_min_file_age_s`
    /// lowers it); returns the report as JSON.
    #[pyo3(signature = (older_than_s, unsafe_min_file_age_s=None))]
    fn cleanup(&self, py: Python<'_>, older_than_s: f64, unsafe_min_file_age_s: Option<f64>) -> PyResult<String> {
        let seconds = |s: f64| {
            std::time::Duration::try_from_secs_f64(s.max(0.0))
                .map_err(|e| to_py(Error::invalid(format!("bad cleanup age {s}: {e}"))))
        };
        let mut options = CleanupOptions::new(seconds(older_than_s)?);
        if let Some(s) = unsafe_min_file_age_s {
            options = options.dangerously_remove_files_younger_than_min_age(seconds(s)?);
        }
        let report = run(py, self.table.cleanup(&options))?;
        Ok(serde_json::json!({
            "versions_removed": report.versions_removed,
            "files_removed": report.files_removed,
            "bytes_removed": report.bytes_removed,
            "files_kept_recent": report.files_kept_recent,
        })
        .to_string())
    }

    /// Deletes the rows matching the SQL `filter` (deletion files; data files stay).
    fn delete(&self, py: Python<'_>, filter: &str) -> PyResult<Self> {
        let filter = vlake_table::Predicate::parse(filter).map_err(to_py)?;
        Ok(Self::new(run(py, self.table.delete(&filter))?, false))
    }

    /// Sets columns (`"a = a * 2, b = 'x'"`) of the rows matching the SQL `filter` (all rows
    /// without one).
    #[pyo3(signature = (assignments, filter=None))]
    fn update(&self, py: Python<'_>, assignments: &str, filter: Option<&str>) -> PyResult<Self> {
        let assignments = vlake_table::Assignment::parse_list(assignments).map_err(to_py)?;
        let filter = filter.map(vlake_table::Predicate::parse).transpose().map_err(to_py)?;
        let table = run(py, async {
            self.table
                .update(&assignments, filter.as_ref(), &WriteOptions::default())
                .await
        })?;
        Ok(Self::new(table, false))
    }

    /// Merges the rows of `stream` (IPC streams of `schema`) by key; returns the new version and
    /// the report as JSON. `when_matched` is `update`, `nothing` or `fail`; `when_not_matched`
    /// is `insert` or `nothing`; `when_not_matched_by_source` is `keep`, `delete` or an SQL
    /// condition selecting the unmatched rows to delete.
    #[pyo3(signature = (schema, stream, on=None, when_matched="update", when_not_matched="insert", when_not_matched_by_source="keep"))]
    #[allow(clippy::too_many_arguments)]
    fn merge_insert(
        &self,
        py: Python<'_>,
        schema: &[u8],
        stream: Py<PyAny>,
        on: Option<Vec<String>>,
        when_matched: &str,
        when_not_matched: &str,
        when_not_matched_by_source: &str,
    ) -> PyResult<(Self, String)> {
        use vlake_table::{MergeInsert, WhenMatched, WhenNotMatched, WhenNotMatchedBySource};
        let bad = |what: &str, got: &str, allowed: &str| {
            to_py(Error::invalid(format!("{what} must be {allowed}, not '{got}'")))
        };
        let merge = MergeInsert {
            on: on.unwrap_or_default(),
            when_matched: match when_matched {
                "update" => WhenMatched::UpdateAll,
                "nothing" => WhenMatched::DoNothing,
                "fail" => WhenMatched::Fail,
                other => return Err(bad("when_matched", other, "'update', 'nothing' or 'fail'")),
            },
            when_not_matched: match when_not_matched {
                "insert" => WhenNotMatched::InsertAll,
                "nothing" => WhenNotMatched::DoNothing,
                other => return Err(bad("when_not_matched", other, "'insert' or 'nothing'")),
            },
            when_not_matched_by_source: match when_not_matched_by_source {
                "keep" => WhenNotMatchedBySource::Keep,
                "delete" => WhenNotMatchedBySource::Delete,
                condition => WhenNotMatchedBySource::DeleteIf(vlake_table::Predicate::parse(condition).map_err(to_py)?),
            },
            ..MergeInsert::upsert()
        };
        let (schema, _) = from_ipc(schema).map_err(to_py)?;
        let data = py_stream(py, schema, stream)?;
        let (table, report) = run(py, self.table.merge_insert(data, &merge, &WriteOptions::default()))?;
        let report = serde_json::to_string(&report).map_err(|e| to_py(Error::Internal(e.to_string())))?;
        Ok((Self::new(table, false), report))
    }

    /// Writes the batches of `stream` (IPC streams of `schema`) as data files of this table
    /// without committing them; returns the staged write as JSON (`mode`: `append` or
    /// `overwrite`).
    fn stage(&self, py: Python<'_>, schema: &[u8], stream: Py<PyAny>, mode: &str) -> PyResult<String> {
        let mode = mode.parse::<StagedMode>().map_err(to_py)?;
        let (schema, _) = from_ipc(schema).map_err(to_py)?;
        let data = py_stream(py, schema, stream)?;
        let staged = run(py, self.table.stage(data, mode, &WriteOptions::default()))?;
        staged.to_json().map_err(to_py)
    }

    /// Commits staged writes (JSON, from `stage` in any process) in one new version.
    fn commit_staged(&self, py: Python<'_>, writes: Vec<String>) -> PyResult<Self> {
        let txn = self.transaction(&writes)?;
        Ok(Self::new(run(py, txn.commit())?, false))
    }

    /// Removes the files of staged writes (JSON) that will not be committed.
    fn abort_staged(&self, py: Python<'_>, writes: Vec<String>) -> PyResult<()> {
        let txn = self.transaction(&writes)?;
        run(py, async move {
            txn.abort().await;
            Ok(())
        })
    }

    /// Applies schema changes, a JSON list of `{"op": "add", "field": i, "default": v}` (or
    /// `"expression": sql`), `{"op": "drop", "column": c}`, `{"op": "rename", "from": a, "to":
    /// b}`, `{"op": "widen", "column": c, "field": i}` and `{"op": "nullable", "column": c}`;
    /// `fields` is an IPC schema holding the fields the changes refer to by position.
    fn alter_schema(&self, py: Python<'_>, changes: &str, fields: &[u8]) -> PyResult<Self> {
        let (fields, _) = from_ipc(fields).map_err(to_py)?;
        let changes = schema_changes(changes, &fields).map_err(to_py)?;
        Ok(Self::new(run(py, self.table.alter_schema(&changes))?, false))
    }

    /// Names of the primary-key columns.
    #[getter]
    fn primary_key(&self) -> Vec<String> {
        self.table.primary_key_names()
    }

    /// Compacts small files and drops deleted rows; returns the new version and the report
    /// as JSON.
    #[pyo3(signature = (target_rows_per_file=None, blob_garbage_ratio=None))]
    fn compact(
        &self,
        py: Python<'_>,
        target_rows_per_file: Option<usize>,
        blob_garbage_ratio: Option<f64>,
    ) -> PyResult<(Self, String)> {
        let mut opts = vlake_table::CompactOptions::default();
        if let Some(n) = target_rows_per_file {
            opts.target_rows_per_file = n;
        }
        if let Some(r) = blob_garbage_ratio {
            opts.blob_garbage_ratio = r;
        }
        let (table, report) = run(py, self.table.compact(&opts))?;
        let report = serde_json::to_string(&report).map_err(|e| to_py(Error::Internal(e.to_string())))?;
        Ok((Self::new(table, false), report))
    }

    /// Compaction, then every index updated, then cleanup of what is older than
    /// `older_than_s`; returns the new version and the report as JSON.
    #[pyo3(signature = (older_than_s=None))]
    fn optimize(&self, py: Python<'_>, older_than_s: Option<f64>) -> PyResult<(Self, String)> {
        let mut opts = vlake_table::OptimizeOptions::default();
        if let Some(s) = older_than_s {
            opts.cleanup_older_than = std::time::Duration::from_secs_f64(s.max(0.0));
        }
        let (table, report) = run(py, self.table.optimize(&opts))?;
        let report = serde_json::to_string(&report).map_err(|e| to_py(Error::Internal(e.to_string())))?;
        Ok((Self::new(table, false), report))
    }

    /// A streaming scan: an iterator of Arrow IPC streams, one batch each. `blobs` is
    /// `descriptors` or `bytes`.
    #[allow(clippy::too_many_arguments)]
    #[pyo3(signature = (columns=None, filter=None, limit=None, with_row_id=false, batch_size=None, blobs="descriptors"))]
    fn scan(
        &self,
        py: Python<'_>,
        columns: Option<Vec<String>>,
        filter: Option<&str>,
        limit: Option<usize>,
        with_row_id: bool,
        batch_size: Option<usize>,
        blobs: &str,
    ) -> PyResult<BatchIter> {
        let blobs: BlobMode = blobs.parse().map_err(to_py)?;
        let mut scanner = self
            .scanner(columns, filter, batch_size)?
            .with_row_id(with_row_id)
            .blobs(blobs);
        if let Some(n) = limit {
            scanner = scanner.limit(n);
        }
        let schema = scanner.output_schema().map_err(to_py)?;
        let stream = run(py, async move { scanner.execute().await })?;
        Ok(BatchIter::new(schema, stream))
    }

    /// Appends one row per file in `paths`, its bytes streamed into BLOB column `column`; the
    /// other columns come from `rows` (an Arrow IPC stream of one row per file) or are null.
    #[pyo3(signature = (column, paths, rows=None))]
    fn append_blobs(
        &self,
        py: Python<'_>,
        column: &str,
        paths: Vec<std::path::PathBuf>,
        rows: Option<&[u8]>,
    ) -> PyResult<Self> {
        let rows = match rows {
            Some(bytes) => {
                let (schema, batches) = from_ipc(bytes).map_err(to_py)?;
                Some(arrow::compute::concat_batches(&schema, &batches).map_err(|e| to_py(e.into()))?)
            }
            None => None,
        };
        let sources = paths.into_iter().map(BlobSource::File).collect();
        let table = run(
            py,
            self.table.append_blobs(column, sources, rows, &WriteOptions::default()),
        )?;
        Ok(Self::new(table, false))
    }

    /// Opens the value of BLOB column `column` in row `row_id` for ranged reads.
    fn open_blob(&self, py: Python<'_>, row_id: u64, column: &str) -> PyResult<RawBlob> {
        let reader = run(py, self.table.open_blob(row_id, column))?;
        Ok(RawBlob {
            reader: std::sync::Mutex::new(reader),
        })
    }

    /// The values of BLOB column `column` in rows `row_ids`, as an Arrow IPC stream of one
    /// `large_binary` column named after it.
    fn take_blobs(&self, py: Python<'_>, row_ids: Vec<u64>, column: &str) -> PyResult<Py<PyBytes>> {
        let values = run(py, self.table.take_blobs(&row_ids, column))?;
        let schema = Arc::new(arrow::datatypes::Schema::new(vec![arrow::datatypes::Field::new(
            column,
            values.data_type().clone(),
            true,
        )]));
        let batch = RecordBatch::try_new(schema.clone(), vec![values]).map_err(|e| to_py(e.into()))?;
        ipc(py, &schema, &[batch])
    }

    /// Rows matching `filter` (all live rows without one).
    #[pyo3(signature = (filter=None))]
    fn count_rows(&self, py: Python<'_>, filter: Option<&str>) -> PyResult<u64> {
        let scanner = self.scanner(None, filter, None)?;
        run(py, async move { scanner.count_rows().await })
    }

    /// The scan as independent per-file tasks (JSON), to run anywhere with `run_task`.
    #[pyo3(signature = (columns=None, filter=None, batch_size=None))]
    fn scan_tasks(
        &self,
        columns: Option<Vec<String>>,
        filter: Option<&str>,
        batch_size: Option<usize>,
    ) -> PyResult<Vec<String>> {
        let plan = self.scanner(columns, filter, batch_size)?.plan().map_err(to_py)?;
        plan.tasks
            .iter()
            .map(|t| serde_json::to_string(t).map_err(|e| to_py(Error::Internal(e.to_string()))))
            .collect()
    }

    /// Builds an index (vector, or `fts` with `analyzer` as a JSON AnalyzerConfig); returns the
    /// new version.
    #[allow(clippy::too_many_arguments)]
    #[pyo3(signature = (column, index_type, metric, name=None, partitions=None, subvectors=None, m=16, ef_construction=100, analyzer=None))]
    fn create_index(
        &self,
        py: Python<'_>,
        column: &str,
        index_type: &str,
        metric: &str,
        name: Option<String>,
        partitions: Option<usize>,
        subvectors: Option<usize>,
        m: usize,
        ef_construction: usize,
        analyzer: Option<&str>,
    ) -> PyResult<Self> {
        let mut opts = IndexOptions::new(column, index_type.parse::<IndexType>().map_err(to_py)?);
        opts.metric = metric.parse::<Metric>().map_err(to_py)?;
        opts.name = name;
        opts.ivf = IvfParams {
            partitions,
            pq_subvectors: subvectors,
            ..Default::default()
        };
        opts.hnsw = HnswParams { m, ef_construction };
        if let Some(a) = analyzer {
            opts.analyzer = analyzer_config(a)?;
        }
        Ok(Self::new(run(py, self.table.create_index(&opts))?, false))
    }

    /// Indexes the data files added since the index `name` was built.
    fn update_index(&self, py: Python<'_>, name: &str) -> PyResult<Self> {
        Ok(Self::new(run(py, self.table.update_index(name))?, false))
    }

    /// A vector search; the rows as one Arrow IPC stream, closest first, with `_distance`.
    #[allow(clippy::too_many_arguments)]
    #[pyo3(signature = (column, vector, k=10, metric=None, nprobes=None, ef=None, refine=None, filter=None, prefilter=true, exact=false, columns=None, fallback_to_exact=false, max_distance=None))]
    fn search(
        &self,
        py: Python<'_>,
        column: &str,
        vector: Vec<f32>,
        k: usize,
        metric: Option<&str>,
        nprobes: Option<usize>,
        ef: Option<usize>,
        refine: Option<usize>,
        filter: Option<&str>,
        prefilter: bool,
        exact: bool,
        columns: Option<Vec<String>>,
        fallback_to_exact: bool,
        max_distance: Option<f32>,
    ) -> PyResult<Py<PyBytes>> {
        let mut search = self
            .table
            .search(column, &vector)
            .limit(k)
            .prefilter(prefilter)
            .exact(exact)
            .fallback_to_exact(fallback_to_exact);
        if let Some(m) = metric {
            search = search.metric(m.parse::<Metric>().map_err(to_py)?);
        }
        if let Some(n) = nprobes {
            search = search.nprobes(n);
        }
        if let Some(n) = ef {
            search = search.ef(n);
        }
        if let Some(n) = refine {
            search = search.refine(n);
        }
        if let Some(f) = filter {
            search = search.filter_sql(f).map_err(to_py)?;
        }
        if let Some(c) = &columns {
            search = search.columns(c);
        }
        if let Some(d) = max_distance {
            search = search.within(d);
        }
        let found = run(py, async move { search.execute().await })?;
        ipc(py, &found.schema(), &[found])
    }

    /// A full-text search; the rows as one Arrow IPC stream, best first, with `_score` (and
    /// `_snippet`).
    #[allow(clippy::too_many_arguments)]
    #[pyo3(signature = (column, query, k=10, filter=None, columns=None, snippet=false, k1=1.2, b=0.75, max_expansions=50, index=None))]
    fn full_text_search(
        &self,
        py: Python<'_>,
        column: &str,
        query: &str,
        k: usize,
        filter: Option<&str>,
        columns: Option<Vec<String>>,
        snippet: bool,
        k1: f64,
        b: f64,
        max_expansions: usize,
        index: Option<&str>,
    ) -> PyResult<Py<PyBytes>> {
        let mut search = self
            .table
            .full_text_search(column, query)
            .limit(k)
            .snippet(snippet)
            .bm25(k1, b)
            .max_expansions(max_expansions);
        if let Some(f) = filter {
            search = search.filter_sql(f).map_err(to_py)?;
        }
        if let Some(c) = &columns {
            search = search.columns(c);
        }
        if let Some(i) = index {
            search = search.index(i);
        }
        let found = run(py, async move { search.execute().await })?;
        ipc(py, &found.schema(), &[found])
    }

    /// A hybrid search; the rows as one Arrow IPC stream, best first, with `_score`.
    #[allow(clippy::too_many_arguments)]
    #[pyo3(signature = (vector_column, vector, text_column, text, k=10, filter=None, columns=None, fusion="rrf", rrf_k=60.0, vector_weight=0.5, candidates=None, metric=None, nprobes=None, ef=None, exact=false))]
    fn hybrid_search(
        &self,
        py: Python<'_>,
        vector_column: &str,
        vector: Vec<f32>,
        text_column: &str,
        text: &str,
        k: usize,
        filter: Option<&str>,
        columns: Option<Vec<String>>,
        fusion: &str,
        rrf_k: f32,
        vector_weight: f32,
        candidates: Option<usize>,
        metric: Option<&str>,
        nprobes: Option<usize>,
        ef: Option<usize>,
        exact: bool,
    ) -> PyResult<Py<PyBytes>> {
        let mut v = self.table.search(vector_column, &vector).exact(exact);
        if let Some(m) = metric {
            v = v.metric(m.parse::<Metric>().map_err(to_py)?);
        }
        if let Some(n) = nprobes {
            v = v.nprobes(n);
        }
        if let Some(n) = ef {
            v = v.ef(n);
        }
        let fusion = match fusion {
            "rrf" => Fusion::Rrf { k: rrf_k },
            "weighted" => Fusion::Weighted { vector_weight },
            other => {
                return Err(to_py(Error::invalid(format!(
                    "fusion must be rrf or weighted, not '{other}'"
                ))))
            }
        };
        let mut search = HybridSearch::new(v, self.table.full_text_search(text_column, text))
            .limit(k)
            .fusion(fusion);
        if let Some(n) = candidates {
            search = search.candidates(n);
        }
        if let Some(f) = filter {
            search = search.filter_sql(f).map_err(to_py)?;
        }
        if let Some(c) = &columns {
            search = search.columns(c);
        }
        let found = run(py, async move { search.execute().await })?;
        ipc(py, &found.schema(), &[found])
    }
}

/// An AnalyzerConfig from its JSON text.
fn analyzer_config(json: &str) -> PyResult<AnalyzerConfig> {
    serde_json::from_str(json).map_err(|e| to_py(Error::invalid(format!("bad analyzer options: {e}"))))
}

/// The terms `text` analyzes to (default analyzer, or `analyzer` as a JSON AnalyzerConfig).
#[pyfunction]
#[pyo3(signature = (text, analyzer=None))]
fn analyze(text: &str, analyzer: Option<&str>) -> PyResult<Vec<String>> {
    let config = analyzer.map(analyzer_config).transpose()?.unwrap_or_default();
    let analyzer = vlake_table::Analyzer::new(&config).map_err(to_py)?;
    Ok(analyzer.analyze(text).into_iter().map(|t| t.text).collect())
}

/// One BLOB value opened for ranged reads (the `vlake.BlobFile` class wraps it).
#[pyclass(module = "vlake._vlake", frozen)]
struct RawBlob {
    reader: std::sync::Mutex<BlobReader>,
}

#[pymethods]
impl RawBlob {
    /// The size of the value in bytes.
    #[getter]
    fn size(&self) -> u64 {
        self.reader.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Up to `n` bytes at `offset` (fewer at the end of the value).
    fn read_at(&self, py: Python<'_>, offset: u64, n: usize) -> PyResult<Py<PyBytes>> {
        let read = self.reader.lock().unwrap_or_else(|p| p.into_inner()).read_at(offset, n);
        let bytes = run(py, read)?;
        Ok(PyBytes::new(py, &bytes).unbind())
    }
}

/// Batches of a running scan, one Arrow IPC stream each.
#[pyclass(module = "vlake._vlake")]
struct BatchIter {
    schema: SchemaRef,
    stream: Arc<tokio::sync::Mutex<Option<BatchStream>>>,
}

impl BatchIter {
    fn new(schema: SchemaRef, stream: BatchStream) -> Self {
        Self {
            schema,
            stream: Arc::new(tokio::sync::Mutex::new(Some(stream))),
        }
    }
}

#[pymethods]
impl BatchIter {
    /// The schema of every batch, as an IPC stream with no batches.
    fn schema_ipc(&self, py: Python<'_>) -> PyResult<Py<PyBytes>> {
        ipc(py, &self.schema, &[])
    }

    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__(&self, py: Python<'_>) -> PyResult<Option<Py<PyBytes>>> {
        let stream = self.stream.clone();
        let next = run(py, async move {
            let mut guard = stream.lock().await;
            let Some(s) = guard.as_mut() else {
                return Ok(None);
            };
            match s.next().await {
                Some(Ok(b)) => Ok(Some(b)),
                Some(Err(e)) => {
                    *guard = None;
                    Err(e)
                }
                None => {
                    *guard = None;
                    Ok(None)
                }
            }
        })?;
        next.map(|b| ipc(py, &self.schema, &[b])).transpose()
    }
}

/// Runs one task of `RawTable.scan_tasks` against the table at `uri`.
#[pyfunction]
fn run_task(py: Python<'_>, uri: &str, task: &str) -> PyResult<BatchIter> {
    let task: ScanTask =
        serde_json::from_str(task).map_err(|e| to_py(Error::invalid(format!("not a vlake scan task: {e}"))))?;
    let location = TableLocation::parse(uri).map_err(to_py)?;
    let schema = task.output_schema();
    let stream = run(py, async move { task.execute(&location, session()).await })?;
    Ok(BatchIter::new(schema, stream))
}

/// Runs SQL statements (DataFusion) with `tables` registered by name; the last statement's rows
/// as one Arrow IPC stream.
#[pyfunction]
fn sql(py: Python<'_>, query: &str, tables: Vec<(String, PyRef<'_, RawTable>)>) -> PyResult<Py<PyBytes>> {
    let ctx = vlake_datafusion::session();
    for (name, t) in &tables {
        ctx.register_table(name.as_str(), Arc::new(VlakeTable::new(t.table.clone(), t.pinned)))
            .map_err(|e| to_py(from_df(e)))?;
    }
    let statements = vlake_datafusion::parse(&ctx, query).map_err(|e| to_py(from_df(e)))?;
    let (schema, batches) = run(py, async move {
        let mut last = None;
        for statement in statements {
            let df = vlake_datafusion::sql(&ctx, statement).await.map_err(from_df)?;
            let schema: SchemaRef = df.schema();
            let batches = df.collect().await.map_err(from_df)?;
            last = Some((schema, batches));
        }
        last.ok_or_else(|| Error::invalid("no SQL statement given"))
    })?;
    ipc(py, &schema, &batches)
}

/// The native half of the `vlake` package.
#[pymodule]
fn _vlake(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<RawTable>()?;
    m.add_class::<BatchIter>()?;
    m.add_class::<RawBlob>()?;
    m.add_function(wrap_pyfunction!(run_task, m)?)?;
    m.add_function(wrap_pyfunction!(sql, m)?)?;
    m.add_function(wrap_pyfunction!(analyze, m)?)?;
    Ok(())
}
