//! `vlake-bench`: vlake's side of the benchmarks in `benchmarks/`, which run it beside the peers
//! on the same data and report ratios: write throughput, vector index builds and queries, SQL.
//! Not shipped: the `vlake` binary carries no benchmark code.

use std::path::PathBuf;
use std::time::Instant;

use arrow::array::RecordBatch;
use clap::Parser;
use vector::{BuildArgs, QueryArgs};

// The index options of `vlake index create`, so that `build` takes the same flags.
#[path = "../../vlake-cli/src/index_args.rs"]
mod index_args;
mod raw_build;
mod sql;
mod vector;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde_json::json;
use vlake_table::{BatchStream, Error, Result, Table, TableLocation, WriteMode, WriteOptions};

/// vlake's side of the benchmarks in `benchmarks/`.
#[derive(Parser, Debug)]
enum Bench {
    /// Append throughput.
    Append(Args),
    /// Build a vector index; reports seconds and peak memory.
    Build(BuildArgs),
    /// Run queries; reports recall@10 and queries/s.
    Query(QueryArgs),
    /// KNN through SQL against the Rust API; an aggregate against DataFusion over plain Parquet.
    Sql(sql::SqlArgs),
    /// Build an index over a raw matrix file without the table layer; reports build phases and
    /// recall@10 (for `benchmarks/index_build.py`).
    RawBuild(raw_build::RawBuildArgs),
}

/// Append throughput benchmark.
#[derive(clap::Args, Debug)]
struct Args {
    /// Parquet file with the rows to write.
    #[arg(long)]
    data: PathBuf,
    /// Write the rows this many times (one commit each: a create, then appends).
    #[arg(long, default_value_t = 5)]
    commits: usize,
    /// Repeat the data this many times inside each commit.
    #[arg(long, default_value_t = 1)]
    repeat: usize,
    /// Directory for the table (replaced).
    #[arg(long)]
    out: PathBuf,
}

/// The schema and all rows of a Parquet file, in batches of 8,192 rows.
fn read_parquet(path: &std::path::Path) -> Result<(arrow::datatypes::SchemaRef, Vec<RecordBatch>)> {
    let file = std::fs::File::open(path).map_err(|e| Error::io(path.display().to_string(), e))?;
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)
        .map_err(|e| Error::invalid(e.to_string()))?
        .with_batch_size(8192)
        .build()
        .map_err(|e| Error::invalid(e.to_string()))?;
    let schema = arrow::array::RecordBatchReader::schema(&reader);
    let batches = reader.collect::<std::result::Result<_, _>>()?;
    Ok((schema, batches))
}

async fn run(args: Args) -> Result<serde_json::Value> {
    let (schema, once) = read_parquet(&args.data)?;
    let batches: Vec<RecordBatch> = (0..args.repeat).flat_map(|_| once.iter().cloned()).collect();
    let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
    let bytes: usize = batches.iter().map(|b| b.get_array_memory_size()).sum();
    if args.out.exists() {
        std::fs::remove_dir_all(&args.out).map_err(|e| Error::io(args.out.display().to_string(), e))?;
    }
    let location = TableLocation::parse(&args.out.display().to_string())?;
    let opts = WriteOptions::default();
    let mut seconds = Vec::new();
    for i in 0..args.commits {
        let mode = if i == 0 { WriteMode::Create } else { WriteMode::Append };
        let data = BatchStream::from_batches(schema.clone(), batches.clone());
        let start = Instant::now();
        Table::write(location.clone(), data, mode, &opts).await?;
        seconds.push(start.elapsed().as_secs_f64());
    }
    let table = Table::open(&args.out.display().to_string()).await?;
    let start = Instant::now();
    let scanned: usize = table.scan().collect().await?.iter().map(|b| b.num_rows()).sum();
    let scan_seconds = start.elapsed().as_secs_f64();
    let total: f64 = seconds.iter().sum();
    let n = (rows * args.commits) as f64;
    Ok(json!({
        "engine": "vlake",
        "rows": rows * args.commits,
        "bytes": bytes * args.commits,
        "seconds": total,
        "rows_per_s": n / total,
        "mb_per_s": (bytes * args.commits) as f64 / total / 1e6,
        "per_commit_seconds": seconds,
        "scan_rows": scanned,
        "scan_seconds": scan_seconds,
        "scan_mb_per_s": (bytes * args.commits) as f64 / scan_seconds / 1e6,
    }))
}

fn main() -> std::process::ExitCode {
    let bench = Bench::parse();
    let result = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Internal(e.to_string()))
        .and_then(|rt| match bench {
            Bench::Append(args) => rt.block_on(run(args)),
            Bench::Build(args) => rt.block_on(vector::build(args)),
            Bench::Query(args) => vector::query(args, &rt),
            Bench::Sql(args) => rt.block_on(sql::run(args)),
            Bench::RawBuild(args) => raw_build::run(args),
        });
    match result {
        Ok(doc) => {
            println!("{doc}");
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
