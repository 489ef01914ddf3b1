//! Sessions: each holds its own caches within its own budgets, handles derived from a table
//! (its writes, checkouts) keep its session, and nothing is shared between two sessions.
#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use common::*;
use vlake_table::{Session, SessionOptions, Table, TableBuilder, TableLocation, VersionRef, WriteMode, WriteOptions};

/// An exact vector search of `table` (no index: it reads every file's vectors).
async fn search(table: &Table) -> Vec<i64> {
    let query: Vec<f32> = (0..DIM).map(|d| 44.0 + d as f32 / 10.0).collect();
    let found = table.search("vector", &query).limit(3).execute().await.unwrap();
    let mut out = found
        .column_by_name("id")
        .unwrap()
        .as_any()
        .downcast_ref::<arrow_array::Int64Array>()
        .unwrap()
        .values()
        .to_vec();
    out.sort_unstable();
    out
}

#[tokio::test]
async fn two_sessions_with_different_budgets_share_no_cache_entry() {
    let dir = tempdir();
    let uri = uri(&dir, "t");
    let written = TableBuilder::new(TableLocation::parse(&uri).unwrap())
        .write(stream(0..300), WriteMode::Create, &WriteOptions::default())
        .await
        .unwrap();
    written
        .append(stream(300..600), &WriteOptions::default())
        .await
        .unwrap();

    let small = Session::new(SessionOptions::default().with_vector_cache_bytes(0));
    let large = Session::new(SessionOptions::default().with_vector_cache_bytes(64 << 20));
    let open = |session: &Session| Table::builder(&uri).session(session.clone()).open();
    let (a, b) = (open(&small).await.unwrap(), open(&large).await.unwrap());
    assert!(a.session().same_as(&small) && b.session().same_as(&large));

    // The same answer through both sessions.
    assert_eq!(search(&a).await, [43, 44, 45]);
    assert_eq!(search(&b).await, [43, 44, 45]);
    let vectors = |s: &Session| s.stats().get("vectors").cloned().unwrap_or_default();
    let footers = |s: &Session| s.stats().get("footers").cloned().unwrap_or_default();

    // Within its budget, the large session holds both files' vectors and serves the second
    // search from them; the small one (budget 0) holds none and reads them again.
    assert_eq!((vectors(&large).entries, vectors(&large).misses), (2, 2));
    assert_eq!((vectors(&small).entries, vectors(&small).capacity), (0, 0));
    assert_eq!(search(&b).await, [43, 44, 45]);
    assert_eq!((vectors(&large).hits, vectors(&large).misses), (2, 2));
    assert_eq!(search(&a).await, [43, 44, 45]);
    assert_eq!((vectors(&small).hits, vectors(&small).misses), (0, 4));
    assert!(vectors(&large).weight > 0 && vectors(&large).weight <= 64 << 20);

    // Each session read the footers for itself: the large session's entries did not serve the
    // small one.
    assert_eq!(footers(&small).entries, 2);
    assert_eq!(footers(&large).entries, 2);
    assert!(footers(&small).misses >= 2 && footers(&large).misses >= 2);

    // Writes and checkouts keep the handle's session.
    let appended = b.append(stream(600..610), &WriteOptions::default()).await.unwrap();
    assert!(appended.session().same_as(&large));
    assert!(appended
        .checkout(VersionRef::Version(1))
        .await
        .unwrap()
        .session()
        .same_as(&large));
    // A handle opened without a session gets a new one of its own.
    let alone = Table::open(&uri).await.unwrap();
    assert!(!alone.session().same_as(&large) && !alone.session().same_as(&small));

    // Clearing one session empties its caches and leaves the other's alone.
    large.clear();
    assert_eq!((vectors(&large).entries, footers(&large).entries), (0, 0));
    assert_eq!(footers(&small).entries, 2);
    assert_eq!(search(&b).await, [43, 44, 45]);
    assert_eq!(vectors(&large).misses, 4, "read again after clear");
}
