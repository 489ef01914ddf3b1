//! SQL measurements for `benchmarks/sql.py`: the same KNN query through SQL and through the
//! Rust API, and a full-scan aggregate over a vlake table against DataFusion over the same rows
//! as plain Parquet files.

use std::path::PathBuf;
use std::time::Instant;

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
    /// Timed runs of the aggregate per engine (the best is reported).
    #[arg(long, default_value_t = 5)]
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

/// Ids of the `id` column (the first) of SQL results.
async fn sql_ids(ctx: &SessionContext, sql: &str) -> Result<Vec<i64>> {
    ids(&ctx.sql(sql).await.map_err(df_err)?.collect().await.map_err(df_err)?)
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

/// Queries/s and recall@10 of one way of running the queries.
async fn timed<F, Fut>(queries: &[Query], run: F) -> Result<serde_json::Value>
where
    F: Fn(&Query) -> Fut,
    Fut: std::future::Future<Output = Result<Vec<i64>>>,
{
    run(&queries[0]).await?;
    let start = Instant::now();
    let mut hits = 0;
    for q in queries {
        hits += run(q).await?.iter().filter(|id| q.gt.contains(id)).count();
    }
    let seconds = start.elapsed().as_secs_f64();
    Ok(json!({
        "qps": queries.len() as f64 / seconds,
        "ms_per_query": seconds * 1e3 / queries.len() as f64,
        "recall": hits as f64 / (queries.len() * 10) as f64,
    }))
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
    let knn_sql = |q: &Query| {
        format!(
            "SELECT id FROM t ORDER BY cosine_distance(vector, {}) LIMIT 10",
            literal(&q.vector)
        )
    };
    let exact_sql = |q: &Query| {
        format!(
            "SELECT id FROM vector_search('t', 'vector', {}, 10, NULL, 'metric=cosine, exact=true')",
            literal(&q.vector)
        )
    };
    let api_index = timed(&queries, |q| api_ids(&table, q.vector.clone(), false)).await?;
    let sql_index = timed(&queries, |q| {
        let sql = knn_sql(q);
        let ctx = &ctx;
        async move { sql_ids(ctx, &sql).await }
    })
    .await?;
    // The table function with the query as one string literal: no 384-element array to plan.
    let function_sql = |q: &Query| {
        format!(
            "SELECT id FROM vector_search('t', 'vector', '{}', 10, NULL, 'metric=cosine')",
            literal(&q.vector)
        )
    };
    let sql_function = timed(&queries, |q| {
        let sql = function_sql(q);
        let ctx = &ctx;
        async move { sql_ids(ctx, &sql).await }
    })
    .await?;
    let api_exact = timed(&queries, |q| api_ids(&table, q.vector.clone(), true)).await?;
    let sql_exact = timed(&queries, |q| {
        let sql = exact_sql(q);
        let ctx = &ctx;
        async move { sql_ids(ctx, &sql).await }
    })
    .await?;
    // Planning alone: parsing the 384-number literal, the optimizer, the rewrite.
    let plan_ms = {
        let start = Instant::now();
        for q in &queries {
            ctx.sql(&format!("EXPLAIN {}", knn_sql(q))).await.map_err(df_err)?;
        }
        start.elapsed().as_secs_f64() * 1e3 / queries.len() as f64
    };
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
    // The same Parquet read with plain (not view) string types, as vlake reads them.
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
            "api_exact": api_exact,
            "sql_exact": sql_exact,
            "sql_overhead_exact": overhead(&api_exact, &sql_exact),
            "sql_plan_ms": plan_ms,
        },
        "aggregates": aggregates,
    }))
}
