//! Create, append, overwrite, scans, time travel, tags, restore and cleanup through the public API.
#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use std::time::Duration;

use arrow_array::cast::AsArray;
use arrow_array::types::{Float16Type, UInt64Type};
use arrow_array::Array;
use common::*;
use vlake_table::{CleanupOptions, Error, Table, TableLocation, VersionRef, WriteMode, WriteOptions};

async fn create(uri: &str, ids: std::ops::Range<i64>) -> Table {
    Table::write(
        TableLocation::parse(uri).unwrap(),
        stream(ids),
        WriteMode::Create,
        &WriteOptions::default(),
    )
    .await
    .unwrap()
}

#[tokio::test]
async fn create_append_overwrite_and_read_back() {
    let dir = tempdir();
    let uri = uri(&dir, "t");
    let v1 = create(&uri, 0..100).await;
    assert_eq!(v1.version(), 1);
    assert_eq!(v1.num_rows(), 100);
    let v2 = v1.append(stream(100..150), &WriteOptions::default()).await.unwrap();
    assert_eq!((v2.version(), v2.num_rows()), (2, 150));
    assert_eq!(ids(&v2).await, (0..150).collect::<Vec<_>>());

    // Values, nulls and f16 vectors survive the round trip.
    let batches = v2.scan().collect().await.unwrap();
    let got = arrow_select::concat::concat_batches(v2.schema(), &batches).unwrap();
    let want = arrow_select::concat::concat_batches(&schema(), &[batch(0..100), batch(100..150)]).unwrap();
    assert_eq!(got, want);
    assert_eq!(got.column(3).null_count(), (0..150).filter(|i| i % 7 == 0).count());
    let half = got
        .column(4)
        .as_fixed_size_list()
        .values()
        .as_primitive::<Float16Type>()
        .value(2 * 42);
    assert_eq!(half.to_f32(), 42.0);

    // Reopening sees the latest version; old versions stay readable.
    let reopened = Table::open(&uri).await.unwrap();
    assert_eq!(reopened.version(), 2);
    assert_eq!(
        ids(&reopened.checkout(VersionRef::Version(1)).await.unwrap()).await,
        (0..100).collect::<Vec<_>>()
    );

    let v3 = Table::write(
        TableLocation::parse(&uri).unwrap(),
        stream(500..510),
        WriteMode::Overwrite,
        &WriteOptions::default(),
    )
    .await
    .unwrap();
    assert_eq!(v3.version(), 3);
    assert_eq!(ids(&v3).await, (500..510).collect::<Vec<_>>());
    // Row ids are never reused: the overwrite's rows continue the sequence.
    assert_eq!(v3.manifest().data_files[0].row_id_start, 150);
    let versions: Vec<u64> = v3.versions().await.unwrap().iter().map(|v| v.version).collect();
    assert_eq!(versions, [1, 2, 3]);
}

