//! `vlake delete`, `vlake update`, `vlake upsert`, `vlake alter`, `vlake compact` and
//! `vlake optimize`.

use std::time::Duration;

use clap::Args;
use serde_json::json;
use vlake_table::{
    Assignment, BatchStream, ColumnValue, CompactOptions, Error, MergeInsert, OptimizeOptions, Predicate, Result,
    SchemaChange, Table, ValueExpr, WhenMatched, WhenNotMatched, WhenNotMatchedBySource, WriteOptions,
};

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
    // What the commit did: other writers may have changed the row count meanwhile.
    let deleted = after.mutated_rows(&table);
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
    let updated = after.mutated_rows(&table);
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

/// What an upsert does with source rows whose key is in the table.
#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum MatchedArg {
    /// Replace the table row.
    Update,
    /// Keep the table row.
    Nothing,
    /// Fail the upsert.
    Fail,
}

/// What an upsert does with source rows whose key is not in the table.
#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum NotMatchedArg {
    /// Insert them.
    Insert,
    /// Drop them.
    Nothing,
}

/// Arguments of `vlake upsert`.
#[derive(Args, Debug)]
pub struct UpsertArgs {
    /// Source file (Parquet, CSV or JSON lines).
    src: String,
    /// Table URI.
    uri: String,
    /// Key columns, for a table without a primary key (comma-separated).
    #[arg(long, value_delimiter = ',')]
    on: Vec<String>,
    /// Source rows whose key is in the table.
    #[arg(long, value_enum, default_value = "update")]
    when_matched: MatchedArg,
    /// Source rows whose key is not in the table.
    #[arg(long, value_enum, default_value = "insert")]
    when_not_matched: NotMatchedArg,
    /// Delete table rows the source does not match ("" for all, or an SQL condition).
    #[arg(long)]
    delete_unmatched: Option<String>,
    /// Source format (default: from the extension).
    #[arg(long, value_enum)]
    format: Option<crate::import::SourceFormat>,
    /// Print one JSON document.
    #[arg(long)]
    json: bool,
}

pub async fn upsert(args: UpsertArgs) -> Result<()> {
    let table = Table::open(&args.uri).await?;
    let merge = MergeInsert {
        on: args.on,
        when_matched: match args.when_matched {
            MatchedArg::Update => WhenMatched::UpdateAll,
            MatchedArg::Nothing => WhenMatched::DoNothing,
            MatchedArg::Fail => WhenMatched::Fail,
        },
        when_not_matched: match args.when_not_matched {
            NotMatchedArg::Insert => WhenNotMatched::InsertAll,
            NotMatchedArg::Nothing => WhenNotMatched::DoNothing,
        },
        when_not_matched_by_source: match args.delete_unmatched.as_deref().map(str::trim) {
            None => WhenNotMatchedBySource::Keep,
            Some("") => WhenNotMatchedBySource::Delete,
            Some(condition) => WhenNotMatchedBySource::DeleteIf(Predicate::parse(condition)?),
        },
        ..MergeInsert::upsert()
    };
    let (reader, rows) = crate::import::open_source(&args.src, args.format)?;
    let opts = crate::import::progress_options(rows);
    let (after, report) = table
        .merge_insert(BatchStream::from_reader(reader), &merge, &opts)
        .await?;
    Output::new(args.json).doc(
        &json!({"version": after.version(), "merge": report, "rows": after.num_rows()}),
        || {
            format!(
                "version {}: inserted {}, updated {}, deleted {} rows; {} rows",
                after.version(),
                report.inserted,
                report.updated,
                report.deleted,
                after.num_rows()
            )
        },
    )
}

/// Arguments of `vlake alter`: schema changes, applied in the order add, drop, rename, widen,
/// nullable, as one commit.
#[derive(Args, Debug)]
pub struct AlterArgs {
    /// Table URI.
    uri: String,
    /// Add a nullable column, `name:type` (types: bool, int8..int64, uint8..uint64, float16,
    /// float32, float64, string, large_string, binary, date32, or an Arrow type name); existing
    /// rows are null unless --default or --compute gives a value.
    #[arg(long)]
    add: Vec<String>,
    /// The value of an added column in existing rows, `name=literal` (no rewrite).
    #[arg(long)]
    default: Vec<String>,
    /// An added column computed from existing ones, `name=expression` (rewrites the files,
    /// keeping row ids).
    #[arg(long)]
    compute: Vec<String>,
    /// Drop a column.
    #[arg(long)]
    drop: Vec<String>,
    /// Rename a column, `old:new`.
    #[arg(long)]
    rename: Vec<String>,
    /// Widen a column's type, `name:type`.
    #[arg(long)]
    widen: Vec<String>,
    /// Make a column nullable.
    #[arg(long)]
    nullable: Vec<String>,
    /// Print one JSON document.
    #[arg(long)]
    json: bool,
}

