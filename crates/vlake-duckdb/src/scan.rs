//! `vlake_scan(uri [, version := N | tag := 'x' | as_of := TIMESTAMPTZ] [, filter := 'SQL']
//! [, columns := ['a', ...]] [, with_row_id := bool])`.
//!
//! Contract with DuckDB:
//! - **bind** opens the table version, checks the filter and declares the columns (the
//!   table's, BLOB columns as their bytes, then `_rowid UBIGINT` with `with_row_id`);
//! - **init** (once per query) plans the scan of the columns DuckDB asks for (projection
//!   pushdown) into tasks: one per range of [`ROWS_PER_TASK`] rows of each data file that
//!   survives statistics pruning, and lets DuckDB run as many threads as there are tasks;
//! - **local init** gives each DuckDB thread its own cursor; **function** fills one chunk per
//!   call from the thread's current task, taking the next task from the shared queue when one
//!   runs out. Deleted rows never leave vlake's scan. Filters in DuckDB's `WHERE` are applied by
//!   DuckDB (the stable C API does not push them down); `filter :=` is applied by vlake while
//!   decoding, with file pruning.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use arrow_array::RecordBatch;
use arrow_schema::DataType as ArrowType;
use futures::StreamExt;
use libduckdb_sys as sys;
use vlake_table::{BatchStream, BlobMode, Scanner, TableLocation};

use crate::ffi::{drop_box, guard, into_raw, LogicalType};
use crate::vector::{emit, vector_size, Output};
use crate::{Database, Params, TableFunction};

/// Rows of a data file one DuckDB thread reads at a time: a large file is shared between
/// threads in ranges of this many rows.
const ROWS_PER_TASK: u64 = 32_768;

/// The table function's declaration.
pub(crate) fn function() -> TableFunction {
    TableFunction {
        name: "vlake_scan",
        params: vec![LogicalType::new(sys::DUCKDB_TYPE_DUCKDB_TYPE_VARCHAR)],
        named: vec![
            ("filter", LogicalType::new(sys::DUCKDB_TYPE_DUCKDB_TYPE_VARCHAR)),
            (
                "columns",
                LogicalType::list(&LogicalType::new(sys::DUCKDB_TYPE_DUCKDB_TYPE_VARCHAR)),
            ),
            ("with_row_id", LogicalType::new(sys::DUCKDB_TYPE_DUCKDB_TYPE_BOOLEAN)),
        ]
        .into_iter()
        .chain(crate::version_params())
        .collect(),
        bind,
        init,
        local_init: Some(local_init),
        function: scan,
    }
}

/// What bind found: the scan (table version and filter) and the declared columns.
struct Bound {
    session: Arc<Database>,
    scanner: Scanner,
    location: TableLocation,
    /// Declared columns: name and Arrow type (`_rowid` last when asked for).
    columns: Vec<(String, ArrowType)>,
    with_row_id: bool,
}

/// The query's shared state: the tasks not yet taken and how output columns map to batches.
struct Global {
    session: Arc<Database>,
    location: TableLocation,
    tasks: Mutex<VecDeque<vlake_table::ScanTask>>,
    outputs: Vec<Output>,
}

/// One DuckDB thread's cursor.
#[derive(Default)]
struct Local {
    stream: Option<BatchStream>,
    batch: Option<RecordBatch>,
    offset: usize,
}

unsafe extern "C" fn bind(info: sys::duckdb_bind_info) {
    let outcome = guard(|| {
        let params = Params(info);
        let session = Arc::clone(params.session());
        let uri = params.get(0).text().ok_or("vlake_scan: the table URI is NULL")?;
        let table = session.open(&uri, params.version()?)?;
        let with_row_id = params.named("with_row_id").bool().unwrap_or(false);
        let mut scanner = table.scan().blobs(BlobMode::Bytes).with_row_id(with_row_id);
        if let Some(filter) = params.named("filter").text() {
            scanner = scanner.filter_sql(&filter).map_err(crate::message)?;
        }
        if let Some(columns) = params.named("columns").texts() {
            scanner = scanner.columns(&columns);
        }
        let schema = scanner.output_schema().map_err(crate::message)?;
        let columns: Vec<(String, ArrowType)> = schema
            .fields()
            .iter()
            .map(|f| (f.name().clone(), f.data_type().clone()))
            .collect();
        crate::declare_columns(info, "vlake_scan", &columns)?;
        // SAFETY: the bind info is live.
        unsafe { sys::duckdb_bind_set_cardinality(info, table.num_rows(), false) };
        let bound = Bound {
            session,
            location: table.location().clone(),
            scanner,
            columns,
            with_row_id,
        };
        // SAFETY: DuckDB owns the bind data from here and frees it with `drop_box::<Bound>`.
        unsafe { sys::duckdb_bind_set_bind_data(info, into_raw(bound), Some(drop_box::<Bound>)) };
        Ok(())
    });
    if let Err(e) = outcome {
        // SAFETY: the bind info is live; DuckDB copies the message.
        unsafe { sys::duckdb_bind_set_error(info, e.as_ptr()) };
    }
}

