//! SQL measurements for `benchmarks/sql.py`: the same KNN query through SQL and through the
//! Rust API, and a full-scan aggregate over a vlake table against DataFusion over the same rows
//! as plain Parquet files.

use std::path::PathBuf;
use std::time::Instant;

use datafusion::dataframe::DataFrame;
use datafusion::prelude::{ParquetReadOptions, SessionContext};
use serde_json::json;
use vlake_table::{BatchStream, Error, Metric, Result, Table, TableLocation, WriteMode, WriteOptions};

use crate::vector::{load_queries, Query};

/// `vlake-bench sql`.
#[derive(clap::Args, Debug)]
pub struct SqlArgs {
    /// The dev dataset's rows (`id`, `pos`, `vector`, ...).
    #[arg(long)]
    data: PathBuf,
    /// Parquet file with `vector` and `gt` columns.
    #[arg(long)]
    queries: String,
    /// Scratch directory (replaced): the table and the plain Parquet copy.
    #[arg(long)]
    out: PathBuf,
    /// Copies of the rows in the aggregate's table and Parquet files (one file each).
    #[arg(long, default_value_t = 10)]
    copies: usize,
    /// Use at most this many queries.
    #[arg(long, default_value_t = 200)]
    max_queries: usize,
    /// Timed runs of the aggregate per engine (the best is reported; runs of a few
    /// milliseconds on a shared machine need many to be stable).
    #[arg(long, default_value_t = 20)]
    runs: usize,
}

fn df_err(e: datafusion::common::DataFusionError) -> Error {
    Error::Internal(e.to_string())
}

/// A vector as an SQL array literal.
fn literal(v: &[f32]) -> String {
    let parts: Vec<String> = v.iter().map(|x| format!("{x:?}")).collect();
    format!("[{}]", parts.join(", "))
}

/// A vector as an SQL parameter value: one `FLOAT[n]` array.
fn vector_value(v: &[f32]) -> datafusion::common::ScalarValue {
    let values = Some(v.iter().copied().map(Some));
    let array = arrow::array::FixedSizeListArray::from_iter_primitive::<arrow::datatypes::Float32Type, _, _>(
        [values],
        v.len() as i32,
    );
    datafusion::common::ScalarValue::FixedSizeList(std::sync::Arc::new(array))
}

/// One statement planned as `vlake sql` and the Python package plan it
/// ([`vlake_datafusion::sql`], which keeps the plans of KNN statements).
async fn statement(ctx: &SessionContext, sql: &str) -> Result<vlake_datafusion::Planned> {
    let mut statements = vlake_datafusion::parse(ctx, sql).map_err(df_err)?;
    let (Some(one), None) = (statements.pop(), statements.pop()) else {
        return Err(Error::invalid(format!("not one statement: {sql}")));
    };
    vlake_datafusion::sql(ctx, one).await.map_err(df_err)
}

/// Ids of the `id` column (the first) of SQL results.
async fn sql_ids(ctx: &SessionContext, sql: &str) -> Result<Vec<i64>> {
    ids(&statement(ctx, sql).await?.collect().await.map_err(df_err)?)
}

/// The `id` column (the first) of batches.
fn ids(batches: &[arrow::array::RecordBatch]) -> Result<Vec<i64>> {
    use arrow::array::AsArray;
    Ok(batches
        .iter()
        .flat_map(|b| {
            b.column(0)
                .as_primitive::<arrow::datatypes::Int64Type>()
                .values()
                .to_vec()
        })
        .collect())
}

/// Fails unless `df` runs as an index search (the KNN rewrite fired), so a bound statement
/// is not timed as a full scan.
async fn check_rewritten(df: DataFrame, what: &str) -> Result<()> {
    let plan = df.create_physical_plan().await.map_err(df_err)?;
    let text = datafusion::physical_plan::displayable(plan.as_ref())
        .indent(false)
        .to_string();
    if text.contains("VectorSearchExec") {
        Ok(())
    } else {
        Err(Error::Internal(format!(
            "{what} did not run as an index search:\n{text}"
        )))
    }
}

/// One way of running the KNN queries.
enum Path<'a> {
    /// The Rust API's search, exact or through the index.
    Api { exact: bool },
    /// One SQL statement per query.
    Sql(Vec<String>),
    /// A statement planned once, each query's vector bound with `with_param_values`.
    Bound(&'a DataFrame),
}

