//! Concurrent writers: all appends land exactly once, versions stay contiguous, retries are
#![allow(clippy::unwrap_used, clippy::panic)]
//! idempotent, and the latest version is found without listing.

mod common;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use vlake_io::{InstrumentedStore, IoCounters};
use vlake_table::{cleanup, CleanupOptions, Error, Table, TableLocation, VersionRef, WriteMode, WriteOptions};

const WRITERS: i64 = 8;
const ROWS: i64 = 50;

#[test]
fn eight_threads_append_at_once() {
    let dir = tempdir();
    let uri = uri(&dir, "t");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(Table::create(&uri, schema())).unwrap();
    let barrier = Arc::new(std::sync::Barrier::new(WRITERS as usize));
    let handles: Vec<_> = (0..WRITERS)
        .map(|w| {
            let (uri, barrier) = (uri.clone(), barrier.clone());
            // Each writer has its own runtime, as separate programs would.
            std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async {
                    let table = Table::open(&uri).await.unwrap();
                    barrier.wait();
                    table
                        .append(stream(w * ROWS..(w + 1) * ROWS), &WriteOptions::default())
                        .await
                        .unwrap()
                        .version()
                })
            })
        })
        .collect();
    let mut committed: Vec<u64> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    committed.sort_unstable();
    assert_eq!(
        committed,
        (2..=9).collect::<Vec<_>>(),
        "each writer got its own version"
    );

    rt.block_on(async {
        let table = Table::open(&uri).await.unwrap();
        assert_eq!(table.version(), 9);
        assert_eq!(
            ids(&table).await,
            (0..WRITERS * ROWS).collect::<Vec<_>>(),
            "every row exactly once"
        );
        let versions: Vec<u64> = table.versions().await.unwrap().iter().map(|v| v.version).collect();
        assert_eq!(versions, (1..=9).collect::<Vec<_>>());
        // Row id ranges are disjoint and cover 0..400.
        let mut ranges: Vec<(u64, u64)> = table
            .manifest()
            .data_files
            .iter()
            .map(|f| (f.row_id_start, f.row_id_start + f.num_rows))
            .collect();
        ranges.sort_unstable();
        assert!(ranges.windows(2).all(|w| w[0].1 == w[1].0));
        assert_eq!(ranges.last().unwrap().1, (WRITERS * ROWS) as u64);
        // Each version has exactly one more file than its parent.
        for v in 2..=9 {
            let m = table.checkout(VersionRef::Version(v)).await.unwrap();
            assert_eq!(m.manifest().data_files.len() as u64, v - 1);
        }
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_overwrites_conflict_with_a_typed_error() {
    let dir = tempdir();
    let uri = uri(&dir, "t");
    let base = Table::write(
        TableLocation::parse(&uri).unwrap(),
        stream(0..10),
        WriteMode::Create,
        &WriteOptions::default(),
    )
    .await
    .unwrap();
    let first = base
        .overwrite(stream(100..110), &WriteOptions::default())
        .await
        .unwrap();
    assert_eq!(first.version(), 2);
    // A second overwrite based on the same read version loses.
    let err = base
        .overwrite(stream(200..210), &WriteOptions::default())
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::CommitConflict {
                version: 2,
                retryable: true,
                ..
            }
        ),
        "{err}"
    );
    // A restore based on a stale version loses too, and says why.
    let err = base.restore().await;
    assert!(err.is_ok(), "restore re-reads the latest version before committing");
    let latest = Table::open(&uri).await.unwrap();
    assert_eq!(latest.version(), 3);
    assert_eq!(ids(&latest).await, (0..10).collect::<Vec<_>>());
    // The loser's data files were removed again.
    let files = std::fs::read_dir(dir.path().join("t/data")).unwrap().count();
    let mut referenced = std::collections::BTreeSet::new();
    for v in 1..=3 {
        let t = latest.checkout(VersionRef::Version(v)).await.unwrap();
        referenced.extend(t.manifest().data_files.iter().map(|f| f.path.clone()));
    }
    assert_eq!(files, referenced.len());
}

