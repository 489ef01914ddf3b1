//! The conflict matrix lines of delete, update and compaction (format-spec/commit.md#conflicts):
//! two writers read the same version, one commits, then the other; the second rebases or fails
//! as the matrix says. Plus faults: failed and ambiguous commits of a delete.
#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use std::sync::atomic::Ordering;
use std::sync::Arc;

use common::*;
use vlake_io::{InstrumentedStore, IoCounters};
use vlake_table::{Assignment, CompactOptions, Error, IndexOptions, IndexType, Table, TableLocation, WriteOptions};

fn retryable(result: vlake_table::Result<Table>) -> String {
    match result {
        Err(Error::CommitConflict {
            retryable: true,
            reason,
            ..
        }) => reason,
        other => panic!("expected a retryable conflict, got {other:?}"),
    }
}

async fn set_score(t: &Table, sql: &str) -> vlake_table::Result<Table> {
    let set = Assignment::parse_list("score = 1").unwrap();
    t.update(&set, Some(&filter(sql)), &WriteOptions::default()).await
}

#[tokio::test]
async fn delete_and_update_rebase_over_appends_and_disjoint_changes() {
    let dir = tempdir();
    let uri = uri(&dir, "t");
    let base = three_files(&uri).await;
    // Theirs: an append. Ours: a delete read before it. The delete applies to the rows it saw.
    base.append(stream(30..40), &WriteOptions::default()).await.unwrap();
    let v5 = base.delete(&filter("id < 5 OR id >= 35")).await.unwrap();
    assert_eq!(v5.version(), 5);
    assert_eq!(ids(&v5).await, (5..40).collect::<Vec<_>>(), "appended rows stay");
    // Theirs: a delete in file 0; ours: an update in file 2, read before it.
    let v5_handle = v5.clone();
    v5.delete(&filter("id = 6")).await.unwrap();
    let v7 = set_score(&v5_handle, "id = 25").await.unwrap();
    assert_eq!(v7.version(), 7);
    let want: Vec<i64> = (5..40).filter(|i| *i != 6).collect();
    assert_eq!(ids(&v7).await, want);
    // Theirs: a compaction, which rewrites the appended file (it is small and has deletions);
    // ours: a delete in that file, read before: its file is gone.
    let v7_handle = v7.clone();
    let (v8, report) = v7.compact(&CompactOptions::default()).await.unwrap();
    assert!(report.files_removed >= 2 && v8.version() == 8);
    retryable(v7_handle.delete(&filter("id = 31")).await);
}

#[tokio::test]
async fn changes_to_the_same_file_conflict_retryably() {
    let dir = tempdir();
    let uri = uri(&dir, "t");
    let base = three_files(&uri).await;
    base.delete(&filter("id = 1")).await.unwrap();
    // delete vs delete, update vs delete, compaction vs delete: all touch file 0.
    assert!(retryable(base.delete(&filter("id = 2")).await).contains("data file"));
    assert!(retryable(set_score(&base, "id = 3").await).contains("data file"));
    match base.compact(&CompactOptions::default()).await {
        Err(Error::CommitConflict { retryable: true, .. }) => {}
        other => panic!("expected a retryable conflict, got {other:?}"),
    }
    // Retrying from a fresh read succeeds; nothing of the failed attempts is left behind.
    let latest = Table::open(&uri).await.unwrap();
    let v5 = latest.delete(&filter("id = 2")).await.unwrap();
    assert_eq!(
        ids(&v5).await,
        (0..30).filter(|i| *i != 1 && *i != 2).collect::<Vec<_>>()
    );
    assert_eq!(std::fs::read_dir(dir.path().join("t/_deletions")).unwrap().count(), 2);
    assert_eq!(std::fs::read_dir(dir.path().join("t/data")).unwrap().count(), 3);
}

