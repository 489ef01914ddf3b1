//! Bad input and damaged tables fail with clear, typed errors and leave the table unchanged.
#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use std::sync::Arc;

use arrow_array::{Int32Array, Int64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema};
use common::*;
use vlake_table::{BatchStream, Error, Table, TableLocation, VersionRef, WriteMode, WriteOptions};

async fn two_versions(uri: &str) -> Table {
    let t = Table::write(
        TableLocation::parse(uri).unwrap(),
        stream(0..10),
        WriteMode::Create,
        &WriteOptions::default(),
    )
    .await
    .unwrap();
    t.append(stream(10..20), &WriteOptions::default()).await.unwrap()
}

async fn assert_unchanged(uri: &str) {
    let t = Table::open(uri).await.unwrap();
    assert_eq!((t.version(), ids(&t).await), (2, (0..20).collect::<Vec<_>>()));
}

fn one_column(field: Field, column: arrow_array::ArrayRef) -> BatchStream {
    let schema = Arc::new(Schema::new(vec![field]));
    let batch = RecordBatch::try_new(schema.clone(), vec![column]).unwrap();
    BatchStream::from_batches(schema, vec![batch])
}

#[tokio::test]
async fn mismatched_appends_are_refused() {
    let dir = tempdir();
    let uri = uri(&dir, "t");
    let table = two_versions(&uri).await;
    let opts = WriteOptions::default();

    let err = table
        .append(
            one_column(
                Field::new("id", DataType::Int32, false),
                Arc::new(Int32Array::from(vec![1])),
            ),
            &opts,
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::InvalidInput(m) if m.contains("'id'") && m.contains("Int32") && m.contains("Int64")),
        "{err}"
    );

    let extra = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("bogus", DataType::Utf8, true),
    ]));
    let batch = RecordBatch::try_new(
        extra.clone(),
        vec![
            Arc::new(Int64Array::from(vec![1])),
            Arc::new(StringArray::from(vec!["x"])),
        ],
    )
    .unwrap();
    let err = table
        .append(BatchStream::from_batches(extra, vec![batch]), &opts)
        .await
        .unwrap_err();
    assert!(matches!(&err, Error::InvalidInput(m) if m.contains("'bogus'")), "{err}");

    let err = table
        .append(
            one_column(
                Field::new("name", DataType::Utf8, true),
                Arc::new(StringArray::from(vec!["x"])),
            ),
            &opts,
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::InvalidInput(m) if m.contains("'id'") && m.contains("not nullable")),
        "{err}"
    );

    let err = table
        .append(
            one_column(
                Field::new("id", DataType::Int64, true),
                Arc::new(Int64Array::from(vec![Some(1), None])),
            ),
            &opts,
        )
        .await
        .unwrap_err();
    assert!(matches!(&err, Error::InvalidInput(m) if m.contains("null")), "{err}");

    assert_unchanged(&uri).await;
    // No data file was left behind by the refused writes.
    assert_eq!(std::fs::read_dir(dir.path().join("t/data")).unwrap().count(), 2);

    // Missing nullable columns are filled with nulls.
    let ok = table
        .append(
            one_column(
                Field::new("id", DataType::Int64, false),
                Arc::new(Int64Array::from(vec![99])),
            ),
            &opts,
        )
        .await
        .unwrap();
    assert_eq!(
        ok.scan()
            .filter_sql("id = 99 AND name IS NULL")
            .unwrap()
            .count_rows()
            .await
            .unwrap(),
        1
    );
}

#[tokio::test]
async fn corrupt_and_truncated_manifests_are_named() {
    let dir = tempdir();
    let uri = uri(&dir, "t");
    two_versions(&uri).await;
    let path = dir.path().join("t/_versions/00000000000000000002.json");
    let good = std::fs::read(&path).unwrap();

    std::fs::write(&path, &good[..good.len() / 2]).unwrap();
    let err = Table::open(&uri).await.unwrap_err();
    assert!(
        matches!(&err, Error::Corrupt { path, .. } if path.ends_with("00000000000000000002.json")),
        "{err}"
    );
    // Older versions are still readable.
    let v1 = Table::builder(&uri)
        .version(VersionRef::Version(1))
        .open()
        .await
        .unwrap();
    assert_eq!(ids(&v1).await, (0..10).collect::<Vec<_>>());
    // And no writer can commit on top of a corrupt latest version.
    let err = v1.append(stream(50..51), &WriteOptions::default()).await.unwrap_err();
    assert!(matches!(err, Error::Corrupt { .. }), "{err}");

    std::fs::write(&path, b"garbage").unwrap();
    assert!(matches!(Table::open(&uri).await.unwrap_err(), Error::Corrupt { .. }));

    let mut doc: serde_json::Value = serde_json::from_slice(&good).unwrap();
    doc["format_version"] = serde_json::json!(99);
    std::fs::write(&path, serde_json::to_vec(&doc).unwrap()).unwrap();
    let err = Table::open(&uri).await.unwrap_err();
    assert!(
        matches!(&err, Error::Unsupported { feature } if feature.contains("format version 99")),
        "{err}"
    );

    let mut doc: serde_json::Value = serde_json::from_slice(&good).unwrap();
    doc["reader_features"] = serde_json::json!(["quantum_rows"]);
    std::fs::write(&path, serde_json::to_vec(&doc).unwrap()).unwrap();
    let err = Table::open(&uri).await.unwrap_err();
    assert!(err.to_string().contains("quantum_rows"), "{err}");

    let mut doc: serde_json::Value = serde_json::from_slice(&good).unwrap();
    doc["writer_features"] = serde_json::json!(["fancy"]);
    std::fs::write(&path, serde_json::to_vec(&doc).unwrap()).unwrap();
    let readable = Table::open(&uri).await.unwrap();
    assert_eq!(readable.num_rows(), 20);
    let err = readable
        .append(stream(50..51), &WriteOptions::default())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Unsupported { feature } if feature.contains("fancy")),
        "{err}"
    );

    std::fs::write(&path, &good).unwrap();
    assert_unchanged(&uri).await;
}

