//! The `vlake` binary end to end: commands, JSON output, errors, concurrent processes, crashes.
#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use common::*;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::time::Duration;

use arrow::array::{FixedSizeListArray, Float32Array, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use rand::Rng;
use serde_json::Value;
use vlake_table::Table;

#[test]
fn import_inspect_tag_restore_cleanup() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("rows.csv");
    std::fs::write(&csv, "id,name,score\n1,alpha,0.5\n2,beta,1.5\n3,gamma,\n").unwrap();
    let jsonl = dir.path().join("more.jsonl");
    std::fs::write(
        &jsonl,
        "{\"id\": 4, \"name\": \"delta\", \"score\": 2.5}\n{\"id\": 5, \"name\": \"eps\", \"score\": 3.5}\n",
    )
    .unwrap();
    let uri = dir.path().join("t").display().to_string();

    let created = ok_json(&["import", csv.to_str().unwrap(), &uri, "--json"]);
    assert_eq!(
        (created["version"].as_u64(), created["rows"].as_u64()),
        (Some(1), Some(3))
    );
    let appended = ok_json(&["import", jsonl.to_str().unwrap(), &uri, "--mode", "append", "--json"]);
    assert_eq!(
        (appended["version"].as_u64(), appended["rows"].as_u64()),
        (Some(2), Some(5))
    );

    let info = ok_json(&["info", &uri, "--json"]);
    assert_eq!(info["version"], 2);
    assert_eq!(info["rows"], 5);
    assert_eq!(info["schema"][1]["name"], "name");
    assert_eq!(info["files"].as_array().unwrap().len(), 2);
    assert_eq!(ok_json(&["info", &uri, "--version", "1", "--json"])["rows"], 3);

    let versions = ok_json(&["versions", &uri, "--json"]);
    let versions = versions.as_array().unwrap();
    assert_eq!(versions.len(), 2);
    assert_eq!(versions[1]["version"], 2);
    assert!(versions[0]["timestamp"].as_str().unwrap().starts_with("20"));

    let rows = ok_json(&["head", &uri, "-n", "2", "--json"]);
    assert_eq!(rows.as_array().unwrap().len(), 2);
    assert_eq!(rows[0]["name"], "alpha");
    let rows = ok_json(&[
        "head",
        &uri,
        "--filter",
        "score IS NULL OR id > 4",
        "--columns",
        "id",
        "--json",
    ]);
    assert_eq!(rows, serde_json::json!([{"id": 3}, {"id": 5}]));
    let rows = ok_json(&["head", &uri, "--filter", "id > 100", "--json"]);
    assert_eq!(rows, serde_json::json!([]));

    let out = vlake(&["tag", "create", &uri, "first", "--version", "1"]);
    assert!(out.status.success());
    assert_eq!(ok_json(&["tag", "list", &uri, "--json"])[0]["version"], 1);
    assert_eq!(
        ok_json(&["head", &uri, "--tag", "first", "--json"])
            .as_array()
            .unwrap()
            .len(),
        3
    );

    let restored = ok_json(&["restore", &uri, "--tag", "first", "--json"]);
    assert_eq!(restored["version"], 3);
    assert_eq!(ok_json(&["info", &uri, "--json"])["rows"], 3);
    let report = ok_json(&["cleanup", &uri, "--older-than", "0s", "--json"]);
    assert_eq!(
        (&report["versions_removed"], &report["files_removed"]),
        (&Value::from(0), &Value::from(0)),
        "version 2 and its file are younger than the minimum age: a writer may still need them"
    );
    let report = ok_json(&[
        "cleanup",
        &uri,
        "--older-than",
        "0s",
        "--unsafe-min-file-age",
        "0s",
        "--json",
    ]);
    assert_eq!(
        (&report["versions_removed"], &report["files_removed"]),
        (&Value::from(1), &Value::from(1)),
        "version 2 and its file go; 1 is tagged, 3 is latest"
    );
    assert_eq!(ok_json(&["versions", &uri, "--json"]).as_array().unwrap().len(), 2);

    let text = vlake(&["head", &uri]);
    assert!(String::from_utf8_lossy(&text.stdout).contains("| alpha"));
}

#[test]
fn delete_update_compact_optimize() {
    let dir = tempfile::tempdir().unwrap();
    let uri = dir.path().join("t").display().to_string();
    for (i, range) in [0..40, 40..80, 80..100].into_iter().enumerate() {
        let src = dir.path().join(format!("part{i}.parquet"));
        write_parquet(&src, range, 4);
        let mode = if i == 0 { "create" } else { "append" };
        ok_json(&["import", src.to_str().unwrap(), &uri, "--mode", mode, "--json"]);
    }
    ok_json(&[
        "index", "create", &uri, "--column", "vector", "--type", "ivf_flat", "--metric", "l2", "--json",
    ]);

    let deleted = ok_json(&["delete", &uri, "--where", "id < 10 OR id >= 95", "--json"]);
    assert_eq!(
        (deleted["deleted_rows"].as_u64(), deleted["rows"].as_u64()),
        (Some(15), Some(85))
    );
    let updated = ok_json(&[
        "update",
        &uri,
        "--set",
        "pos = 'x'",
        "--where",
        "id >= 50 AND id < 60",
        "--json",
    ]);
    assert_eq!(updated["updated_rows"], 10);
    let rows = ok_json(&[
        "head",
        &uri,
        "--filter",
        "pos = 'x'",
        "--columns",
        "id",
        "-n",
        "100",
        "--json",
    ]);
    assert_eq!(rows.as_array().unwrap().len(), 10);
    let (_, ids) = table_ids(&uri);
    assert_eq!(ids, (10..95).collect::<Vec<_>>());
    let nothing = ok_json(&["delete", &uri, "--where", "id > 1000", "--json"]);
    assert_eq!(nothing["deleted_rows"], 0);

    let compacted = ok_json(&["compact", &uri, "--json"]);
    assert_eq!(compacted["compaction"]["files_added"], 1);
    assert_eq!(compacted["compaction"]["deletions_materialized"], 25);
    let info = ok_json(&["info", &uri, "--json"]);
    // The updated rows' file is not covered by the index, so it is not merged with the others.
    assert_eq!(
        (info["rows"].as_u64(), info["files"].as_array().unwrap().len()),
        (Some(85), 2)
    );
    let report = ok_json(&["optimize", &uri, "--older-than", "0s", "--json"]);
    assert_eq!(
        report["cleanup"]["versions_removed"], 0,
        "younger than the minimum age: {report}"
    );
    assert_eq!(table_ids(&uri).1, (10..95).collect::<Vec<_>>());
    let found = ok_json(&[
        "search",
        &uri,
        "--column",
        "vector",
        "--vector",
        "[20, 21, 22, 23]",
        "-k",
        "3",
        "--json",
    ]);
    assert_eq!(found[0]["id"], 20);
    // Optimize indexed the updated file: now both files merge.
    let text = vlake(&["compact", &uri]);
    assert!(String::from_utf8_lossy(&text.stdout).contains("replaced 2 files by 1"));
    assert_eq!(ok_json(&["compact", &uri, "--json"])["compaction"]["files_removed"], 0);

    fails(&["delete", &uri, "--where", "id <"], "bad filter");
    fails(&["update", &uri, "--set", "nope = 1"], "nope");
    fails(&["update", &uri, "--set", "id ="], "bad assignment");
    fails(
        &[
            "delete",
            &dir.path().join("none").display().to_string(),
            "--where",
            "id = 1",
        ],
        "not found",
    );
}

