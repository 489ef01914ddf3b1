//! Every spec structure survives encode/decode, and bad manifests fail with the right kind.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::collections::BTreeMap;

use proptest::prelude::*;
use uuid::Uuid;
use vlake_format::schema::TimeUnit;
use vlake_format::{
    ColumnStats, DataFile, DataType, DeletionFile, Error, Field, FileFormat, IndexEntry, LatestHint, Manifest,
    Operation, RowIdFile, Schema, StatValue, Tag, Transaction, FORMAT_VERSION,
};

fn field(id: i32, name: &str, data_type: DataType) -> Field {
    Field {
        id,
        name: name.into(),
        data_type,
        nullable: true,
        metadata: BTreeMap::new(),
        initial_default: None,
    }
}

fn full_manifest() -> Manifest {
    let vector = DataType::FixedSizeList {
        item: Box::new(field(3, "item", DataType::Float32)),
        size: 4,
    };
    let half = DataType::FixedSizeList {
        item: Box::new(field(5, "item", DataType::Float16)),
        size: 2,
    };
    let nested = DataType::Struct {
        fields: vec![
            field(
                7,
                "ts",
                DataType::Timestamp {
                    unit: TimeUnit::Microsecond,
                    timezone: Some("UTC".into()),
                },
            ),
            field(
                8,
                "tags",
                DataType::List {
                    item: Box::new(field(9, "item", DataType::Utf8)),
                },
            ),
            field(
                10,
                "price",
                DataType::Decimal128 {
                    precision: 10,
                    scale: 2,
                },
            ),
        ],
    };
    let mut meta = field(1, "id", DataType::Int64);
    meta.nullable = false;
    meta.metadata.insert("comment".into(), "primary".into());
    let schema = Schema {
        fields: vec![
            meta,
            field(2, "vector", vector),
            field(4, "half", half),
            field(6, "meta", nested),
            field(11, "day", DataType::Date32),
            Field {
                initial_default: Some(serde_json::json!(7)),
                ..field(12, "score", DataType::Int32)
            },
        ],
    };
    Manifest {
        format_version: FORMAT_VERSION,
        reader_features: ["deletion_files", "row_id_files", "column_defaults"]
            .map(String::from)
            .into(),
        writer_features: ["deletion_files", "primary_key", "column_defaults"]
            .map(String::from)
            .into(),
        version: 3,
        parent_version: Some(2),
        timestamp_ms: 1_700_000_000_123,
        max_field_id: 12,
        primary_key: vec![1],
        schema,
        next_row_id: 30,
        data_files: vec![
            DataFile {
                path: "data/a.parquet".into(),
                format: FileFormat::Parquet,
                num_rows: 10,
                size_bytes: 1234,
                row_id_start: 0,
                stats: vec![
                    ColumnStats {
                        field_id: 1,
                        null_count: 0,
                        min: Some(StatValue::Int(-5)),
                        max: Some(StatValue::Int(99)),
                    },
                    ColumnStats {
                        field_id: 11,
                        null_count: 2,
                        min: Some(StatValue::Float(0.5)),
                        max: Some(StatValue::Float(2.0)),
                    },
                    ColumnStats {
                        field_id: 12,
                        null_count: 10,
                        min: None,
                        max: None,
                    },
                ],
                deletion: Some(DeletionFile {
                    path: "_deletions/a.bin".into(),
                    num_deleted: 3,
                }),
                row_ids: None,
                blob_files: vec![],
            },
            DataFile {
                path: "data/b.parquet".into(),
                format: FileFormat::Parquet,
                num_rows: 20,
                size_bytes: 999,
                row_id_start: 10,
                stats: vec![ColumnStats {
                    field_id: 1,
                    null_count: 0,
                    min: Some(StatValue::String("a".into())),
                    max: Some(StatValue::Uint(u64::MAX)),
                }],
                deletion: None,
                row_ids: Some(RowIdFile {
                    path: "_row_ids/b.bin".into(),
                }),
                blob_files: vec![],
            },
        ],
        indexes: vec![IndexEntry {
            id: Uuid::new_v4(),
            name: "vector_idx".into(),
            index_type: "ivf_pq".into(),
            field_ids: vec![2],
            params: BTreeMap::from([("metric".to_string(), serde_json::json!("cosine"))]),
            built_at_version: 2,
            covered_files: vec!["data/a.parquet".into()],
            files: vec!["_indexes/x/index.bin".into()],
        }],
        properties: BTreeMap::from([("owner".to_string(), "team".to_string())]),
        transaction: Transaction {
            id: Uuid::new_v4(),
            read_version: 2,
            operation: Operation::Append { rows: 20 },
        },
    }
}

