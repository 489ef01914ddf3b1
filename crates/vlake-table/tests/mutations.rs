//! Deletes, updates, compaction and optimize through the public API: what scans, counts,
//! `take_rows` and old versions see, and which files and features each one writes.
#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use std::time::Duration;

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int64Type, UInt64Type};
use arrow_array::Array;
use common::*;
use vlake_table::{
    Assignment, CleanupOptions, CompactOptions, Error, OptimizeOptions, Table, VersionRef, WriteOptions, ROW_ID,
};

/// (id, row id) of every row, sorted by id.
async fn ids_and_row_ids(table: &Table) -> Vec<(i64, u64)> {
    let batches = table.scan().columns(&["id"]).with_row_id(true).collect().await.unwrap();
    let mut out: Vec<(i64, u64)> = batches
        .iter()
        .flat_map(|b| {
            let ids = b.column(0).as_primitive::<Int64Type>().values().to_vec();
            let rows = b
                .column_by_name(ROW_ID)
                .unwrap()
                .as_primitive::<UInt64Type>()
                .values()
                .to_vec();
            ids.into_iter().zip(rows)
        })
        .collect();
    out.sort_unstable();
    out
}

fn files_under(dir: &tempfile::TempDir, sub: &str) -> usize {
    std::fs::read_dir(dir.path().join("t").join(sub)).map_or(0, |d| d.count())
}

#[tokio::test]
async fn delete_hides_rows_from_scans_counts_and_takes() {
    let dir = tempdir();
    let uri = uri(&dir, "t");
    let v3 = three_files(&uri).await;
    let v4 = v3
        .delete(&filter(&id_in((0..30).filter(|i| i % 3 == 0))))
        .await
        .unwrap();
    assert_eq!(v4.version(), 4);
    let live: Vec<i64> = (0..30).filter(|i| i % 3 != 0).collect();
    assert_eq!(ids(&v4).await, live);
    assert_eq!(v4.num_rows(), 20);
    assert_eq!(v4.scan().count_rows().await.unwrap(), 20);
    assert_eq!(v4.scan().filter_sql("id < 10").unwrap().count_rows().await.unwrap(), 6);
    assert_eq!(v4.manifest().transaction.operation.name(), "delete");
    // Data files are not rewritten; each gets a deletion file and the version needs the feature.
    assert_eq!(v4.manifest().data_files.len(), 3);
    assert!(v4.manifest().data_files.iter().all(|f| f.deletion.is_some()));
    assert!(v4.manifest().reader_features.contains("deletion_files"));
    assert_eq!(files_under(&dir, "_deletions"), 3);

    // Row ids of the survivors are unchanged; deleted ones are gone from takes.
    let before = ids_and_row_ids(&v3).await;
    let after = ids_and_row_ids(&v4).await;
    assert_eq!(
        after,
        before.iter().copied().filter(|(i, _)| i % 3 != 0).collect::<Vec<_>>()
    );
    let got = v4.take_rows(&[4, 1], &["id".to_string()]).await.unwrap();
    assert_eq!(got.column(0).as_primitive::<Int64Type>().values(), &[4, 1]);
    let err = v4.take_rows(&[3], &["id".to_string()]).await.unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err}");

    // A second delete adds to the first; deleting a whole file drops it.
    let v5 = v4.delete(&filter("id >= 20 OR id = 1")).await.unwrap();
    assert_eq!(v5.manifest().data_files.len(), 2);
    assert_eq!(
        ids(&v5).await,
        live.iter().copied().filter(|i| *i < 20 && *i != 1).collect::<Vec<_>>()
    );
    assert_eq!(
        v5.manifest().data_files[0].deletion.as_ref().unwrap().num_deleted,
        5,
        "old and new deletions of file 0"
    );
    // Nothing matches: no new version.
    assert_eq!(v5.delete(&filter("id > 1000")).await.unwrap().version(), 5);

    // Old versions still read as they were.
    let old = v5.checkout(VersionRef::Version(3)).await.unwrap();
    assert_eq!(ids(&old).await, (0..30).collect::<Vec<_>>());
    let reopened = Table::open(&uri).await.unwrap();
    assert_eq!(ids(&reopened).await, ids(&v5).await);
}

#[tokio::test]
async fn update_sets_values_and_gives_rewritten_rows_new_ids() {
    let dir = tempdir();
    let uri = uri(&dir, "t");
    let v3 = three_files(&uri).await;
    let set = Assignment::parse_list("score = score + 100, name = 'changed'").unwrap();
    let v4 = v3
        .update(&set, Some(&filter("id >= 5 AND id < 15")), &WriteOptions::default())
        .await
        .unwrap();
    assert_eq!(v4.manifest().transaction.operation.name(), "update");
    assert_eq!(v4.num_rows(), 30);
    assert_eq!(ids(&v4).await, (0..30).collect::<Vec<_>>());
    let batches = v4.scan().columns(&["id", "name", "score"]).collect().await.unwrap();
    for b in &batches {
        for r in 0..b.num_rows() {
            let id = b.column(0).as_primitive::<Int64Type>().value(r);
            let name = b.column(1).as_string::<i32>().value(r);
            let score = b.column(2).as_primitive::<Float64Type>();
            let old = (id % 5 != 0).then_some(id as f64 * 0.5);
            let (want_name, want_score) = if (5..15).contains(&id) {
                ("changed".to_string(), old.map(|s| s + 100.0))
            } else {
                (format!("row-{id:06}"), old)
            };
            assert_eq!(name, want_name, "id {id}");
            assert_eq!(score.is_valid(r).then(|| score.value(r)), want_score, "id {id}");
        }
    }
    // The rewritten rows have new ids (from next_row_id); the others keep theirs.
    let before: std::collections::HashMap<i64, u64> = ids_and_row_ids(&v3).await.into_iter().collect();
    for (id, row_id) in ids_and_row_ids(&v4).await {
        if (5..15).contains(&id) {
            assert!(row_id >= 30, "id {id} got row id {row_id}");
        } else {
            assert_eq!(row_id, before[&id], "id {id}");
        }
    }
    assert_eq!(v4.manifest().next_row_id, 40);
    // Bad assignments fail before anything is written.
    let bad = Assignment::parse_list("nope = 1").unwrap();
    let err = v4.update(&bad, None, &WriteOptions::default()).await.unwrap_err();
    assert!(matches!(&err, Error::NotFound { .. } | Error::InvalidInput(_)), "{err}");
    let old = v4.checkout(VersionRef::Version(3)).await.unwrap();
    let names = old
        .scan()
        .columns(&["name"])
        .filter_sql("id = 7")
        .unwrap()
        .collect()
        .await
        .unwrap();
    assert_eq!(names[0].column(0).as_string::<i32>().value(0), "row-000007");
}

