//! Primary keys and merge-insert: matching, global dedup, bounded-memory passes, errors, and
//! four concurrent upserting writers.
#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int64Type};
use arrow_array::{Array, Float64Array, RecordBatch};
use common::*;
use vlake_table::{
    BatchStream, Error, MergeInsert, MergeReport, Table, TableLocation, WhenMatched, WhenNotMatched,
    WhenNotMatchedBySource, WriteMode, WriteOptions,
};

fn keyed() -> WriteOptions {
    WriteOptions {
        primary_key: vec!["id".into()],
        ..Default::default()
    }
}

async fn keyed_table(uri: &str, ids: std::ops::Range<i64>) -> Table {
    Table::write(
        TableLocation::parse(uri).unwrap(),
        stream(ids),
        WriteMode::Create,
        &keyed(),
    )
    .await
    .unwrap()
}

/// Rows of `ids` whose score is `score`.
fn scored(ids: impl IntoIterator<Item = i64>, score: f64) -> BatchStream {
    let ids: Vec<i64> = ids.into_iter().collect();
    let batches = ids
        .iter()
        .map(|i| {
            let b = batch(*i..*i + 1);
            let mut columns = b.columns().to_vec();
            columns[2] = Arc::new(Float64Array::from(vec![score]));
            RecordBatch::try_new(schema(), columns).unwrap()
        })
        .collect();
    BatchStream::from_batches(schema(), batches)
}

/// id -> score of the live rows.
async fn scores(table: &Table) -> BTreeMap<i64, Option<f64>> {
    let batches = table.scan().columns(&["id", "score"]).collect().await.unwrap();
    let mut out = BTreeMap::new();
    for b in batches {
        let ids = b.column(0).as_primitive::<Int64Type>();
        let s = b.column(1).as_primitive::<Float64Type>();
        for i in 0..b.num_rows() {
            let previous = out.insert(ids.value(i), s.is_valid(i).then(|| s.value(i)));
            assert!(previous.is_none(), "key {} is live twice", ids.value(i));
        }
    }
    out
}

#[tokio::test]
async fn upsert_updates_matched_and_inserts_new_rows() {
    let dir = tempdir();
    let t = keyed_table(&uri(&dir, "t"), 0..10).await;
    assert_eq!(t.primary_key_names(), vec!["id"]);
    assert!(t.manifest().writer_features.contains("primary_key"));
    let (t2, report) = t
        .merge_insert(scored(5..15, 99.0), &MergeInsert::upsert(), &WriteOptions::default())
        .await
        .unwrap();
    assert_eq!(
        report,
        MergeReport {
            inserted: 5,
            updated: 5,
            deleted: 0
        }
    );
    let s = scores(&t2).await;
    assert_eq!(s.keys().copied().collect::<Vec<_>>(), (0..15).collect::<Vec<_>>());
    assert!((5..15).all(|i| s[&i] == Some(99.0)));
    assert_eq!(s[&2], Some(1.0));
    assert_eq!(t2.manifest().transaction.operation.name(), "upsert");
    // The old version still reads as it was.
    assert_eq!(scores(&t).await.len(), 10);
}