#[test]
fn manifest_round_trips() {
    let m = full_manifest();
    let bytes = m.encode().unwrap();
    let back = Manifest::decode(&bytes, "m.json", 3).unwrap();
    assert_eq!(back, m);
    assert_eq!(back.num_rows(), 27);
}

#[test]
fn every_operation_round_trips() {
    for op in [
        Operation::Create { rows: 1 },
        Operation::Append { rows: 2 },
        Operation::Overwrite { rows: 3 },
        Operation::Restore { restored_version: 4 },
        Operation::Index {
            name: "vector_idx".into(),
        },
        Operation::Delete { rows: 5 },
        Operation::Update { rows: 6 },
        Operation::Compact {
            files_removed: 7,
            files_added: 1,
        },
        Operation::Upsert {
            inserted: 1,
            updated: 2,
            deleted: 3,
        },
        Operation::AlterSchema {
            changes: vec!["add column score".into()],
        },
    ] {
        let mut m = full_manifest();
        m.transaction.operation = op;
        assert_eq!(Manifest::decode(&m.encode().unwrap(), "m", 3).unwrap(), m);
    }
}

#[test]
fn unknown_operations_are_tolerated() {
    let mut doc: serde_json::Value = serde_json::from_slice(&full_manifest().encode().unwrap()).unwrap();
    doc["transaction"]["operation"] = serde_json::json!({"type": "merge_insert", "rows": 5});
    let m = Manifest::decode(&serde_json::to_vec(&doc).unwrap(), "m", 3).unwrap();
    assert_eq!(m.transaction.operation, Operation::Other);
}

#[test]
fn tag_and_hint_round_trip() {
    let tag = Tag {
        name: "release-1.0".into(),
        version: 7,
        created_ms: 5,
    };
    let back: Tag = serde_json::from_str(&serde_json::to_string(&tag).unwrap()).unwrap();
    assert_eq!(back, tag);
    let hint: LatestHint = serde_json::from_str(&serde_json::to_string(&LatestHint { version: 9 }).unwrap()).unwrap();
    assert_eq!(hint.version, 9);
    for bad in ["", ".hidden", "a/b", "a b", &"x".repeat(129)] {
        assert!(matches!(Tag::validate_name(bad), Err(Error::InvalidInput(_))), "{bad}");
    }
    Tag::validate_name("v1.0_rc-2").unwrap();
}

#[test]
fn truncated_and_garbage_manifests_are_corrupt() {
    let bytes = full_manifest().encode().unwrap();
    for cut in [0, 1, bytes.len() / 2, bytes.len() - 1] {
        let err = Manifest::decode(&bytes[..cut], "t/_versions/3.json", 3).unwrap_err();
        assert!(
            matches!(&err, Error::Corrupt { path, .. } if path == "t/_versions/3.json"),
            "{err}"
        );
    }
    let err = Manifest::decode(b"\x00\xffnot json", "p", 3).unwrap_err();
    assert!(matches!(err, Error::Corrupt { .. }));
}

