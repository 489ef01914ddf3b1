//! `vlake stage`, `vlake commit`, `vlake abort`: files written by separate processes commit in
//! one version, every row once; aborted writes leave no files.
#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use std::process::{Command, Stdio};

use common::*;

const WRITERS: i64 = 4;
const ROWS: i64 = 20_000;

fn data_files(table: &std::path::Path) -> usize {
    std::fs::read_dir(table.join("data")).unwrap().count()
}

/// A table `t` in `dir` holding ids 0..100; returns its URI.
fn table_of_100_rows(dir: &tempfile::TempDir) -> String {
    let t = dir.path().join("t").to_str().unwrap().to_string();
    let first = dir.path().join("first.parquet");
    write_parquet(&first, 0..100, 4);
    ok_json(&["import", first.to_str().unwrap(), &t, "--json"]);
    t
}

#[test]
fn files_staged_by_separate_processes_commit_as_one_version() {
    let dir = tempfile::tempdir().unwrap();
    let t = &table_of_100_rows(&dir);

    // Four writer processes at once, each staging its own part.
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let src = dir.path().join(format!("part{w}.parquet"));
            write_parquet(&src, 1000 + w * ROWS..1000 + (w + 1) * ROWS, 4);
            let out = dir.path().join(format!("part{w}.json"));
            Command::new(env!("CARGO_BIN_EXE_vlake"))
                .args(["stage", src.to_str().unwrap(), t, "--out", out.to_str().unwrap()])
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    // A concurrent append commits while they write.
    write_parquet(&dir.path().join("other.parquet"), 100..200, 4);
    ok_json(&[
        "import",
        dir.path().join("other.parquet").to_str().unwrap(),
        t,
        "--mode",
        "append",
        "--json",
    ]);
    for w in writers {
        let out = w.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    assert_eq!(table_ids(t).0, 2, "staging commits nothing");

    let staged: Vec<String> = (0..WRITERS)
        .map(|w| dir.path().join(format!("part{w}.json")).to_str().unwrap().to_string())
        .collect();
    let mut args = vec!["commit", t];
    args.extend(staged.iter().map(String::as_str));
    args.push("--json");
    let report = ok_json(&args);
    assert_eq!(report["version"], 3);
    assert_eq!(report["rows_committed"], WRITERS * ROWS);
    let (version, ids) = table_ids(t);
    assert_eq!(version, 3, "one version for all four writers");
    let expected: Vec<i64> = (0..200).chain(1000..1000 + WRITERS * ROWS).collect();
    assert_eq!(ids, expected, "every row exactly once");
    let versions = ok_json(&["versions", t, "--json"]);
    assert_eq!(versions[2]["operation"], "append");
    assert_eq!(versions[2]["rows"], 200 + WRITERS * ROWS);

    // Committing or aborting the same writes again changes and removes nothing.
    let files = data_files(std::path::Path::new(t));
    let mut again = vec!["commit", t];
    again.push(&staged[0]);
    fails(&again, "already part of version 3");
    let mut abort = vec!["abort", t];
    abort.extend(staged.iter().map(String::as_str));
    fails(&abort, "already part of version 3");
    assert_eq!(data_files(std::path::Path::new(t)), files);
    assert_eq!(table_ids(t), (3, expected));
}

#[test]
fn aborted_staged_writes_leave_no_files() {
    let dir = tempfile::tempdir().unwrap();
    let t = &table_of_100_rows(&dir);
    let before = data_files(std::path::Path::new(t));
    let src = dir.path().join("part.parquet");
    write_parquet(&src, 1000..2000, 4);
    let staged = vlake(&["stage", src.to_str().unwrap(), t]);
    assert!(staged.status.success());
    let json = dir.path().join("part.json");
    std::fs::write(&json, &staged.stdout).unwrap();
    assert!(data_files(std::path::Path::new(t)) > before);
    let report = ok_json(&["abort", t, json.to_str().unwrap(), "--json"]);
    assert_eq!(report["rows_discarded"], 1000);
    assert_eq!(data_files(std::path::Path::new(t)), before);
    assert_eq!(table_ids(t), (1, (0..100).collect()));

    // A description that is not one is refused clearly.
    std::fs::write(&json, "{\"files\": 3}").unwrap();
    fails(&["commit", t, json.to_str().unwrap()], "not a staged write");
    // clap's own error for a bad value (several lines, with a usage hint).
    let out = vlake(&["stage", src.to_str().unwrap(), t, "--mode", "sideways"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("unknown write mode 'sideways'"),
        "{stderr}"
    );
}
