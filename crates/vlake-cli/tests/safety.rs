//! Data safety through the `vlake` binary with real concurrent processes: cleanup racing
//! writers, stale latest-version hints, files cleanup must not touch, overflowing numbers, and
//! a stress run of every kind of writer with cleanup at the shortest retention.
#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arrow::array::{AsArray, RecordBatch};
use arrow::datatypes::Int64Type;
use common::*;
use rand::Rng;
use serde_json::Value;
use vlake_table::{TableLocation, VersionRef};

fn spawn(args: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_vlake"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The versions `vlake versions` lists.
fn listed_versions(uri: &str) -> Vec<u64> {
    ok_json(&["versions", uri, "--json"])
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["version"].as_u64().unwrap())
        .collect()
}

/// `(id, pos)` of every live row of `version`, read completely (every data, deletion and
/// row-id file), sorted by id.
fn rows_at(uri: &str, version: u64) -> Vec<(i64, String)> {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let location = TableLocation::parse(uri).unwrap();
        let table = vlake_table::TableBuilder::new(location)
            .version(VersionRef::Version(version))
            .open()
            .await
            .unwrap();
        let batches: Vec<RecordBatch> = table
            .scan()
            .columns(&["id", "pos", "vector"])
            .collect()
            .await
            .unwrap_or_else(|e| panic!("version {version} does not read: {e}"));
        let mut rows: Vec<(i64, String)> = batches
            .iter()
            .flat_map(|b| {
                let ids = b.column(0).as_primitive::<Int64Type>().values().to_vec();
                let pos = b.column(1).as_string::<i32>();
                ids.into_iter()
                    .enumerate()
                    .map(|(i, id)| (id, pos.value(i).to_string()))
                    .collect::<Vec<_>>()
            })
            .collect();
        rows.sort();
        rows
    })
}

fn ids_at(uri: &str, version: u64) -> Vec<i64> {
    rows_at(uri, version).into_iter().map(|(id, _)| id).collect()
}

/// Every listed version reads completely.
fn every_version_reads(uri: &str) {
    for version in listed_versions(uri) {
        rows_at(uri, version);
    }
}

fn parquet(dir: &Path, name: &str, ids: std::ops::Range<i64>) -> String {
    let path = dir.join(name);
    write_parquet(&path, ids, 4);
    path.display().to_string()
}

/// Issue 16, item 1: `cleanup --older-than 0s` while four appends run removed their files and
/// every later version failed with `not found: data file`. Repeated over several rounds, with
/// cleanups running back to back for as long as the appends do.
#[test]
fn cleanup_racing_appends_never_loses_a_committed_file() {
    let dir = tempfile::tempdir().unwrap();
    let uri = dir.path().join("t").display().to_string();
    let seed = parquet(dir.path(), "seed.parquet", 0..100);
    ok_json(&["import", &seed, &uri, "--json"]);
    let parts: Vec<String> = (1..=4)
        .map(|i| parquet(dir.path(), &format!("b{i}.parquet"), i * 100_000..i * 100_000 + 50_000))
        .collect();
    let mut rng = rand::rng();
    let mut expected: Vec<i64> = (0..100).collect();
    const ROUNDS: usize = 6;
    for round in 0..ROUNDS {
        let mut appends: Vec<Child> = parts
            .iter()
            .map(|p| spawn(&["import", p, &uri, "--mode", "append", "--json"]))
            .collect();
        // Cleanups one after another for as long as any append runs, the first after a random
        // delay, so that some cleanup lists the files of writes in flight.
        std::thread::sleep(Duration::from_millis(rng.random_range(0..100)));
        let mut cleanups = 0;
        while appends.iter_mut().any(|c| c.try_wait().unwrap().is_none()) {
            let cleanup = vlake(&["cleanup", &uri, "--older-than", "0s", "--json"]);
            assert!(cleanup.status.success(), "{}", stderr(&cleanup));
            cleanups += 1;
        }
        for child in appends {
            let out = child.wait_with_output().unwrap();
            assert!(out.status.success(), "round {round}: {}", stderr(&out));
        }
        eprintln!("round {round}: {cleanups} cleanups ran during the appends");
        for i in 1..=4 {
            expected.extend(i * 100_000..i * 100_000 + 50_000);
        }
        expected.sort_unstable();
        let versions = listed_versions(&uri);
        let latest = *versions.last().unwrap();
        assert_eq!(ids_at(&uri, latest), expected, "round {round}: every row exactly once");
        every_version_reads(&uri);
    }
}