unsafe extern "C" fn init(info: sys::duckdb_init_info) {
    let outcome = guard(|| {
        // SAFETY: bind stored a `Bound` as bind data, alive for the whole query.
        let bound = unsafe { &*sys::duckdb_init_get_bind_data(info).cast::<Bound>() };
        let declared = bound.columns.len() - usize::from(bound.with_row_id);
        let mut names = Vec::new();
        let mut types = Vec::new();
        let mut projected = Vec::new();
        for index in crate::requested_columns(info) {
            match bound.columns.get(index) {
                Some((name, ty)) if index < declared => {
                    projected.push(Some(names.len()));
                    names.push(name.clone());
                    types.push(ty.clone());
                }
                // `_rowid`, or DuckDB's own row-id column (`count(*)` asks for that): vlake's
                // row ids, typed as declared (DuckDB's row id is a BIGINT).
                Some((_, ty)) => {
                    projected.push(None);
                    types.push(ty.clone());
                }
                None => {
                    projected.push(None);
                    types.push(ArrowType::Int64);
                }
            }
        }
        let outputs = projected
            .iter()
            .zip(types)
            .map(|(p, bound)| Output {
                source: p.unwrap_or(names.len()),
                bound,
            })
            .collect();
        // Row ids also give batches their length when no column is asked for.
        let with_row_id = projected.iter().any(Option::is_none) || names.is_empty();
        let plan = bound
            .scanner
            .clone()
            .columns(&names)
            .with_row_id(with_row_id)
            .plan()
            .map_err(crate::message)?
            .split_files(ROWS_PER_TASK);
        let threads = plan.tasks.len().max(1) as u64;
        let global = Global {
            session: Arc::clone(&bound.session),
            location: bound.location.clone(),
            tasks: Mutex::new(plan.tasks.into()),
            outputs,
        };
        // SAFETY: the init info is live; DuckDB owns the init data and frees it with
        // `drop_box::<Global>`.
        unsafe {
            sys::duckdb_init_set_max_threads(info, threads);
            sys::duckdb_init_set_init_data(info, into_raw(global), Some(drop_box::<Global>));
        }
        Ok(())
    });
    if let Err(e) = outcome {
        // SAFETY: the init info is live; DuckDB copies the message.
        unsafe { sys::duckdb_init_set_error(info, e.as_ptr()) };
    }
}

unsafe extern "C" fn local_init(info: sys::duckdb_init_info) {
    let outcome = guard(|| {
        // SAFETY: the init info is live; DuckDB owns the local state and frees it with
        // `drop_box::<Local>`.
        unsafe { sys::duckdb_init_set_init_data(info, into_raw(Local::default()), Some(drop_box::<Local>)) };
        Ok(())
    });
    if let Err(e) = outcome {
        // SAFETY: the init info is live; DuckDB copies the message.
        unsafe { sys::duckdb_init_set_error(info, e.as_ptr()) };
    }
}

unsafe extern "C" fn scan(info: sys::duckdb_function_info, output: sys::duckdb_data_chunk) {
    let outcome = guard(|| {
        // SAFETY: init and local init stored these; DuckDB keeps them alive during the call, and
        // the local state belongs to this thread alone.
        let (global, local) = unsafe {
            (
                &*sys::duckdb_function_get_init_data(info).cast::<Global>(),
                &mut *sys::duckdb_function_get_local_init_data(info).cast::<Local>(),
            )
        };
        fill(global, local, output)
    });
    if let Err(e) = outcome {
        // SAFETY: the function info is live; DuckDB copies the message.
        unsafe { sys::duckdb_function_set_error(info, e.as_ptr()) };
    }
}

/// Writes the next rows of this thread's share of the scan into `output`; an empty chunk ends
/// the thread's scan.
fn fill(global: &Global, local: &mut Local, output: sys::duckdb_data_chunk) -> Result<(), String> {
    loop {
        if let Some(batch) = &local.batch {
            let len = (batch.num_rows() - local.offset).min(vector_size());
            if len > 0 {
                // SAFETY: `output` is this function's chunk, declared from the bound columns.
                unsafe { emit(output, batch, &global.outputs, local.offset, len)? };
                local.offset += len;
                return Ok(());
            }
            local.batch = None;
        }
        if let Some(stream) = &mut local.stream {
            match global.session.block_on(stream.next()) {
                Some(batch) => {
                    local.batch = Some(batch.map_err(crate::message)?);
                    local.offset = 0;
                    continue;
                }
                None => local.stream = None,
            }
        }
        let task = global
            .tasks
            .lock()
            .map_err(|_| "vlake: a scan thread failed")?
            .pop_front();
        match task {
            Some(task) => {
                local.stream = Some(
                    global
                        .session
                        .block_on(task.execute(&global.location, global.session.caches()))
                        .map_err(crate::message)?,
                );
            }
            None => {
                // SAFETY: the chunk is live; zero rows ends this thread's scan.
                unsafe { sys::duckdb_data_chunk_set_size(output, 0) };
                return Ok(());
            }
        }
    }
}
