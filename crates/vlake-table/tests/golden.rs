//! Tables written by released format versions stay readable. The tables live under
#![allow(clippy::unwrap_used, clippy::panic)]
//! `tests/golden/` at the repository root and are never rewritten; regenerate only to add a new
//! format version (`VLAKE_WRITE_GOLDEN=1 cargo test -p vlake-table --test golden -- --ignored`).

mod common;

use std::path::PathBuf;

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int32Type, Int64Type, UInt64Type};
use arrow_array::Array;
use common::*;
use vlake_table::{CompactOptions, Predicate, Table, TableLocation, VersionRef, WriteMode, WriteOptions};

fn golden(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/golden")
        .join(name)
}

#[tokio::test]
async fn format_v1_table_reads() {
    let path = golden("v1/basic");
    let uri = path.display().to_string();
    let table = Table::open(&uri).await.unwrap();
    assert_eq!(table.manifest().format_version, 1);
    assert_eq!(table.version(), 2);
    assert_eq!(table.schema().as_ref(), schema().as_ref());
    let ids_by_name: Vec<(i32, &str)> = table
        .table_schema()
        .fields
        .iter()
        .map(|f| (f.id, f.name.as_str()))
        .collect();
    assert_eq!(
        ids_by_name,
        [(1, "id"), (2, "name"), (3, "score"), (4, "vector"), (6, "half")]
    );

    let batches = table.scan().collect().await.unwrap();
    let got = arrow_select::concat::concat_batches(table.schema(), &batches).unwrap();
    let want = arrow_select::concat::concat_batches(&schema(), &[batch(0..20), batch(20..30)]).unwrap();
    assert_eq!(got, want);

    let first = Table::builder(&uri)
        .version(VersionRef::Tag("first".into()))
        .open()
        .await
        .unwrap();
    assert_eq!((first.version(), ids(&first).await), (1, (0..20).collect::<Vec<_>>()));
    assert_eq!(
        table.scan().filter_sql("id >= 25").unwrap().plan().unwrap().tasks.len(),
        1
    );
    let versions: Vec<(u64, String)> = table
        .versions()
        .await
        .unwrap()
        .into_iter()
        .map(|v| (v.version, v.operation))
        .collect();
    assert_eq!(versions, [(1, "create".to_string()), (2, "append".to_string())]);
}

#[tokio::test]
#[ignore = "writes the golden table; run only when adding a format version"]
async fn write_golden_v1() {
    if std::env::var("VLAKE_WRITE_GOLDEN").is_err() {
        return;
    }
    let path = golden("v1/basic");
    let _ = std::fs::remove_dir_all(&path);
    let location = TableLocation::parse(&path.display().to_string()).unwrap();
    let v1 = Table::write(location, stream(0..20), WriteMode::Create, &WriteOptions::default())
        .await
        .unwrap();
    v1.append(stream(20..30), &WriteOptions::default()).await.unwrap();
    v1.create_tag("first", 1).await.unwrap();
}

#[tokio::test]
async fn format_v1_mutations_table_reads() {
    let uri = golden("v1/mutations").display().to_string();
    let table = Table::open(&uri).await.unwrap();
    assert_eq!(table.version(), 6);
    let features: Vec<&str> = table.manifest().reader_features.iter().map(String::as_str).collect();
    assert_eq!(features, ["deletion_files", "row_id_files"]);
    let file = &table.manifest().data_files[0];
    assert!(file.deletion.is_some() && file.row_ids.is_some(), "{file:?}");
    let live = |v: u64| -> Vec<i64> {
        (0..30)
            .filter(|i| v < 4 || i % 3 != 0)
            .filter(|i| v < 6 || *i != 10)
            .filter(|i| v >= 3 || *i < v as i64 * 10)
            .collect()
    };
    for v in 1..=6 {
        let t = table.checkout(VersionRef::Version(v)).await.unwrap();
        assert_eq!(ids(&t).await, live(v), "version {v}");
        // Rows were added in id order, so every row id equals the row's id.
        let batches = t.scan().columns(&["id"]).with_row_id(true).collect().await.unwrap();
        for b in &batches {
            let ids = b.column(0).as_primitive::<Int64Type>().values();
            let row_ids = b.column(1).as_primitive::<UInt64Type>().values();
            assert!(ids.iter().zip(row_ids).all(|(i, r)| *i as u64 == *r), "version {v}");
        }
    }
    let versions: Vec<String> = table
        .versions()
        .await
        .unwrap()
        .into_iter()
        .map(|v| v.operation)
        .collect();
    assert_eq!(versions, ["create", "append", "append", "delete", "compact", "delete"]);
}

