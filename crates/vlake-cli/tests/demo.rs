//! `vlake demo` runs from any directory: on generated rows, or on the file given with `--data`.
#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use std::path::Path;
use std::process::Command;

/// Runs the demo in `cwd` with `args`; returns its standard output.
fn demo(cwd: &Path, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_vlake"))
        .arg("demo")
        .args(args)
        .current_dir(cwd)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{args:?}: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[test]
fn demo_generates_rows_without_data() {
    let dir = tempfile::tempdir().unwrap();
    let out = demo(dir.path(), &[]);
    assert!(out.contains("dataset: generated"), "{out}");
    assert!(out.contains("the KNN query ran as: VectorSearchExec"), "{out}");
    assert!(dir.path().join("vlake-demo").is_dir());
}

#[test]
fn demo_reads_the_data_it_is_given() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("rows.parquet");
    common::write_parquet(&data, 0..2000, 8);
    let table = dir.path().join("t");
    let out = demo(
        dir.path(),
        &["--data", data.to_str().unwrap(), "--dir", table.to_str().unwrap()],
    );
    assert!(out.contains(&format!("dataset: {}", data.display())), "{out}");
    assert!(
        out.contains("create the table with 1000 rows, then append 1000 more"),
        "{out}"
    );
    assert!(table.is_dir());
}