#[tokio::test]
async fn compaction_merges_files_drops_deleted_rows_and_keeps_row_ids() {
    let dir = tempdir();
    let uri = uri(&dir, "t");
    let v3 = three_files(&uri).await;
    let v4 = v3
        .delete(&filter(&id_in((0..30).filter(|i| i % 4 == 1))))
        .await
        .unwrap();
    let before = ids_and_row_ids(&v4).await;
    let (v5, report) = v4.compact(&CompactOptions::default()).await.unwrap();
    assert_eq!(v5.manifest().transaction.operation.name(), "compact");
    assert_eq!((report.files_removed, report.files_added), (3, 1));
    assert_eq!(report.deletions_materialized, 8);
    assert_eq!(report.rows_rewritten, 22);
    let file = &v5.manifest().data_files[0];
    assert!(file.deletion.is_none() && file.row_ids.is_some(), "{file:?}");
    assert!(v5.manifest().reader_features.contains("row_id_files"));
    assert_eq!(ids_and_row_ids(&v5).await, before, "same rows, same row ids");
    let got = v5.take_rows(&[26, 0], &["id".to_string()]).await.unwrap();
    assert_eq!(got.column(0).as_primitive::<Int64Type>().values(), &[26, 0]);
    assert!(v5.take_rows(&[1], &["id".to_string()]).await.is_err(), "deleted row");
    // Compacting again changes nothing.
    let (again, report) = v5.compact(&CompactOptions::default()).await.unwrap();
    assert_eq!((again.version(), report.files_removed), (5, 0));
    // Deletes and updates work on compacted files.
    let v6 = v5.delete(&filter("id = 26")).await.unwrap();
    assert!(!ids(&v6).await.contains(&26));
    assert_eq!(
        ids_and_row_ids(&v6).await,
        before.iter().copied().filter(|(i, _)| *i != 26).collect::<Vec<_>>()
    );

    // Small files without deletions merge into one file with consecutive ids: no row-id file.
    let dir2 = tempdir();
    let plain = three_files(&common::uri(&dir2, "t")).await;
    let (merged, _) = plain.compact(&CompactOptions::default()).await.unwrap();
    assert_eq!(merged.manifest().data_files.len(), 1);
    assert!(merged.manifest().data_files[0].row_ids.is_none());
    assert!(merged.manifest().reader_features.is_empty(), "no feature needed");
    assert_eq!(ids_and_row_ids(&merged).await, ids_and_row_ids(&plain).await);
    // Files at the target size are left alone.
    let (same, report) = plain
        .compact(&CompactOptions {
            target_rows_per_file: 10,
            ..CompactOptions::default()
        })
        .await
        .unwrap();
    assert_eq!((same.version(), report.files_removed), (plain.version(), 0));

    // Old versions read, and optimize's cleanup removes what only they used.
    let old = v6.checkout(VersionRef::Version(3)).await.unwrap();
    assert_eq!(ids(&old).await, (0..30).collect::<Vec<_>>());
    let v6_rows = ids_and_row_ids(&v6).await;
    let (latest, report) = v6
        .optimize(&OptimizeOptions {
            cleanup_older_than: Duration::ZERO,
            ..Default::default()
        })
        .await
        .unwrap();
    // Versions and replaced files are younger than the minimum age: kept for writers in flight.
    assert_eq!(report.cleanup.versions_removed, 0, "{report:?}");
    assert_eq!(report.cleanup.files_removed, 0, "{report:?}");
    assert_eq!(ids_and_row_ids(&latest).await, v6_rows);
    // Nothing else writes: a cleanup that waives the minimum removes what only old versions used.
    let unsafe_now = CleanupOptions::new(Duration::ZERO).dangerously_remove_files_younger_than_min_age(Duration::ZERO);
    let report = latest.cleanup(&unsafe_now).await.unwrap();
    assert!(report.versions_removed >= 5 && report.files_removed > 0, "{report:?}");
    assert_eq!(ids_and_row_ids(&latest).await, v6_rows);
    assert_eq!(files_under(&dir, "data"), latest.manifest().data_files.len());
    let referenced_row_ids = latest
        .manifest()
        .data_files
        .iter()
        .filter(|f| f.row_ids.is_some())
        .count();
    assert_eq!(files_under(&dir, "_row_ids"), referenced_row_ids);
}
