//! `vlake sql`: SQL over vlake tables through DataFusion, from `-c` statements or a prompt.

use std::io::{IsTerminal, Write};
use std::time::Instant;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use clap::Args;
use datafusion::prelude::SessionContext;
use vlake_table::{Error, Result};

use crate::render::{self, Output};
use vlake_datafusion::from_df;

/// Arguments of `vlake sql`.
#[derive(Args, Debug)]
pub struct SqlArgs {
    /// Register a table as NAME=URI (repeatable).
    #[arg(long = "table", value_name = "NAME=URI")]
    tables: Vec<String>,
    /// Statements to run in order (repeatable; one may hold several, separated by ';').
    /// Without any, an interactive prompt starts.
    #[arg(short = 'c', long = "command", value_name = "STATEMENT")]
    commands: Vec<String>,
    /// How query results are printed: a text table, CSV, one JSON list per query per line,
    /// or Parquet (one query, to a file with --output or to a non-terminal stdout).
    #[arg(long, value_enum, default_value = "table")]
    format: SqlFormat,
    /// Write Parquet output to this file.
    #[arg(short, long)]
    output: Option<String>,
}

/// Output formats of `vlake sql`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum SqlFormat {
    Table,
    Csv,
    Json,
    Parquet,
}

/// Runs `vlake sql`.
pub async fn run(args: SqlArgs) -> Result<()> {
    let ctx = vlake_datafusion::session();
    for spec in &args.tables {
        let (name, uri) = spec
            .split_once('=')
            .ok_or_else(|| Error::invalid(format!("--table takes NAME=URI, not '{spec}'")))?;
        vlake_datafusion::register_table(&ctx, name.trim(), uri.trim())
            .await
            .map_err(from_df)?;
    }
    if args.format == SqlFormat::Parquet && args.output.is_none() && std::io::stdout().is_terminal() {
        return Err(Error::invalid(
            "--format parquet writes binary: give --output FILE or redirect stdout",
        ));
    }
    let mut session = Session {
        ctx,
        format: args.format,
        output: args.output,
        results: 0,
    };
    if args.commands.is_empty() {
        return session.interactive().await;
    }
    for command in &args.commands {
        session.run_all(command).await?;
    }
    Ok(())
}

struct Session {
    ctx: SessionContext,
    format: SqlFormat,
    output: Option<String>,
    /// Query results printed so far.
    results: usize,
}

impl Session {
    /// Runs each statement of `sql` in order, printing the results of those that return rows.
    async fn run_all(&mut self, sql: &str) -> Result<()> {
        for statement in vlake_datafusion::parse(&self.ctx, sql).map_err(from_df)? {
            let df = vlake_datafusion::sql(&self.ctx, statement).await.map_err(from_df)?;
            let schema: SchemaRef = df.schema();
            let batches = df.collect().await.map_err(from_df)?;
            if !schema.fields().is_empty() {
                self.print(&schema, &batches)?;
            }
        }
        Ok(())
    }

    fn print(&mut self, schema: &SchemaRef, batches: &[RecordBatch]) -> Result<()> {
        self.results += 1;
        match self.format {
            SqlFormat::Table => render::batches(schema, batches, Output::new(false)),
            SqlFormat::Json => render::json_line(batches),
            SqlFormat::Csv => {
                let mut out = Vec::new();
                {
                    let mut writer = arrow::csv::WriterBuilder::new().with_header(true).build(&mut out);
                    for b in batches {
                        writer.write(b)?;
                    }
                }
                render::emit(String::from_utf8_lossy(&out).trim_end())
            }
            SqlFormat::Parquet => {
                if self.results > 1 {
                    return Err(Error::invalid("--format parquet takes one query"));
                }
                let sink: Box<dyn Write + Send> = match &self.output {
                    Some(path) => Box::new(std::fs::File::create(path).map_err(|e| Error::io(path, e))?),
                    None => Box::new(std::io::stdout()),
                };
                let mut writer = parquet::arrow::ArrowWriter::try_new(sink, schema.clone(), None)
                    .map_err(|e| Error::Internal(e.to_string()))?;
                for b in batches {
                    writer.write(b).map_err(|e| Error::Internal(e.to_string()))?;
                }
                writer.close().map_err(|e| Error::Internal(e.to_string()))?;
                Ok(())
            }
        }
    }

    /// Reads statements from a prompt with history until end of input or `\q`. At a terminal
    /// a failed statement is reported and the prompt goes on; from piped input (a script) the
    /// first failure stops the run and is returned, so that the exit status is non-zero.
    async fn interactive(&mut self) -> Result<()> {
        let script = !std::io::stdin().is_terminal();
        let mut editor = rustyline::DefaultEditor::new().map_err(|e| Error::Internal(e.to_string()))?;
        let history = std::env::var_os("HOME").map(|h| std::path::Path::new(&h).join(".vlake_history"));
        if let Some(h) = &history {
            let _ = editor.load_history(h);
        }
        let mut pending = String::new();
        let mut outcome = Ok(());
        loop {
            let prompt = if pending.is_empty() { "vlake> " } else { "   ...> " };
            let line = match editor.readline(prompt) {
                Ok(line) => line,
                Err(rustyline::error::ReadlineError::Interrupted) => {
                    pending.clear();
                    continue;
                }
                Err(_) => break,
            };
            let trimmed = line.trim();
            if pending.is_empty() && matches!(trimmed, "\\q" | "quit" | "exit") {
                break;
            }
            pending.push_str(&line);
            pending.push('\n');
            if !trimmed.ends_with(';') {
                continue;
            }
            let _ = editor.add_history_entry(pending.trim());
            let started = Instant::now();
            let result = self.run_all(&pending).await;
            pending.clear();
            match result {
                Ok(()) => eprintln!("({:.3}s)", started.elapsed().as_secs_f64()),
                Err(e) if script => {
                    outcome = Err(e);
                    break;
                }
                Err(e) => eprintln!("error: {e}"),
            }
        }
        // A script's last statement may lack its ';'.
        if script && outcome.is_ok() && !pending.trim().is_empty() {
            outcome = self.run_all(&pending).await;
        }
        if let Some(h) = &history {
            let _ = editor.save_history(h);
        }
        outcome
    }
}
