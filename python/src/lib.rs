//! The native module of the `vlake` Python package. It translates and nothing more: Arrow
//! crosses the boundary through the Arrow C Data Interface (PyCapsule streams; buffers are
//! shared, never copied or re-encoded), option strings become `vlake-table`'s enums through
//! their `FromStr`, defaults are `vlake-table`'s, descriptions and reports are its serde types as
//! JSON, and the GIL is released during I/O and compute.

use std::future::Future;
use std::sync::{Arc, Mutex};

use arrow::array::{Array, RecordBatch};
use arrow::datatypes::{Schema, SchemaRef};
use arrow::error::ArrowError;
use arrow_array::ffi_stream::ArrowArrayStreamReader;
use arrow_array::RecordBatchReader;
use arrow_pyarrow::{IntoPyArrow, PyArrowType};
use futures::StreamExt;
use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use serde::Serialize;
use vlake_datafusion::{from_df, VlakeTable};
use vlake_table::{
    AnalyzerConfig, BatchStream, BlobMode, BlobReader, BlobSource, CleanupOptions, Error, HnswParams,
    HybridSearchOptions, IndexOptions, IndexType, IvfParams, MergeInsert, ScanTask, Session, SessionOptions,
    StagedMode, StagedWrite, Table, TableBuilder, TableLocation, TextSearchOptions, VectorSearchOptions, VersionRef,
    WriteMode, WriteOptions,
};

/// Arrow data handed over by Python: anything with `__arrow_c_stream__` (a pyarrow Table,
/// RecordBatchReader, a polars DataFrame, ...), read batch by batch through the C stream.
type PyStream = PyArrowType<ArrowArrayStreamReader>;

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
fn session() -> Session {
    process_session().clone()
}

fn process_session() -> std::sync::MutexGuard<'static, Session> {
    static SESSION: std::sync::LazyLock<Mutex<Session>> = std::sync::LazyLock::new(Mutex::default);
    SESSION.lock().unwrap_or_else(|e| e.into_inner())
}

/// The state of the process's caches as JSON: per cache, entries, weight (bytes, or entries),
/// capacity, hits and misses.
#[pyfunction]
fn cache_stats() -> PyResult<String> {
    serde_json::to_string(&session().stats()).map_err(|e| to_py(Error::Internal(e.to_string())))
}

/// Empties the process's caches.
#[pyfunction]
fn clear_cache() {
    session().clear();
}

/// Gives tables opened from now on new caches with these budgets (`None` keeps a default).
#[pyfunction]
#[pyo3(signature = (vector_bytes=None, metadata_bytes=None, index_entries=None))]
fn set_cache_budgets(vector_bytes: Option<usize>, metadata_bytes: Option<usize>, index_entries: Option<usize>) {
    let defaults = SessionOptions::default();
    let options = SessionOptions::default()
        .with_vector_cache_bytes(vector_bytes.unwrap_or(defaults.vector_cache_bytes))
        .with_metadata_cache_bytes(metadata_bytes.unwrap_or(defaults.metadata_cache_bytes))
        .with_index_cache_entries(index_entries.unwrap_or(defaults.index_cache_entries));
    *process_session() = Session::new(options);
}

/// Runs `f` on the runtime without the GIL.
fn run<T: Send>(py: Python<'_>, f: impl Future<Output = Result<T, Error>> + Send) -> PyResult<T> {
    py.detach(|| block(f)).map_err(to_py)
}

