//! Schema evolution by field id: what is metadata-only stays so, backfills keep row ids and
//! indexes, old versions read as they were, and bad changes fail clearly.
#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use std::collections::BTreeMap;

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int32Type, Int64Type, UInt64Type};
use arrow_array::{Array, RecordBatch};
use arrow_schema::{DataType, Field};
use common::*;
use vlake_table::{ColumnValue, Error, IndexOptions, IndexType, Literal, SchemaChange, Table, ValueExpr, WriteOptions};

fn add(name: &str, t: DataType, nullable: bool, value: ColumnValue) -> SchemaChange {
    SchemaChange::AddColumn {
        field: Field::new(name, t, nullable),
        value,
    }
}

async fn all(table: &Table) -> RecordBatch {
    let batches = table.scan().with_row_id(true).collect().await.unwrap();
    arrow_select::concat::concat_batches(&batches[0].schema(), &batches).unwrap()
}

#[tokio::test]
async fn metadata_only_changes_rewrite_nothing() {
    let dir = tempdir();
    let t = three_files(&uri(&dir, "t")).await;
    let files: Vec<String> = t.manifest().data_files.iter().map(|f| f.path.clone()).collect();
    let changes = vec![
        add("note", DataType::Utf8, true, ColumnValue::Null),
        add("level", DataType::Int32, false, ColumnValue::Default(Literal::Int(3))),
        SchemaChange::RenameColumn {
            from: "name".into(),
            to: "label".into(),
        },
        SchemaChange::DropColumn("half".into()),
        SchemaChange::MakeNullable("id".into()),
    ];
    // float64 is not wider than float64, and the whole change fails.
    let not_wider = SchemaChange::WidenColumn {
        column: "score".into(),
        to: DataType::Float64,
    };
    let err = t
        .alter_schema(&[changes.clone(), vec![not_wider]].concat())
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("cannot change from Float64 to Float64"),
        "{err}"
    );
    let t2 = t.alter_schema(&changes).await.unwrap();
    assert_eq!(t2.manifest().transaction.operation.name(), "alter_schema");
    let after: Vec<String> = t2.manifest().data_files.iter().map(|f| f.path.clone()).collect();
    assert_eq!(files, after, "no data file was rewritten");
    assert!(t2.manifest().reader_features.contains("column_defaults"));
    let names: Vec<String> = t2.schema().fields().iter().map(|f| f.name().clone()).collect();
    assert_eq!(names, ["id", "label", "score", "vector", "note", "level"]);
    let b = all(&t2).await;
    assert_eq!(b.num_rows(), 30);
    assert_eq!(b.column_by_name("note").unwrap().null_count(), 30);
    let level = b.column_by_name("level").unwrap().as_primitive::<Int32Type>();
    assert!(level.values().iter().all(|v| *v == 3) && level.null_count() == 0);
    assert_eq!(
        b.column_by_name("label").unwrap().as_string::<i32>().value(0),
        "row-000000"
    );
    // New rows carry their own values; filters see defaults and renamed columns.
    let more = t2.scan().filter_sql("level = 3 AND label = 'row-000005'").unwrap();
    assert_eq!(more.count_rows().await.unwrap(), 1);
    // The old version reads with its own schema.
    let old = all(&t).await;
    assert!(old.column_by_name("half").is_some() && old.column_by_name("level").is_none());
    // Field ids are not reused: a column added again after a drop gets a new id.
    let t3 = t2
        .alter_schema(&[add("half", DataType::Int64, true, ColumnValue::Null)])
        .await
        .unwrap();
    assert_eq!(t3.num_rows(), 30);
    assert_eq!(all(&t3).await.column_by_name("half").unwrap().null_count(), 30);
}

#[tokio::test]
async fn widening_casts_old_files_on_read() {
    let dir = tempdir();
    let schema = std::sync::Arc::new(arrow_schema::Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("n", DataType::Int32, true),
    ]));
    let b = RecordBatch::try_new(
        schema.clone(),
        vec![
            std::sync::Arc::new(arrow_array::Int64Array::from(vec![1, 2, 3])),
            std::sync::Arc::new(arrow_array::Int32Array::from(vec![Some(-5), None, Some(i32::MAX)])),
        ],
    )
    .unwrap();
    let t = Table::write(
        vlake_table::TableLocation::parse(&uri(&dir, "w")).unwrap(),
        vlake_table::BatchStream::from_batches(schema, vec![b]),
        vlake_table::WriteMode::Create,
        &WriteOptions::default(),
    )
    .await
    .unwrap();
    let t = t
        .alter_schema(&[SchemaChange::WidenColumn {
            column: "n".into(),
            to: DataType::Int64,
        }])
        .await
        .unwrap();
    let b = all(&t).await;
    let n = b.column(1).as_primitive::<Int64Type>();
    assert_eq!(n.value(2), i32::MAX as i64);
    assert_eq!(t.scan().filter_sql("n > 0").unwrap().count_rows().await.unwrap(), 1);
    let err = t
        .alter_schema(&[SchemaChange::WidenColumn {
            column: "n".into(),
            to: DataType::Int32,
        }])
        .await
        .unwrap_err();
    assert!(err.to_string().contains("only widening"), "{err}");
}

