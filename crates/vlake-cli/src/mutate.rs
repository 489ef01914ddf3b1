//! `vlake delete`, `vlake update`, `vlake compact` and `vlake optimize`.

use std::time::Duration;

use clap::Args;
use serde_json::json;
use vlake_table::{Assignment, CompactOptions, OptimizeOptions, Predicate, Result, Table, WriteOptions};

use crate::parse_duration;
use crate::render::Output;

/// Arguments of `vlake delete`.
#[derive(Args, Debug)]
pub struct DeleteArgs {
    /// Table URI.
    uri: String,
    /// SQL filter of the rows to delete, e.g. "id < 100 AND pos = 'n'".
    #[arg(long = "where")]
    filter: String,
    /// Print one JSON document.
    #[arg(long)]
    json: bool,
}

/// Arguments of `vlake update`.
#[derive(Args, Debug)]
pub struct UpdateArgs {
    /// Table URI.
    uri: String,
    /// Assignments, e.g. "score = score * 2, name = 'x'" (repeatable).
    #[arg(long = "set", required = true)]
    set: Vec<String>,
    /// SQL filter of the rows to update (default: every row).
    #[arg(long = "where")]
    filter: Option<String>,
    /// Print one JSON document.
    #[arg(long)]
    json: bool,
}

/// Arguments of `vlake compact` and `vlake optimize`.
#[derive(Args, Debug)]
pub struct CompactArgs {
    /// Table URI.
    uri: String,
    /// Merge files with fewer live rows than this; outputs hold at most this many.
    #[arg(long, default_value_t = CompactOptions::default().target_rows_per_file)]
    target_rows: usize,
    /// Print one JSON document.
    #[arg(long)]
    json: bool,
}

/// Arguments of `vlake optimize`.
#[derive(Args, Debug)]
pub struct OptimizeArgs {
    #[command(flatten)]
    compact: CompactArgs,
    /// Cleanup keeps versions and files younger than this (e.g. 30s, 12h, 7d).
    #[arg(long, default_value = "7d", value_parser = parse_duration)]
    older_than: Duration,
}

pub async fn delete(args: DeleteArgs) -> Result<()> {
    let table = Table::open(&args.uri).await?;
    let filter = Predicate::parse(&args.filter)?;
    let after = table.delete(&filter).await?;
    let deleted = table.num_rows() - after.num_rows();
    Output::new(args.json).doc(
        &json!({"version": after.version(), "deleted_rows": deleted, "rows": after.num_rows()}),
        || {
            format!(
                "deleted {deleted} rows: version {}, {} rows",
                after.version(),
                after.num_rows()
            )
        },
    )
}

pub async fn update(args: UpdateArgs) -> Result<()> {
    let table = Table::open(&args.uri).await?;
    let assignments = Assignment::parse_list(&args.set.join(", "))?;
    let filter = args.filter.as_deref().map(Predicate::parse).transpose()?;
    let after = table
        .update(&assignments, filter.as_ref(), &WriteOptions::default())
        .await?;
    let updated = match &after.manifest().transaction.operation {
        vlake_format::Operation::Update { rows } if after.version() != table.version() => *rows,
        _ => 0,
    };
    Output::new(args.json).doc(
        &json!({"version": after.version(), "updated_rows": updated, "rows": after.num_rows()}),
        || format!("updated {updated} rows: version {}", after.version()),
    )
}

pub async fn compact(args: CompactArgs) -> Result<()> {
    let table = Table::open(&args.uri).await?;
    let opts = CompactOptions {
        target_rows_per_file: args.target_rows,
        ..CompactOptions::default()
    };
    let (after, report) = table.compact(&opts).await?;
    Output::new(args.json).doc(&json!({"version": after.version(), "compaction": report}), || {
        format!(
            "version {}: replaced {} files by {}, rewrote {} rows, dropped {} deleted rows",
            after.version(),
            report.files_removed,
            report.files_added,
            report.rows_rewritten,
            report.deletions_materialized
        )
    })
}

pub async fn optimize(args: OptimizeArgs) -> Result<()> {
    let table = Table::open(&args.compact.uri).await?;
    let opts = OptimizeOptions {
        compact: CompactOptions {
            target_rows_per_file: args.compact.target_rows,
            ..CompactOptions::default()
        },
        cleanup_older_than: args.older_than,
    };
    let (_, report) = table.optimize(&opts).await?;
    Output::new(args.compact.json).doc(&report, || {
        let c = &report.compaction;
        format!(
            "version {}: replaced {} files by {}, dropped {} deleted rows; updated indexes [{}]; removed {} versions and {} files",
            report.version,
            c.files_removed,
            c.files_added,
            c.deletions_materialized,
            report.indexes_updated.join(", "),
            report.cleanup.versions_removed,
            report.cleanup.files_removed
        )
    })
}