#[tokio::test]
async fn missing_and_damaged_data_files_are_named() {
    let dir = tempdir();
    let uri = uri(&dir, "t");
    let table = two_versions(&uri).await;
    let file = table.manifest().data_files[1].path.clone();
    let full = dir.path().join("t").join(&file);
    let bytes = std::fs::read(&full).unwrap();

    std::fs::remove_file(&full).unwrap();
    let err = table.scan().collect().await.unwrap_err();
    assert!(
        matches!(&err, Error::NotFound { what } if what.contains(&file)),
        "{err}"
    );

    std::fs::write(&full, &bytes[..bytes.len() - 10]).unwrap();
    let err = table.scan().collect().await.unwrap_err();
    assert!(err.to_string().contains(&file), "{err}");

    std::fs::write(&full, &bytes).unwrap();
    assert_unchanged(&uri).await;
}

#[tokio::test]
async fn bad_filters_versions_and_uris() {
    let dir = tempdir();
    let uri = uri(&dir, "t");
    let table = two_versions(&uri).await;
    assert!(matches!(table.scan().filter_sql("id >"), Err(Error::InvalidInput(_))));
    let err = table
        .scan()
        .filter_sql("nope = 3")
        .unwrap()
        .collect()
        .await
        .unwrap_err();
    assert!(err.to_string().contains("nope"), "{err}");
    let err = table
        .scan()
        .filter_sql("id = 'abc'")
        .unwrap()
        .collect()
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidInput(_)), "{err}");
    assert!(matches!(
        table.checkout(VersionRef::Version(0)).await,
        Err(Error::NotFound { .. })
    ));
    assert!(matches!(
        table.checkout(VersionRef::Tag("nope".into())).await,
        Err(Error::NotFound { .. })
    ));
    assert!(matches!(
        Table::open("ftp://host/x").await,
        Err(Error::Unsupported { .. })
    ));
    let err = Table::write(
        TableLocation::parse(&uri).unwrap(),
        stream(0..1),
        WriteMode::Create,
        &WriteOptions::default(),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, Error::AlreadyExists { .. }), "{err}");
    let missing = dir.path().join("missing").display().to_string();
    let err = Table::write(
        TableLocation::parse(&missing).unwrap(),
        stream(0..1),
        WriteMode::Append,
        &WriteOptions::default(),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err}");
    assert_unchanged(&uri).await;
}

/// The row count a manifest gives a data file is checked against the file's footer before
/// anything is sized or answered by it: counts, scans, deletes and index searches (which build
/// the set of live row ids from the counts) fail as corrupt, naming the file, instead of
/// allocating 2^62 row ids.
#[tokio::test]
async fn manifest_row_counts_are_checked_against_the_footers() {
    use vlake_table::{IndexOptions, IndexType};
    let dir = tempdir();
    let uri = uri(&dir, "t");
    let t = Table::write(
        TableLocation::parse(&uri).unwrap(),
        stream(0..50),
        WriteMode::Create,
        &WriteOptions::default(),
    )
    .await
    .unwrap();
    let t = t
        .create_index(&IndexOptions::new("vector", IndexType::Hnsw))
        .await
        .unwrap();
    assert_eq!(t.version(), 2);
    let manifest = dir.path().join("t/_versions/00000000000000000002.json");
    let mut m: serde_json::Value = serde_json::from_slice(&std::fs::read(&manifest).unwrap()).unwrap();
    let file = m["data_files"][0]["path"].as_str().unwrap().to_string();
    m["data_files"][0]["num_rows"] = (1u64 << 62).into();
    m["next_row_id"] = (1u64 << 62).into();
    std::fs::write(&manifest, serde_json::to_vec(&m).unwrap()).unwrap();

    let t = Table::open(&uri).await.unwrap();
    let query = [0.5f32; 8];
    let errors = [
        t.verify_row_counts().await.unwrap_err(),
        t.scan().count_rows().await.unwrap_err(),
        t.scan().collect().await.unwrap_err(),
        t.delete(&filter("id = 3")).await.unwrap_err(),
        t.search("vector", &query).nearest().await.unwrap_err(),
        t.search("vector", &query).exact(true).nearest().await.unwrap_err(),
    ];
    for err in errors {
        assert!(
            matches!(&err, Error::Corrupt { path, reason } if path.ends_with(&file) && reason.contains("footer says 50")),
            "{err}"
        );
    }
}