#[tokio::test]
#[ignore = "writes the golden table; run only when adding a format version or feature"]
async fn write_golden_v1_mutations() {
    if std::env::var("VLAKE_WRITE_GOLDEN").is_err() {
        return;
    }
    let path = golden("v1/mutations");
    let _ = std::fs::remove_dir_all(&path);
    let location = TableLocation::parse(&path.display().to_string()).unwrap();
    let mut t = Table::write(location, stream(0..10), WriteMode::Create, &WriteOptions::default())
        .await
        .unwrap();
    for start in [10, 20] {
        t = t
            .append(stream(start..start + 10), &WriteOptions::default())
            .await
            .unwrap();
    }
    let t = t
        .delete(&Predicate::parse(&id_in((0..30).filter(|i| i % 3 == 0))).unwrap())
        .await
        .unwrap();
    let (t, _) = t.compact(&CompactOptions::default()).await.unwrap();
    t.delete(&Predicate::parse("id = 10").unwrap()).await.unwrap();
}

#[tokio::test]
async fn format_v1_fts_table_reads() {
    let uri = golden("v1/fts").display().to_string();
    let table = Table::open(&uri).await.unwrap();
    assert_eq!(table.version(), 4);
    let entry = &table.manifest().indexes[0];
    assert_eq!((entry.index_type.as_str(), entry.files.len()), ("fts", 1));
    // Names are "row-0000NN": the index covers ids 0..20, ids 20..30 are appended, 5 deleted.
    async fn found(t: &Table, q: &str) -> Vec<i64> {
        let b = t.full_text_search("name", q).limit(100).execute().await.unwrap();
        let mut v = b
            .column_by_name("id")
            .unwrap()
            .as_primitive::<Int64Type>()
            .values()
            .to_vec();
        v.sort_unstable();
        v
    }
    assert_eq!(found(&table, "row").await.len(), 29);
    assert_eq!(found(&table, "000007 OR 000025 OR 000005").await, [7, 25]);
    assert_eq!(found(&table, "00001*").await, (10..20).collect::<Vec<_>>());
    assert_eq!(found(&table, "\"row 00002*\"").await, (20..30).collect::<Vec<_>>());
}

#[tokio::test]
#[ignore = "writes the golden table; run only when adding a format version or feature"]
async fn write_golden_v1_fts() {
    if std::env::var("VLAKE_WRITE_GOLDEN").is_err() {
        return;
    }
    let path = golden("v1/fts");
    let _ = std::fs::remove_dir_all(&path);
    let location = TableLocation::parse(&path.display().to_string()).unwrap();
    let t = Table::write(location, stream(0..20), WriteMode::Create, &WriteOptions::default())
        .await
        .unwrap();
    let t = t
        .create_index(&vlake_table::IndexOptions::new("name", vlake_table::IndexType::Fts))
        .await
        .unwrap();
    let t = t.append(stream(20..30), &WriteOptions::default()).await.unwrap();
    t.delete(&Predicate::parse("id = 5").unwrap()).await.unwrap();
}