#[test]
fn errors_are_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let uri = dir.path().join("t").display().to_string();
    let missing = dir.path().join("nothing").display().to_string();
    let csv = dir.path().join("a.csv");
    std::fs::write(&csv, "id,name\n1,x\n").unwrap();
    let other = dir.path().join("b.csv");
    std::fs::write(&other, "id,name\nnot-a-number,x\n").unwrap();
    ok_json(&["import", csv.to_str().unwrap(), &uri, "--json"]);

    fails(&["info", &missing], "not found");
    fails(&["info", &uri, "--version", "7"], "version 7");
    fails(&["head", &uri, "--tag", "nope"], "tag 'nope'");
    fails(&["head", &uri, "--filter", "id >"], "bad filter");
    fails(&["head", &uri, "--columns", "zzz"], "zzz");
    fails(&["head", &uri, "--as-of", "yesterday"], "--as-of");
    fails(&["import", csv.to_str().unwrap(), &uri], "already exists");
    fails(&["import", other.to_str().unwrap(), &uri, "--mode", "append"], "'id'");
    fails(
        &["import", "/no/such/file.csv", &uri, "--mode", "append"],
        "/no/such/file.csv",
    );
    fails(&["import", "data.xyz", &uri], "--format");
    fails(&["restore", &uri], "--version");
    fails(&["tag", "create", &uri, "bad name"], "tag name");
    fails(&["info", "ftp://x/y"], "ftp");
    std::fs::write(dir.path().join("t/_versions/00000000000000000001.json"), b"{").unwrap();
    fails(&["info", &uri], "corrupt");
    fails(&["versions", &missing, "--json"], "not found");
}

#[test]
fn eight_processes_append_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let uri = dir.path().join("t").display().to_string();
    let seed = dir.path().join("seed.parquet");
    write_parquet(&seed, 0..0, 4);
    ok_json(&["import", seed.to_str().unwrap(), &uri, "--json"]);
    let parts: Vec<String> = (0..8)
        .map(|i| {
            let p = dir.path().join(format!("part{i}.parquet"));
            write_parquet(&p, i * 1000..(i + 1) * 1000, 4);
            p.display().to_string()
        })
        .collect();
    let children: Vec<_> = parts
        .iter()
        .map(|p| {
            Command::new(env!("CARGO_BIN_EXE_vlake"))
                .args(["import", p, &uri, "--mode", "append", "--json"])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    let (version, ids) = table_ids(&uri);
    assert_eq!(version, 9);
    assert_eq!(ids, (0..8000).collect::<Vec<_>>(), "every row exactly once");
    let versions: Vec<u64> = ok_json(&["versions", &uri, "--json"])
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["version"].as_u64().unwrap())
        .collect();
    assert_eq!(versions, (1..=9).collect::<Vec<_>>());
}

/// Everything under `root/data` and every staging file, relative to `root`.
fn stored_files(root: &Path) -> (BTreeSet<String>, usize) {
    let mut files = BTreeSet::new();
    let mut staging = 0;
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let entry = entry.unwrap();
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.to_string_lossy().contains('#') {
                staging += 1;
            } else if let Ok(rel) = path.strip_prefix(root.join("data")) {
                files.insert(format!("data/{}", rel.display()));
            }
        }
    }
    (files, staging)
}

#[test]
fn writers_killed_mid_write_leave_the_last_good_version() {
    let dir = tempfile::tempdir().unwrap();
    let uri = dir.path().join("t").display().to_string();
    let root = dir.path().join("t");
    const ROWS: i64 = 100_000;
    let src = dir.path().join("big.parquet");
    write_parquet(&src, 0..ROWS, 64);
    let start = std::time::Instant::now();
    ok_json(&["import", src.to_str().unwrap(), &uri, "--json"]);
    // Kill times spread over one and a half imports of this machine's speed, so most writers
    // die mid-write and some finish.
    let import_ms = (start.elapsed().as_millis() as u64 * 3 / 2).max(2);

    let mut rng = rand::rng();
    let mut killed = 0;
    for _ in 0..12 {
        let mut child = Command::new(env!("CARGO_BIN_EXE_vlake"))
            .args(["import", src.to_str().unwrap(), &uri, "--mode", "append"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(rng.random_range(0..import_ms)));
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap();
            killed += 1;
        }
        child.wait().unwrap();
        // Whatever happened, the table reads at a consistent version: whole imports only.
        let (version, ids) = table_ids(&uri);
        assert_eq!(
            ids.len() as u64,
            version * ROWS as u64,
            "version {version} has {} rows",
            ids.len()
        );
        assert!(ids
            .chunks(version as usize)
            .enumerate()
            .all(|(i, c)| c.iter().all(|id| *id == i as i64)));
    }
    assert!(killed > 0, "no writer was killed mid-write; the test proved nothing");

    // Cleanup removes the orphans of killed writers and keeps every referenced file (no writer
    // runs now, so the minimum file age may be waived).
    cleanup_everything(&uri);
    let (files, staging) = stored_files(&root);
    assert_eq!(staging, 0, "partial uploads remain");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let table = rt.block_on(Table::open(&uri)).unwrap();
    let referenced: BTreeSet<String> = table.manifest().data_files.iter().map(|f| f.path.clone()).collect();
    assert_eq!(files, referenced, "orphans left or live files removed");
    assert_eq!(table_ids(&uri).1.len() as u64, table.version() * ROWS as u64);
    eprintln!("killed {killed} of 12 writers; table at version {}", table.version());
}