#[tokio::test]
async fn merge_clauses_do_what_they_say() {
    let dir = tempdir();
    let t = keyed_table(&uri(&dir, "t"), 0..10).await;
    // Insert if not exists: matched rows keep their old values.
    let insert_new = MergeInsert {
        when_matched: WhenMatched::DoNothing,
        ..MergeInsert::upsert()
    };
    let (t, r) = t
        .merge_insert(scored(8..12, 7.0), &insert_new, &WriteOptions::default())
        .await
        .unwrap();
    assert_eq!((r.inserted, r.updated), (2, 0));
    let s = scores(&t).await;
    assert_eq!(s[&8], Some(4.0));
    assert_eq!(s[&11], Some(7.0));
    // Update only: unmatched source rows are dropped.
    let update_only = MergeInsert {
        when_not_matched: WhenNotMatched::DoNothing,
        ..MergeInsert::upsert()
    };
    let (t, r) = t
        .merge_insert(scored([1, 50], 3.0), &update_only, &WriteOptions::default())
        .await
        .unwrap();
    assert_eq!((r.inserted, r.updated), (0, 1));
    assert!(!scores(&t).await.contains_key(&50));
    // Replace by source, limited by a predicate: unmatched rows with id < 5 are deleted.
    let sync = MergeInsert {
        when_not_matched_by_source: WhenNotMatchedBySource::DeleteIf(filter("id < 5")),
        ..MergeInsert::upsert()
    };
    let (t, r) = t
        .merge_insert(scored([0, 9], 1.5), &sync, &WriteOptions::default())
        .await
        .unwrap();
    assert_eq!((r.inserted, r.updated, r.deleted), (0, 2, 4));
    let s = scores(&t).await;
    assert_eq!(s.keys().copied().collect::<Vec<_>>(), vec![0, 5, 6, 7, 8, 9, 10, 11]);
    // Full replace: every unmatched row goes.
    let replace = MergeInsert {
        when_not_matched_by_source: WhenNotMatchedBySource::Delete,
        ..MergeInsert::upsert()
    };
    let (t, r) = t
        .merge_insert(scored([6, 100], 2.0), &replace, &WriteOptions::default())
        .await
        .unwrap();
    assert_eq!((r.inserted, r.updated, r.deleted), (1, 1, 7));
    assert_eq!(scores(&t).await.keys().copied().collect::<Vec<_>>(), vec![6, 100]);
    // A merge that changes nothing commits nothing.
    let (same, r) = t
        .merge_insert(scored([6], 9.0), &insert_new, &WriteOptions::default())
        .await
        .unwrap();
    assert_eq!((same.version(), r), (t.version(), MergeReport::default()));
}

#[tokio::test]
async fn keys_stay_unique_through_every_write_path() {
    let dir = tempdir();
    let u = uri(&dir, "t");
    let t = keyed_table(&u, 0..10).await;
    // An append is an insert: an existing key fails it, and nothing is committed.
    let err = t.append(stream(9..12), &WriteOptions::default()).await.unwrap_err();
    assert!(matches!(err, Error::AlreadyExists { .. }), "{err}");
    assert!(err.to_string().contains("key (9)"), "{err}");
    let t = Table::open(&u).await.unwrap();
    assert_eq!(t.version(), 1);
    // Keys twice in one input fail creates, appends, overwrites and merges.
    let twice = || BatchStream::from_batches(schema(), vec![batch(20..22), batch(21..23)]);
    for err in [
        t.append(twice(), &WriteOptions::default()).await.unwrap_err(),
        t.overwrite(twice(), &WriteOptions::default()).await.unwrap_err(),
        t.merge_insert(twice(), &MergeInsert::upsert(), &WriteOptions::default())
            .await
            .unwrap_err(),
        Table::write(
            TableLocation::parse(&uri(&dir, "other")).unwrap(),
            twice(),
            WriteMode::Create,
            &keyed(),
        )
        .await
        .unwrap_err(),
    ] {
        assert!(err.to_string().contains("key (21) is given twice"), "{err}");
    }
    // Updating a key column is refused; the overwrite keeps the key.
    let set = vlake_table::Assignment::parse_list("id = id + 100").unwrap();
    let err = t.update(&set, None, &WriteOptions::default()).await.unwrap_err();
    assert!(err.to_string().contains("primary key"), "{err}");
    let t = t.overwrite(stream(0..3), &WriteOptions::default()).await.unwrap();
    assert_eq!(t.primary_key_names(), vec!["id"]);
    // Bad keys at creation.
    for (key, want) in [("vector", "cannot be a key"), ("nope", "column 'nope'")] {
        let opts = WriteOptions {
            primary_key: vec![key.into()],
            ..Default::default()
        };
        let err = Table::write(
            TableLocation::parse(&uri(&dir, key)).unwrap(),
            stream(0..3),
            WriteMode::Create,
            &opts,
        )
        .await
        .unwrap_err();
        assert!(err.to_string().contains(want), "{err}");
    }
    // A table without a key merges on named columns, and says so when none are named.
    let plain = Table::write(
        TableLocation::parse(&uri(&dir, "plain")).unwrap(),
        stream(0..5),
        WriteMode::Create,
        &WriteOptions::default(),
    )
    .await
    .unwrap();
    let err = plain
        .merge_insert(stream(3..6), &MergeInsert::upsert(), &WriteOptions::default())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("no primary key"), "{err}");
    let on_id = MergeInsert {
        on: vec!["id".into()],
        ..MergeInsert::upsert()
    };
    let (plain, r) = plain
        .merge_insert(scored(3..6, 1.0), &on_id, &WriteOptions::default())
        .await
        .unwrap();
    assert_eq!((r.inserted, r.updated, plain.num_rows()), (1, 2, 6));
}

