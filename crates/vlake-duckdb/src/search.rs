//! The ranked searches:
//!
//! - `vlake_search(uri, column, query DOUBLE[], k [, filter := 'SQL', metric := 'cosine',
//!   nprobes := N, ef := N, refine := N, exact := bool, version := N | tag := 'x'])`: the
//!   nearest `k` rows to `query` in `column`, closest first, with `_distance REAL`
//!   ([`vlake_table::VectorSearch`]: its sidecar indexes and prefilter semantics, `k` matching
//!   rows whenever `k` rows match);
//! - `vlake_fts(uri, column, query VARCHAR, k [, filter := 'SQL', version := N | tag := 'x'])`:
//!   the `k` best BM25 matches of the query (vlake's query language: terms, phrases, `AND`,
//!   `OR`, `NOT`, prefixes), best first, with `_score REAL` ([`vlake_table::TextSearch`]);
//! - `vlake_hybrid(uri, vector_column, query DOUBLE[], text_column, query VARCHAR, k [, filter
//!   := 'SQL', fusion := 'rrf' | 'weighted', rrf_k := 60, vector_weight := 0.5, version := N |
//!   tag := 'x'])`: both searches fused, best first, with the fused `_score REAL`
//!   ([`vlake_table::HybridSearch`]);
//! - `vlake_search_batch(uri, column, queries DOUBLE[][], k [, the options of vlake_search])`:
//!   one vector search per query (run in parallel), each query's rows closest first, with
//!   `_distance REAL` and `_query BIGINT`, the query's position in the list (from 1, as
//!   DuckDB's lists count). The queries come from a literal, a parameter or a variable (DuckDB
//!   refuses subqueries in table-function arguments): `SET VARIABLE q = (SELECT list(vector
//!   ::DOUBLE[] ORDER BY id) FROM queries)`, then `getvariable('q')` (the cast: DuckDB 1.5.6
//!   hands nested `FLOAT[n]` values over uncast).
//!
//! Every function also takes `as_of := TIMESTAMPTZ` instead of `version` or `tag`: the newest
//! version committed at or before that instant. Each returns the table's columns then its rank
//! column (and `_query`). Bind opens the table and checks the
//! arguments; init runs the search for the columns DuckDB asks for (projection pushdown);
//! function hands the rows over in chunks.

use std::sync::{Arc, Mutex};

use arrow_array::{ArrayRef, Int64Array, RecordBatch};
use arrow_schema::{DataType as ArrowType, Field, Schema};
use arrow_select::concat::concat_batches;
use libduckdb_sys as sys;
use vlake_table::{Fusion, HybridSearch, Metric, Table, TextSearch, VectorSearch, DISTANCE, SCORE};

use crate::ffi::{drop_box, guard, into_raw, LogicalType};
use crate::vector::{emit, vector_size, Output};
use crate::{Database, Params, TableFunction};

fn int() -> LogicalType {
    LogicalType::new(sys::DUCKDB_TYPE_DUCKDB_TYPE_BIGINT)
}

fn text() -> LogicalType {
    LogicalType::new(sys::DUCKDB_TYPE_DUCKDB_TYPE_VARCHAR)
}

/// `vlake_search`'s declaration.
pub(crate) fn vector() -> TableFunction {
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
        ]
        .into_iter()
        .chain(crate::version_params())
        .collect(),
        bind: bind_vector,
        init,
        local_init: None,
        function: search,
    }
}

/// `vlake_search_batch`'s declaration.
pub(crate) fn vector_batch() -> TableFunction {
    let double = LogicalType::new(sys::DUCKDB_TYPE_DUCKDB_TYPE_DOUBLE);
    TableFunction {
        name: "vlake_search_batch",
        params: vec![text(), text(), LogicalType::list(&LogicalType::list(&double)), int()],
        bind: bind_vector_batch,
        ..vector()
    }
}

/// `vlake_fts`'s declaration.
pub(crate) fn full_text() -> TableFunction {
    TableFunction {
        name: "vlake_fts",
        params: vec![text(), text(), text(), int()],
        named: [("filter", text())]
            .into_iter()
            .chain(crate::version_params())
            .collect(),
        bind: bind_text,
        init,
        local_init: None,
        function: search,
    }
}

/// `vlake_hybrid`'s declaration.
pub(crate) fn hybrid() -> TableFunction {
    let double = || LogicalType::new(sys::DUCKDB_TYPE_DUCKDB_TYPE_DOUBLE);
    TableFunction {
        name: "vlake_hybrid",
        params: vec![text(), text(), LogicalType::list(&double()), text(), text(), int()],
        named: vec![
            ("filter", text()),
            ("fusion", text()),
            ("rrf_k", double()),
            ("vector_weight", double()),
        ]
        .into_iter()
        .chain(crate::version_params())
        .collect(),
        bind: bind_hybrid,
        init,
        local_init: None,
        function: search,
    }
}