#[tokio::test]
async fn scans_project_filter_limit_and_prune() {
    let dir = tempdir();
    let uri = uri(&dir, "t");
    let mut table = create(&uri, 0..1000).await;
    for chunk in 1..4 {
        table = table
            .append(stream(chunk * 1000..chunk * 1000 + 1000), &WriteOptions::default())
            .await
            .unwrap();
    }
    let scan = table
        .scan()
        .columns(&["name", "id"])
        .filter_sql("id >= 1990 AND id < 2010")
        .unwrap();
    let plan = scan.plan().unwrap();
    assert_eq!(plan.tasks.len(), 2, "files without ids in range are pruned");
    assert_eq!(plan.pruned_files, 2);
    let batches = scan.collect().await.unwrap();
    let names: Vec<String> = batches
        .iter()
        .flat_map(|b| {
            b.column(0)
                .as_string::<i32>()
                .iter()
                .map(|s| s.unwrap().to_string())
                .collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(names.len(), 20);
    assert_eq!(names[0], "row-001990");
    assert_eq!(batches[0].schema().field(1).name(), "id");

    assert_eq!(
        table
            .scan()
            .filter_sql("score IS NULL")
            .unwrap()
            .count_rows()
            .await
            .unwrap(),
        800
    );
    assert_eq!(
        table
            .scan()
            .filter_sql("name LIKE 'row-0000%'")
            .unwrap()
            .count_rows()
            .await
            .unwrap(),
        100
    );
    assert_eq!(table.scan().count_rows().await.unwrap(), 4000);

    let limited = table.scan().limit(1500).batch_size(100).collect().await.unwrap();
    assert_eq!(limited.iter().map(|b| b.num_rows()).sum::<usize>(), 1500);

    // Row ids are stable and filterable; tasks serialise and run on their own.
    let plan = table
        .scan()
        .with_row_id(true)
        .filter_sql("id = 3500")
        .unwrap()
        .plan()
        .unwrap();
    let json = serde_json::to_string(&plan).unwrap();
    let plan: vlake_table::ScanPlan = serde_json::from_str(&json).unwrap();
    assert_eq!(plan.tasks.len(), 1);
    let location = TableLocation::parse(&plan.table_uri).unwrap();
    let rows = plan.tasks[0]
        .execute(&location, &vlake_table::Session::default())
        .await
        .unwrap()
        .collect_batches()
        .await
        .unwrap();
    let row_ids = rows[0].column_by_name("_rowid").unwrap().as_primitive::<UInt64Type>();
    assert_eq!(row_ids.value(0), 3500);

    let err = table.scan().columns(&["nope"]).plan().unwrap_err();
    assert!(
        matches!(err, Error::NotFound { .. }) && err.to_string().contains("nope"),
        "{err}"
    );
}

/// Scans with view types return the same rows, strings as `Utf8View`, through the late
/// materialising filter (a string comparison, LIKE) and with row ids (filtered after reading).
#[tokio::test]
async fn scans_with_view_types_match_plain_scans() {
    let dir = tempdir();
    let table = create(&uri(&dir, "t"), 0..3000).await;
    for (filter, row_ids) in [("name >= 'row-002990'", false), ("name LIKE 'row-0000%'", true)] {
        let scan = |views: bool| {
            table
                .scan()
                .columns(&["name", "id"])
                .filter_sql(filter)
                .unwrap()
                .with_row_id(row_ids)
                .view_types(views)
        };
        let views = scan(true);
        assert_eq!(
            views.output_schema().unwrap().field(0).data_type(),
            &arrow_schema::DataType::Utf8View
        );
        let names = |batches: Vec<arrow_array::RecordBatch>, views: bool| -> Vec<String> {
            batches
                .iter()
                .flat_map(|b| {
                    let column = b.column(0);
                    (0..b.num_rows())
                        .map(|i| match views {
                            true => column.as_string_view().value(i).to_string(),
                            false => column.as_string::<i32>().value(i).to_string(),
                        })
                        .collect::<Vec<_>>()
                })
                .collect()
        };
        let plain = names(scan(false).collect().await.unwrap(), false);
        assert_eq!(plain.len(), if row_ids { 100 } else { 10 }, "{filter}");
        assert_eq!(names(views.collect().await.unwrap(), true), plain, "{filter}");
    }
}

#[tokio::test]
async fn time_travel_by_version_timestamp_and_tag() {
    let dir = tempdir();
    let uri = uri(&dir, "t");
    let v1 = create(&uri, 0..10).await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    let v2 = v1.append(stream(10..20), &WriteOptions::default()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    let v3 = v2.append(stream(20..30), &WriteOptions::default()).await.unwrap();

    let at = |r| async { Table::builder(&uri).version(r).open().await };
    assert_eq!(at(VersionRef::Version(2)).await.unwrap().num_rows(), 20);
    assert_eq!(
        at(VersionRef::Timestamp(v2.manifest().timestamp_ms))
            .await
            .unwrap()
            .version(),
        2
    );
    assert_eq!(
        at(VersionRef::Timestamp(v3.manifest().timestamp_ms - 1))
            .await
            .unwrap()
            .version(),
        2
    );
    assert_eq!(at(VersionRef::Timestamp(i64::MAX)).await.unwrap().version(), 3);
    let err = at(VersionRef::Timestamp(v1.manifest().timestamp_ms - 1))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err}");

    v3.create_tag("gold", 1).await.unwrap();
    assert_eq!(at(VersionRef::Tag("gold".into())).await.unwrap().num_rows(), 10);
    assert!(matches!(
        v3.create_tag("gold", 2).await,
        Err(Error::AlreadyExists { .. })
    ));
    assert!(matches!(
        v3.create_tag("nowhere", 99).await,
        Err(Error::NotFound { .. })
    ));
    assert!(matches!(
        v3.create_tag("bad/name", 1).await,
        Err(Error::InvalidInput(_))
    ));
    assert_eq!(
        v3.tags()
            .await
            .unwrap()
            .iter()
            .map(|t| (t.name.as_str(), t.version))
            .collect::<Vec<_>>(),
        [("gold", 1)]
    );
    v3.delete_tag("gold").await.unwrap();
    assert!(matches!(v3.delete_tag("gold").await, Err(Error::NotFound { .. })));
    let err = at(VersionRef::Tag("gold".into())).await.unwrap_err();
    assert!(err.to_string().contains("tag 'gold'"), "{err}");
    let err = at(VersionRef::Version(42)).await.unwrap_err();
    assert!(
        matches!(err, Error::NotFound { .. }) && err.to_string().contains("version 42"),
        "{err}"
    );
}

#[tokio::test]
async fn restore_and_cleanup_keep_what_live_versions_need() {
    let dir = tempdir();
    let uri = uri(&dir, "t");
    let v1 = create(&uri, 0..10).await;
    v1.append(stream(10..20), &WriteOptions::default()).await.unwrap();
    let v3 = Table::write(
        TableLocation::parse(&uri).unwrap(),
        stream(100..105),
        WriteMode::Overwrite,
        &WriteOptions::default(),
    )
    .await
    .unwrap();
    v3.create_tag("keep", 2).await.unwrap();
    let v4 = v1.restore().await.unwrap();
    assert_eq!((v4.version(), ids(&v4).await), (4, (0..10).collect::<Vec<_>>()));

    // Nothing is old enough yet.
    assert_eq!(
        v4.cleanup(&CleanupOptions::new(Duration::from_secs(3600)))
            .await
            .unwrap()
            .versions_removed,
        0
    );
    let report = v4
        .cleanup(&CleanupOptions::new(Duration::ZERO).dangerously_remove_files_younger_than_min_age(Duration::ZERO))
        .await
        .unwrap();
    // Versions 1 and 3 go; 2 is tagged and 4 is the latest. The overwrite's file goes.
    assert_eq!(report.versions_removed, 2);
    assert_eq!(report.files_removed, 1);
    let remaining: Vec<u64> = v4.versions().await.unwrap().iter().map(|v| v.version).collect();
    assert_eq!(remaining, [2, 4]);
    let tagged = v4.checkout(VersionRef::Tag("keep".into())).await.unwrap();
    assert_eq!(ids(&tagged).await, (0..20).collect::<Vec<_>>());
    assert_eq!(
        ids(&Table::open(&uri).await.unwrap()).await,
        (0..10).collect::<Vec<_>>()
    );
    let v5 = v4.append(stream(10..11), &WriteOptions::default()).await.unwrap();
    assert_eq!(v5.version(), 5);
}

#[tokio::test]
async fn memory_tables_and_empty_creates() {
    let table = Table::create("memory://basics/empty", schema()).await.unwrap();
    assert_eq!((table.version(), table.num_rows()), (1, 0));
    assert!(table.scan().collect().await.unwrap().is_empty());
    let v2 = table.append(stream(0..5), &WriteOptions::default()).await.unwrap();
    assert_eq!(
        ids(&Table::open("memory://basics/empty").await.unwrap()).await,
        (0..5).collect::<Vec<_>>()
    );
    assert_eq!(v2.version(), 2);
    let err = Table::create("memory://basics/empty", schema()).await.unwrap_err();
    assert!(matches!(err, Error::AlreadyExists { .. }), "{err}");
    let err = Table::open("memory://basics/missing").await.unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err}");
}

#[tokio::test]
async fn files_roll_over_at_the_row_limit() {
    let dir = tempdir();
    let opts = WriteOptions {
        max_rows_per_file: 100,
        ..Default::default()
    };
    let batches = (0..10).map(|i| batch(i * 50..i * 50 + 50)).collect();
    let data = vlake_table::BatchStream::from_batches(schema(), batches);
    let table = Table::write(
        TableLocation::parse(&uri(&dir, "t")).unwrap(),
        data,
        WriteMode::Create,
        &opts,
    )
    .await
    .unwrap();
    assert_eq!(table.manifest().data_files.len(), 5);
    let starts: Vec<u64> = table.manifest().data_files.iter().map(|f| f.row_id_start).collect();
    assert_eq!(starts, [0, 100, 200, 300, 400]);
    assert_eq!(ids(&table).await, (0..500).collect::<Vec<_>>());
}

/// A plan whose files are split into row ranges reads the same rows, with the same row ids,
/// deleted rows left out, filters applied, as the plan of whole files; a limited plan is not split.
#[tokio::test]
async fn split_tasks_read_the_same_rows() {
    let dir = tempdir();
    let uri = uri(&dir, "t");
    let table = create(&uri, 0..2500).await;
    let table = table
        .append(stream(2500..2600), &WriteOptions::default())
        .await
        .unwrap();
    let table = table
        .delete(&filter("id % 7 = 0 OR (id >= 1000 AND id < 1100)"))
        .await
        .unwrap();
    let location = TableLocation::parse(&uri).unwrap();
    let session = vlake_table::Session::default();
    for sql in [None, Some("id % 3 = 1")] {
        let mut scan = table.scan().columns(&["id"]).with_row_id(true);
        if let Some(sql) = sql {
            scan = scan.filter_sql(sql).unwrap();
        }
        let whole = scan.plan().unwrap();
        let split = scan.plan().unwrap().split_files(300);
        assert_eq!(whole.tasks.len(), 2);
        assert_eq!(
            split.tasks.len(),
            9 + 1,
            "2500 rows in ranges of 300, and the small file whole"
        );
        let mut rows = Vec::new();
        for plan in [whole, split] {
            let mut got = Vec::new();
            for task in &plan.tasks {
                for b in task
                    .execute(&location, &session)
                    .await
                    .unwrap()
                    .collect_batches()
                    .await
                    .unwrap()
                {
                    let ids = b.column(0).as_primitive::<arrow_array::types::Int64Type>();
                    let row_ids = b.column(1).as_primitive::<UInt64Type>();
                    got.extend(ids.values().iter().copied().zip(row_ids.values().iter().copied()));
                }
            }
            rows.push(got);
        }
        assert_eq!(rows[0], rows[1], "filter {sql:?}");
        let expected = (0..2600)
            .filter(|id| id % 7 != 0 && !(1000..1100).contains(id))
            .filter(|id| sql.is_none() || id % 3 == 1)
            .count();
        assert_eq!(rows[1].len(), expected);
    }
    let limited = table.scan().limit(10).plan().unwrap().split_files(300);
    assert_eq!(limited.tasks.len(), 2);
}