#[tokio::test]
async fn null_keys_are_refused() {
    let dir = tempdir();
    let t = keyed_table(&uri(&dir, "t"), 0..3).await;
    let nullable = Arc::new(arrow_schema::Schema::new(vec![arrow_schema::Field::new(
        "id",
        arrow_schema::DataType::Int64,
        true,
    )]));
    let b = RecordBatch::try_new(
        nullable.clone(),
        vec![Arc::new(arrow_array::Int64Array::from(vec![Some(5), None]))],
    )
    .unwrap();
    let err = t
        .merge_insert(
            BatchStream::from_batches(nullable, vec![b]),
            &MergeInsert::upsert(),
            &WriteOptions::default(),
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("null"), "{err}");
}

#[tokio::test]
async fn many_passes_give_the_same_result_as_one() {
    let dir = tempdir();
    let t = keyed_table(&uri(&dir, "t"), 0..500).await;
    let small = MergeInsert {
        keys_per_pass: 37,
        ..MergeInsert::upsert()
    };
    let (t, r) = t
        .merge_insert(scored((250..750).step_by(2), 5.0), &small, &WriteOptions::default())
        .await
        .unwrap();
    assert_eq!((r.inserted, r.updated), (125, 125));
    let s = scores(&t).await;
    assert_eq!(s.len(), 625);
    assert!((250..750).step_by(2).all(|i| s[&i] == Some(5.0)));
}

/// Four writers upsert overlapping key ranges at the same time; every commit either lands or
/// retries, and no key is ever live twice, at any version.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn four_concurrent_upserters_never_duplicate_keys() {
    let dir = tempdir();
    let u = uri(&dir, "t");
    keyed_table(&u, 0..20).await;
    let mut writers = Vec::new();
    for w in 0..4i64 {
        let u = u.clone();
        writers.push(tokio::spawn(async move {
            for round in 0..4i64 {
                let t = Table::open(&u).await.unwrap();
                // Overlapping ranges: every writer touches keys 10..40 in every round.
                let start = 10 + (w * 7 + round * 3) % 10;
                t.merge_insert(
                    scored(start..start + 20, (w * 10 + round) as f64),
                    &MergeInsert::upsert(),
                    &WriteOptions::default(),
                )
                .await
                .unwrap();
            }
        }));
    }
    for w in writers {
        w.await.unwrap();
    }
    let latest = Table::open(&u).await.unwrap();
    assert_eq!(latest.version(), 17, "16 upserts on top of the create");
    for v in 1..=latest.version() {
        let t = latest.checkout(vlake_table::VersionRef::Version(v)).await.unwrap();
        let s = scores(&t).await; // panics on a duplicate key
        assert_eq!(s.len() as u64, t.num_rows());
    }
    let s = scores(&latest).await;
    assert_eq!(
        s.keys().copied().collect::<Vec<_>>(),
        (0..s.len() as i64).collect::<Vec<_>>()
    );
}

/// Two inserts of the same new key race: exactly one lands, the other fails with the key named.
#[tokio::test]
async fn racing_inserts_of_one_key_leave_one_row() {
    let dir = tempdir();
    let u = uri(&dir, "t");
    let base = keyed_table(&u, 0..5).await;
    base.append(stream(10..12), &WriteOptions::default()).await.unwrap();
    // Read before the append committed: the rebase finds the inserted key.
    let err = base.append(stream(11..13), &WriteOptions::default()).await.unwrap_err();
    assert!(matches!(err, Error::AlreadyExists { .. }), "{err}");
    // An upsert read before the append updates the key instead of duplicating it.
    let (t, r) = base
        .merge_insert(scored([11, 20], 8.0), &MergeInsert::upsert(), &WriteOptions::default())
        .await
        .unwrap();
    assert_eq!((r.inserted, r.updated), (1, 1));
    let s = scores(&t).await;
    assert_eq!(s[&11], Some(8.0));
    assert_eq!(s.len(), 8);
}

