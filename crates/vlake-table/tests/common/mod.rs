//! Test data shared by the integration tests.
#![allow(dead_code, clippy::unwrap_used)]

use std::ops::Range;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::Int64Type;
use arrow_array::{
    ArrayRef, FixedSizeListArray, Float16Array, Float32Array, Float64Array, Int64Array, RecordBatch, StringArray,
};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use vlake_table::{BatchStream, Predicate, Table, TableLocation, WriteMode, WriteOptions};

pub const DIM: i32 = 8;

pub fn schema() -> SchemaRef {
    let item = |t| Arc::new(Field::new("item", t, true));
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("name", DataType::Utf8, true),
        Field::new("score", DataType::Float64, true),
        Field::new("vector", DataType::FixedSizeList(item(DataType::Float32), DIM), true),
        Field::new("half", DataType::FixedSizeList(item(DataType::Float16), 2), true),
    ]))
}

/// Rows with ids in `ids`; every 7th vector is null.
pub fn batch(ids: Range<i64>) -> RecordBatch {
    let n = (ids.end - ids.start) as usize;
    let id: Vec<i64> = ids.clone().collect();
    let values: Float32Array = id
        .iter()
        .flat_map(|i| (0..DIM).map(move |d| (*i as f32) + d as f32 / 10.0))
        .collect();
    let valid: Vec<bool> = id.iter().map(|i| i % 7 != 0).collect();
    let half: Float16Array = id
        .iter()
        .flat_map(|i| [half::f16::from_f32(*i as f32), half::f16::from_f32(0.5)])
        .collect();
    let item = |t| Arc::new(Field::new("item", t, true));
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(id.clone())),
        Arc::new(StringArray::from_iter_values(id.iter().map(|i| format!("row-{i:06}")))),
        Arc::new(Float64Array::from_iter(
            id.iter().map(|i| (i % 5 != 0).then_some(*i as f64 * 0.5)),
        )),
        Arc::new(FixedSizeListArray::new(
            item(DataType::Float32),
            DIM,
            Arc::new(values),
            Some(valid.into()),
        )),
        Arc::new(FixedSizeListArray::new(
            item(DataType::Float16),
            2,
            Arc::new(half),
            None,
        )),
    ];
    assert_eq!(columns[0].len(), n);
    RecordBatch::try_new(schema(), columns).unwrap()
}

pub fn stream(ids: Range<i64>) -> BatchStream {
    BatchStream::from_batches(schema(), vec![batch(ids)])
}

/// All ids of the table version, sorted.
pub async fn ids(table: &Table) -> Vec<i64> {
    let batches = table.scan().columns(&["id"]).collect().await.unwrap();
    let mut out: Vec<i64> = batches
        .iter()
        .flat_map(|b| b.column(0).as_primitive::<Int64Type>().values().to_vec())
        .collect();
    out.sort_unstable();
    out
}

pub fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

pub fn uri(dir: &tempfile::TempDir, name: &str) -> String {
    dir.path().join(name).display().to_string()
}

/// An SQL filter matching exactly these ids (`FALSE` when there are none).
pub fn id_in(ids: impl IntoIterator<Item = i64>) -> String {
    let listed: Vec<String> = ids.into_iter().map(|i| i.to_string()).collect();
    if listed.is_empty() {
        "FALSE".to_string()
    } else {
        format!("id IN ({})", listed.join(", "))
    }
}

/// A parsed SQL filter.
pub fn filter(sql: &str) -> Predicate {
    Predicate::parse(sql).unwrap()
}

/// A table of ids 0..30 in three files of ten rows (versions 1 to 3).
pub async fn three_files(uri: &str) -> Table {
    let mut t = Table::write(
        TableLocation::parse(uri).unwrap(),
        stream(0..10),
        WriteMode::Create,
        &WriteOptions::default(),
    )
    .await
    .unwrap();
    for start in [10, 20] {
        t = t
            .append(stream(start..start + 10), &WriteOptions::default())
            .await
            .unwrap();
    }
    t
}