#[tokio::test]
async fn computed_columns_are_backfilled_keeping_row_ids_and_indexes() {
    let dir = tempdir();
    let t = three_files(&uri(&dir, "t")).await;
    let t = t.delete(&filter("id IN (3, 14)")).await.unwrap();
    let mut opts = IndexOptions::new("vector", IndexType::IvfFlat);
    opts.ivf.partitions = Some(2);
    let t = t.create_index(&opts).await.unwrap();
    let query: Vec<f32> = (0..DIM).map(|d| 20.0 + d as f32 / 10.0).collect();
    let before = vec![t.search("vector", &query).limit(5).execute().await.unwrap()];
    let ids_before: BTreeMap<i64, u64> = row_ids(&all(&t).await);
    let t2 = t
        .alter_schema(&[
            add("tier", DataType::Int32, false, ColumnValue::Default(Literal::Int(2))),
            add(
                "double",
                DataType::Float64,
                true,
                ColumnValue::Expr(ValueExpr::parse("score * 2 + 1").unwrap()),
            ),
        ])
        .await
        .unwrap();
    let b = all(&t2).await;
    assert_eq!(row_ids(&b), ids_before, "every row keeps its row id");
    let score = b.column_by_name("score").unwrap().as_primitive::<Float64Type>();
    let double = b.column_by_name("double").unwrap().as_primitive::<Float64Type>();
    let tier = b.column_by_name("tier").unwrap().as_primitive::<Int32Type>();
    assert!(tier.null_count() == 0 && tier.values().iter().all(|v| *v == 2));
    for i in 0..b.num_rows() {
        assert_eq!(score.is_null(i), double.is_null(i));
        if score.is_valid(i) {
            assert_eq!(double.value(i), score.value(i) * 2.0 + 1.0);
        }
    }
    // The index still covers every file: the search reads the index, with the same results.
    let entry = &t2.manifest().indexes[0];
    assert_eq!(entry.covered_files.len(), t2.manifest().data_files.len());
    let after = vec![t2.search("vector", &query).limit(5).execute().await.unwrap()];
    assert_eq!(ids_of(&before), ids_of(&after));
    // Deleted rows were materialized by the rewrite; the old version still reads.
    assert!(t2.manifest().data_files.iter().all(|f| f.deletion.is_none()));
    assert_eq!(
        t.checkout(vlake_table::VersionRef::Version(4))
            .await
            .unwrap()
            .num_rows(),
        28
    );
    // A dropped indexed column takes its index with it.
    let t3 = t2
        .alter_schema(&[SchemaChange::DropColumn("vector".into())])
        .await
        .unwrap();
    assert!(t3.manifest().indexes.is_empty());
}

#[tokio::test]
async fn bad_changes_fail_and_leave_the_table_alone() {
    let dir = tempdir();
    let u = uri(&dir, "t");
    let t = three_files(&u).await;
    let cases: Vec<(SchemaChange, &str)> = vec![
        (
            add("id", DataType::Int32, true, ColumnValue::Null),
            "already exists: column 'id'",
        ),
        (add("_rowid", DataType::Int32, true, ColumnValue::Null), "reserved"),
        (add("x", DataType::Int32, false, ColumnValue::Null), "not nullable"),
        (
            add(
                "x",
                DataType::Int32,
                true,
                ColumnValue::Default(Literal::String("abc".into())),
            ),
            "does not convert",
        ),
        (
            add(
                "x",
                DataType::Int32,
                true,
                ColumnValue::Expr(ValueExpr::parse("nope + 1").unwrap()),
            ),
            "'nope'",
        ),
        (SchemaChange::DropColumn("nope".into()), "column 'nope'"),
        (
            SchemaChange::RenameColumn {
                from: "id".into(),
                to: "name".into(),
            },
            "already exists",
        ),
    ];
    for (change, want) in cases {
        let err = t.alter_schema(&[change]).await.unwrap_err();
        assert!(err.to_string().contains(want), "{want}: {err}");
    }
    assert!(matches!(t.alter_schema(&[]).await, Err(Error::InvalidInput(_))));
    assert_eq!(Table::open(&u).await.unwrap().version(), 3);
    // An append written for the old schema does not rebase over a schema change.
    let old = t.clone();
    t.alter_schema(&[SchemaChange::DropColumn("half".into())])
        .await
        .unwrap();
    let err = old.append(stream(30..31), &WriteOptions::default()).await.unwrap_err();
    assert!(matches!(err, Error::CommitConflict { retryable: false, .. }), "{err}");
    // Schema changes of two writers conflict retryably.
    let err = old
        .alter_schema(&[add("y", DataType::Int32, true, ColumnValue::Null)])
        .await
        .unwrap_err();
    assert!(matches!(err, Error::CommitConflict { retryable: true, .. }), "{err}");
}

fn row_ids(b: &RecordBatch) -> BTreeMap<i64, u64> {
    let ids = b.column_by_name("id").unwrap().as_primitive::<Int64Type>();
    let rows = b.column_by_name("_rowid").unwrap().as_primitive::<UInt64Type>();
    (0..b.num_rows()).map(|i| (ids.value(i), rows.value(i))).collect()
}

fn ids_of(batches: &[RecordBatch]) -> Vec<i64> {
    batches
        .iter()
        .flat_map(|b| {
            b.column_by_name("id")
                .unwrap()
                .as_primitive::<Int64Type>()
                .values()
                .to_vec()
        })
        .collect()
}