/// The column of `vlake_search_batch` that says which query a row answers.
const QUERY: &str = "_query";

/// A search of any kind, ready to run.
enum Ranked {
    Vector(Box<VectorSearch>),
    Text(Box<TextSearch>),
    Hybrid(Box<HybridSearch>),
    /// One vector search per query.
    Batch(Vec<VectorSearch>),
}

impl Ranked {
    /// The columns it adds after the table's.
    fn extra_columns(&self) -> Vec<(&'static str, ArrowType)> {
        match self {
            Self::Vector(_) => vec![(DISTANCE, ArrowType::Float32)],
            Self::Text(_) | Self::Hybrid(_) => vec![(SCORE, ArrowType::Float32)],
            Self::Batch(_) => vec![(DISTANCE, ArrowType::Float32), (QUERY, ArrowType::Int64)],
        }
    }

    /// Runs the search for `columns`: their values then the extra columns.
    async fn execute(&self, columns: &[String]) -> vlake_table::Result<RecordBatch> {
        match self {
            Self::Vector(s) => s.as_ref().clone().columns(columns).execute().await,
            Self::Text(s) => s.as_ref().clone().columns(columns).execute().await,
            Self::Hybrid(s) => s.as_ref().clone().columns(columns).execute().await,
            Self::Batch(searches) => {
                let running: Vec<_> = searches
                    .iter()
                    .map(|s| {
                        let search = s.clone().columns(columns);
                        tokio::spawn(async move { search.execute().await })
                    })
                    .collect();
                let mut batches = Vec::with_capacity(running.len());
                for (i, search) in running.into_iter().enumerate() {
                    let batch = search
                        .await
                        .map_err(|e| vlake_table::Error::Internal(format!("a search failed: {e}")))??;
                    let query: ArrayRef = Arc::new(Int64Array::from(vec![i as i64 + 1; batch.num_rows()]));
                    let mut fields = batch.schema().fields().to_vec();
                    fields.push(Arc::new(Field::new(QUERY, ArrowType::Int64, false)));
                    let mut values = batch.columns().to_vec();
                    values.push(query);
                    batches.push(RecordBatch::try_new(Arc::new(Schema::new(fields)), values)?);
                }
                match batches.first() {
                    Some(first) => Ok(concat_batches(&first.schema(), &batches)?),
                    None => Err(vlake_table::Error::invalid(
                        "vlake_search_batch: the list of queries is empty",
                    )),
                }
            }
        }
    }
}

