//! Helpers shared by the command-line tests: run `vlake`, check its output, write inputs.
#![allow(dead_code, clippy::unwrap_used, clippy::panic)]

use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;

use arrow::array::{AsArray, FixedSizeListArray, Float32Array, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Int64Type, Schema};
use serde_json::Value;
use vlake_table::Table;

pub fn vlake(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vlake")).args(args).output().unwrap()
}

pub fn ok_json(args: &[&str]) -> Value {
    let out = vlake(args);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{args:?} printed no JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

/// Runs a command that must fail with one clear line on stderr.
/// `vlake cleanup URI --older-than 0s --unsafe-min-file-age 0s --json`: everything old goes,
/// for tests where no writer runs; returns the report.
pub fn cleanup_everything(uri: &str) -> Value {
    ok_json(&[
        "cleanup",
        uri,
        "--older-than",
        "0s",
        "--unsafe-min-file-age",
        "0s",
        "--json",
    ])
}

pub fn fails(args: &[&str], expect: &str) {
    fails_saying(args, &[expect]);
}

/// Runs a command that must fail with one clear line on stderr that says each of `expect`.
pub fn fails_saying(args: &[&str], expect: &[&str]) {
    let out = vlake(args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{args:?} succeeded");
    assert_eq!(stderr.trim_end().lines().count(), 1, "{args:?}: {stderr}");
    assert!(
        stderr.starts_with("error:") && expect.iter().all(|e| stderr.contains(e)),
        "{args:?}: {stderr}"
    );
    assert!(
        !stderr.contains("panicked") && !stderr.contains("backtrace"),
        "{stderr}"
    );
}

/// Writes rows `ids` with columns `id`, `pos` ("n" for even ids, "v" for odd) and a
/// `dim`-dimensional `vector`.
pub fn write_parquet(path: &Path, ids: std::ops::Range<i64>, dim: i32) {
    write_parquet_with_pos(path, ids, dim, |i| if i % 2 == 0 { "n" } else { "v" });
}

/// Writes rows like [`write_parquet`], with `pos(id)` in the `pos` column.
pub fn write_parquet_with_pos(path: &Path, ids: std::ops::Range<i64>, dim: i32, pos: impl Fn(i64) -> &'static str) {
    let item = Arc::new(Field::new("item", DataType::Float32, true));
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("pos", DataType::Utf8, true),
        Field::new("vector", DataType::FixedSizeList(item.clone(), dim), true),
    ]));
    let file = std::fs::File::create(path).unwrap();
    let mut writer = parquet::arrow::ArrowWriter::try_new(file, schema.clone(), None).unwrap();
    let ids: Vec<i64> = ids.collect();
    for chunk in ids.chunks(8192) {
        let values: Float32Array = chunk
            .iter()
            .flat_map(|i| (0..dim).map(move |d| (*i + d as i64) as f32))
            .collect();
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(Int64Array::from(chunk.to_vec())),
                Arc::new(StringArray::from_iter_values(chunk.iter().map(|i| pos(*i)))),
                Arc::new(FixedSizeListArray::new(item.clone(), dim, Arc::new(values), None)),
            ],
        )
        .unwrap();
        writer.write(&batch).unwrap();
    }
    writer.close().unwrap();
}

pub fn table_ids(uri: &str) -> (u64, Vec<i64>) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let table = Table::open(uri).await.unwrap();
        let batches = table.scan().columns(&["id"]).collect().await.unwrap();
        let mut ids: Vec<i64> = batches
            .iter()
            .flat_map(|b| b.column(0).as_primitive::<Int64Type>().values().to_vec())
            .collect();
        ids.sort_unstable();
        (table.version(), ids)
    })
}