/// Issue 16, item 2: cleanup removed every file with `#` in its name anywhere under the root.
/// It removes only what vlake wrote, named as vlake names it, in vlake's directories.
#[test]
fn cleanup_leaves_files_it_did_not_write() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("t");
    let uri = root.display().to_string();
    let seed = parquet(dir.path(), "seed.parquet", 0..10);
    ok_json(&["import", &seed, &uri, "--json"]);
    let hex = "0123456789abcdef0123456789abcdef";
    let user_files = [
        "notes/#draft.md#".to_string(),
        "notes/issue#42.txt".to_string(),
        "data/my-export.parquet".to_string(),
        "data/readme#1".to_string(),
        format!("data/{hex}.parquet.bak"),
        "_indexes/notes.txt".to_string(),
        "_blobs/keep.me".to_string(),
    ];
    let vlake_orphans = [
        format!("data/{hex}.parquet"),
        format!("data/{hex}.parquet#17"),
        format!("_deletions/{hex}.bin"),
        "_latest.json#3".to_string(),
    ];
    for f in user_files.iter().chain(&vlake_orphans) {
        let path = root.join(f);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, b"x").unwrap();
    }
    // By default the orphans are too young to remove: a writer may be about to commit them.
    let report = ok_json(&["cleanup", &uri, "--older-than", "0s", "--json"]);
    assert_eq!(report["files_removed"], 0, "{report}");
    assert_eq!(report["files_kept_recent"], 2, "{report}");
    for f in user_files.iter().chain(&vlake_orphans) {
        assert!(root.join(f).exists(), "{f} removed");
    }
    let report = cleanup_everything(&uri);
    assert_eq!(
        (&report["files_removed"], &report["staging_files_removed"]),
        (&Value::from(2), &Value::from(2)),
        "{report}"
    );
    for f in &user_files {
        assert!(root.join(f).exists(), "cleanup removed the user's {f}");
    }
    for f in &vlake_orphans {
        assert!(!root.join(f).exists(), "orphan {f} kept");
    }
    assert_eq!(ids_at(&uri, 1), (0..10).collect::<Vec<_>>());
}

/// Issue 16, item 9: a create that failed left its data file behind, and cleanup of a root
/// without versions answered `not_found`. Cleanup now works on such a root.
#[test]
fn cleanup_works_on_a_root_without_versions() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("t");
    let uri = root.display().to_string();
    let orphan = root.join("data/0123456789abcdef0123456789abcdef.parquet");
    std::fs::create_dir_all(orphan.parent().unwrap()).unwrap();
    std::fs::write(&orphan, b"partial").unwrap();
    let report = ok_json(&["cleanup", &uri, "--older-than", "0s", "--json"]);
    assert_eq!(report["files_kept_recent"], 1, "{report}");
    let report = cleanup_everything(&uri);
    assert_eq!(report["files_removed"], 1, "{report}");
    assert!(!orphan.exists());
    fails(
        &["cleanup", &dir.path().join("nothing").display().to_string()],
        "no versions and no vlake files",
    );
}

/// Replaces the hint atomically (write, then rename), as writers do.
fn write_hint(root: &Path, version: u64) {
    let tmp = root.join(format!("hint.tmp.{:?}", std::thread::current().id()));
    std::fs::write(&tmp, format!("{{\"version\": {version}}}")).unwrap();
    std::fs::rename(&tmp, root.join("_latest.json")).unwrap();
}