/// Waits for `f`: on the runtime, or, when called from inside it (a vlake write reading a vlake
/// scan handed back as a C stream), in place on the current one.
fn block<F: Future>(f: F) -> F::Output {
    match tokio::runtime::Handle::try_current() {
        Ok(handle) => tokio::task::block_in_place(|| handle.block_on(f)),
        Err(_) => runtime().block_on(f),
    }
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

/// `value` as JSON, for Python to read into dicts.
fn json(value: &impl Serialize) -> PyResult<String> {
    serde_json::to_string(value).map_err(|e| to_py(Error::Internal(e.to_string())))
}

/// Parses an option string into `vlake-table`'s type for it.
fn parse<T: std::str::FromStr<Err = Error>>(s: &str) -> PyResult<T> {
    s.parse().map_err(to_py)
}

/// The batches of a Python-side C stream, read as the consumer needs them (never all at once).
/// The producer may be Python code (a generator behind a pyarrow reader), so each batch is read
/// holding the GIL, which the waiting caller released.
fn input(data: PyStream) -> BatchStream {
    let reader = data.0;
    let schema = reader.schema();
    let batches = futures::stream::unfold(Some(reader), |reader| async move {
        let mut reader = reader?;
        loop {
            match Python::attach(|_| reader.next())? {
                Ok(b) if b.num_rows() == 0 => continue,
                Ok(b) => return Some((Ok(b), Some(reader))),
                Err(e) => return Some((Err(Error::invalid(format!("reading the input failed: {e}"))), None)),
            }
        }
    });
    BatchStream::new(schema, batches.boxed())
}

/// A batch handed to Python through the C Data Interface (a `pyarrow.RecordBatch`).
fn to_pyarrow(py: Python<'_>, batch: RecordBatch) -> PyResult<Py<PyAny>> {
    Ok(PyArrowType(batch).into_pyobject(py)?.unbind())
}

/// Which version to open: at most one of a version, a time or a tag.
fn version_ref(version: Option<u64>, timestamp_ms: Option<i64>, tag: Option<String>) -> PyResult<VersionRef> {
    match (version, timestamp_ms, tag) {
        (None, None, None) => Ok(VersionRef::Latest),
        (Some(v), None, None) => Ok(VersionRef::Version(v)),
        (None, Some(t), None) => Ok(VersionRef::Timestamp(t)),
        (None, None, Some(t)) => Ok(VersionRef::Tag(t)),
        _ => Err(to_py(Error::invalid("give at most one of version, timestamp and tag"))),
    }
}

/// Options (a `vlake-table` options struct) from their JSON form; the defaults without one.
fn options_from<T: serde::de::DeserializeOwned + Default>(json: Option<&str>) -> PyResult<T> {
    json.map_or_else(
        || Ok(T::default()),
        |j| serde_json::from_str(j).map_err(|e| to_py(Error::invalid(format!("bad search options: {e}")))),
    )
}

/// A query vector from its bytes (float32 in the machine's byte order, as numpy and
/// `array.array("f")` hold them).
fn floats(bytes: &[u8]) -> PyResult<Vec<f32>> {
    if !bytes.len().is_multiple_of(4) {
        return Err(to_py(Error::invalid("a query vector is float32 values: 4 bytes each")));
    }
    Ok(bytes
        .chunks_exact(4)
        .map(|c| f32::from_ne_bytes([c[0], c[1], c[2], c[3]]))
        .collect())
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
        let at = version_ref(version, timestamp_ms, tag)?;
        let pinned = at != VersionRef::Latest;
        let table = run(py, Table::builder(uri).version(at).session(session()).open())?;
        Ok(Self::new(table, pinned))
    }

    /// Writes the batches of `data` (a C stream, read as it is written) to `uri` as one commit;
    /// `mode` is `create`, `append` or `overwrite`.
    #[staticmethod]
    #[pyo3(signature = (uri, mode, data, primary_key=None))]
    fn write(
        py: Python<'_>,
        uri: &str,
        mode: &str,
        data: PyStream,
        primary_key: Option<Vec<String>>,
    ) -> PyResult<Self> {
        let mode = parse::<WriteMode>(mode)?;
        let location = TableLocation::parse(uri).map_err(to_py)?;
        let opts = WriteOptions {
            primary_key: primary_key.unwrap_or_default(),
            ..Default::default()
        };
        let builder = TableBuilder::new(location).session(session());
        Ok(Self::new(run(py, builder.write(input(data), mode, &opts))?, false))
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

    /// The Arrow schema (a `pyarrow.Schema`).
    #[getter]
    fn schema(&self) -> PyArrowType<Schema> {
        PyArrowType(self.table.schema().as_ref().clone())
    }

    /// Names of the primary-key columns.
    #[getter]
    fn primary_key(&self) -> Vec<String> {
        self.table.primary_key_names()
    }

    /// This version's summary (`Table::info`), as JSON.
    fn info_json(&self) -> PyResult<String> {
        json(&self.table.info())
    }

    /// The indexes of this version (`Table::indexes`), as JSON.
    fn indexes_json(&self) -> PyResult<String> {
        json(&self.table.indexes())
    }

    /// The versions of the table, as JSON.
    fn versions_json(&self, py: Python<'_>) -> PyResult<String> {
        json(&run(py, self.table.versions())?)
    }

    /// The tags, as JSON.
    fn tags_json(&self, py: Python<'_>) -> PyResult<String> {
        json(&run(py, self.table.tags())?)
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
        let at = version_ref(version, timestamp_ms, tag)?;
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
        json(&run(py, self.table.cleanup(&options))?)
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
        let opts = WriteOptions::default();
        Ok(Self::new(
            run(py, self.table.update(&assignments, filter.as_ref(), &opts))?,
            false,
        ))
    }

    /// Merges the rows of `data` (a C stream) by key; returns the new version and the report as
    /// JSON. The `when_*` strings are those of `WhenMatched`, `WhenNotMatched` and
    /// `WhenNotMatchedBySource`.
    #[pyo3(signature = (data, on=None, when_matched="update", when_not_matched="insert", when_not_matched_by_source="keep"))]
    fn merge_insert(
        &self,
        py: Python<'_>,
        data: PyStream,
        on: Option<Vec<String>>,
        when_matched: &str,
        when_not_matched: &str,
        when_not_matched_by_source: &str,
    ) -> PyResult<(Self, String)> {
        let merge = MergeInsert {
            on: on.unwrap_or_default(),
            when_matched: parse(when_matched)?,
            when_not_matched: parse(when_not_matched)?,
            when_not_matched_by_source: parse(when_not_matched_by_source)?,
            ..MergeInsert::upsert()
        };
        let opts = WriteOptions::default();
        let (table, report) = run(py, self.table.merge_insert(input(data), &merge, &opts))?;
        Ok((Self::new(table, false), json(&report)?))
    }

    /// Writes the batches of `data` (a C stream) as data files of this table without committing
    /// them; returns the staged write as JSON (`mode`: `append` or `overwrite`).
    fn stage(&self, py: Python<'_>, data: PyStream, mode: &str) -> PyResult<String> {
        let mode = parse::<StagedMode>(mode)?;
        let staged = run(py, self.table.stage(input(data), mode, &WriteOptions::default()))?;
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
    /// `fields` holds the fields the changes refer to by position.
    fn alter_schema(&self, py: Python<'_>, changes: &str, fields: PyArrowType<Schema>) -> PyResult<Self> {
        let changes = vlake_table::SchemaChange::list_from_json(changes, &fields.0).map_err(to_py)?;
        Ok(Self::new(run(py, self.table.alter_schema(&changes))?, false))
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
        Ok((Self::new(table, false), json(&report)?))
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
        Ok((Self::new(table, false), json(&report)?))
    }

    /// A streaming scan. `blobs` is `descriptors` or `bytes`.
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
        let mut scanner = self
            .scanner(columns, filter, batch_size)?
            .with_row_id(with_row_id)
            .blobs(parse::<BlobMode>(blobs)?);
        if let Some(n) = limit {
            scanner = scanner.limit(n);
        }
        let schema = scanner.output_schema().map_err(to_py)?;
        let stream = run(py, async move { scanner.execute().await })?;
        Ok(BatchIter::new(schema, stream))
    }

    /// Appends one row per file in `paths`, its bytes streamed into BLOB column `column`; the
    /// other columns come from `rows` (a C stream of one row per file) or are null.
    #[pyo3(signature = (column, paths, rows=None))]
    fn append_blobs(
        &self,
        py: Python<'_>,
        column: &str,
        paths: Vec<std::path::PathBuf>,
        rows: Option<PyStream>,
    ) -> PyResult<Self> {
        let rows = rows
            .map(|r| {
                let schema = r.0.schema();
                let batches = r.0.collect::<Result<Vec<_>, _>>()?;
                arrow::compute::concat_batches(&schema, &batches)
            })
            .transpose()
            .map_err(|e| to_py(Error::invalid(format!("bad rows for the blobs: {e}"))))?;
        let sources = paths.into_iter().map(BlobSource::File).collect();
        let opts = WriteOptions::default();
        Ok(Self::new(
            run(py, self.table.append_blobs(column, sources, rows, &opts))?,
            false,
        ))
    }

    /// Opens the value of BLOB column `column` in row `row_id` for ranged reads.
    fn open_blob(&self, py: Python<'_>, row_id: u64, column: &str) -> PyResult<RawBlob> {
        let reader = run(py, self.table.open_blob(row_id, column))?;
        Ok(RawBlob {
            reader: Mutex::new(reader),
        })
    }

    /// The values of BLOB column `column` in rows `row_ids` (a `pyarrow.Array`).
    fn take_blobs(
        &self,
        py: Python<'_>,
        row_ids: Vec<u64>,
        column: &str,
    ) -> PyResult<PyArrowType<arrow::array::ArrayData>> {
        let values = run(py, self.table.take_blobs(&row_ids, column))?;
        Ok(PyArrowType(values.to_data()))
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
        plan.tasks.iter().map(json).collect()
    }

    /// Builds an index (vector, or `fts` with `analyzer` as a JSON AnalyzerConfig); unset
    /// parameters take `vlake-table`'s defaults.
    #[allow(clippy::too_many_arguments)]
    #[pyo3(signature = (column, index_type, metric=None, name=None, partitions=None, subvectors=None, m=None, ef_construction=None, analyzer=None))]
    fn create_index(
        &self,
        py: Python<'_>,
        column: &str,
        index_type: &str,
        metric: Option<&str>,
        name: Option<String>,
        partitions: Option<usize>,
        subvectors: Option<usize>,
        m: Option<usize>,
        ef_construction: Option<usize>,
        analyzer: Option<&str>,
    ) -> PyResult<Self> {
        let mut opts = IndexOptions::new(column, parse::<IndexType>(index_type)?);
        if let Some(metric) = metric {
            opts.metric = parse(metric)?;
        }
        opts.name = name;
        opts.ivf = IvfParams {
            partitions,
            pq_subvectors: subvectors,
            ..Default::default()
        };
        let defaults = HnswParams::default();
        opts.hnsw = HnswParams {
            m: m.unwrap_or(defaults.m),
            ef_construction: ef_construction.unwrap_or(defaults.ef_construction),
        };
        if let Some(a) = analyzer {
            opts.analyzer = analyzer_config(a)?;
        }
        Ok(Self::new(run(py, self.table.create_index(&opts))?, false))
    }

    /// Indexes the data files added since the index `name` was built.
    fn update_index(&self, py: Python<'_>, name: &str) -> PyResult<Self> {
        Ok(Self::new(run(py, self.table.update_index(name))?, false))
    }

    /// The only vector column, for a search that names none.
    fn only_vector_column(&self) -> PyResult<String> {
        self.table.only_vector_column().map_err(to_py)
    }

    /// A vector search for `vector` (float32 bytes) in `column`, with `options` (a JSON
    /// `VectorSearchOptions`); the rows closest first, with `_distance`, as a
    /// `pyarrow.RecordBatch`.
    #[pyo3(signature = (column, vector, options=None))]
    fn search(&self, py: Python<'_>, column: &str, vector: &[u8], options: Option<&str>) -> PyResult<Py<PyAny>> {
        let search = self.table.search(column, &floats(vector)?);
        let search = options_from::<VectorSearchOptions>(options)?
            .apply(search)
            .map_err(to_py)?;
        to_pyarrow(py, run(py, search.execute())?)
    }

    /// A full-text search of `column` (default: the only string column) with `options` (a JSON
    /// `TextSearchOptions`); the rows best first, with `_score` (and `_snippet`), as a
    /// `pyarrow.RecordBatch`.
    #[pyo3(signature = (column, query, options=None))]
    fn full_text_search(
        &self,
        py: Python<'_>,
        column: Option<String>,
        query: &str,
        options: Option<&str>,
    ) -> PyResult<Py<PyAny>> {
        let column = column
            .map_or_else(|| self.table.only_text_column(), Ok)
            .map_err(to_py)?;
        let search = self.table.full_text_search(&column, query);
        let search = options_from::<TextSearchOptions>(options)?
            .apply(search)
            .map_err(to_py)?;
        to_pyarrow(py, run(py, search.execute())?)
    }

    /// A hybrid search (columns default to the only vector and string columns) with `options`
    /// (a JSON `HybridSearchOptions`); the rows best first, with `_score`, as a
    /// `pyarrow.RecordBatch`.
    #[pyo3(signature = (vector_column, vector, text_column, text, options=None))]
    fn hybrid_search(
        &self,
        py: Python<'_>,
        vector_column: Option<String>,
        vector: &[u8],
        text_column: Option<String>,
        text: &str,
        options: Option<&str>,
    ) -> PyResult<Py<PyAny>> {
        let vector_column = vector_column
            .map_or_else(|| self.table.only_vector_column(), Ok)
            .map_err(to_py)?;
        let text_column = text_column
            .map_or_else(|| self.table.only_text_column(), Ok)
            .map_err(to_py)?;
        let vector = self.table.search(&vector_column, &floats(vector)?);
        let text = self.table.full_text_search(&text_column, text);
        let search = options_from::<HybridSearchOptions>(options)?
            .apply(vector, text)
            .map_err(to_py)?;
        to_pyarrow(py, run(py, search.execute())?)
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
    reader: Mutex<BlobReader>,
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

/// The batches of a running scan: iterated, each a `pyarrow.RecordBatch` (errors raise
/// vlake's exception classes); or handed over whole as a `pyarrow.RecordBatchReader` by
/// `reader()`, a C stream that pyarrow, polars or DuckDB read without the GIL.
#[pyclass(module = "vlake._vlake", frozen)]
struct BatchIter {
    schema: SchemaRef,
    /// None once read to the end, failed, or handed over by `reader()`.
    stream: Mutex<Option<BatchStream>>,
}

impl BatchIter {
    fn new(schema: SchemaRef, stream: BatchStream) -> Self {
        Self {
            schema,
            stream: Mutex::new(Some(stream)),
        }
    }

    fn stream(&self) -> std::sync::MutexGuard<'_, Option<BatchStream>> {
        self.stream.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A running scan as an Arrow `RecordBatchReader`, waiting on the runtime for each batch.
struct BlockingReader {
    schema: SchemaRef,
    stream: BatchStream,
}

impl Iterator for BlockingReader {
    type Item = Result<RecordBatch, ArrowError>;

    fn next(&mut self) -> Option<Self::Item> {
        block(self.stream.next()).map(|b| b.map_err(|e| ArrowError::ExternalError(Box::new(e))))
    }
}

impl RecordBatchReader for BlockingReader {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }
}

#[pymethods]
impl BatchIter {
    /// The schema of every batch (a `pyarrow.Schema`).
    #[getter]
    fn schema(&self) -> PyArrowType<Schema> {
        PyArrowType(self.schema.as_ref().clone())
    }

    /// The batches not yet read, as a `pyarrow.RecordBatchReader` (through the C stream).
    fn reader<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let stream = self
            .stream()
            .take()
            .unwrap_or_else(|| BatchStream::new(self.schema.clone(), futures::stream::empty()));
        let reader: Box<dyn RecordBatchReader + Send> = Box::new(BlockingReader {
            schema: self.schema.clone(),
            stream,
        });
        reader.into_pyarrow(py)
    }

    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__(&self, py: Python<'_>) -> PyResult<Option<Py<PyAny>>> {
        let mut guard = self.stream();
        let Some(stream) = guard.as_mut() else {
            return Ok(None);
        };
        match py.detach(|| block(stream.next())) {
            Some(Ok(batch)) => to_pyarrow(py, batch).map(Some),
            Some(Err(e)) => {
                *guard = None;
                Err(to_py(e))
            }
            None => {
                *guard = None;
                Ok(None)
            }
        }
    }
}

/// Runs one task of `RawTable.scan_tasks` against the table at `uri`.
#[pyfunction]
fn run_task(py: Python<'_>, uri: &str, task: &str) -> PyResult<BatchIter> {
    let task: ScanTask =
        serde_json::from_str(task).map_err(|e| to_py(Error::invalid(format!("not a vlake scan task: {e}"))))?;
    let location = TableLocation::parse(uri).map_err(to_py)?;
    let schema = task.output_schema();
    let stream = run(py, async move { task.execute(&location, &session()).await })?;
    Ok(BatchIter::new(schema, stream))
}

/// Runs SQL statements (DataFusion) with `tables` registered by name; the last statement's rows
/// as a `pyarrow.Table`.
#[pyfunction]
fn sql(
    py: Python<'_>,
    query: &str,
    tables: Vec<(String, PyRef<'_, RawTable>)>,
) -> PyResult<PyArrowType<arrow_pyarrow::Table>> {
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
    let table = arrow_pyarrow::Table::try_new(batches, schema).map_err(|e| to_py(Error::Internal(e.to_string())))?;
    Ok(PyArrowType(table))
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
    m.add_function(wrap_pyfunction!(cache_stats, m)?)?;
    m.add_function(wrap_pyfunction!(clear_cache, m)?)?;
    m.add_function(wrap_pyfunction!(set_cache_budgets, m)?)?;
    Ok(())
}