#[test]
fn index_and_search_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let uri = dir.path().join("t").display().to_string();
    let src = dir.path().join("v.parquet");
    write_parquet(&src, 0..2000, 8);
    ok_json(&["import", src.to_str().unwrap(), &uri, "--json"]);
    // Row i has vector [i, i+1, ..., i+7]: the nearest rows to row 700's vector (L2) are 700, 699, 701.
    let query = serde_json::to_string(&(0..8).map(|d| (700 + d) as f32).collect::<Vec<_>>()).unwrap();
    let exact = ok_json(&[
        "search", &uri, "--column", "vector", "--vector", &query, "-k", "3", "--metric", "l2", "--json",
    ]);
    let ids: Vec<i64> = exact
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids[0], 700);
    assert_eq!(exact[0]["_distance"], 0.0);
    for index_type in ["hnsw", "ivf_flat", "ivf_pq"] {
        let built = ok_json(&[
            "index",
            "create",
            &uri,
            "--column",
            "vector",
            "--type",
            index_type,
            "--metric",
            "l2",
            "--subvectors",
            "4",
            "--json",
        ]);
        assert!(built["version"].as_u64().unwrap() >= 2);
        let listed = ok_json(&["index", "list", &uri, "--json"]);
        assert_eq!(listed[0]["type"], index_type);
        assert_eq!(listed[0]["metric"], "l2");
        let got = ok_json(&[
            "search",
            &uri,
            "--column",
            "vector",
            "--vector",
            &query,
            "-k",
            "3",
            "--nprobes",
            "8",
            "--json",
        ]);
        assert_eq!(got[0]["id"], 700, "{index_type}: {got}");
        let filtered = ok_json(&[
            "search",
            &uri,
            "--column",
            "vector",
            "--vector",
            &query,
            "--filter",
            "pos = 'v'",
            "--columns",
            "id,pos",
            "--json",
        ]);
        let rows = filtered.as_array().unwrap();
        assert_eq!(rows.len(), 10);
        assert!(rows
            .iter()
            .all(|r| r["pos"] == "v" && r["id"].as_i64().unwrap() % 2 == 1));
    }
    fails(
        &["search", &uri, "--column", "vector", "--vector", "[1, 2]"],
        "dimensions",
    );
    fails(
        &["search", &uri, "--column", "pos", "--vector", &query],
        "not a vector column",
    );
    fails(
        &["search", &uri, "--column", "vector", "--vector", "[1, \"x\"]"],
        "not a number",
    );
    fails(
        &["search", &uri, "--column", "vector", "--vector", &query, "-k", "0"],
        "k must be",
    );
    fails(
        &["index", "create", &uri, "--column", "pos", "--type", "hnsw"],
        "not a vector column",
    );
    fails(
        &["index", "create", &uri, "--column", "vector", "--type", "btree"],
        "unknown index type",
    );
    fails(&["index", "update", &uri, "--name", "nope"], "index 'nope'");
}

/// The lines of a successful command's stdout.
fn ok_lines(args: &[&str]) -> Vec<String> {
    let out = vlake(args);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn sql_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let uri = dir.path().join("t").display().to_string();
    let src = dir.path().join("v.parquet");
    write_parquet(&src, 0..100, 4);
    ok_json(&["import", src.to_str().unwrap(), &uri, "--json"]);
    let table = format!("t={uri}");

    // --format json: each query's rows as one JSON list per line, statements in order.
    let lines = ok_lines(&[
        "sql",
        "--table",
        &table,
        "-c",
        "SELECT pos, count(*) AS n FROM t GROUP BY pos ORDER BY pos",
        "-c",
        "INSERT INTO t SELECT id + 100, pos, vector FROM t WHERE id < 10; SELECT count(*) AS n FROM t",
        "--format",
        "json",
    ]);
    let docs: Vec<Value> = lines.iter().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(docs.len(), 3, "{lines:?}");
    assert_eq!(
        docs[0],
        serde_json::json!([{"pos": "n", "n": 50}, {"pos": "v", "n": 50}])
    );
    assert_eq!(docs[1], serde_json::json!([{"count": 10}]));
    assert_eq!(docs[2], serde_json::json!([{"n": 110}]));
    // The INSERT was one commit.
    assert_eq!(table_ids(&uri).0, 2);

    // CREATE EXTERNAL TABLE instead of --table; KNN through SQL; CSV output.
    let create = format!("CREATE EXTERNAL TABLE w STORED AS VLAKE LOCATION '{uri}'");
    let lines = ok_lines(&[
        "sql",
        "-c",
        &create,
        "-c",
        "SELECT id FROM w ORDER BY l2_distance(vector, [50.0, 51.0, 52.0, 53.0]) LIMIT 3",
        "--format",
        "csv",
    ]);
    assert_eq!(lines[0], "id");
    let mut near: Vec<i64> = lines[1..].iter().map(|l| l.parse().unwrap()).collect();
    near.sort();
    assert_eq!(near, vec![49, 50, 51]);

    // Time travel by option; the text table format.
    let old = format!("CREATE EXTERNAL TABLE old STORED AS VLAKE LOCATION '{uri}' OPTIONS ('version' '1')");
    let lines = ok_lines(&["sql", "-c", &old, "-c", "SELECT count(*) AS n FROM old"]);
    assert!(lines.iter().any(|l| l.contains("| 100 |")), "{lines:?}");

    // Parquet output to a file.
    let out = dir.path().join("out.parquet");
    ok_lines(&[
        "sql",
        "--table",
        &table,
        "-c",
        "SELECT id FROM t WHERE pos = 'n'",
        "--format",
        "parquet",
        "--output",
        out.to_str().unwrap(),
    ]);
    let file = std::fs::File::open(&out).unwrap();
    let rows: usize = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
        .unwrap()
        .build()
        .unwrap()
        .map(|b| b.unwrap().num_rows())
        .sum();
    assert_eq!(rows, 55);

    // Errors: one clear line each.
    fails(&["sql", "-c", "SELECT * FROM nope"], "nope");
    fails(&["sql", "--table", "t", "-c", "SELECT 1"], "NAME=URI");
    fails(
        &[
            "sql",
            "--table",
            &table,
            "-c",
            "SELECT l2_distance(vector, [1.0]) FROM t",
        ],
        "different dimensions",
    );
    fails(
        &["sql", "--table", &table, "-c", "SELECT l2_distance(vector, 'x') FROM t"],
        "must be a vector",
    );
    fails(&["sql", "-c", "SELEC 1"], "SELEC");
}