impl Path<'_> {
    async fn run(&self, table: &Table, ctx: &SessionContext, i: usize, q: &Query) -> Result<Vec<i64>> {
        match self {
            Self::Api { exact } => api_ids(table, q.vector.clone(), *exact).await,
            Self::Sql(statements) => sql_ids(ctx, &statements[i]).await,
            Self::Bound(template) => {
                let df = (*template)
                    .clone()
                    .with_param_values(vec![vector_value(&q.vector)])
                    .map_err(df_err)?;
                ids(&df.collect().await.map_err(df_err)?)
            }
        }
    }
}

/// Queries/s and recall@10 of each path. The paths take turns query by query, so they share
/// whatever else the machine is doing.
async fn timed(
    table: &Table,
    ctx: &SessionContext,
    queries: &[Query],
    paths: &[Path<'_>],
) -> Result<Vec<serde_json::Value>> {
    let mut seconds = vec![0.0; paths.len()];
    let mut hits = vec![0; paths.len()];
    for p in paths {
        p.run(table, ctx, 0, &queries[0]).await?;
    }
    for (i, q) in queries.iter().enumerate() {
        for (j, p) in paths.iter().enumerate() {
            let start = Instant::now();
            let found = p.run(table, ctx, i, q).await?;
            seconds[j] += start.elapsed().as_secs_f64();
            hits[j] += found.iter().filter(|id| q.gt.contains(id)).count();
        }
    }
    Ok(seconds
        .iter()
        .zip(&hits)
        .map(|(s, h)| {
            json!({
                "qps": queries.len() as f64 / s,
                "ms_per_query": s * 1e3 / queries.len() as f64,
                "recall": *h as f64 / (queries.len() * 10) as f64,
            })
        })
        .collect())
}

/// The Rust API's search, returning the `id` column.
async fn api_ids(table: &Table, vector: Vec<f32>, exact: bool) -> Result<Vec<i64>> {
    use arrow::array::AsArray;
    let found = table
        .search("vector", &vector)
        .metric(Metric::Cosine)
        .exact(exact)
        .columns(&["id"])
        .limit(10)
        .execute()
        .await?;
    Ok(found
        .column(0)
        .as_primitive::<arrow::datatypes::Int64Type>()
        .values()
        .to_vec())
}

/// Best-of-`runs` seconds of an SQL statement.
async fn best_seconds(ctx: &SessionContext, sql: &str, runs: usize) -> Result<f64> {
    let mut best = f64::INFINITY;
    for _ in 0..runs.max(1) {
        let start = Instant::now();
        ctx.sql(sql).await.map_err(df_err)?.collect().await.map_err(df_err)?;
        best = best.min(start.elapsed().as_secs_f64());
    }
    Ok(best)
}

pub async fn run(args: SqlArgs) -> Result<serde_json::Value> {
    let queries = load_queries(&args.queries, args.max_queries)?;
    if queries.is_empty() {
        return Err(Error::invalid("no queries"));
    }
    let (schema, batches) = crate::read_parquet(&args.data)?;
    if args.out.exists() {
        std::fs::remove_dir_all(&args.out).map_err(|e| Error::io(args.out.display().to_string(), e))?;
    }
    let opts = WriteOptions::default();

    // KNN at k = 10 on the dev rows with a cosine HNSW index: SQL against the Rust API.
    let knn_uri = args.out.join("knn").display().to_string();
    let table = Table::write(
        TableLocation::parse(&knn_uri)?,
        BatchStream::from_batches(schema.clone(), batches.clone()),
        WriteMode::Create,
        &opts,
    )
    .await?;
    let mut index = vlake_table::IndexOptions::new("vector", vlake_table::IndexType::Hnsw);
    index.metric = Metric::Cosine;
    let table = table.create_index(&index).await?;
    let ctx = vlake_datafusion::session();
    vlake_datafusion::register_table(&ctx, "t", &knn_uri)
        .await
        .map_err(df_err)?;
    // The vectors written out as SQL text before any clock starts: that is the client's work.
    let texts: Vec<String> = queries.iter().map(|q| literal(&q.vector)).collect();
    let knn_sql = |v: &str| format!("SELECT id FROM t ORDER BY cosine_distance(vector, {v}) LIMIT 10");
    let exact_sql =
        |v: &str| format!("SELECT id FROM vector_search('t', 'vector', {v}, 10, NULL, 'metric=cosine, exact=true')");
    // A prepared statement, planned once; each query binds the vector as a string.
    statement(&ctx, &format!("PREPARE knn AS {}", knn_sql("$1"))).await?;
    let bound = ctx.sql(&format!("EXECUTE knn('{}')", texts[0])).await.map_err(df_err)?;
    check_rewritten(bound, "EXECUTE knn(...)").await?;
    // The same from Rust: the statement parsed once, the vector bound as an array value.
    let template = ctx.sql(&knn_sql("$1")).await.map_err(df_err)?;
    let bound = template
        .clone()
        .with_param_values(vec![vector_value(&queries[0].vector)])
        .map_err(df_err)?;
    check_rewritten(bound, "with_param_values").await?;
    let sql = |f: &dyn Fn(&str) -> String| Path::Sql(texts.iter().map(|v| f(v)).collect());
    let paths = [
        Path::Api { exact: false },
        sql(&knn_sql),
        // The table function with the query as one string literal: no array to plan.
        sql(&|v| format!("SELECT id FROM vector_search('t', 'vector', '{v}', 10, NULL, 'metric=cosine')")),
        sql(&|v| format!("EXECUTE knn('{v}')")),
        Path::Bound(&template),
        Path::Api { exact: true },
        sql(&exact_sql),
        // The same with the vector as text: what is left is not planning the array literal.
        sql(&|v| exact_sql(&format!("'{v}'"))),
    ];
    let results: [serde_json::Value; 8] = timed(&table, &ctx, &queries, &paths)
        .await?
        .try_into()
        .map_err(|_| Error::Internal("a KNN path has no result".into()))?;
    let [api_index, sql_index, sql_function, sql_prepared, sql_params, api_exact, sql_exact, sql_exact_text] = results;
    // What a bound statement costs before the search runs: binding, analysing and optimising
    // (the logical plan), and that plus physical planning without executing (which runs the
    // search, as the search runs while planning).
    let (mut logical_s, mut physical_s) = (0.0, 0.0);
    for q in &queries {
        let start = Instant::now();
        let df = template
            .clone()
            .with_param_values(vec![vector_value(&q.vector)])
            .map_err(df_err)?;
        df.clone().into_optimized_plan().map_err(df_err)?;
        logical_s += start.elapsed().as_secs_f64();
        let start = Instant::now();
        df.create_physical_plan().await.map_err(df_err)?;
        physical_s += start.elapsed().as_secs_f64();
    }
    let params_plan_ms = logical_s * 1e3 / queries.len() as f64;
    let params_physical_ms = physical_s * 1e3 / queries.len() as f64;
    // Planning alone: parsing the 384-number literal, the optimizer, the rewrite.
    let plan_ms = {
        let start = Instant::now();
        for v in &texts {
            ctx.sql(&format!("EXPLAIN {}", knn_sql(v))).await.map_err(df_err)?;
        }
        start.elapsed().as_secs_f64() * 1e3 / queries.len() as f64
    };
    // Where a kept ORDER BY query spends its time: parsing the statement, finding its kept plan
    // and running the search under it (`sql`, as the search runs when its node is made), and
    // collecting the rows.
    let (mut parse_s, mut search_s, mut collect_s) = (0.0, 0.0, 0.0);
    for v in &texts {
        let start = Instant::now();
        let mut statements = vlake_datafusion::parse(&ctx, &knn_sql(v)).map_err(df_err)?;
        let one = statements.pop().ok_or_else(|| Error::Internal("no statement".into()))?;
        let parsed = Instant::now();
        let planned = vlake_datafusion::sql(&ctx, one).await.map_err(df_err)?;
        let searched = Instant::now();
        planned.collect().await.map_err(df_err)?;
        parse_s += (parsed - start).as_secs_f64();
        search_s += (searched - parsed).as_secs_f64();
        collect_s += searched.elapsed().as_secs_f64();
    }
    let per_query = |s: f64| s * 1e3 / texts.len() as f64;
    let overhead = |api: &serde_json::Value, sql: &serde_json::Value| {
        let a = api["ms_per_query"].as_f64().unwrap_or(0.0);
        let s = sql["ms_per_query"].as_f64().unwrap_or(0.0);
        if a > 0.0 {
            s / a - 1.0
        } else {
            0.0
        }
    };

    // A full-scan aggregate: the rows `copies` times, as one vlake table and as plain Parquet
    // files (the same rows, zstd-compressed like vlake's files).
    let agg_uri = args.out.join("agg").display().to_string();
    let parquet_dir = args.out.join("parquet");
    std::fs::create_dir_all(&parquet_dir).map_err(|e| Error::io(parquet_dir.display().to_string(), e))?;
    for i in 0..args.copies {
        let mode = if i == 0 { WriteMode::Create } else { WriteMode::Append };
        Table::write(
            TableLocation::parse(&agg_uri)?,
            BatchStream::from_batches(schema.clone(), batches.clone()),
            mode,
            &opts,
        )
        .await?;
        let path = parquet_dir.join(format!("part-{i}.parquet"));
        let file = std::fs::File::create(&path).map_err(|e| Error::io(path.display().to_string(), e))?;
        // Compressed as vlake compresses its data files (zstd), so both read the same bytes.
        let props = parquet::file::properties::WriterProperties::builder()
            .set_compression(parquet::basic::Compression::ZSTD(Default::default()))
            .build();
        let mut writer = parquet::arrow::ArrowWriter::try_new(file, schema.clone(), Some(props))
            .map_err(|e| Error::Internal(e.to_string()))?;
        for b in &batches {
            writer.write(b).map_err(|e| Error::Internal(e.to_string()))?;
        }
        writer.close().map_err(|e| Error::Internal(e.to_string()))?;
    }
    let agg = vlake_datafusion::session();
    vlake_datafusion::register_table(&agg, "t", &agg_uri)
        .await
        .map_err(df_err)?;
    agg.register_parquet(
        "p",
        &format!("{}/", parquet_dir.display()),
        ParquetReadOptions::default(),
    )
    .await
    .map_err(df_err)?;
    // The same Parquet read with plain (not view) string types.
    let plain = vlake_datafusion::session_with_config(
        datafusion::prelude::SessionConfig::new()
            .set_bool("datafusion.execution.parquet.schema_force_view_types", false),
    );
    plain
        .register_parquet(
            "p",
            &format!("{}/", parquet_dir.display()),
            ParquetReadOptions::default(),
        )
        .await
        .map_err(df_err)?;
    let rows: usize = batches.iter().map(|b| b.num_rows()).sum::<usize>() * args.copies;
    let mut aggregates = vec![];
    for (what, sql) in [
        ("group by pos", "SELECT pos, count(*) FROM {} GROUP BY pos"),
        (
            "group by pos, avg gloss length",
            "SELECT pos, count(*), avg(length(gloss)) FROM {} GROUP BY pos",
        ),
    ] {
        let vlake = best_seconds(&agg, &sql.replace("{}", "t"), args.runs).await?;
        let parquet = best_seconds(&agg, &sql.replace("{}", "p"), args.runs).await?;
        let parquet_plain = best_seconds(&plain, &sql.replace("{}", "p"), args.runs).await?;
        aggregates.push(json!({
            "query": what,
            "rows": rows,
            "vlake_s": vlake,
            "parquet_s": parquet,
            "vlake_rows_per_s": rows as f64 / vlake,
            "parquet_rows_per_s": rows as f64 / parquet,
            "vlake_vs_parquet": parquet / vlake,
            "parquet_plain_strings_s": parquet_plain,
            "vlake_vs_parquet_plain_strings": parquet_plain / vlake,
        }));
    }
    Ok(json!({
        "knn": {
            "api_index": api_index,
            "sql_index": sql_index,
            "sql_overhead_index": overhead(&api_index, &sql_index),
            "sql_function_index": sql_function,
            "sql_overhead_function_index": overhead(&api_index, &sql_function),
            "sql_prepared_index": sql_prepared,
            "sql_overhead_prepared_index": overhead(&api_index, &sql_prepared),
            "sql_params_index": sql_params,
            "sql_overhead_params_index": overhead(&api_index, &sql_params),
            "api_exact": api_exact,
            "sql_exact": sql_exact,
            "sql_overhead_exact": overhead(&api_exact, &sql_exact),
            "sql_exact_text": sql_exact_text,
            "sql_overhead_exact_text": overhead(&api_exact, &sql_exact_text),
            "sql_plan_ms": plan_ms,
            "sql_params_logical_plan_ms": params_plan_ms,
            "sql_params_physical_plan_ms": params_physical_ms,
            "sql_kept_parse_ms": per_query(parse_s),
            "sql_kept_search_ms": per_query(search_s),
            "sql_kept_collect_ms": per_query(collect_s),
        },
        "aggregates": aggregates,
    }))
}
