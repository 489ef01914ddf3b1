//! `vlake`: the command line tool for vlake tables.

mod blob;
mod demo;
mod import;
mod index_args;
mod mutate;
mod render;
mod retry_notes;
mod search;
mod sql;
mod stage;

use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use serde_json::json;
use vlake_table::{cleanup, CleanupOptions, Error, Result, Table, TableLocation, VersionRef, WriteMode};

use crate::render::Output;

/// vlake: a versioned table format for embeddings and the data around them.
#[derive(Parser, Debug)]
#[command(name = "vlake", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Import a Parquet, CSV or JSON-lines file into a table.
    Import {
        /// Source file (.parquet, .csv, .json/.jsonl/.ndjson).
        src: String,
        /// Table URI: a path, file://, memory:// or s3://.
        uri: String,
        /// Create a new table, append to one, or overwrite one.
        #[arg(long, value_enum, default_value = "create")]
        mode: ModeArg,
        /// Source format, when the extension does not tell.
        #[arg(long, value_enum)]
        format: Option<import::SourceFormat>,
        /// Primary-key columns of the table created or overwritten (comma-separated): keys
        /// stay unique, and appends of an existing key fail.
        #[arg(long, value_delimiter = ',')]
        primary_key: Vec<String>,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Write a file's rows into a table's storage without committing them (for `vlake commit`,
    /// which may run elsewhere); prints their description as JSON.
    Stage(stage::StageArgs),
    /// Commit the files of staged writes (from any number of `vlake stage` runs) in one version.
    Commit(stage::CommitArgs),
    /// Remove the files of staged writes that will not be committed.
    Abort(stage::CommitArgs),
    /// Show a version: row count, schema, files, indexes.
    Info {
        /// Table URI.
        uri: String,
        #[command(flatten)]
        at: VersionArgs,
        /// Print one JSON document.
        #[arg(long)]
        json: bool,
    },
    /// List the versions of a table.
    Versions {
        /// Table URI.
        uri: String,
        /// Only the newest N versions.
        #[arg(long, value_name = "N")]
        limit: Option<usize>,
        /// Print one JSON document.
        #[arg(long)]
        json: bool,
    },
    /// Print the first rows of a table.
    Head {
        /// Table URI.
        uri: String,
        /// Number of rows.
        #[arg(short = 'n', long, default_value_t = 10)]
        rows: usize,
        /// Comma-separated columns to show.
        #[arg(long, value_delimiter = ',')]
        columns: Option<Vec<String>>,
        /// SQL filter, e.g. "pos = 'n' AND id > 10".
        #[arg(long)]
        filter: Option<String>,
        #[command(flatten)]
        at: VersionArgs,
        /// Print one JSON document (a list of rows).
        #[arg(long)]
        json: bool,
    },
    /// Create, delete or list tags.
    Tag {
        #[command(subcommand)]
        action: TagCommand,
    },
    /// Make an older version the newest version.
    Restore {
        /// Table URI.
        uri: String,
        #[command(flatten)]
        at: VersionArgs,
        /// Print one JSON document.
        #[arg(long)]
        json: bool,
    },
    /// Remove old versions and unreferenced files.
    Cleanup {
        /// Table URI.
        uri: String,
        /// Keep versions and files younger than this (e.g. 30s, 12h, 7d). Both are also kept until
        /// they are an hour old, since a writer may be about to commit a file, or the version
        /// after one it listed.
        #[arg(long, default_value = "7d", value_parser = parse_duration)]
        older_than: Duration,
        /// UNSAFE while anyone writes to the table: also remove versions and unreferenced files
        /// younger than an hour, down to this age. Writes in flight may then fail, or commit
        /// below the latest version and be lost.
        #[arg(long, value_name = "AGE", value_parser = parse_duration)]
        unsafe_min_file_age: Option<Duration>,
        /// Print one JSON document.
        #[arg(long)]
        json: bool,
    },
    /// Create, list or update indexes (vector, full-text).
    Index {
        #[command(subcommand)]
        action: search::IndexCommand,
    },
    /// Search: the rows nearest a vector (--vector), matching a full-text query (--text), or both fused.
    Search(search::SearchArgs),
    /// Run SQL (DataFusion) over vlake tables: `-c` statements, or an interactive prompt.
    Sql(sql::SqlArgs),
    /// Delete the rows matching a filter (a new version; data files are not rewritten).
    Delete(mutate::DeleteArgs),
    /// Merge rows from a file by key: update matched rows, insert new ones, optionally delete
    /// the rows the file does not have (one commit; keys stay unique under concurrent writers).
    Upsert(mutate::UpsertArgs),
    /// Change the schema: add (null, default or computed), drop, rename, widen, make nullable.
    Alter(mutate::AlterArgs),
    /// Set columns of the rows matching a filter (a new version).
    Update(mutate::UpdateArgs),
    /// Merge small files and drop deleted rows, keeping row ids and indexes (a new version).
    Compact(mutate::CompactArgs),
    /// Compact, update every index, then clean up.
    Optimize(mutate::OptimizeArgs),
    /// Store files in a BLOB column, or read a BLOB value back (streamed).
    Blob {
        #[command(subcommand)]
        action: blob::BlobCommand,
    },
    /// Build a table from the dev dataset (or generated data) and show what vlake does.
    Demo(demo::DemoArgs),
}

#[derive(Subcommand, Debug)]
enum TagCommand {
    /// Name a version.
    Create {
        /// Table URI.
        uri: String,
        /// Tag name.
        name: String,
        /// Version to tag (default: the latest).
        #[arg(long)]
        version: Option<u64>,
    },
    /// Delete a tag.
    Delete {
        /// Table URI.
        uri: String,
        /// Tag name.
        name: String,
    },
    /// List tags.
    List {
        /// Table URI.
        uri: String,
        /// Print one JSON document.
        #[arg(long)]
        json: bool,
    },
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum ModeArg {
    Create,
    Append,
    Overwrite,
}

/// Which version to read (default: the latest).
#[derive(Args, Debug, Default)]
struct VersionArgs {
    /// A version number.
    #[arg(long, conflicts_with_all = ["tag", "as_of"])]
    version: Option<u64>,
    /// A tag.
    #[arg(long, conflicts_with = "as_of")]
    tag: Option<String>,
    /// The version current at this time (RFC 3339, e.g. 2026-11-22T10:00:00Z).
    #[arg(long)]
    as_of: Option<String>,
}

impl VersionArgs {
    fn resolve(&self) -> Result<VersionRef> {
        Ok(match (&self.version, &self.tag, &self.as_of) {
            (Some(v), _, _) => VersionRef::Version(*v),
            (_, Some(t), _) => VersionRef::Tag(t.clone()),
            (_, _, Some(ts)) => VersionRef::Timestamp(
                chrono::DateTime::parse_from_rfc3339(ts)
                    .map_err(|e| Error::invalid(format!("bad --as-of time '{ts}': {e}")))?
                    .timestamp_millis(),
            ),
            _ => VersionRef::Latest,
        })
    }

    async fn open(&self, uri: &str) -> Result<Table> {
        Table::builder(uri).version(self.resolve()?).open().await
    }
}

fn parse_duration(s: &str) -> std::result::Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("bad duration '{s}': expected e.g. 30s, 15m, 12h, 7d"))?;
    let per_unit: u64 = match unit {
        "s" | "" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        _ => return Err(format!("bad duration unit '{unit}': use s, m, h or d")),
    };
    n.checked_mul(per_unit)
        .map(Duration::from_secs)
        .ok_or_else(|| format!("duration '{s}' is too long: at most {} seconds", u64::MAX))
}

async fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Import {
            src,
            uri,
            mode,
            format,
            primary_key,
            json,
        } => {
            let mode = match mode {
                ModeArg::Create => WriteMode::Create,
                ModeArg::Append => WriteMode::Append,
                ModeArg::Overwrite => WriteMode::Overwrite,
            };
            let table = import::import(&src, &uri, mode, format, primary_key).await?;
            let out = Output::new(json);
            out.doc(&json!({"version": table.version(), "rows": table.num_rows()}), || {
                format!("{uri}: version {}, {} rows", table.version(), table.num_rows())
            })
        }
        Command::Stage(args) => stage::stage(args).await,
        Command::Commit(args) => stage::commit(args).await,
        Command::Abort(args) => stage::abort(args).await,
        Command::Info { uri, at, json } => {
            let table = at.open(&uri).await?;
            render::info(&table, Output::new(json))
        }
        Command::Versions { uri, limit, json } => {
            let table = Table::open(&uri).await?;
            let versions = table.newest_versions(limit.unwrap_or(usize::MAX)).await?;
            render::versions(&versions, Output::new(json))
        }
        Command::Head {
            uri,
            rows,
            columns,
            filter,
            at,
            json,
        } => {
            let table = at.open(&uri).await?;
            let mut scan = table.scan().limit(rows);
            if let Some(c) = &columns {
                scan = scan.columns(c);
            }
            if let Some(f) = &filter {
                scan = scan.filter_sql(f)?;
            }
            let batches = scan.collect().await?;
            render::batches(&scan.output_schema()?, &batches, Output::new(json))
        }
        Command::Tag { action } => match action {
            TagCommand::Create { uri, name, version } => {
                let table = Table::open(&uri).await?;
                let tag = table.create_tag(&name, version.unwrap_or(table.version())).await?;
                println!("tagged version {} as '{}'", tag.version, tag.name);
                Ok(())
            }
            TagCommand::Delete { uri, name } => {
                Table::open(&uri).await?.delete_tag(&name).await?;
                println!("deleted tag '{name}'");
                Ok(())
            }
            TagCommand::List { uri, json } => render::tags(&Table::open(&uri).await?.tags().await?, Output::new(json)),
        },
        Command::Restore { uri, at, json } => {
            if matches!(at.resolve()?, VersionRef::Latest) {
                return Err(Error::invalid("restore needs --version, --tag or --as-of"));
            }
            let old = at.open(&uri).await?;
            let new = old.restore().await?;
            Output::new(json).doc(
                &json!({"version": new.version(), "restored_version": old.version()}),
                || format!("restored version {} as version {}", old.version(), new.version()),
            )
        }
        Command::Cleanup {
            uri,
            older_than,
            unsafe_min_file_age,
            json,
        } => {
            let mut options = CleanupOptions::new(older_than);
            if let Some(age) = unsafe_min_file_age {
                options = options.dangerously_remove_files_younger_than_min_age(age);
            }
            let report = cleanup(&TableLocation::parse(&uri)?, &options).await?;
            Output::new(json).doc(&report, || {
                let mut line = format!(
                    "removed {} versions, {} files ({} bytes), {} partial uploads",
                    report.versions_removed, report.files_removed, report.bytes_removed, report.staging_files_removed
                );
                if report.files_kept_recent > 0 {
                    line += &format!(
                        "; kept {} unreferenced files younger than the minimum file age (writes may be in flight)",
                        report.files_kept_recent
                    );
                }
                line
            })
        }
        Command::Index { action } => search::index(action).await,
        Command::Search(args) => search::search(args).await,
        Command::Sql(args) => sql::run(args).await,
        Command::Delete(args) => mutate::delete(args).await,
        Command::Upsert(args) => mutate::upsert(args).await,
        Command::Alter(args) => mutate::alter(args).await,
        Command::Update(args) => mutate::update(args).await,
        Command::Compact(args) => mutate::compact(args).await,
        Command::Optimize(args) => mutate::optimize(args).await,
        Command::Blob { action } => blob::run(action).await,
        Command::Demo(args) => demo::run(args).await,
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    retry_notes::install();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