#[test]
fn sql_prompt_reads_statements_until_quit() {
    use std::io::Write;

    let dir = tempfile::tempdir().unwrap();
    let uri = dir.path().join("t").display().to_string();
    let src = dir.path().join("v.parquet");
    write_parquet(&src, 0..40, 4);
    ok_json(&["import", src.to_str().unwrap(), &uri, "--json"]);
    let mut child = Command::new(env!("CARGO_BIN_EXE_vlake"))
        .args(["sql", "--table", &format!("t={uri}"), "--format", "json"])
        .env("HOME", dir.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // A statement over two lines, another, then \q.
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"SELECT count(*) AS n\nFROM t WHERE pos = 'n';\nSELECT max(id) AS m FROM t;\n\\q\nSELECT 1;\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let docs: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.starts_with('['))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        docs,
        vec![serde_json::json!([{"n": 20}]), serde_json::json!([{"m": 39}])]
    );
    // The statements went into the history file.
    let history = std::fs::read_to_string(dir.path().join(".vlake_history")).unwrap();
    assert!(history.contains("max(id)"), "{history}");
}

/// Runs `vlake sql` with `script` on stdin (a pipe, as `printf ... | vlake sql` gives).
fn piped_sql(args: &[&str], script: &str) -> Output {
    use std::io::Write;

    let mut child = Command::new(env!("CARGO_BIN_EXE_vlake"))
        .arg("sql")
        .args(args)
        .env("HOME", std::env::temp_dir())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(script.as_bytes()).unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn piped_sql_stops_at_the_first_error_with_a_non_zero_status() {
    let dir = tempfile::tempdir().unwrap();
    let uri = dir.path().join("t").display().to_string();
    let src = dir.path().join("v.parquet");
    write_parquet(&src, 0..10, 4);
    ok_json(&["import", src.to_str().unwrap(), &uri, "--json"]);
    let table = format!("t={uri}");
    let out = piped_sql(
        &["--table", &table, "--format", "json"],
        "SELECT count(*) AS n FROM t;\nSELECT * FROM nope;\nINSERT INTO t SELECT * FROM t;\n",
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "a failed statement must fail the run: {stderr}");
    assert!(stderr.contains("error:") && stderr.contains("nope"), "{stderr}");
    assert!(String::from_utf8_lossy(&out.stdout).contains(r#"[{"n":10}]"#));
    // The statements after the failure did not run.
    assert_eq!(table_ids(&uri), (1, (0..10).collect()));
    // A script without errors exits 0, its last statement may lack the ';'.
    let out = piped_sql(&["--table", &table, "--format", "json"], "SELECT 1 AS one");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains(r#"[{"one":1}]"#));
}

#[test]
fn full_text_index_search_and_hybrid_search() {
    let dir = tempfile::tempdir().unwrap();
    let texts = [
        "The quick brown fox",
        "A lazy dog sleeps",
        "Brown bears eat honey",
        "Honey bees make honey",
    ];
    let item = Arc::new(Field::new("item", DataType::Float32, true));
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("text", DataType::Utf8, true),
        Field::new("vector", DataType::FixedSizeList(item.clone(), 2), true),
    ]));
    let values = Float32Array::from_iter_values((0..4).flat_map(|i| [1.0, i as f32]));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(Int64Array::from_iter_values(0..4)),
            Arc::new(StringArray::from_iter_values(texts)),
            Arc::new(FixedSizeListArray::new(item, 2, Arc::new(values), None)),
        ],
    )
    .unwrap();
    let src = dir.path().join("texts.parquet");
    let mut writer = parquet::arrow::ArrowWriter::try_new(std::fs::File::create(&src).unwrap(), schema, None).unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();
    let uri = dir.path().join("t").display().to_string();
    ok_json(&["import", src.to_str().unwrap(), &uri, "--json"]);
    let built = ok_json(&["index", "create", &uri, "--column", "text", "--type", "fts", "--json"]);
    assert_eq!(built["version"], 2);
    assert_eq!(ok_json(&["index", "list", &uri, "--json"])[0]["type"], "fts");
    let got = ok_json(&[
        "search",
        &uri,
        "--column",
        "text",
        "--text",
        "honey -bee*",
        "--snippet",
        "--json",
    ]);
    let rows = got.as_array().unwrap();
    assert_eq!(rows.len(), 1, "{got}");
    assert_eq!(rows[0]["id"], 2);
    assert_eq!(rows[0]["_snippet"], "Brown bears eat <b>honey</b>");
    assert!(rows[0]["_score"].as_f64().unwrap() > 0.0);
    let hybrid = ok_json(&[
        "search",
        &uri,
        "--column",
        "vector",
        "--vector",
        "[1.0, 3.0]",
        "--text-column",
        "text",
        "--text",
        "brown",
        "-k",
        "2",
        "--json",
    ]);
    // Vector ranks 3, 2, 1, 0; text ranks 0, 2. RRF: row 2 (2nd, 2nd) then row 0 (4th, 1st).
    let ids: Vec<i64> = hybrid
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, [2, 0], "{hybrid}");
    fails(
        &["search", &uri, "--column", "text", "--text", "(honey"],
        "unclosed '('",
    );
    fails(
        &[
            "search",
            &uri,
            "--column",
            "vector",
            "--vector",
            "[1.0, 0.0]",
            "--text",
            "x",
        ],
        "needs --text-column",
    );
    fails(
        &["index", "create", &uri, "--column", "id", "--type", "fts"],
        "not a string column",
    );
}

