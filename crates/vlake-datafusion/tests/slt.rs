//! The SQL logic tests in `tests/slt/*.slt`, run with the `sqllogictest` runner against a
//! vlake DataFusion session. Each file gets a fresh session and an empty directory `$TMP`
//! (shown as `<TMP>` in results, the fixtures' directory as `<FIXTURES>`); `$DEV` is the
//! dev dataset as a table with a cosine HNSW index, `$Q` the first dev query as a vector literal,
//! `$SMALL` a 2,000-row table with a 4-d `vec` column and an L2 HNSW index, `$TEXT` ten short
//! texts with a full-text index over the first eight.
#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use std::path::PathBuf;

use async_trait::async_trait;
use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::datatypes::{DataType, Float32Type, Float64Type};
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::common::DataFusionError;
use datafusion::prelude::SessionContext;
use sqllogictest::{DBOutput, DefaultColumnType};

struct Db {
    ctx: SessionContext,
    /// Directories shown in results as placeholders, so expected plans do not name temp dirs.
    placeholders: Vec<(String, &'static str)>,
}

/// One cell as text: NULL, floats to 4 decimals, vectors abbreviated by the formatter.
fn cell(column: &dyn Array, row: usize) -> String {
    if column.is_null(row) {
        return "NULL".into();
    }
    match column.data_type() {
        DataType::Float32 => format!("{:.4}", column.as_primitive::<Float32Type>().value(row)),
        DataType::Float64 => format!("{:.4}", column.as_primitive::<Float64Type>().value(row)),
        _ => ArrayFormatter::try_new(column, &FormatOptions::default())
            .unwrap()
            .value(row)
            .to_string(),
    }
}

#[async_trait]
impl sqllogictest::AsyncDB for Db {
    type Error = DataFusionError;
    type ColumnType = DefaultColumnType;

    async fn run(&mut self, sql: &str) -> Result<DBOutput<DefaultColumnType>, DataFusionError> {
        let mut statements = vlake_datafusion::parse(&self.ctx, sql)?;
        let statement = match (statements.pop(), statements.is_empty()) {
            (Some(s), true) => s,
            _ => return Err(DataFusionError::Plan("one statement per record".into())),
        };
        let df = vlake_datafusion::sql(&self.ctx, statement).await?;
        let schema = df.schema();
        let batches = df.collect().await?;
        if schema.fields().is_empty() {
            return Ok(DBOutput::StatementComplete(0));
        }
        let types = schema
            .fields()
            .iter()
            .map(|f| match f.data_type() {
                t if t.is_integer() => DefaultColumnType::Integer,
                t if t.is_floating() => DefaultColumnType::FloatingPoint,
                DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => DefaultColumnType::Text,
                _ => DefaultColumnType::Any,
            })
            .collect();
        let mut rows: Vec<Vec<String>> = vec![];
        for b in &batches {
            for r in 0..b.num_rows() {
                let cells: Vec<String> = b
                    .columns()
                    .iter()
                    .map(|c| {
                        let text = cell(c.as_ref(), r);
                        self.placeholders
                            .iter()
                            .fold(text, |t, (dir, name)| t.replace(dir, name))
                    })
                    .collect();
                // A multi-line cell (a plan) continues on rows of its own, one per line.
                rows.push(
                    cells
                        .iter()
                        .map(|c| c.lines().next().unwrap_or("").to_string())
                        .collect(),
                );
                for c in &cells {
                    rows.extend(c.lines().skip(1).map(|line| vec![line.to_string()]));
                }
            }
        }
        Ok(DBOutput::Rows { types, rows })
    }

    async fn shutdown(&mut self) {}
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_logic_tests() {
    let dir = tempfile::tempdir().unwrap();
    common::dev_table(dir.path()).await;
    common::small_table(dir.path()).await;
    common::text_table(dir.path()).await;
    let dev_uri = dir.path().join("dev").display().to_string();
    let small_uri = dir.path().join("small").display().to_string();
    let text_uri = dir.path().join("text").display().to_string();
    let query = common::literal(&common::queries()[0].vector);
    let slt_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/slt");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&slt_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "slt"))
        .collect();
    files.sort();
    assert!(!files.is_empty());
    let mut failures = vec![];
    let fixtures = dir.path().display().to_string();
    for file in &files {
        let scratch = tempfile::tempdir().unwrap();
        let tmp = scratch.path().display().to_string();
        let placeholders = vec![(tmp.clone(), "<TMP>"), (fixtures.clone(), "<FIXTURES>")];
        let mut runner = sqllogictest::Runner::new(|| {
            let placeholders = placeholders.clone();
            async move {
                Ok(Db {
                    ctx: vlake_datafusion::session(),
                    placeholders,
                })
            }
        });
        runner.set_var("TMP".into(), tmp.clone());
        runner.set_var("DEV".into(), dev_uri.clone());
        runner.set_var("Q".into(), query.clone());
        runner.set_var("SMALL".into(), small_uri.clone());
        runner.set_var("TEXT".into(), text_uri.clone());
        if let Err(e) = runner.run_file_async(file).await {
            failures.push(format!("{}: {e}", file.display()));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