/// What bind found: the search, ready to run, and the declared columns.
struct Bound {
    session: Arc<Database>,
    search: Ranked,
    /// Declared columns: the table's, then the search's extra columns.
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

/// The table a search binds to, and `k`, from parameters 0 and `k_at` and the version named.
fn target(params: &Params, function: &str, k_at: u64) -> Result<(Arc<Database>, Table, usize), String> {
    let session = Arc::clone(params.session());
    let uri = params
        .get(0)
        .text()
        .ok_or(format!("{function}: the table URI is NULL"))?;
    let k = count("k", params.get(k_at).int())?.ok_or(format!("{function}: k is NULL"))?;
    let table = session.open(&uri, params.version()?)?;
    Ok((session, table, k))
}

unsafe extern "C" fn bind_vector(info: sys::duckdb_bind_info) {
    bind(info, |params| {
        let query = params.get(2).floats().ok_or("vlake_search: the query vector is NULL")?;
        let (session, table, k, search) = vector_search(params, "vlake_search", &query)?;
        Ok((session, table, k, Ranked::Vector(Box::new(search))))
    });
}

unsafe extern "C" fn bind_vector_batch(info: sys::duckdb_bind_info) {
    bind(info, |params| {
        let function = "vlake_search_batch";
        let queries = params
            .get(2)
            .float_lists()
            .ok_or(format!("{function}: the list of queries is NULL"))?
            .map_err(|e| format!("{function}: {e}"))?;
        let first = queries
            .first()
            .ok_or(format!("{function}: the list of queries is empty"))?;
        let (session, table, k, search) = vector_search(params, function, first)?;
        let searches = queries.iter().map(|q| search.clone().with_query(q)).collect::<Vec<_>>();
        // Every query is checked (its dimension) before any runs.
        searches
            .iter()
            .try_for_each(|s| s.check_tuning().map_err(crate::message))?;
        Ok((session, table, k, Ranked::Batch(searches)))
    });
}

/// The vector search that `vlake_search`'s parameters (or `vlake_search_batch`'s, with one of
/// its queries) describe, checked.
fn vector_search(
    params: &Params,
    function: &str,
    query: &[f32],
) -> Result<(Arc<Database>, Table, usize, VectorSearch), String> {
    {
        let (session, table, k) = target(params, function, 3)?;
        let column = params.get(1).text().ok_or(format!("{function}: the column is NULL"))?;
        let mut search = table.search(&column, query).limit(k);
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
        Ok((session, table, k, search))
    }
}

unsafe extern "C" fn bind_text(info: sys::duckdb_bind_info) {
    bind(info, |params| {
        let (session, table, k) = target(params, "vlake_fts", 3)?;
        let column = params.get(1).text().ok_or("vlake_fts: the column is NULL")?;
        let query = params.get(2).text().ok_or("vlake_fts: the query is NULL")?;
        let mut search = table.full_text_search(&column, &query).limit(k);
        if let Some(filter) = params.named("filter").text() {
            search = search.filter_sql(&filter).map_err(crate::message)?;
        }
        // Fails as the search would on a bad column or query, before any row is read.
        search.describe().map_err(crate::message)?;
        Ok((session, table, k, Ranked::Text(Box::new(search))))
    });
}

unsafe extern "C" fn bind_hybrid(info: sys::duckdb_bind_info) {
    bind(info, |params| {
        let (session, table, k) = target(params, "vlake_hybrid", 5)?;
        let null = |what: &str| format!("vlake_hybrid: the {what} is NULL");
        let vector_column = params.get(1).text().ok_or_else(|| null("vector column"))?;
        let query = params.get(2).floats().ok_or_else(|| null("query vector"))?;
        let text_column = params.get(3).text().ok_or_else(|| null("text column"))?;
        let text = params.get(4).text().ok_or_else(|| null("query text"))?;
        let mut search = table
            .hybrid_search(&vector_column, &query, &text_column, &text)
            .limit(k);
        if let Some(filter) = params.named("filter").text() {
            search = search.filter_sql(&filter).map_err(crate::message)?;
        }
        let fusion = params.named("fusion").text();
        let rrf_k = params.named("rrf_k").double().map(|v| v as f32);
        let weight = params.named("vector_weight").double().map(|v| v as f32);
        if fusion.is_some() || rrf_k.is_some() || weight.is_some() {
            let name = fusion
                .as_deref()
                .unwrap_or(if weight.is_some() { "weighted" } else { "rrf" });
            search = search.fusion(Fusion::named(name, rrf_k, weight).map_err(crate::message)?);
        }
        // Fails as the search would on bad columns, a bad query or bad tuning.
        search.describe().map_err(crate::message)?;
        Ok((session, table, k, Ranked::Hybrid(Box::new(search))))
    });
}

/// Binds a search that `make` builds from the call's parameters: declares the table's columns
/// and the search's own, and keeps the search as bind data.
fn bind(
    info: sys::duckdb_bind_info,
    make: impl FnOnce(&Params) -> Result<(Arc<Database>, Table, usize, Ranked), String>,
) {
    let outcome = guard(|| {
        let (session, table, k, search) = make(&Params(info))?;
        let schema = table.scan().output_schema().map_err(crate::message)?;
        let mut columns: Vec<(String, ArrowType)> = schema
            .fields()
            .iter()
            .map(|f| (f.name().clone(), f.data_type().clone()))
            .collect();
        columns.extend(search.extra_columns().into_iter().map(|(n, t)| (n.to_string(), t)));
        crate::declare_columns(info, "vlake", &columns)?;
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
        // Columns at `table` and after are the search's own (rank, `_query`).
        let table = bound.columns.len() - bound.search.extra_columns().len();
        let mut names: Vec<String> = Vec::new();
        let mut picks = Vec::new();
        for index in crate::requested_columns(info) {
            match bound.columns.get(index) {
                Some((name, ty)) if index < table => {
                    picks.push((Ok(names.len()), ty.clone()));
                    names.push(name.clone());
                }
                Some((_, ty)) => picks.push((Err(index - table), ty.clone())),
                // DuckDB's row-id column (`count(*)`): any value will do.
                None => picks.push((Err(0), ArrowType::Int64)),
            }
        }
        // The search returns the requested columns then its own; with none requested it still
        // fetches the first, so that its rows exist.
        if names.is_empty() {
            if let Some((first, _)) = bound.columns.first().filter(|_| table > 0) {
                names.push(first.clone());
            }
        }
        let batch = bound
            .session
            .block_on(bound.search.execute(&names))
            .map_err(crate::message)?;
        // The search's own columns come last (no snippet is asked for).
        let own_at = names.len();
        let outputs = picks
            .into_iter()
            .map(|(p, bound)| Output {
                source: p.unwrap_or_else(|extra| own_at + extra),
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