#[test]
fn keyed_import_upsert_and_alter() {
    let dir = tempfile::tempdir().unwrap();
    let uri = dir.path().join("t").display().to_string();
    let first = dir.path().join("first.parquet");
    let changes = dir.path().join("changes.parquet");
    write_parquet(&first, 0..20, 4);
    write_parquet(&changes, 15..30, 4);
    let src = first.to_str().unwrap();
    ok_json(&["import", src, &uri, "--primary-key", "id", "--json"]);
    // The key is kept unique: importing the same rows again fails.
    fails(&["import", src, &uri, "--mode", "append"], "key (0) in the table");
    let merged = ok_json(&["upsert", changes.to_str().unwrap(), &uri, "--json"]);
    assert_eq!(
        merged["merge"],
        serde_json::json!({"inserted": 10, "updated": 5, "deleted": 0})
    );
    assert_eq!(table_ids(&uri).1, (0..30).collect::<Vec<_>>());
    let replaced = ok_json(&[
        "upsert",
        src,
        &uri,
        "--when-matched",
        "nothing",
        "--delete-unmatched",
        "id >= 25",
        "--json",
    ]);
    assert_eq!(replaced["merge"]["deleted"], 5);
    assert_eq!(table_ids(&uri).1, (0..25).collect::<Vec<_>>());

    let altered = ok_json(&[
        "alter",
        &uri,
        "--add",
        "level:int32",
        "--default",
        "level=3",
        "--add",
        "twice:int64",
        "--compute",
        "twice=id * 2",
        "--rename",
        "pos:kind",
        "--json",
    ]);
    let columns: Vec<&str> = altered["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    assert_eq!(
        columns,
        [
            "id: Int64",
            "kind: Utf8",
            "vector: FixedSizeList(4 x Float32)",
            "level: Int32",
            "twice: Int64"
        ]
    );
    let rows = ok_json(&[
        "head",
        &uri,
        "--filter",
        "twice = 8 AND level = 3",
        "--columns",
        "id",
        "--json",
    ]);
    assert_eq!(rows, serde_json::json!([{"id": 4}]));
    ok_json(&[
        "alter",
        &uri,
        "--widen",
        "level:int64",
        "--drop",
        "twice",
        "--nullable",
        "vector",
        "--json",
    ]);
    fails(&["alter", &uri, "--drop", "id"], "primary key");
    fails(&["alter", &uri, "--widen", "level:int8"], "only widening");
    fails(&["alter", &uri, "--add", "x:nonsense"], "unknown type");
    fails(&["alter", &uri, "--default", "y=1"], "which --add does not add");
}

#[test]
fn blobs_from_files_and_back() {
    let dir = tempfile::tempdir().unwrap();
    let uri = dir.path().join("t").display().to_string();
    let small = dir.path().join("small.txt");
    let big = dir.path().join("big.bin");
    let empty = dir.path().join("empty");
    std::fs::write(&small, b"hello blob").unwrap();
    let big_bytes: Vec<u8> = (0..9_000_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    std::fs::write(&big, &big_bytes).unwrap();
    std::fs::write(&empty, b"").unwrap();
    let (s, b, e) = (small.to_str().unwrap(), big.to_str().unwrap(), empty.to_str().unwrap());
    fails(&["blob", "put", &uri, "--column", "data", s], "not found");
    let put = ok_json(&[
        "blob",
        "put",
        &uri,
        "--column",
        "data",
        "--name-column",
        "name",
        "--create",
        s,
        b,
        e,
        "--json",
    ]);
    assert_eq!(put["version"].as_u64(), Some(2));
    assert_eq!(put["row_ids"], serde_json::json!([0, 1, 2]));

    let get = |extra: &[&str]| {
        let mut args = vec!["blob", "get", uri.as_str(), "--column", "data"];
        args.extend_from_slice(extra);
        let out = vlake(&args);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        out.stdout
    };
    assert_eq!(get(&["--row-id", "0"]), b"hello blob");
    assert_eq!(get(&["--row-id", "2"]), b"");
    assert_eq!(
        get(&["--row-id", "1", "--offset", "4000000", "--length", "10"]),
        &big_bytes[4_000_000..4_000_010]
    );
    let copy = dir.path().join("copy.bin");
    get(&["--row-id", "1", "-o", copy.to_str().unwrap()]);
    assert!(std::fs::read(&copy).unwrap() == big_bytes);
    let info = ok_json(&["info", &uri, "--json"]);
    assert_eq!(
        (info["blob_files"].as_u64(), info["blob_bytes"].as_u64()),
        (Some(2), Some(9_000_010))
    );
    assert_eq!(info["schema"][1]["blob"].as_bool(), Some(true));
    // Scans show descriptors.
    let rows = ok_json(&["head", &uri, "--columns", "name,data", "--json"]);
    assert_eq!(rows[1]["data"]["size"].as_u64(), Some(9_000_000));
    assert_eq!(rows[0]["name"].as_str(), Some(s));
    fails(
        &["blob", "get", &uri, "--column", "name", "--row-id", "0"],
        "not a BLOB column",
    );
    fails(&["blob", "get", &uri, "--column", "data", "--row-id", "7"], "not found");
}

/// Sizes and nesting depths come from users: too large is a clear error, never an aborted
/// allocation (`--refine 1000000000` asked for 160 GB) or an overflowed stack.
#[test]
fn huge_search_sizes_and_deep_queries_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let uri = dir.path().join("t").display().to_string();
    let src = dir.path().join("v.parquet");
    write_parquet(&src, 0..1000, 8);
    ok_json(&["import", src.to_str().unwrap(), &uri, "--json"]);
    for (column, index_type) in [("vector", "ivf_pq"), ("pos", "fts")] {
        ok_json(&[
            "index",
            "create",
            &uri,
            "--column",
            column,
            "--type",
            index_type,
            "--subvectors",
            "4",
            "--json",
        ]);
    }
    // More partitions than vectors (the sample size once overflowed): one per vector.
    ok_json(&[
        "index",
        "create",
        &uri,
        "--column",
        "vector",
        "--type",
        "ivf_flat",
        "--name",
        "many",
        "--partitions",
        "18446744073709551615",
        "--json",
    ]);
    let query = serde_json::to_string(&[1.0f32; 8]).unwrap();
    for (flag, value, expect) in [
        (
            "--refine",
            "1000000000",
            "refine must be between 1 and 1000, not 1000000000",
        ),
        ("-k", "1000000000", "k must be between 1 and 10000"),
        (
            "--nprobes",
            "18446744073709551615",
            "nprobes must be between 1 and 1000000",
        ),
        ("--ef", "1000000000", "ef must be between 1 and 1000000"),
    ] {
        fails(
            &["search", &uri, "--column", "vector", "--vector", &query, flag, value],
            expect,
        );
    }
    let deep = format!("{}n{}", "(".repeat(20_000), ")".repeat(20_000));
    fails(
        &["search", &uri, "--column", "pos", "--text", &deep],
        "parentheses nest deeper than 64 levels at character 65",
    );
    let nots = format!("v {}n", "NOT ".repeat(20_000));
    let got = ok_json(&["search", &uri, "--column", "pos", "--text", &nots, "-k", "5", "--json"]);
    let rows = got.as_array().unwrap();
    assert_eq!(rows.len(), 5, "{got}");
    assert!(rows.iter().all(|r| r["pos"] == "v"), "{got}");
}