pub async fn alter(args: AlterArgs) -> Result<()> {
    let table = Table::open(&args.uri).await?;
    let pair = |s: &str, sep: char, what: &str| -> Result<(String, String)> {
        s.split_once(sep)
            .map(|(a, b)| (a.trim().to_string(), b.trim().to_string()))
            .ok_or_else(|| Error::invalid(format!("{what} '{s}' must look like a{sep}b")))
    };
    let mut values = std::collections::HashMap::new();
    for d in &args.default {
        let (name, literal) = pair(d, '=', "--default")?;
        let ValueExpr::Literal(value) = ValueExpr::parse(&literal)? else {
            return Err(Error::invalid(format!(
                "--default {d}: '{literal}' is not a literal such as 3, 0.5, true or 'text'"
            )));
        };
        values.insert(name, ColumnValue::Default(value));
    }
    for c in &args.compute {
        let (name, expr) = pair(c, '=', "--compute")?;
        values.insert(name, ColumnValue::Expr(ValueExpr::parse(&expr)?));
    }
    let mut changes = Vec::new();
    for a in &args.add {
        let (name, ty) = pair(a, ':', "--add")?;
        let value = values.remove(&name).unwrap_or(ColumnValue::Null);
        let field = arrow::datatypes::Field::new(&name, parse_type(&ty)?, true);
        changes.push(SchemaChange::AddColumn { field, value });
    }
    if let Some(name) = values.keys().next() {
        return Err(Error::invalid(format!(
            "--default or --compute names '{name}', which --add does not add"
        )));
    }
    changes.extend(args.drop.iter().map(|c| SchemaChange::DropColumn(c.clone())));
    for r in &args.rename {
        let (from, to) = pair(r, ':', "--rename")?;
        changes.push(SchemaChange::RenameColumn { from, to });
    }
    for w in &args.widen {
        let (column, ty) = pair(w, ':', "--widen")?;
        changes.push(SchemaChange::WidenColumn {
            column,
            to: parse_type(&ty)?,
        });
    }
    changes.extend(args.nullable.iter().map(|c| SchemaChange::MakeNullable(c.clone())));
    let after = table.alter_schema(&changes).await?;
    let columns: Vec<String> = after
        .schema()
        .fields()
        .iter()
        .map(|f| format!("{}: {}", f.name(), f.data_type()))
        .collect();
    Output::new(args.json).doc(&json!({"version": after.version(), "columns": columns}), || {
        format!("version {}: {}", after.version(), columns.join(", "))
    })
}

/// An Arrow type from a short name (`int64`, `string`, ...) or Arrow's own type syntax.
fn parse_type(name: &str) -> Result<arrow::datatypes::DataType> {
    use arrow::datatypes::DataType as T;
    Ok(match name.to_ascii_lowercase().as_str() {
        "bool" | "boolean" => T::Boolean,
        "int8" => T::Int8,
        "int16" => T::Int16,
        "int32" | "int" => T::Int32,
        "int64" | "bigint" => T::Int64,
        "uint8" => T::UInt8,
        "uint16" => T::UInt16,
        "uint32" => T::UInt32,
        "uint64" => T::UInt64,
        "float16" => T::Float16,
        "float32" | "float" => T::Float32,
        "float64" | "double" => T::Float64,
        "string" | "utf8" => T::Utf8,
        "large_string" | "large_utf8" => T::LargeUtf8,
        "binary" => T::Binary,
        "large_binary" => T::LargeBinary,
        "date32" | "date" => T::Date32,
        _ => name
            .parse()
            .map_err(|e| Error::invalid(format!("unknown type '{name}': {e}")))?,
    })
}