#[tokio::test]
async fn a_retry_after_a_lost_response_applies_once() {
    let dir = tempdir();
    let uri = uri(&dir, "t");
    let counters = Arc::new(IoCounters::default());
    let location = TableLocation::parse(&uri)
        .unwrap()
        .with_store(|s| Arc::new(InstrumentedStore::new(s, counters.clone())));
    let table = Table::write(
        location.clone(),
        stream(0..10),
        WriteMode::Create,
        &WriteOptions::default(),
    )
    .await
    .unwrap();
    counters.ambiguous_manifest_puts.store(1, Ordering::SeqCst);
    let v2 = table.append(stream(10..20), &WriteOptions::default()).await.unwrap();
    assert_eq!(
        counters.ambiguous_manifest_puts.load(Ordering::SeqCst),
        0,
        "the fault fired"
    );
    assert_eq!(v2.version(), 2);
    let latest = Table::open(&uri).await.unwrap();
    assert_eq!(latest.version(), 2, "no second commit of the same transaction");
    assert_eq!(ids(&latest).await, (0..20).collect::<Vec<_>>());
}

#[tokio::test]
async fn a_failed_write_leaves_the_table_unchanged() {
    let dir = tempdir();
    let uri = uri(&dir, "t");
    let counters = Arc::new(IoCounters::default());
    let location = TableLocation::parse(&uri)
        .unwrap()
        .with_store(|s| Arc::new(InstrumentedStore::new(s, counters.clone())));
    let table = Table::write(location, stream(0..10), WriteMode::Create, &WriteOptions::default())
        .await
        .unwrap();
    let puts = counters.puts.load(Ordering::SeqCst);
    counters.fail_puts_after.store(puts + 1, Ordering::SeqCst);
    let err = table
        .append(stream(10..20), &WriteOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Io { .. }), "{err}");
    counters.fail_puts_after.store(0, Ordering::SeqCst);
    let latest = Table::open(&uri).await.unwrap();
    assert_eq!((latest.version(), ids(&latest).await), (1, (0..10).collect::<Vec<_>>()));
}