#[tokio::test]
async fn overwrite_rebases_over_deletes_and_appends_over_anything() {
    let dir = tempdir();
    let uri = uri(&dir, "t");
    let base = three_files(&uri).await;
    base.delete(&filter("id = 1")).await.unwrap();
    let over = base
        .overwrite(stream(100..105), &WriteOptions::default())
        .await
        .unwrap();
    assert_eq!(ids(&over).await, (100..105).collect::<Vec<_>>());
    // A delete read before an overwrite finds its files gone.
    let before = over.clone();
    over.overwrite(stream(200..202), &WriteOptions::default())
        .await
        .unwrap();
    retryable(before.delete(&filter("id = 100")).await);
    // An append read before a delete still lands.
    let latest = Table::open(&uri).await.unwrap();
    latest.delete(&filter("id = 200")).await.unwrap();
    let appended = latest.append(stream(300..301), &WriteOptions::default()).await.unwrap();
    assert_eq!(ids(&appended).await, vec![201, 300]);
}

#[tokio::test]
async fn compaction_and_index_builds() {
    let dir = tempdir();
    let uri = uri(&dir, "t");
    let base = three_files(&uri).await;
    let index = || IndexOptions::new("vector", IndexType::IvfFlat);
    // Theirs: an index build; ours: a compaction read before it. The compaction rebases and the
    // index, which covered every source, covers the output.
    let indexed = base.create_index(&index()).await.unwrap();
    let (compacted, _) = base.compact(&CompactOptions::default()).await.unwrap();
    assert_eq!(compacted.version(), indexed.version() + 1);
    let entry = &compacted.manifest().indexes[0];
    assert_eq!(
        entry.covered_files,
        vec![compacted.manifest().data_files[0].path.clone()]
    );
    let q = [5.0f32, 5.1, 5.2, 5.3, 5.4, 5.5, 5.6, 5.7];
    let found = |exact| {
        let search = compacted.search("vector", &q).exact(exact).nprobes(64).limit(5);
        async move { search.nearest().await.unwrap().iter().map(|n| n.id).collect::<Vec<_>>() }
    };
    assert_eq!(found(false).await, found(true).await);
    // Theirs: a compaction; ours: an index build read before it: its files are gone.
    let dir2 = tempdir();
    let base = three_files(&common::uri(&dir2, "t")).await;
    base.compact(&CompactOptions::default()).await.unwrap();
    retryable(base.create_index(&index()).await);
}

#[tokio::test]
async fn a_failed_delete_leaves_the_table_unchanged_and_a_lost_response_applies_once() {
    let dir = tempdir();
    let uri = uri(&dir, "t");
    three_files(&uri).await;
    let counters = Arc::new(IoCounters::default());
    let location = TableLocation::parse(&uri)
        .unwrap()
        .with_store(|s| Arc::new(InstrumentedStore::new(s, counters.clone())));
    let table = vlake_table::TableBuilder::new(location)
        .version(vlake_table::VersionRef::Latest)
        .open()
        .await
        .unwrap();
    let puts = counters.puts.load(Ordering::SeqCst);
    // The second deletion file fails to upload: nothing is committed, the first is removed.
    counters.fail_puts_after.store(puts + 1, Ordering::SeqCst);
    let err = table.delete(&filter(&id_in((0..30).step_by(10)))).await.unwrap_err();
    assert!(matches!(err, Error::Io { .. }), "{err}");
    counters.fail_puts_after.store(0, Ordering::SeqCst);
    let latest = Table::open(&uri).await.unwrap();
    assert_eq!((latest.version(), ids(&latest).await), (3, (0..30).collect::<Vec<_>>()));
    assert_eq!(
        std::fs::read_dir(dir.path().join("t/_deletions")).map_or(0, |d| d.count()),
        0
    );

    // The manifest is written but the response is lost: the retry recognises its own commit.
    counters.ambiguous_manifest_puts.store(1, Ordering::SeqCst);
    let v4 = table.delete(&filter(&id_in((0..30).step_by(10)))).await.unwrap();
    assert_eq!(
        counters.ambiguous_manifest_puts.load(Ordering::SeqCst),
        0,
        "the fault fired"
    );
    assert_eq!(v4.version(), 4);
    let latest = Table::open(&uri).await.unwrap();
    assert_eq!(latest.version(), 4, "applied once");
    assert_eq!(ids(&latest).await, (0..30).filter(|i| i % 10 != 0).collect::<Vec<_>>());
}