/// Issue 16, item 3: with versions 2 and 4 left by cleanup, a hint saying 2 made `info` report
/// version 2 and the next append commit a second version 3 on top of it. Then, with real
/// concurrent processes over several rounds, appends race a process that keeps writing the
/// stale hint: no version is ever created below the latest, and no row is lost.
#[test]
fn a_stale_hint_never_forks_history() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("t");
    let uri = root.display().to_string();
    ok_json(&["import", &parquet(dir.path(), "v1.parquet", 0..10), &uri, "--json"]);
    for v in 2..=4 {
        let p = parquet(dir.path(), &format!("v{v}.parquet"), v * 100..v * 100 + 10);
        ok_json(&["import", &p, &uri, "--mode", "append", "--json"]);
    }
    assert!(vlake(&["tag", "create", &uri, "gold", "--version", "2"])
        .status
        .success());
    cleanup_everything(&uri);
    assert_eq!(listed_versions(&uri), [2, 4]);
    let mut expected = ids_at(&uri, 4);

    write_hint(&root, 2);
    assert_eq!(ok_json(&["info", &uri, "--json"])["version"], 4);
    write_hint(&root, 2);
    let p = parquet(dir.path(), "v5.parquet", 500..510);
    assert_eq!(
        ok_json(&["import", &p, &uri, "--mode", "append", "--json"])["version"],
        5
    );
    expected.extend(500..510);
    assert_eq!(ids_at(&uri, 5), expected);

    const ROUNDS: i64 = 5;
    for round in 0..ROUNDS {
        let stop = Arc::new(Mutex::new(false));
        let saboteur = {
            let (root, stop) = (root.clone(), stop.clone());
            std::thread::spawn(move || {
                while !*stop.lock().unwrap() {
                    write_hint(&root, 2);
                    std::thread::sleep(Duration::from_millis(1));
                }
            })
        };
        let before = *listed_versions(&uri).last().unwrap();
        let children: Vec<Child> = (0..4)
            .map(|i| {
                let start = 1000 * (round * 4 + i + 1);
                let p = parquet(dir.path(), &format!("r{round}_{i}.parquet"), start..start + 10);
                expected.extend(start..start + 10);
                spawn(&["import", &p, &uri, "--mode", "append", "--json"])
            })
            .collect();
        let mut committed = BTreeSet::new();
        for child in children {
            let out = child.wait_with_output().unwrap();
            assert!(out.status.success(), "{}", stderr(&out));
            let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
            committed.insert(doc["version"].as_u64().unwrap());
        }
        *stop.lock().unwrap() = true;
        saboteur.join().unwrap();
        assert_eq!(
            committed,
            (before + 1..=before + 4).collect(),
            "round {round}: appends committed above the latest version"
        );
        expected.sort_unstable();
        assert_eq!(ids_at(&uri, before + 4), expected, "round {round}");
    }
    every_version_reads(&uri);
}

/// Issue 16, item 4: a manifest at version 2^64 - 1 made an append "succeed" as version 0, and
/// `--older-than 213503982334602d` wrapped to about 17 hours and removed versions.
#[test]
fn numbers_that_overflow_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("t");
    let uri = root.display().to_string();
    let seed = parquet(dir.path(), "seed.parquet", 0..10);
    ok_json(&["import", &seed, &uri, "--json"]);
    ok_json(&["import", &seed, &uri, "--mode", "append", "--json"]);

    let out = vlake(&["cleanup", &uri, "--older-than", "213503982334602d"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("is too long"), "{}", stderr(&out));
    // The longest retention that fits keeps everything.
    let report = ok_json(&["cleanup", &uri, "--older-than", "200000000000000d", "--json"]);
    assert_eq!(report["versions_removed"], 0);
    assert_eq!(listed_versions(&uri), [1, 2]);

    let v2 = std::fs::read_to_string(root.join("_versions/00000000000000000002.json")).unwrap();
    let mut last: Value = serde_json::from_str(&v2).unwrap();
    last["version"] = Value::from(u64::MAX);
    last["parent_version"] = Value::from(u64::MAX - 1);
    std::fs::write(
        root.join(format!("_versions/{}.json", u64::MAX)),
        serde_json::to_vec(&last).unwrap(),
    )
    .unwrap();
    assert_eq!(ok_json(&["info", &uri, "--json"])["version"], u64::MAX);
    fails(&["import", &seed, &uri, "--mode", "append"], "no version can follow it");
    assert!(!root.join("_versions/00000000000000000000.json").exists());
    assert_eq!(ok_json(&["info", &uri, "--json"])["version"], u64::MAX);
    assert_eq!(ids_at(&uri, u64::MAX).len(), 20);
}

/// What the stress run's writers were told succeeded.
#[derive(Default)]
struct Acked {
    appended: BTreeSet<i64>,
    deleted: BTreeSet<i64>,
    upserted: BTreeSet<i64>,
    failures: BTreeMap<String, usize>,
}

/// Runs `args` until `deadline`, `args(n)` giving the n-th command; records what succeeded.
fn worker(
    deadline: Instant,
    acked: Arc<Mutex<Acked>>,
    name: &'static str,
    args: impl Fn(u64) -> (Vec<String>, Box<dyn Fn(&mut Acked) + Send>) + Send + 'static,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut n = 0;
        while Instant::now() < deadline {
            let (argv, on_success) = args(n);
            let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
            let out = vlake(&argv);
            let mut acked = acked.lock().unwrap();
            if out.status.success() {
                on_success(&mut acked);
            } else {
                let err = stderr(&out);
                assert!(
                    err.contains("conflict"),
                    "{name} failed with something other than a commit conflict: {err}"
                );
                *acked.failures.entry(name.to_string()).or_default() += 1;
            }
            n += 1;
        }
    })
}

/// The pos column of an upsert's rows.
const UPSERTED: &str = "upserted";