/// Conflict-matrix lines of upsert and schema changes: each pair of writers read the same
/// version; the second commit rebases, retries itself or fails as format-spec/commit.md says.
#[tokio::test]
async fn upserts_and_schema_changes_race_as_the_matrix_says() {
    use vlake_table::{ColumnValue, CompactOptions, SchemaChange, ValueExpr};
    let dir = tempdir();
    let u = uri(&dir, "t");
    let base = keyed_table(&u, 0..10).await;
    // Theirs: a delete of a row in the file ours updates. Ours (an upsert) re-matches and lands.
    base.delete(&filter("id = 3")).await.unwrap();
    let (t, r) = base
        .merge_insert(scored([3, 4], 1.0), &MergeInsert::upsert(), &WriteOptions::default())
        .await
        .unwrap();
    assert_eq!(
        (r.inserted, r.updated),
        (1, 1),
        "3 was deleted first, so it is inserted"
    );
    // Theirs: a compaction of the files ours touches; ours re-matches against the outputs.
    let (_, report) = t.compact(&CompactOptions::default()).await.unwrap();
    assert!(report.files_removed > 0);
    let (t, r) = t
        .merge_insert(scored([4, 50], 2.0), &MergeInsert::upsert(), &WriteOptions::default())
        .await
        .unwrap();
    assert_eq!((r.inserted, r.updated), (1, 1));
    assert_eq!(scores(&t).await.len(), 11);
    // Theirs: an upsert; ours: a schema change without backfill, read before it: rebases.
    let read = t.clone();
    t.merge_insert(scored([60], 3.0), &MergeInsert::upsert(), &WriteOptions::default())
        .await
        .unwrap();
    let add = |name: &str, value| SchemaChange::AddColumn {
        field: arrow_schema::Field::new(name, arrow_schema::DataType::Float64, true),
        value,
    };
    let altered = read.alter_schema(&[add("a", ColumnValue::Null)]).await.unwrap();
    assert_eq!(
        altered.num_rows(),
        12,
        "the schema change kept the concurrent upsert's row"
    );
    // Theirs: an append; ours: a backfill read before it: conflict, retryable.
    let read = altered.clone();
    altered.append(stream(70..71), &WriteOptions::default()).await.unwrap();
    let expr = ValueExpr::parse("score + 1").unwrap();
    let err = read
        .alter_schema(&[add("b", ColumnValue::Expr(expr))])
        .await
        .unwrap_err();
    assert!(matches!(err, Error::CommitConflict { retryable: true, .. }), "{err}");
    // Theirs: a schema change; ours: an upsert of rows written for the old schema: fails.
    let latest = Table::open(&u).await.unwrap();
    latest
        .alter_schema(&[SchemaChange::DropColumn("half".into())])
        .await
        .unwrap();
    let err = latest
        .merge_insert(scored([1], 4.0), &MergeInsert::upsert(), &WriteOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::CommitConflict { retryable: false, .. }), "{err}");
    // Nothing was duplicated along the way.
    let t = Table::open(&u).await.unwrap();
    assert_eq!(scores(&t).await.len() as u64, t.num_rows());
}

/// Every file under `root`, relative to it.
fn all_files(root: &std::path::Path) -> Vec<String> {
    let mut out = vec![];
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push(path.strip_prefix(root).unwrap().display().to_string());
            }
        }
    }
    out.sort();
    out
}

/// A merge that fails before its commit (here the deletion file of the source rows it skips
/// cannot be written) removes every file it wrote, its source rows included: only a commit
/// whose outcome is unknown leaves files for cleanup.
#[tokio::test]
async fn a_merge_that_fails_before_committing_removes_its_files() {
    use std::sync::atomic::Ordering::SeqCst;
    use vlake_io::{InstrumentedStore, IoCounters};
    let dir = tempdir();
    let uri = uri(&dir, "t");
    keyed_table(&uri, 0..10).await;
    let root = dir.path().join("t");
    let before = all_files(&root);
    let counters = Arc::new(IoCounters::default());
    let location = TableLocation::parse(&uri)
        .unwrap()
        .with_store(|s| Arc::new(InstrumentedStore::new(s, counters.clone())));
    let t = vlake_table::TableBuilder::new(location)
        .version(vlake_table::VersionRef::Latest)
        .open()
        .await
        .unwrap();
    let insert_new = MergeInsert {
        when_matched: WhenMatched::DoNothing,
        ..MergeInsert::upsert()
    };
    // The source rows' data file is the next put; the deletion file of rows 8 and 9 (matched,
    // so skipped) is the one after it, and fails.
    counters.fail_puts_after.store(counters.puts.load(SeqCst) + 1, SeqCst);
    let err = t
        .merge_insert(scored(8..12, 7.0), &insert_new, &WriteOptions::default())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("injected failure"), "{err}");
    assert_eq!(counters.puts.load(SeqCst), 2, "the source file was written first");
    assert_eq!(all_files(&root), before);
}
