//! `vlake import`: Parquet, CSV and JSON-lines files into a table, with a progress bar.

use std::fs::File;
use std::io::{BufReader, Seek};
use std::sync::Arc;

use arrow::array::{RecordBatchIterator, RecordBatchReader};
use indicatif::{ProgressBar, ProgressStyle};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use vlake_table::{BatchStream, Error, Result, Table, TableLocation, WriteMode, WriteOptions};

/// Formats `vlake import` reads.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum SourceFormat {
    Parquet,
    Csv,
    Json,
}

const INFER_ROWS: usize = 1000;

fn detect(src: &str) -> Result<SourceFormat> {
    let lower = src.to_ascii_lowercase();
    match lower.rsplit('.').next() {
        Some("parquet" | "pq") => Ok(SourceFormat::Parquet),
        Some("csv") => Ok(SourceFormat::Csv),
        Some("json" | "jsonl" | "ndjson") => Ok(SourceFormat::Json),
        _ => Err(Error::invalid(format!(
            "cannot tell the format of '{src}' from its name: pass --format parquet|csv|json"
        ))),
    }
}

/// Opens `src` as a batch reader; also returns its row count when the format records it.
pub fn open_source(
    src: &str,
    format: Option<SourceFormat>,
) -> Result<(Box<dyn RecordBatchReader + Send>, Option<u64>)> {
    let format = match format {
        Some(f) => f,
        None => detect(src)?,
    };
    let open = || File::open(src).map_err(|e| Error::io(src, e));
    let bad = |e: &dyn std::fmt::Display| Error::invalid(format!("cannot read '{src}' as {format:?}: {e}"));
    let (reader, rows): (Box<dyn RecordBatchReader + Send>, _) = match format {
        SourceFormat::Parquet => {
            let builder = ParquetRecordBatchReaderBuilder::try_new(open()?).map_err(|e| bad(&e))?;
            let rows = builder.metadata().file_metadata().num_rows() as u64;
            (
                Box::new(builder.with_batch_size(8192).build().map_err(|e| bad(&e))?),
                Some(rows),
            )
        }
        SourceFormat::Csv => {
            let mut file = open()?;
            let csv_format = arrow::csv::reader::Format::default().with_header(true);
            let (schema, _) = csv_format
                .infer_schema(&mut file, Some(INFER_ROWS))
                .map_err(|e| bad(&e))?;
            file.rewind().map_err(|e| Error::io(src, e))?;
            let reader = arrow::csv::ReaderBuilder::new(Arc::new(schema))
                .with_format(csv_format)
                .build(file)
                .map_err(|e| bad(&e))?;
            (Box::new(reader), None)
        }
        SourceFormat::Json => {
            let mut file = BufReader::new(open()?);
            let (schema, _) = arrow::json::reader::infer_json_schema_from_seekable(&mut file, Some(INFER_ROWS))
                .map_err(|e| bad(&e))?;
            let reader = arrow::json::ReaderBuilder::new(Arc::new(schema))
                .build(file)
                .map_err(|e| bad(&e))?;
            (Box::new(reader), None)
        }
    };
    // Errors met while reading rows name the file: bad values are invalid input, failed reads
    // I/O errors on the file.
    let schema = reader.schema();
    let path = src.to_string();
    let named = reader.map(move |batch| {
        batch.map_err(|e| {
            let e = match Error::from(e) {
                Error::InvalidInput(m) => Error::invalid(format!("cannot read '{path}' as {format:?}: {m}")),
                Error::Io { source, .. } => Error::io(&path, source),
                other => other,
            };
            arrow::error::ArrowError::ExternalError(Box::new(e))
        })
    });
    Ok((Box::new(RecordBatchIterator::new(named, schema)), rows))
}

/// Imports `src` into the table at `uri` as one commit.
pub async fn import(
    src: &str,
    uri: &str,
    mode: WriteMode,
    format: Option<SourceFormat>,
    primary_key: Vec<String>,
) -> Result<Table> {
    let (reader, rows) = open_source(src, format)?;
    let opts = WriteOptions {
        primary_key,
        ..progress_options(rows)
    };
    Table::write(
        TableLocation::parse(uri)?,
        BatchStream::from_reader(reader),
        mode,
        &opts,
    )
    .await
}

/// Write options reporting progress on a bar (on a terminal) of `rows` rows.
pub fn progress_options(rows: Option<u64>) -> WriteOptions {
    let mut opts = WriteOptions::default();
    if let Some(bar) = progress_bar(rows) {
        opts.progress = Some(Arc::new(move |n| {
            bar.set_position(n);
            if rows == Some(n) {
                bar.finish_and_clear();
            }
        }));
    }
    opts
}

/// A progress bar on stderr when it is a terminal.
pub fn progress_bar(total: Option<u64>) -> Option<ProgressBar> {
    use std::io::IsTerminal;
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = match total {
        Some(n) => ProgressBar::new(n).with_style(
            ProgressStyle::with_template("{spinner} {bar:40} {pos}/{len} rows ({per_sec}, {eta} left)")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        ),
        None => ProgressBar::new_spinner().with_style(
            ProgressStyle::with_template("{spinner} {pos} rows ({per_sec})")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        ),
    };
    Some(bar)
}
