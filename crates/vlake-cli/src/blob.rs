//! `vlake blob put` and `vlake blob get`: BLOB values from and to files, streamed.

use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use arrow::array::{RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use clap::Subcommand;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use vlake_table::{BlobSource, Error, Result, Table, WriteOptions};

use crate::render::Output;
use crate::VersionArgs;

/// `vlake blob` subcommands.
#[derive(Subcommand, Debug)]
pub enum BlobCommand {
    /// Append one row per file, the file's bytes in a BLOB column (streamed, any size).
    Put {
        /// Table URI.
        uri: String,
        /// The BLOB column.
        #[arg(long)]
        column: String,
        /// Files to store.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// A string column that gets each file's name.
        #[arg(long)]
        name_column: Option<String>,
        /// Create the table when it does not exist (columns: the name column, if given, and
        /// the BLOB column).
        #[arg(long)]
        create: bool,
        /// Print one JSON document.
        #[arg(long)]
        json: bool,
    },
    /// Write one BLOB value (or a byte range of it) to stdout or a file, streamed.
    Get {
        /// Table URI.
        uri: String,
        /// The BLOB column.
        #[arg(long)]
        column: String,
        /// The row id (see `vlake head --json` with `_rowid`, or `vlake blob put --json`).
        #[arg(long)]
        row_id: u64,
        /// Start at this byte of the value.
        #[arg(long, default_value_t = 0)]
        offset: u64,
        /// At most this many bytes.
        #[arg(long)]
        length: Option<u64>,
        /// Write to this file instead of stdout.
        #[arg(short, long)]
        output: Option<PathBuf>,
        #[command(flatten)]
        at: VersionArgs,
    },
}

pub async fn run(command: BlobCommand) -> Result<()> {
    match command {
        BlobCommand::Put {
            uri,
            column,
            files,
            name_column,
            create,
            json,
        } => {
            let table = match Table::open(&uri).await {
                Err(Error::NotFound { .. }) if create => {
                    Table::create(&uri, new_schema(&column, name_column.as_deref())).await?
                }
                other => other?,
            };
            let rows = match &name_column {
                Some(name) => {
                    let names: StringArray = files.iter().map(|f| Some(f.display().to_string())).collect();
                    let schema = Arc::new(Schema::new(vec![Field::new(name, DataType::Utf8, true)]));
                    Some(RecordBatch::try_new(schema, vec![Arc::new(names)])?)
                }
                None => None,
            };
            let n = files.len() as u64;
            let sources = files.into_iter().map(BlobSource::File).collect();
            let after = table
                .append_blobs(&column, sources, rows, &WriteOptions::default())
                .await?;
            // The appended rows have the last row ids of the version that holds them.
            let next = after.manifest().next_row_id;
            let row_ids: Vec<u64> = (next - n..next).collect();
            Output::new(json).doc(&json!({"version": after.version(), "row_ids": row_ids}), || {
                format!("version {}: stored {n} values as rows {row_ids:?}", after.version())
            })
        }
        BlobCommand::Get {
            uri,
            column,
            row_id,
            offset,
            length,
            output,
            at,
        } => {
            let table = at.open(&uri).await?;
            let mut blob = table.open_blob(row_id, &column).await?;
            blob.seek(std::io::SeekFrom::Start(offset))
                .await
                .map_err(|e| Error::io(&uri, e))?;
            let mut left = length.unwrap_or(u64::MAX);
            let mut out: Box<dyn Write> = match &output {
                Some(p) => Box::new(std::fs::File::create(p).map_err(|e| Error::io(p.display().to_string(), e))?),
                None => Box::new(std::io::stdout().lock()),
            };
            let mut buf = vec![0u8; 1 << 20];
            while left > 0 {
                let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
                let n = blob.read(&mut buf[..want]).await.map_err(|e| Error::io(&uri, e))?;
                if n == 0 {
                    break;
                }
                out.write_all(&buf[..n]).map_err(|e| Error::io("the output", e))?;
                left -= n as u64;
            }
            out.flush().map_err(|e| Error::io("the output", e))
        }
    }
}

/// The schema `blob put --create` gives a new table.
fn new_schema(column: &str, name_column: Option<&str>) -> Arc<Schema> {
    let blob = Field::new(column, DataType::LargeBinary, true)
        .with_metadata(HashMap::from([("vlake:blob".to_string(), "true".to_string())]));
    let name = name_column.map(|n| Field::new(n, DataType::Utf8, true));
    Arc::new(Schema::new(name.into_iter().chain([blob]).collect::<Vec<_>>()))
}