#[tokio::test]
async fn latest_version_lookup_lists_only_after_the_hint() {
    let dir = tempdir();
    let uri = uri(&dir, "t");
    let mut table = Table::create(&uri, schema()).await.unwrap();
    for i in 0..30 {
        table = table.append(stream(i..i + 1), &WriteOptions::default()).await.unwrap();
    }
    let counters = Arc::new(IoCounters::default());
    let location = TableLocation::parse(&uri)
        .unwrap()
        .with_store(|s| Arc::new(InstrumentedStore::new(s, counters.clone())));
    let opened = vlake_table::TableBuilder::new(location.clone())
        .version(VersionRef::Latest)
        .open()
        .await
        .unwrap();
    assert_eq!(opened.version(), 31);
    assert_eq!(counters.lists.load(Ordering::SeqCst), 1, "one listing after the hint");
    assert!(counters.heads.load(Ordering::SeqCst) <= 1);

    // A stale hint costs the same listing, not one probe per version.
    std::fs::write(dir.path().join("t/_latest.json"), br#"{"version": 3}"#).unwrap();
    let heads = counters.heads.load(Ordering::SeqCst);
    let opened = vlake_table::TableBuilder::new(location.clone())
        .version(VersionRef::Latest)
        .open()
        .await
        .unwrap();
    assert_eq!(opened.version(), 31);
    assert_eq!(counters.lists.load(Ordering::SeqCst), 2);
    assert_eq!(counters.heads.load(Ordering::SeqCst), heads);

    // Without a hint, vlake lists all versions once and still finds the latest version.
    std::fs::remove_file(dir.path().join("t/_latest.json")).unwrap();
    assert_eq!(
        vlake_table::TableBuilder::new(location)
            .version(VersionRef::Latest)
            .open()
            .await
            .unwrap()
            .version(),
        31
    );
    assert_eq!(counters.lists.load(Ordering::SeqCst), 3);
}

/// Issue 16, item 13: cleanup read every manifest and `versions` every full manifest, so both
/// grew with history squared. Cleanup now reads O(log n) manifests to find the retention
/// boundary plus the kept ones; a limited version listing reads only what it shows.
#[tokio::test]
async fn cleanup_and_versions_read_only_what_they_need() {
    let dir = tempdir();
    let uri = uri(&dir, "t");
    let mut table = Table::create(&uri, schema()).await.unwrap();
    for i in 0..64 {
        table = table.append(stream(i..i + 1), &WriteOptions::default()).await.unwrap();
    }
    table.create_tag("keep", 10).await.unwrap();
    let counters = Arc::new(IoCounters::default());
    let location = TableLocation::parse(&uri)
        .unwrap()
        .with_store(|s| Arc::new(InstrumentedStore::new(s, counters.clone())));
    let options = CleanupOptions::new(Duration::ZERO).dangerously_remove_files_younger_than_min_age(Duration::ZERO);
    let report = cleanup(&location, &options).await.unwrap();
    assert_eq!(
        report.versions_removed, 63,
        "65 versions, the latest and a tagged one kept"
    );
    // The latest manifest, 7 steps of binary search over 65 versions, the 2 kept manifests and
    // the tag; not one read per version.
    let gets = counters.gets.load(Ordering::SeqCst);
    assert!(gets <= 12, "cleanup read {gets} objects");

    let table = vlake_table::TableBuilder::new(location)
        .version(VersionRef::Latest)
        .open()
        .await
        .unwrap();
    assert_eq!(table.version(), 65);
    for i in 65..70 {
        let next = table.append(stream(i..i + 1), &WriteOptions::default()).await.unwrap();
        assert_eq!(next.version(), i as u64 + 1);
    }
    let before = counters.gets.load(Ordering::SeqCst);
    let newest = table.newest_versions(3).await.unwrap();
    assert_eq!(newest.iter().map(|v| v.version).collect::<Vec<_>>(), [68, 69, 70]);
    assert_eq!(newest[2].rows, 69);
    assert_eq!(counters.gets.load(Ordering::SeqCst) - before, 3);
    let all: Vec<u64> = table.versions().await.unwrap().iter().map(|v| v.version).collect();
    assert_eq!(all, [10, 65, 66, 67, 68, 69, 70]);
}

/// A writer whose newest listed version is removed (by a cleanup, because a newer one exists)
/// before it reads it must list again, not rebase onto an older version: the version number
/// after that one may have been freed by the cleanup, and a put there would land below the
/// latest, a commit acknowledged and never seen (found by the CLI stress tests).
#[tokio::test]
async fn a_writer_never_commits_below_a_version_cleanup_removed_under_it() {
    let dir = tempdir();
    let uri = uri(&dir, "t");
    let mut table = Table::create(&uri, schema()).await.unwrap();
    for i in 0..3 {
        table = table
            .append(stream(i * 10..i * 10 + 10), &WriteOptions::default())
            .await
            .unwrap();
    }
    assert_eq!(table.version(), 4);
    let counters = Arc::new(IoCounters::default());
    let location = TableLocation::parse(&uri)
        .unwrap()
        .with_store(|s| Arc::new(InstrumentedStore::new(s, counters.clone())));
    let stale = vlake_table::TableBuilder::new(location)
        .version(VersionRef::Version(2))
        .open()
        .await
        .unwrap();
    // A cleanup removed version 3 (4 exists), freeing its number; version 4 is removed from
    // under the writer's next read, as if between its listing and its read.
    std::fs::remove_file(dir.path().join("t/_versions/00000000000000000003.json")).unwrap();
    counters.vanishing_manifest_gets.store(1, Ordering::SeqCst);
    let committed = stale.append(stream(100..110), &WriteOptions::default()).await.unwrap();
    assert_eq!(
        committed.version(),
        5,
        "committed after the latest, not in the freed slot 3"
    );
    let latest = Table::open(&uri).await.unwrap();
    assert_eq!(latest.version(), 5);
    let expected: Vec<i64> = (0..30).chain(100..110).collect();
    assert_eq!(ids(&latest).await, expected);
}
