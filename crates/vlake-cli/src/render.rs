//! Printing results as text for people or as one JSON document for scripts.

use std::io::Write;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use serde::Serialize;
use serde_json::json;
use vlake_table::{Error, Result, Table, VersionInfo};

/// Where and how results are printed.
#[derive(Clone, Copy, Debug)]
pub struct Output {
    json: bool,
}

/// Writes to stdout; a closed pipe (`vlake head | head -1`) is not an error.
pub fn emit(text: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    match writeln!(out, "{text}").and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(Error::io("stdout", e)),
        _ => Ok(()),
    }
}

fn to_json(value: &impl Serialize) -> Result<String> {
    serde_json::to_string_pretty(value).map_err(|e| Error::Internal(e.to_string()))
}

impl Output {
    pub fn new(json: bool) -> Self {
        Self { json }
    }

    /// Prints `value` as JSON, or `text()` for people.
    pub fn doc(&self, value: &impl Serialize, text: impl FnOnce() -> String) -> Result<()> {
        if self.json {
            emit(&to_json(value)?)
        } else {
            emit(&text())
        }
    }
}

fn time(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms).map_or_else(|| ms.to_string(), |t| t.to_rfc3339())
}

/// A version's summary ([`Table::info`], the document `--json` prints).
pub fn info(table: &Table, out: Output) -> Result<()> {
    let info = table.info();
    out.doc(&info, || {
        let mut s = format!(
            "table:   {}\nversion: {} ({})\nrows:    {}\nfiles:   {} ({} bytes)\nschema:\n",
            info.uri,
            info.version,
            time(info.timestamp_ms),
            info.rows,
            info.files.len(),
            info.size_bytes
        );
        for f in &info.schema {
            let null = if f.nullable { "" } else { " not null" };
            let blob = if f.blob { " (BLOB)" } else { "" };
            s += &format!("  [{}] {}: {}{blob}{null}\n", f.id, f.name, f.data_type);
        }
        if info.blob_files > 0 {
            s += &format!("blobs:   {} blob files ({} bytes)\n", info.blob_files, info.blob_bytes);
        }
        s += &format!("indexes: {}", if info.indexes.is_empty() { "none" } else { "" });
        for i in &info.indexes {
            s += &format!(
                "\n  {} ({}) on field ids {:?}, built at version {}",
                i.name, i.index_type, i.field_ids, i.built_at_version
            );
        }
        s
    })
}

/// The indexes of a version ([`Table::indexes`], the list `--json` prints).
pub fn indexes(table: &Table, out: Output) -> Result<()> {
    let indexes = table.indexes();
    out.doc(&indexes, || {
        if indexes.is_empty() {
            return "no indexes".to_string();
        }
        let files = table.manifest().data_files.len();
        indexes
            .iter()
            .map(|i| {
                format!(
                    "{} ({}) on '{}', metric {}, built at version {}, covers {}/{files} data files in {} segment(s)",
                    i.name,
                    i.index_type,
                    i.column.as_deref().unwrap_or("?"),
                    i.metric.as_ref().and_then(|m| m.as_str()).unwrap_or("?"),
                    i.built_at_version,
                    i.covered_files.len(),
                    i.files.len()
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    })
}

pub fn versions(list: &[VersionInfo], out: Output) -> Result<()> {
    let doc: Vec<_> = list
        .iter()
        .map(|v| json!({"version": v.version, "timestamp": time(v.timestamp_ms), "timestamp_ms": v.timestamp_ms, "operation": v.operation, "rows": v.rows, "files": v.files}))
        .collect();
    out.doc(&doc, || {
        let mut s = format!(
            "{:>8}  {:<32}  {:<10}  {:>12}  {:>6}",
            "version", "timestamp", "operation", "rows", "files"
        );
        for v in list {
            s += &format!(
                "\n{:>8}  {:<32}  {:<10}  {:>12}  {:>6}",
                v.version,
                time(v.timestamp_ms),
                v.operation,
                v.rows,
                v.files
            );
        }
        s
    })
}

pub fn tags(list: &[vlake_format::Tag], out: Output) -> Result<()> {
    out.doc(&list, || {
        if list.is_empty() {
            return "no tags".to_string();
        }
        list.iter()
            .map(|t| format!("{}  -> version {} (created {})", t.name, t.version, time(t.created_ms)))
            .collect::<Vec<_>>()
            .join("\n")
    })
}

/// Prints rows: a JSON list of objects, or a table with vectors abbreviated.
pub fn batches(schema: &SchemaRef, batches: &[RecordBatch], out: Output) -> Result<()> {
    if out.json {
        return json_line(batches);
    }
    let display: Vec<RecordBatch> = batches.iter().map(abbreviate_vectors).collect::<Result<_>>()?;
    if display.is_empty() {
        let empty = abbreviate_vectors(&RecordBatch::new_empty(schema.clone()))?;
        return emit(&arrow::util::pretty::pretty_format_batches(&[empty])?.to_string());
    }
    emit(&arrow::util::pretty::pretty_format_batches(&display)?.to_string())
}

/// Prints rows as one JSON list of objects on one line (`[]` when there are none).
pub fn json_line(batches: &[RecordBatch]) -> Result<()> {
    let mut writer = arrow::json::WriterBuilder::new()
        .with_explicit_nulls(true)
        .build::<_, arrow::json::writer::JsonArray>(Vec::new());
    let refs: Vec<&RecordBatch> = batches.iter().collect();
    writer.write_batches(&refs)?;
    writer.finish()?;
    let bytes = writer.into_inner();
    // An empty result is an empty list, not an empty document.
    if bytes.is_empty() {
        return emit("[]");
    }
    emit(&String::from_utf8_lossy(&bytes))
}

/// Replaces fixed-size-list columns by short strings such as `[0.12, -0.03, 0.5, … (384)]`.
fn abbreviate_vectors(batch: &RecordBatch) -> Result<RecordBatch> {
    let mut fields = Vec::new();
    let mut columns: Vec<ArrayRef> = Vec::new();
    for (field, column) in batch.schema().fields().iter().zip(batch.columns()) {
        if let DataType::FixedSizeList(_, dim) = field.data_type() {
            let list = column.as_fixed_size_list();
            let values = arrow::compute::cast(list.values(), &DataType::Float32)?;
            let values = values.as_primitive::<arrow::datatypes::Float32Type>();
            let text: StringArray = (0..list.len())
                .map(|i| {
                    list.is_valid(i).then(|| {
                        let start = i * *dim as usize;
                        let shown: Vec<String> = (start..start + (*dim as usize).min(3))
                            .map(|j| format!("{:.3}", values.value(j)))
                            .collect();
                        format!("[{}, … ({dim})]", shown.join(", "))
                    })
                })
                .collect();
            fields.push(Field::new(field.name(), DataType::Utf8, true));
            columns.push(Arc::new(text));
        } else {
            fields.push(field.as_ref().clone());
            columns.push(column.clone());
        }
    }
    let options = arrow::array::RecordBatchOptions::new().with_row_count(Some(batch.num_rows()));
    Ok(RecordBatch::try_new_with_options(
        Arc::new(Schema::new(fields)),
        columns,
        &options,
    )?)
}