#[tokio::test]
async fn format_v1_keyed_evolved_table_reads() {
    let uri = golden("v1/evolution").display().to_string();
    let table = Table::open(&uri).await.unwrap();
    assert_eq!(table.version(), 3);
    assert_eq!(table.primary_key_names(), ["id"]);
    let m = table.manifest();
    assert!(m.writer_features.contains("primary_key") && m.reader_features.contains("column_defaults"));
    let names: Vec<&str> = table.table_schema().column_names();
    assert_eq!(names, ["id", "label", "score", "vector", "level"]);
    let batches = table
        .scan()
        .columns(&["id", "label", "score", "level"])
        .collect()
        .await
        .unwrap();
    let b = arrow_select::concat::concat_batches(&batches[0].schema(), &batches).unwrap();
    let mut rows: Vec<(i64, String, Option<f64>, i32)> = (0..b.num_rows())
        .map(|i| {
            let score = b.column(2).as_primitive::<Float64Type>();
            (
                b.column(0).as_primitive::<Int64Type>().value(i),
                b.column(1).as_string::<i32>().value(i).to_string(),
                score.is_valid(i).then(|| score.value(i)),
                b.column(3).as_primitive::<Int32Type>().value(i),
            )
        })
        .collect();
    rows.sort_by_key(|r| r.0);
    let want: Vec<(i64, String, Option<f64>, i32)> = (0..15)
        .map(|i| {
            let score = if i >= 5 {
                Some(99.0)
            } else {
                (i % 5 != 0).then_some(i as f64 * 0.5)
            };
            (i, format!("row-{i:06}"), score, 3)
        })
        .collect();
    assert_eq!(rows, want);
    let versions: Vec<String> = table
        .versions()
        .await
        .unwrap()
        .into_iter()
        .map(|v| v.operation)
        .collect();
    assert_eq!(versions, ["create", "upsert", "alter_schema"]);
}

#[tokio::test]
#[ignore = "writes the golden table; run only when adding a format version or feature"]
async fn write_golden_v1_evolution() {
    if std::env::var("VLAKE_WRITE_GOLDEN").is_err() {
        return;
    }
    let path = golden("v1/evolution");
    let _ = std::fs::remove_dir_all(&path);
    let location = TableLocation::parse(&path.display().to_string()).unwrap();
    let keyed = WriteOptions {
        primary_key: vec!["id".into()],
        ..Default::default()
    };
    let t = Table::write(location, stream(0..10), WriteMode::Create, &keyed)
        .await
        .unwrap();
    let source: Vec<arrow_array::RecordBatch> = (5..15)
        .map(|i| {
            let b = batch(i..i + 1);
            let mut columns = b.columns().to_vec();
            columns[2] = std::sync::Arc::new(arrow_array::Float64Array::from(vec![99.0]));
            arrow_array::RecordBatch::try_new(schema(), columns).unwrap()
        })
        .collect();
    let (t, _) = t
        .merge_insert(
            vlake_table::BatchStream::from_batches(schema(), source),
            &vlake_table::MergeInsert::upsert(),
            &WriteOptions::default(),
        )
        .await
        .unwrap();
    t.alter_schema(&[
        vlake_table::SchemaChange::AddColumn {
            field: arrow_schema::Field::new("level", arrow_schema::DataType::Int32, false),
            value: vlake_table::ColumnValue::Default(vlake_table::Literal::Int(3)),
        },
        vlake_table::SchemaChange::RenameColumn {
            from: "name".into(),
            to: "label".into(),
        },
        vlake_table::SchemaChange::DropColumn("half".into()),
    ])
    .await
    .unwrap();
}

/// Row `i` of the BLOB golden table: `i * 100` bytes (none for row 0), row 3 null.
fn golden_value(i: i64) -> Option<Vec<u8>> {
    (i != 3).then(|| (0..i * 100).map(|j| (i * 31 + j) as u8).collect())
}