/// Two deletes of rows in different data files started together: the second commits on top
/// of the first, and each still reports the rows it deleted (the count once was rows read
/// minus rows written, which counted the other delete's rows too, or wrapped around below zero
/// when rows were appended meanwhile).
#[test]
fn concurrent_deletes_report_what_they_committed() {
    let dir = tempfile::tempdir().unwrap();
    let uri = dir.path().join("t").display().to_string();
    for (half, mode) in [(0, "create"), (1, "append")] {
        let src = dir.path().join(format!("v{half}.parquet"));
        write_parquet(&src, half * 100_000..(half + 1) * 100_000, 4);
        ok_json(&["import", src.to_str().unwrap(), &uri, "--mode", mode, "--json"]);
    }
    let rounds = 5;
    for round in 0..rounds {
        let children: Vec<_> = (0..2)
            .map(|half| {
                let start = half * 100_000 + round * 1000;
                let filter = format!("id >= {start} AND id < {}", start + 100);
                Command::new(env!("CARGO_BIN_EXE_vlake"))
                    .args(["delete", &uri, "--where", &filter, "--json"])
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for child in children {
            let out = child.wait_with_output().unwrap();
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
            let report: Value = serde_json::from_slice(&out.stdout).unwrap();
            assert_eq!(report["deleted_rows"], 100, "round {round}: {report}");
        }
    }
    let (version, ids) = table_ids(&uri);
    assert_eq!(version, 2 + 2 * rounds as u64);
    assert_eq!(ids.len(), 200_000 - 200 * rounds as usize);
}

/// An import that fails part way (a value after the rows the column types were inferred from
/// does not parse) leaves no data file behind, whether it creates the table or appends to it.
/// The bad row is in the second batch, so the file was opened just before: its local writer
/// thread once created it after the failed import had removed it.
#[test]
fn failed_imports_leave_no_data_files() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.csv");
    let mut text = String::from("id,name\n");
    for i in 0..1100 {
        text.push_str(&format!("{i},n{i}\n"));
    }
    text.push_str("not-a-number,late\n");
    std::fs::write(&bad, text).unwrap();
    let good = dir.path().join("good.csv");
    std::fs::write(&good, "id,name\n1,a\n").unwrap();
    for attempt in 0..5 {
        let root = dir.path().join(format!("t{attempt}"));
        let uri = root.display().to_string();
        fails(&["import", bad.to_str().unwrap(), &uri], "not-a-number");
        let (files, staging) = if root.exists() {
            stored_files(&root)
        } else {
            Default::default()
        };
        assert!(
            files.is_empty() && staging == 0,
            "create {attempt}: {files:?}, {staging} staging"
        );
        ok_json(&["import", good.to_str().unwrap(), &uri, "--json"]);
        let (before, _) = stored_files(&root);
        fails(
            &["import", bad.to_str().unwrap(), &uri, "--mode", "append"],
            "not-a-number",
        );
        assert_eq!(stored_files(&root), (before, 0), "append {attempt}");
    }
}

/// A manifest's row counts are checked against the data file's footer before anything relies
/// on them: `num_rows` 5000 on a 1000-row file once made `count(*)` answer 5000, 2^63 made it
/// answer -9223372036854775808, and 2^62 made scans hang allocating row ids.
#[test]
fn manifest_row_counts_are_checked_against_the_files() {
    let dir = tempfile::tempdir().unwrap();
    let uri = dir.path().join("t").display().to_string();
    let src = dir.path().join("v.parquet");
    write_parquet(&src, 0..1000, 4);
    ok_json(&["import", src.to_str().unwrap(), &uri, "--json"]);
    let manifest_path = dir.path().join("t/_versions/00000000000000000001.json");
    let original: Value = serde_json::from_slice(&std::fs::read(&manifest_path).unwrap()).unwrap();
    let file = original["data_files"][0]["path"].as_str().unwrap().to_string();
    let edit = |num_rows: u64| {
        let mut m = original.clone();
        m["data_files"][0]["num_rows"] = num_rows.into();
        m["next_row_id"] = num_rows.into();
        std::fs::write(&manifest_path, serde_json::to_vec(&m).unwrap()).unwrap();
    };
    let table = format!("t={uri}");
    let counted = ok_lines(&[
        "sql",
        "--table",
        &table,
        "-c",
        "SELECT count(*) AS n FROM t",
        "--format",
        "json",
    ]);
    assert_eq!(
        serde_json::from_str::<Value>(&counted[0]).unwrap(),
        serde_json::json!([{"n": 1000}])
    );
    for rows in [5000, 1 << 62] {
        edit(rows);
        let footer = format!("manifest says the data file has {rows} rows but its footer says 1000");
        for query in [
            "SELECT count(*) FROM t",
            "SELECT count(id) FROM t",
            "SELECT sum(id) FROM t",
        ] {
            fails(&["sql", "--table", &table, "-c", query], &footer);
        }
        fails(&["head", &uri], &format!("corrupt data in {uri}/{file}"));
        fails(&["head", &uri], &footer);
    }
    // No Parquet file holds 2^63 rows: the manifest itself is refused.
    edit(1 << 63);
    fails(&["info", &uri], "corrupt");
    fails(
        &["sql", "--table", &table, "-c", "SELECT count(*) FROM t"],
        "9223372036854775807 rows in all",
    );
}

/// A Parquet file with every nested type the schema spec allows, and a dictionary column.
fn write_nested_parquet(path: &Path, ids: std::ops::Range<i64>) {
    use arrow::array::{
        Array, ArrayRef, DictionaryArray, FixedSizeListBuilder, Float64Array, Int32Array, Int32Builder, ListBuilder,
        StringBuilder, StructArray,
    };
    use arrow::datatypes::{Fields, Int32Type};

    let n = ids.end - ids.start;
    let mut tags = ListBuilder::new(StringBuilder::new());
    let mut pair = FixedSizeListBuilder::new(Int32Builder::new(), 2);
    let mut xs = ListBuilder::new(arrow::array::Int64Builder::new());
    for i in ids.clone() {
        for t in 0..i % 3 {
            tags.values().append_value(format!("t{t}"));
        }
        tags.append(true);
        pair.values().append_slice(&[i as i32, -(i as i32)]);
        pair.append(true);
        xs.values().append_slice(&[i, i * 10]);
        xs.append(true);
    }
    let meta_fields = Fields::from(vec![
        Field::new("a", DataType::Int32, true),
        Field::new("b", DataType::Utf8, true),
    ]);
    let meta = StructArray::new(
        meta_fields.clone(),
        vec![
            Arc::new(Int32Array::from_iter_values(ids.clone().map(|i| i as i32))) as ArrayRef,
            Arc::new(StringArray::from_iter_values(ids.clone().map(|i| format!("b{i}")))),
        ],
        None,
    );
    // A list of structs: one {name, age} per row.
    let person_fields = Fields::from(vec![
        Field::new("name", DataType::Utf8, true),
        Field::new("age", DataType::Int32, true),
    ]);
    let people_values = StructArray::new(
        person_fields.clone(),
        vec![
            Arc::new(StringArray::from_iter_values(ids.clone().map(|i| format!("p{i}")))) as ArrayRef,
            Arc::new(Int32Array::from_iter_values(ids.clone().map(|i| 20 + i as i32))),
        ],
        None,
    );
    let person_item = Arc::new(Field::new("item", DataType::Struct(person_fields), true));
    let people = arrow::array::ListArray::new(
        person_item.clone(),
        arrow::buffer::OffsetBuffer::from_lengths(vec![1; n as usize]),
        Arc::new(people_values),
        None,
    );
    // A struct holding a list and a struct.
    let xs = xs.finish();
    let inner_fields = Fields::from(vec![Field::new("z", DataType::Float64, true)]);
    let inner = StructArray::new(
        inner_fields.clone(),
        vec![Arc::new(Float64Array::from_iter_values(ids.clone().map(|i| i as f64 / 2.0))) as ArrayRef],
        None,
    );
    let rec_fields = Fields::from(vec![
        Field::new("xs", xs.data_type().clone(), true),
        Field::new("inner", DataType::Struct(inner_fields), true),
    ]);
    let rec = StructArray::new(
        rec_fields.clone(),
        vec![Arc::new(xs) as ArrayRef, Arc::new(inner)],
        None,
    );
    let cat: DictionaryArray<Int32Type> = ids.clone().map(|i| if i % 2 == 0 { "even" } else { "odd" }).collect();
    let tags = tags.finish();
    let pair = pair.finish();
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("tags", tags.data_type().clone(), true),
        Field::new("pair", pair.data_type().clone(), true),
        Field::new("meta", DataType::Struct(meta_fields), true),
        Field::new("people", DataType::List(person_item), true),
        Field::new("rec", DataType::Struct(rec_fields), true),
        Field::new("cat", cat.data_type().clone(), true),
    ]));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(Int64Array::from_iter_values(ids)),
            Arc::new(tags),
            Arc::new(pair),
            Arc::new(meta),
            Arc::new(people),
            Arc::new(rec),
            Arc::new(cat),
        ],
    )
    .unwrap();
    let mut writer = parquet::arrow::ArrowWriter::try_new(std::fs::File::create(path).unwrap(), schema, None).unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();
}

