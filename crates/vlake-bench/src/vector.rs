//! Vector index build and query measurements for `benchmarks/vector.py`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use arrow::array::{AsArray, RecordBatch};
use arrow::datatypes::{Float32Type, Int64Type, UInt64Type};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde_json::json;
use vlake_table::{Error, Metric, Result, Table, ROW_ID};

use crate::index_args::IndexArgs;

/// `vlake-bench build`.
#[derive(clap::Args, Debug)]
pub struct BuildArgs {
    /// Table URI.
    #[arg(long)]
    table: String,
    #[command(flatten)]
    index: IndexArgs,
}

/// `vlake-bench query`.
#[derive(clap::Args, Debug)]
pub struct QueryArgs {
    /// Table URI.
    #[arg(long)]
    table: String,
    /// Parquet file with `vector` and `gt` (list of ids, best first) columns.
    #[arg(long)]
    queries: String,
    /// Index name, or "exact".
    #[arg(long)]
    index: String,
    /// l2, cosine or dot.
    #[arg(long, default_value = "cosine")]
    metric: String,
    /// Comma-separated settings to sweep: ef values (HNSW) or nprobes values (IVF).
    #[arg(long, default_value = "0")]
    sweep: String,
    /// IVF-PQ refine factor.
    #[arg(long, default_value_t = 10)]
    refine: usize,
    /// SQL prefilter.
    #[arg(long)]
    filter: Option<String>,
    /// Threads for the "all threads" measurement (0: skip it).
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// Use at most this many queries.
    #[arg(long, default_value_t = 200)]
    max_queries: usize,
    /// Return these columns of the results too (comma-separated, `*` for every column), to
    /// measure search end to end; without it, only row ids.
    #[arg(long)]
    fetch: Option<String>,
}

/// Peak resident memory of this process, from /proc (MiB).
fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

pub async fn build(args: BuildArgs) -> Result<serde_json::Value> {
    let table = Table::open(&args.table).await?;
    let opts = args.index.options("vector")?;
    let start = Instant::now();
    let t = table.create_index(&opts).await?;
    Ok(json!({"seconds": start.elapsed().as_secs_f64(), "peak_rss_mb": peak_rss_mb(), "version": t.version()}))
}

/// A query vector and the ids of its true nearest neighbours, best first.
pub(crate) struct Query {
    pub vector: Vec<f32>,
    pub gt: Vec<i64>,
}

/// The first `max` queries of a Parquet file with `vector` and `gt` columns.
pub(crate) fn load_queries(path: &str, max: usize) -> Result<Vec<Query>> {
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)
        .map_err(|e| Error::invalid(e.to_string()))?
        .build()
        .map_err(|e| Error::invalid(e.to_string()))?;
    let mut out = vec![];
    for batch in reader {
        let batch: RecordBatch = batch?;
        let vectors = batch
            .column_by_name("vector")
            .ok_or_else(|| Error::invalid("queries lack 'vector'"))?
            .as_fixed_size_list();
        let gts = batch
            .column_by_name("gt")
            .ok_or_else(|| Error::invalid("queries lack 'gt'"))?
            .as_list::<i32>();
        for i in 0..batch.num_rows() {
            let v = arrow::compute::cast(&vectors.value(i), &arrow::datatypes::DataType::Float32)?;
            out.push(Query {
                vector: v.as_primitive::<Float32Type>().values().to_vec(),
                gt: gts
                    .value(i)
                    .as_primitive::<Int64Type>()
                    .values()
                    .iter()
                    .take(10)
                    .copied()
                    .collect(),
            });
        }
    }
    out.truncate(max);
    Ok(out)
}

pub fn query(args: QueryArgs, rt: &tokio::runtime::Runtime) -> Result<serde_json::Value> {
    let table = rt.block_on(Table::open(&args.table))?;
    let queries = Arc::new(load_queries(&args.queries, args.max_queries)?);
    // Row id -> the dataset's `id`, to compare with the ground truth.
    let mut ids: HashMap<u64, i64> = HashMap::new();
    for b in rt.block_on(table.scan().columns(&["id"]).with_row_id(true).collect())? {
        let id = b.column(0).as_primitive::<Int64Type>();
        let rid = b
            .column_by_name(ROW_ID)
            .ok_or_else(|| Error::Internal("no _rowid".into()))?
            .as_primitive::<UInt64Type>();
        for i in 0..b.num_rows() {
            ids.insert(rid.value(i), id.value(i));
        }
    }
    let metric: Metric = args.metric.parse()?;
    let search = |setting: usize, q: &Query| {
        let mut s = table
            .search("vector", &q.vector)
            .metric(metric)
            .limit(10)
            .refine(args.refine);
        if args.index == "exact" {
            s = s.exact(true);
        } else {
            s = s.index(&args.index);
        }
        if setting > 0 {
            s = s.ef(setting).nprobes(setting);
        }
        if let Some(f) = &args.filter {
            s = s.filter_sql(f)?;
        }
        Ok::<_, Error>(s)
    };
    let fetch: Option<Vec<String>> = args.fetch.as_ref().map(|f| match f.trim() {
        "*" => table.schema().fields().iter().map(|f| f.name().clone()).collect(),
        list => list.split(',').map(|c| c.trim().to_string()).collect(),
    });
    // The dataset ids of one query's results.
    let found = |setting: usize, q: &Query| -> Result<Vec<i64>> {
        let s = search(setting, q)?;
        match &fetch {
            None => Ok(rt
                .block_on(s.nearest())?
                .iter()
                .filter_map(|n| ids.get(&n.id).copied())
                .collect()),
            Some(columns) => {
                let batch = rt.block_on(s.columns(columns).execute())?;
                let id = batch
                    .column_by_name("id")
                    .ok_or_else(|| Error::invalid("--fetch must include the id column"))?;
                Ok(id.as_primitive::<Int64Type>().values().to_vec())
            }
        }
    };
    let mut results = vec![];
    for setting in args.sweep.split(',').map(|s| s.trim().parse::<usize>().unwrap_or(0)) {
        // Warm up: load the index and the vectors.
        found(setting, &queries[0])?;
        let start = Instant::now();
        let mut hits = 0;
        for q in queries.iter() {
            hits += found(setting, q)?.iter().filter(|id| q.gt.contains(id)).count();
        }
        let one = queries.len() as f64 / start.elapsed().as_secs_f64();
        let all = if args.threads > 1 {
            let start = Instant::now();
            std::thread::scope(|scope| -> Result<()> {
                let handles: Vec<_> = (0..args.threads)
                    .map(|t| {
                        let search = &search;
                        let queries = &queries;
                        scope.spawn(move || -> Result<()> {
                            let local = tokio::runtime::Builder::new_current_thread()
                                .enable_all()
                                .build()
                                .map_err(|e| Error::Internal(e.to_string()))?;
                            for q in queries.iter().skip(t).step_by(args.threads) {
                                local.block_on(search(setting, q)?.nearest())?;
                            }
                            Ok(())
                        })
                    })
                    .collect();
                for h in handles {
                    h.join()
                        .map_err(|_| Error::Internal("query thread panicked".into()))??;
                }
                Ok(())
            })?;
            Some(queries.len() as f64 / start.elapsed().as_secs_f64())
        } else {
            None
        };
        results.push(json!({"setting": setting, "recall": hits as f64 / (queries.len() * 10) as f64, "qps_1": one, "qps_all": all}));
    }
    Ok(json!({"index": args.index, "fetch": args.fetch, "results": results}))
}