fn blob_batch(ids: &[i64]) -> arrow_array::RecordBatch {
    let blob = arrow_schema::Field::new("data", arrow_schema::DataType::LargeBinary, true).with_metadata(
        std::collections::HashMap::from([("vlake:blob".to_string(), "true".to_string())]),
    );
    let schema = arrow_schema::Schema::new(vec![
        arrow_schema::Field::new("id", arrow_schema::DataType::Int64, false),
        blob,
    ]);
    let data: arrow_array::LargeBinaryArray = ids.iter().map(|i| golden_value(*i)).collect();
    arrow_array::RecordBatch::try_new(
        std::sync::Arc::new(schema),
        vec![
            std::sync::Arc::new(arrow_array::Int64Array::from(ids.to_vec())),
            std::sync::Arc::new(data),
        ],
    )
    .unwrap()
}

#[tokio::test]
async fn format_v1_blobs_table_reads() {
    let uri = golden("v1/blobs").display().to_string();
    let table = Table::open(&uri).await.unwrap();
    assert_eq!(table.version(), 4);
    for (v, live) in [
        (1, (0..10).collect::<Vec<i64>>()),
        (2, (0..12).collect()),
        (3, vec![0, 1, 3, 5, 6, 7, 8, 9, 11]),
        (4, vec![0, 1, 3, 5, 6, 7, 8, 9, 11]),
    ] {
        let t = table.checkout(VersionRef::Version(v)).await.unwrap();
        assert!(t.manifest().reader_features.contains("blob_files"), "version {v}");
        let batches = t.scan().blobs(vlake_table::BlobMode::Bytes).collect().await.unwrap();
        let mut got = Vec::new();
        for b in &batches {
            let data = b.column(1).as_binary::<i64>();
            for (i, id) in b.column(0).as_primitive::<Int64Type>().values().iter().enumerate() {
                got.push((
                    *id,
                    arrow_array::Array::is_valid(data, i).then(|| data.value(i).to_vec()),
                ));
            }
        }
        let want: Vec<_> = live.iter().map(|i| (*i, golden_value(*i))).collect();
        assert_eq!(got, want, "version {v}");
    }
    // The compaction relocated the values into a new blob file holding only live bytes.
    let blob_files = table.manifest().blob_files();
    let live_bytes: u64 = [0, 1, 3, 5, 6, 7, 8, 9, 11]
        .iter()
        .filter_map(|i| golden_value(*i))
        .map(|v| v.len() as u64)
        .sum();
    assert_eq!(blob_files.values().sum::<u64>(), live_bytes);
    let mut blob = table.open_blob(11, "data").await.unwrap();
    let mut bytes = Vec::new();
    tokio::io::AsyncReadExt::read_to_end(&mut blob, &mut bytes)
        .await
        .unwrap();
    assert_eq!(Some(bytes), golden_value(11));
}

#[tokio::test]
#[ignore = "writes the golden table; run only when adding a format version or feature"]
async fn write_golden_v1_blobs() {
    if std::env::var("VLAKE_WRITE_GOLDEN").is_err() {
        return;
    }
    let path = golden("v1/blobs");
    let _ = std::fs::remove_dir_all(&path);
    let location = TableLocation::parse(&path.display().to_string()).unwrap();
    let first = blob_batch(&(0..10).collect::<Vec<_>>());
    let input = vlake_table::BatchStream::from_batches(first.schema(), vec![first]);
    let t = Table::write(location, input, WriteMode::Create, &WriteOptions::default())
        .await
        .unwrap();
    let t = t
        .append_blobs(
            "data",
            [10, 11]
                .iter()
                .map(|i| vlake_table::BlobSource::Bytes(golden_value(*i).unwrap().into()))
                .collect(),
            Some(blob_batch(&[10, 11]).project(&[0]).unwrap()),
            &WriteOptions::default(),
        )
        .await
        .unwrap();
    let t = t.delete(&Predicate::parse("id IN (2, 4, 10)").unwrap()).await.unwrap();
    let opts = CompactOptions {
        blob_garbage_ratio: 0.0,
        ..CompactOptions::default()
    };
    t.compact(&opts).await.unwrap();
}