#[test]
fn newer_format_versions_and_unknown_features_are_refused() {
    let mut doc: serde_json::Value = serde_json::from_slice(&full_manifest().encode().unwrap()).unwrap();
    doc["format_version"] = serde_json::json!(FORMAT_VERSION + 1);
    let err = Manifest::decode(&serde_json::to_vec(&doc).unwrap(), "p", 3).unwrap_err();
    assert!(
        matches!(&err, Error::Unsupported { feature } if feature.contains("format version 2")),
        "{err}"
    );

    let mut m = full_manifest();
    m.reader_features.insert("time_machine".into());
    let err = Manifest::decode(&m.encode().unwrap(), "p", 3).unwrap_err();
    assert!(
        matches!(&err, Error::Unsupported { feature } if feature.contains("time_machine")),
        "{err}"
    );

    let mut m = full_manifest();
    m.writer_features.insert("fancy_writes".into());
    let m = Manifest::decode(&m.encode().unwrap(), "p", 3).unwrap();
    assert!(matches!(m.check_writable(), Err(Error::Unsupported { .. })));
}

#[test]
fn inconsistent_manifests_are_corrupt() {
    type Mutation = Box<dyn Fn(&mut Manifest)>;
    let cases: Vec<(&str, Mutation)> = vec![
        ("wrong version", Box::new(|m| m.version = 4)),
        ("parent after child", Box::new(|m| m.parent_version = Some(3))),
        (
            "duplicate file",
            Box::new(|m| m.data_files[1].path = "data/a.parquet".into()),
        ),
        (
            "escaping path",
            Box::new(|m| m.data_files[1].path = "../x.parquet".into()),
        ),
        ("row ids past next_row_id", Box::new(|m| m.next_row_id = 5)),
        ("max_field_id too small", Box::new(|m| m.max_field_id = 3)),
        ("duplicate field id", Box::new(|m| m.schema.fields[1].id = 1)),
        (
            "too many deletions",
            Box::new(|m| m.data_files[0].deletion.as_mut().unwrap().num_deleted = 11),
        ),
        (
            "deletion file without its feature",
            Box::new(|m| {
                m.reader_features.remove("deletion_files");
            }),
        ),
        (
            "row-id file without its feature",
            Box::new(|m| {
                m.reader_features.remove("row_id_files");
            }),
        ),
        ("primary key not in the schema", Box::new(|m| m.primary_key = vec![3])),
        (
            "primary key without its feature",
            Box::new(|m| {
                m.writer_features.remove("primary_key");
            }),
        ),
        (
            "initial default without its feature",
            Box::new(|m| {
                m.reader_features.remove("column_defaults");
            }),
        ),
        (
            "escaping deletion path",
            Box::new(|m| m.data_files[0].deletion.as_mut().unwrap().path = "/x.bin".into()),
        ),
    ];
    for (what, mutate) in cases {
        let mut m = full_manifest();
        mutate(&mut m);
        let err = Manifest::decode(&m.encode().unwrap(), "p", 3).unwrap_err();
        assert!(matches!(err, Error::Corrupt { .. }), "{what}: {err}");
    }
}

fn stat_value() -> impl Strategy<Value = StatValue> {
    prop_oneof![
        any::<bool>().prop_map(StatValue::Bool),
        any::<i64>().prop_map(StatValue::Int),
        any::<u64>().prop_map(StatValue::Uint),
        (-1e300f64..1e300).prop_map(StatValue::Float),
        ".{0,20}".prop_map(StatValue::String),
    ]
}

proptest! {
    #[test]
    fn stats_round_trip(field_id in 0i32..1000, null_count in any::<u64>(), min in proptest::option::of(stat_value()), max in proptest::option::of(stat_value())) {
        let s = ColumnStats { field_id, null_count, min, max };
        let back: ColumnStats = serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap();
        prop_assert_eq!(back, s);
    }

    #[test]
    fn data_files_round_trip(rows in proptest::collection::vec(1u64..1_000_000, 1..20), size in any::<u64>()) {
        let mut m = full_manifest();
        let mut start = 0;
        m.data_files = rows.iter().enumerate().map(|(i, n)| {
            let f = DataFile { path: format!("data/{i}.parquet"), format: FileFormat::Parquet, num_rows: *n, size_bytes: size, row_id_start: start, stats: vec![], deletion: None, row_ids: None, blob_files: vec![] };
            start += n;
            f
        }).collect();
        m.next_row_id = start;
        prop_assert_eq!(Manifest::decode(&m.encode().unwrap(), "p", 3).unwrap(), m);
    }
}
