//! `vlake_search(uri, column, query DOUBLE[], k [, filter := 'SQL', metric := 'cosine',
//! nprobes := N, ef := N, refine := N, exact := bool, version := N | tag := 'x'])`.
//!
//! The nearest `k` rows of the table version to `query` in `column`, closest first: the
//! table's columns then `_distance REAL`. The search is [`vlake_table::VectorSearch`], with its
//! sidecar indexes and prefilter semantics (`k` matching rows whenever `k` rows match). Bind
//! opens the table and checks the arguments; init runs the search for the columns DuckDB asks
//! for (projection pushdown); function hands the rows over in chunks.

use std::sync::Mutex;

use arrow_array::RecordBatch;
use arrow_schema::DataType as ArrowType;
use libduckdb_sys as sys;
use vlake_table::{Metric, VectorSearch, DISTANCE};

use crate::ffi::{c_string, drop_box, guard, into_raw, LogicalType};
use crate::vector::{emit, logical_type, vector_size, Output};
use crate::{Database, Params, TableFunction};

/// The table function's declaration.
pub(crate) fn function() -> TableFunction {
    let int = || LogicalType::new(sys::DUCKDB_TYPE_DUCKDB_TYPE_BIGINT);
    let text = || LogicalType::new(sys::DUCKDB_TYPE_DUCKDB_TYPE_VARCHAR);
    TableFunction {
        name: "vlake_search",
        params: vec![
            text(),
            text(),
            // DOUBLE[]: every numeric list or array (a FLOAT[n] column value, a Python list of
            // floats, a literal) casts to it implicitly; FLOAT[] would refuse DOUBLE[].
            LogicalType::list(&LogicalType::new(sys::DUCKDB_TYPE_DUCKDB_TYPE_DOUBLE)),
            int(),
        ],
        named: vec![
            ("filter", text()),
            ("metric", text()),
            ("nprobes", int()),
            ("ef", int()),
            ("refine", int()),
            ("exact", LogicalType::new(sys::DUCKDB_TYPE_DUCKDB_TYPE_BOOLEAN)),
            ("version", int()),
            ("tag", text()),
        ],
        bind,
        init,
        local_init: None,
        function: search,
    }
}

/// What bind found: the search, ready to run, and the declared columns.
struct Bound {
    session: std::sync::Arc<Database>,
    search: VectorSearch,
    /// Declared columns: the table's, then `_distance`.
    columns: Vec<(String, ArrowType)>,
}

/// The query's result and how far it has been handed over.
struct Global {
    batch: RecordBatch,
    outputs: Vec<Output>,
    offset: Mutex<usize>,
}

/// A non-negative integer parameter.
fn count(name: &str, value: Option<i64>) -> Result<Option<usize>, String> {
    value
        .map(|v| usize::try_from(v).map_err(|_| format!("vlake: invalid input: {name} must be at least 0, got {v}")))
        .transpose()
}