/// The stress run the issue asks for: appends, deletes, upserts, compactions, index builds and
/// `cleanup --older-than 0s` (the shortest retention) run together as separate processes for a
/// bounded time. Afterwards every listed version reads completely, every acknowledged write is
/// present exactly once, and nothing a failed command tried is visible.
#[test]
fn writers_of_every_kind_and_cleanup_together() {
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().to_path_buf();
    let uri = work.join("t").display().to_string();
    let seed = parquet(&work, "seed.parquet", 0..2000);
    ok_json(&["import", &seed, &uri, "--primary-key", "id", "--json"]);
    let deadline = Instant::now() + Duration::from_secs(20);
    let acked = Arc::new(Mutex::new(Acked::default()));

    let file = |work: &PathBuf, name: String| work.join(name).display().to_string();
    let mut workers = Vec::new();
    for appender in 0..2i64 {
        let (work, uri) = (work.clone(), uri.clone());
        workers.push(worker(deadline, acked.clone(), "append", move |n| {
            let start = 1_000_000 * (appender + 1) + 100 * n as i64;
            let path = file(&work, format!("a{appender}_{n}.parquet"));
            write_parquet(Path::new(&path), start..start + 50, 4);
            let args = vec!["import".into(), path, uri.clone(), "--mode".into(), "append".into()];
            (
                args,
                Box::new(move |a: &mut Acked| a.appended.extend(start..start + 50)),
            )
        }));
    }
    {
        let uri = uri.clone();
        workers.push(worker(deadline, acked.clone(), "delete", move |n| {
            let id = n as i64 * 7 % 1000;
            let args = vec!["delete".into(), uri.clone(), "--where".into(), format!("id = {id}")];
            (
                args,
                Box::new(move |a: &mut Acked| {
                    a.deleted.insert(id);
                }),
            )
        }));
    }
    {
        let (work, uri) = (work.clone(), uri.clone());
        workers.push(worker(deadline, acked.clone(), "upsert", move |n| {
            let start = 1000 + (n as i64 * 5) % 1000;
            let path = file(&work, format!("u{n}.parquet"));
            write_parquet_with_pos(Path::new(&path), start..start + 5, 4, |_| UPSERTED);
            let args = vec!["upsert".into(), path, uri.clone(), "--on".into(), "id".into()];
            (args, Box::new(move |a: &mut Acked| a.upserted.extend(start..start + 5)))
        }));
    }
    {
        let uri = uri.clone();
        workers.push(worker(deadline, acked.clone(), "compact", move |_| {
            (vec!["compact".into(), uri.clone()], Box::new(|_: &mut Acked| {}))
        }));
    }
    {
        let uri = uri.clone();
        workers.push(worker(deadline, acked.clone(), "index", move |n| {
            // Alternating rebuilds of one index (same name, other types) replace its entry.
            let args: Vec<String> = if n % 2 == 0 {
                [
                    "index",
                    "create",
                    &uri,
                    "--column",
                    "vector",
                    "--type",
                    "ivf_flat",
                    "--partitions",
                    "4",
                ]
                .map(String::from)
                .to_vec()
            } else {
                ["index", "create", &uri, "--column", "vector", "--type", "hnsw"]
                    .map(String::from)
                    .to_vec()
            };
            (args, Box::new(|_: &mut Acked| {}))
        }));
    }
    {
        let uri = uri.clone();
        workers.push(worker(deadline, acked.clone(), "cleanup", move |_| {
            (
                vec!["cleanup".into(), uri.clone(), "--older-than".into(), "0s".into()],
                Box::new(|_: &mut Acked| {}),
            )
        }));
    }
    for w in workers {
        w.join().unwrap();
    }

    let acked = acked.lock().unwrap();
    let versions = listed_versions(&uri);
    let latest = *versions.last().unwrap();
    for version in &versions {
        rows_at(&uri, *version);
    }
    let rows = rows_at(&uri, latest);
    let ids: Vec<i64> = rows.iter().map(|(id, _)| *id).collect();
    let expected: Vec<i64> = (0..2000)
        .chain(acked.appended.iter().copied())
        .filter(|id| !acked.deleted.contains(id))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    assert_eq!(ids, expected, "every acknowledged write exactly once, nothing else");
    for (id, pos) in &rows {
        let upserted = pos == UPSERTED;
        assert_eq!(upserted, acked.upserted.contains(id), "row {id} has pos {pos}");
    }
    eprintln!(
        "stress: {} versions listed (latest {latest}), {} appended rows, {} deletes, {} upserted rows, failures {:?}",
        versions.len(),
        acked.appended.len(),
        acked.deleted.len(),
        acked.upserted.len(),
        acked.failures
    );
    assert!(!acked.appended.is_empty() && !acked.deleted.is_empty() && !acked.upserted.is_empty());
}
