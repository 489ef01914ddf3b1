//! `vlake stage`, `vlake commit` and `vlake abort`: data files written by any number of
//! processes (on any machines), committed by one of them in one version.

use clap::Args;
use serde_json::json;
use vlake_table::{BatchStream, Error, Result, StagedMode, StagedWrite, Table, Transaction};

use crate::import::{open_source, progress_options, SourceFormat};
use crate::render::Output;

/// Arguments of `vlake stage`.
#[derive(Args, Debug)]
pub struct StageArgs {
    /// Source file (.parquet, .csv, .json/.jsonl/.ndjson).
    src: String,
    /// Table URI (the table must exist).
    uri: String,
    /// How the files are to be committed: added to the rows, or replacing them.
    #[arg(long, default_value = "append")]
    mode: StagedMode,
    /// Source format, when the extension does not tell.
    #[arg(long, value_enum)]
    format: Option<SourceFormat>,
    /// Write the description of the staged files here instead of to stdout.
    #[arg(long, short)]
    out: Option<String>,
}

/// Arguments of `vlake commit` and `vlake abort`.
#[derive(Args, Debug)]
pub struct CommitArgs {
    /// Table URI.
    uri: String,
    /// Files written by `vlake stage` (each holds one staged write).
    #[arg(required = true)]
    staged: Vec<String>,
    /// Print one JSON document.
    #[arg(long)]
    json: bool,
}

/// `vlake stage`: writes the rows of a file into the table's storage without committing them
/// and prints their description.
pub async fn stage(args: StageArgs) -> Result<()> {
    let table = Table::open(&args.uri).await?;
    let (reader, rows) = open_source(&args.src, args.format)?;
    let staged = table
        .stage(BatchStream::from_reader(reader), args.mode, &progress_options(rows))
        .await?;
    let json = staged.to_json()?;
    match &args.out {
        Some(path) => std::fs::write(path, json).map_err(|e| Error::io(path, e)),
        None => {
            println!("{json}");
            Ok(())
        }
    }
}

/// The table at `args.uri` and a transaction holding every staged write of `args`.
async fn transaction(args: &CommitArgs) -> Result<(Table, Transaction)> {
    let table = Table::open(&args.uri).await?;
    let mut txn = table.new_transaction();
    for path in &args.staged {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let write = StagedWrite::from_json(&text).map_err(|e| Error::invalid(format!("{path}: {e}")))?;
        txn.add(write)?;
    }
    Ok((table, txn))
}

/// `vlake commit`: commits staged writes in one version.
pub async fn commit(args: CommitArgs) -> Result<()> {
    let (_, txn) = transaction(&args).await?;
    let rows = txn.num_rows();
    let table = txn.commit().await?;
    Output::new(args.json).doc(
        &json!({"version": table.version(), "rows": table.num_rows(), "rows_committed": rows}),
        || format!("{}: version {}, {rows} rows committed", args.uri, table.version()),
    )
}

/// `vlake abort`: removes the files of staged writes that will not be committed.
pub async fn abort(args: CommitArgs) -> Result<()> {
    let (table, txn) = transaction(&args).await?;
    let rows = txn.num_rows();
    txn.abort().await;
    Output::new(args.json).doc(&json!({"rows_discarded": rows}), || {
        format!("{}: discarded {rows} staged rows", table.uri())
    })
}