unsafe extern "C" fn bind(info: sys::duckdb_bind_info) {
    let outcome = guard(|| {
        let params = Params(info);
        let session = std::sync::Arc::clone(params.session());
        let uri = params.get(0).text().ok_or("vlake_search: the table URI is NULL")?;
        let column = params.get(1).text().ok_or("vlake_search: the column is NULL")?;
        let query = params.get(2).floats().ok_or("vlake_search: the query vector is NULL")?;
        let k = count("k", params.get(3).int())?.ok_or("vlake_search: k is NULL")?;
        let table = session.open(&uri, params.named("version").int(), params.named("tag").text())?;
        let mut search = table.search(&column, &query).limit(k);
        if let Some(filter) = params.named("filter").text() {
            search = search.filter_sql(&filter).map_err(crate::message)?;
        }
        if let Some(metric) = params.named("metric").text() {
            search = search.metric(metric.parse::<Metric>().map_err(crate::message)?);
        }
        if let Some(n) = count("nprobes", params.named("nprobes").int())? {
            search = search.nprobes(n);
        }
        if let Some(n) = count("ef", params.named("ef").int())? {
            search = search.ef(n);
        }
        if let Some(n) = count("refine", params.named("refine").int())? {
            search = search.refine(n);
        }
        if let Some(exact) = params.named("exact").bool() {
            search = search.exact(exact);
        }
        search.check_tuning().map_err(crate::message)?;
        let schema = table.scan().output_schema().map_err(crate::message)?;
        let mut columns: Vec<(String, ArrowType)> = schema
            .fields()
            .iter()
            .map(|f| (f.name().clone(), f.data_type().clone()))
            .collect();
        columns.push((DISTANCE.to_string(), ArrowType::Float32));
        for (name, ty) in &columns {
            let duck = logical_type(ty).map_err(|e| format!("vlake_search: column '{name}': {e}"))?;
            let name = c_string(name);
            // SAFETY: the bind info is live; DuckDB copies the name and type.
            unsafe { sys::duckdb_bind_add_result_column(info, name.as_ptr(), duck.0) };
        }
        // SAFETY: the bind info is live.
        unsafe { sys::duckdb_bind_set_cardinality(info, k as u64, true) };
        let bound = Bound {
            session,
            search,
            columns,
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
        // SAFETY: the init info is live.
        let count = unsafe { sys::duckdb_init_get_column_count(info) };
        let distance = bound.columns.len() - 1;
        let mut names: Vec<String> = Vec::new();
        let mut picks = Vec::new();
        for i in 0..count {
            // SAFETY: `i` is below the column count.
            let index = unsafe { sys::duckdb_init_get_column_index(info, i) } as usize;
            match bound.columns.get(index) {
                Some((name, ty)) if index < distance => {
                    picks.push((Some(names.len()), ty.clone()));
                    names.push(name.clone());
                }
                Some((_, ty)) => picks.push((None, ty.clone())),
                // DuckDB's row-id column (`count(*)`): any value will do.
                None => picks.push((None, ArrowType::Int64)),
            }
        }
        // The search returns the requested columns then `_distance`; with none requested it
        // still fetches the first, so that its rows exist.
        if names.is_empty() {
            if let Some((first, _)) = bound.columns.first().filter(|_| distance > 0) {
                names.push(first.clone());
            }
        }
        let batch = bound
            .session
            .block_on(bound.search.clone().columns(&names).execute())
            .map_err(crate::message)?;
        let distance_at = batch.num_columns().saturating_sub(1);
        let outputs = picks
            .into_iter()
            .map(|(p, bound)| Output {
                source: p.unwrap_or(distance_at),
                bound,
            })
            .collect();
        let global = Global {
            batch,
            outputs,
            offset: Mutex::new(0),
        };
        // SAFETY: the init info is live; DuckDB owns the init data and frees it with
        // `drop_box::<Global>`.
        unsafe {
            sys::duckdb_init_set_max_threads(info, 1);
            sys::duckdb_init_set_init_data(info, into_raw(global), Some(drop_box::<Global>));
        }
        Ok(())
    });
    if let Err(e) = outcome {
        // SAFETY: the init info is live; DuckDB copies the message.
        unsafe { sys::duckdb_init_set_error(info, e.as_ptr()) };
    }
}

unsafe extern "C" fn search(info: sys::duckdb_function_info, output: sys::duckdb_data_chunk) {
    let outcome = guard(|| {
        // SAFETY: init stored a `Global`; DuckDB keeps it alive during the call.
        let global = unsafe { &*sys::duckdb_function_get_init_data(info).cast::<Global>() };
        let mut offset = global.offset.lock().map_err(|_| "vlake: a search thread failed")?;
        let len = (global.batch.num_rows() - *offset).min(vector_size());
        // SAFETY: `output` is this function's chunk, declared from the bound columns.
        unsafe { emit(output, &global.batch, &global.outputs, *offset, len)? };
        *offset += len;
        Ok(())
    });
    if let Err(e) = outcome {
        // SAFETY: the function info is live; DuckDB copies the message.
        unsafe { sys::duckdb_function_set_error(info, e.as_ptr()) };
    }
}