/// The rows of `SELECT <columns> FROM t ORDER BY id` as JSON, through `vlake sql`.
fn sql_rows(uri: &str, select: &str) -> Value {
    let lines = ok_lines(&["sql", "--table", &format!("t={uri}"), "-c", select, "--format", "json"]);
    serde_json::from_str(lines.last().unwrap()).unwrap()
}

#[test]
fn nested_and_dictionary_columns_import_append_and_insert() {
    let dir = tempfile::tempdir().unwrap();
    let uri = dir.path().join("t").display().to_string();
    let (a, b) = (dir.path().join("a.parquet"), dir.path().join("b.parquet"));
    write_nested_parquet(&a, 0..3);
    write_nested_parquet(&b, 3..5);
    ok_json(&["import", a.to_str().unwrap(), &uri, "--json"]);
    ok_json(&["import", b.to_str().unwrap(), &uri, "--mode", "append", "--json"]);
    // The dictionary column is stored as its values.
    let info = ok_json(&["info", &uri, "--json"]);
    let cat = info["schema"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "cat")
        .unwrap();
    assert_eq!(cat["type"], "Utf8", "{cat}");

    let rows = sql_rows(&uri, "SELECT * FROM t ORDER BY id");
    assert_eq!(rows.as_array().unwrap().len(), 5);
    assert_eq!(
        rows[4],
        serde_json::json!({
            "id": 4, "tags": ["t0"], "pair": [4, -4], "meta": {"a": 4, "b": "b4"},
            "people": [{"name": "p4", "age": 24}],
            "rec": {"xs": [4, 40], "inner": {"z": 2.0}}, "cat": "even"
        })
    );
    assert_eq!(rows[2]["tags"], serde_json::json!(["t0", "t1"]));

    // SQL INSERT of nested values, and JSONL import into the table and into a new one.
    let lines = ok_lines(&[
        "sql",
        "--table",
        &format!("t={uri}"),
        "-c",
        "INSERT INTO t SELECT id + 100, tags, pair, meta, people, rec, cat FROM t WHERE id < 2",
    ]);
    assert!(!lines.is_empty());
    let jsonl = dir.path().join("c.jsonl");
    std::fs::write(
        &jsonl,
        concat!(
            r#"{"id": 200, "tags": ["j"], "pair": [1, 2], "meta": {"a": 7, "b": "x"}, "#,
            r#""people": [{"name": "q", "age": 3}, {"name": "r", "age": 4}], "#,
            r#""rec": {"xs": [9], "inner": {"z": 0.5}}, "cat": "odd"}"#,
            "\n"
        ),
    )
    .unwrap();
    let other = dir.path().join("j").display().to_string();
    ok_json(&["import", jsonl.to_str().unwrap(), &other, "--json"]);
    let rows = sql_rows(&other, "SELECT people, rec FROM t");
    assert_eq!(
        rows,
        serde_json::json!([{"people": [{"name": "q", "age": 3}, {"name": "r", "age": 4}],
                            "rec": {"xs": [9], "inner": {"z": 0.5}}}])
    );
    let rows = sql_rows(&uri, "SELECT id, meta FROM t WHERE id >= 100 ORDER BY id");
    assert_eq!(
        rows,
        serde_json::json!([{"id": 100, "meta": {"a": 0, "b": "b0"}}, {"id": 101, "meta": {"a": 1, "b": "b1"}}])
    );
}

