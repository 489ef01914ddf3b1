//! The public staged transaction: writes staged by many writers commit once, in one version;
//! uncommitted files are removed; a staged write is never committed twice.
#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use std::time::{Duration, Instant};

use common::*;
use vlake_table::{Error, StagedMode, StagedWrite, Table, WriteOptions};

/// The data files under the table root.
fn data_files(dir: &tempfile::TempDir) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir.path().join("t/data"))
        .map(|d| {
            d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn writes_staged_by_many_writers_commit_once_over_concurrent_appends() {
    let dir = tempdir();
    let uri = uri(&dir, "t");
    let table = Table::write(
        vlake_table::TableLocation::parse(&uri).unwrap(),
        stream(0..10),
        vlake_table::WriteMode::Create,
        &WriteOptions::default(),
    )
    .await
    .unwrap();
    // Four writers stage from the version they opened; the descriptions travel as JSON.
    let staged: Vec<String> = futures::future::join_all((0..4i64).map(|w| {
        let table = table.clone();
        async move {
            let rows = stream(100 + w * 1000..100 + (w + 1) * 1000);
            let write = table
                .stage(rows, StagedMode::Append, &WriteOptions::default())
                .await
                .unwrap();
            assert_eq!(write.num_rows(), 1000);
            write.to_json().unwrap()
        }
    }))
    .await;
    assert_eq!(Table::open(&uri).await.unwrap().version(), 1, "staging commits nothing");
    // Someone else appends meanwhile: the transaction is rebased over it.
    table.append(stream(10..20), &WriteOptions::default()).await.unwrap();

    let mut txn = table.new_transaction();
    for json in &staged {
        txn.add(StagedWrite::from_json(json).unwrap()).unwrap();
    }
    assert_eq!(txn.num_rows(), 4000);
    let committed = txn.commit().await.unwrap();
    assert_eq!(committed.version(), 3, "one version for every staged write");
    let mut expected: Vec<i64> = (0..20).chain(100..4100).collect();
    expected.sort_unstable();
    assert_eq!(ids(&Table::open(&uri).await.unwrap()).await, expected, "every row once");

    // The same writes again: refused, and nothing committed is removed.
    let mut again = committed.new_transaction();
    let err = again.add(StagedWrite::from_json(&staged[0]).unwrap()).unwrap_err();
    assert!(err.to_string().contains("already part of version 3"), "{err}");
    let mut stale = table.new_transaction();
    stale.add(StagedWrite::from_json(&staged[1]).unwrap()).unwrap();
    let err = stale.commit().await.unwrap_err();
    assert!(
        matches!(&err, Error::CommitConflict { retryable: false, .. }) && err.to_string().contains("committed once"),
        "{err}"
    );
    let table = Table::open(&uri).await.unwrap();
    assert_eq!(table.version(), 3);
    assert_eq!(
        ids(&table).await,
        expected,
        "the refused commit removed no committed file"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_uncommitted_transaction_leaves_no_files() {
    let dir = tempdir();
    let uri = uri(&dir, "t");
    let table = three_files(&uri).await;
    let before = data_files(&dir);

    // Aborted.
    let write = table
        .stage(stream(0..500), StagedMode::Append, &WriteOptions::default())
        .await
        .unwrap();
    assert!(data_files(&dir).len() > before.len(), "the write staged files");
    let mut txn = table.new_transaction();
    txn.add(write).unwrap();
    txn.abort().await;
    assert_eq!(data_files(&dir), before, "abort removed the staged files");

    // Dropped: the guard removes them in the background.
    let write = table
        .stage(stream(0..500), StagedMode::Append, &WriteOptions::default())
        .await
        .unwrap();
    let mut txn = table.new_transaction();
    txn.add(write).unwrap();
    drop(txn);
    let start = Instant::now();
    while data_files(&dir) != before {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the dropped transaction's files stayed"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(Table::open(&uri).await.unwrap().version(), table.version());

    // A dropped transaction never removes files a committed version uses: here another
    // transaction committed the same staged write.
    let write = table
        .stage(stream(0..500), StagedMode::Append, &WriteOptions::default())
        .await
        .unwrap();
    let mut first = table.new_transaction();
    first.add(write.clone()).unwrap();
    let mut second = table.new_transaction();
    second.add(write).unwrap();
    let committed = first.commit().await.unwrap();
    drop(second);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let latest = Table::open(&uri).await.unwrap();
    assert_eq!(latest.version(), committed.version());
    assert_eq!(
        ids(&latest).await.len() as u64,
        committed.num_rows(),
        "every committed file still reads"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn staged_overwrites_and_bad_descriptions() {
    let dir = tempdir();
    let uri = uri(&dir, "t");
    let table = three_files(&uri).await;
    let parts = [
        table
            .stage(stream(1000..1100), StagedMode::Overwrite, &WriteOptions::default())
            .await
            .unwrap(),
        table
            .stage(stream(2000..2100), StagedMode::Overwrite, &WriteOptions::default())
            .await
            .unwrap(),
    ];
    // An append cannot join an overwrite.
    let mut txn = table.new_transaction();
    txn.add(parts[0].clone()).unwrap();
    let append = table
        .stage(stream(0..1), StagedMode::Append, &WriteOptions::default())
        .await
        .unwrap();
    let err = txn.add(append.clone()).unwrap_err();
    assert!(err.to_string().contains("cannot join"), "{err}");
    txn.add(parts[1].clone()).unwrap();
    let table = txn.commit().await.unwrap();
    assert_eq!(ids(&table).await, (1000..1100).chain(2000..2100).collect::<Vec<_>>());

    // Descriptions from outside are checked.
    let mut json: serde_json::Value = serde_json::from_str(&append.to_json().unwrap()).unwrap();
    json["files"][0]["path"] = "../outside.parquet".into();
    let err = StagedWrite::from_json(&json.to_string()).unwrap_err();
    assert!(err.to_string().contains("not the path of a vlake data file"), "{err}");
    let other = uri.replace("/t", "/other");
    json["files"][0]["path"] = append.files[0].path.clone().into();
    json["table"] = other.into();
    let err = table
        .new_transaction()
        .add(StagedWrite::from_json(&json.to_string()).unwrap())
        .unwrap_err();
    assert!(err.to_string().contains("is for table"), "{err}");
}