#[test]
fn cli_filters_take_sql_expressions() {
    let dir = tempfile::tempdir().unwrap();
    let uri = dir.path().join("t").display().to_string();
    let src = dir.path().join("v.parquet");
    write_parquet(&src, 0..30, 4);
    ok_json(&["import", src.to_str().unwrap(), &uri, "--json"]);
    let ids = |rows: Value| -> Vec<i64> {
        rows.as_array()
            .unwrap()
            .iter()
            .map(|r| r["id"].as_i64().unwrap())
            .collect()
    };
    let rows = ok_json(&[
        "head",
        &uri,
        "-n",
        "100",
        "--columns",
        "id",
        "--filter",
        "id % 7 = 1",
        "--json",
    ]);
    assert_eq!(ids(rows), vec![1, 8, 15, 22, 29]);
    let rows = ok_json(&[
        "head",
        &uri,
        "-n",
        "100",
        "--columns",
        "id",
        "--filter",
        "id * 2 > 50 AND pos = 'v'",
        "--json",
    ]);
    assert_eq!(ids(rows), vec![27, 29]);
    // Delete takes them too.
    let deleted = ok_json(&["delete", &uri, "--where", "id % 10 = 0", "--json"]);
    assert_eq!(deleted["deleted_rows"], 3, "{deleted}");
    assert_eq!(table_ids(&uri).1.len(), 27);
    // What filters cannot do is named.
    fails(&["head", &uri, "--filter", "upper(pos) = 'N'"], "+ - * / %");
    fails(&["head", &uri, "--filter", "id % 0 = 1"], "invalid input");
}

#[test]
fn sql_and_import_errors_say_what_happened() {
    let dir = tempfile::tempdir().unwrap();
    let uri = dir.path().join("t").display().to_string();
    let src = dir.path().join("v.parquet");
    write_parquet(&src, 0..10, 4);
    ok_json(&["import", src.to_str().unwrap(), &uri, "--json"]);
    let table = format!("t={uri}");
    let sql = |statement: &str, expect: &[&str]| fails_saying(&["sql", "--table", &table, "-c", statement], expect);

    // Errors of the user's SQL or data are invalid input, not internal errors.
    sql("SELECT id / 0 FROM t", &["invalid input", "zero"]);
    sql("SELECT CAST(pos AS INT) FROM t", &["invalid input", "'n'"]);
    sql(
        "INSERT INTO t SELECT NULL, pos, vector FROM t",
        &["invalid input", "id"],
    );
    let deep = format!("SELECT {}1{}", "(".repeat(200), ")".repeat(200));
    sql(&deep, &["invalid input", "nested too deeply"]);
    // A misspelt option is refused, naming it and the options there are.
    let create = format!("CREATE EXTERNAL TABLE w STORED AS VLAKE LOCATION '{uri}' OPTIONS ('verison' '1')");
    fails_saying(&["sql", "-c", &create], &["invalid input", "'verison'", "version, tag"]);

    // A value of the wrong type late in a JSON file is invalid input naming the whole path.
    let jsonl = dir.path().join("late.jsonl");
    let mut text: String = (0..1500).map(|i| format!("{{\"id\": {i}}}\n")).collect();
    text.push_str("{\"id\": \"oops\"}\n");
    std::fs::write(&jsonl, text).unwrap();
    let new = dir.path().join("j").display().to_string();
    fails_saying(
        &["import", jsonl.to_str().unwrap(), &new],
        &["invalid input", jsonl.to_str().unwrap()],
    );

    // A missing data file is named with its full path.
    let data = std::fs::read_dir(dir.path().join("t/data"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    std::fs::remove_file(&data).unwrap();
    fails_saying(&["head", &uri], &["not found", data.to_str().unwrap()]);
}
