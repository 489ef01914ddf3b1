//! Random sequences of append, delete, update, upsert, add-column and compaction on a table
//! with a primary key agree with a simple in-memory model: the live rows, their values and
//! their row ids, at the latest version and at every older version, through scans, counts and
//! exact vector search.
#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use std::collections::{BTreeMap, BTreeSet};

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int64Type, UInt64Type};
use arrow_array::Array;
use common::*;
use proptest::prelude::*;
use vlake_table::{Assignment, CompactOptions, Predicate, Table, VersionRef, WriteOptions, ROW_ID};

#[derive(Clone, Debug)]
enum Op {
    Append(i64),
    Delete { modulus: i64, rest: i64 },
    Update { modulus: i64, rest: i64, delta: i64 },
    Compact { target: usize },
    Upsert { start: i64, len: i64, score: i64 },
    AddColumn { default: Option<i64> },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (1i64..12).prop_map(Op::Append),
        (2i64..6, 0i64..6).prop_map(|(modulus, rest)| Op::Delete {
            modulus,
            rest: rest % modulus
        }),
        (2i64..6, 0i64..6, -3i64..4).prop_map(|(modulus, rest, delta)| Op::Update {
            modulus,
            rest: rest % modulus,
            delta
        }),
        prop_oneof![Just(3usize), Just(8), Just(1000)].prop_map(|target| Op::Compact { target }),
        (0i64..40, 1i64..8, -5i64..5).prop_map(|(start, len, score)| Op::Upsert { start, len, score }),
        proptest::option::of(-3i64..3).prop_map(|default| Op::AddColumn { default }),
    ]
}

/// A live row: its score, the values of the added columns `c0`, `c1`, ..., and its row id
/// (`None` right after an update or upsert, until read back).
#[derive(Clone, Debug, PartialEq)]
struct Row {
    score: Option<f64>,
    extra: Vec<Option<i64>>,
    row_id: Option<u64>,
}

type Rows = BTreeMap<i64, Row>;

/// What the table holds, read back: id to (score, added columns, row id).
async fn read(table: &Table, added: usize) -> BTreeMap<i64, (Option<f64>, Vec<Option<i64>>, u64)> {
    let mut columns = vec!["id".to_string(), "score".to_string()];
    columns.extend((0..added).map(|c| format!("c{c}")));
    let batches = table
        .scan()
        .columns(&columns)
        .with_row_id(true)
        .collect()
        .await
        .unwrap();
    let mut out = BTreeMap::new();
    for b in &batches {
        let ids = b.column(0).as_primitive::<Int64Type>();
        let scores = b.column(1).as_primitive::<Float64Type>();
        let row_ids = b.column_by_name(ROW_ID).unwrap().as_primitive::<UInt64Type>();
        for r in 0..b.num_rows() {
            let score = scores.is_valid(r).then(|| scores.value(r));
            let extra = (0..added)
                .map(|c| {
                    let values = b.column(2 + c).as_primitive::<Int64Type>();
                    values.is_valid(r).then(|| values.value(r))
                })
                .collect();
            assert!(
                out.insert(ids.value(r), (score, extra, row_ids.value(r))).is_none(),
                "id twice"
            );
        }
    }
    out
}

/// Checks the table against the model; learns the row ids of rows the model does not know
/// yet (updated ones), which must be new: at least `fresh_from`, and unique.
async fn check(table: &Table, model: &mut Rows, added: usize, fresh_from: u64) {
    let got = read(table, added).await;
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        model.keys().collect::<Vec<_>>(),
        "row sets"
    );
    let mut seen = BTreeSet::new();
    for (id, row) in model.iter_mut() {
        let (score, extra, row_id) = got[id].clone();
        assert_eq!(score, row.score, "score of id {id}");
        assert_eq!(extra, row.extra, "added columns of id {id}");
        match row.row_id {
            Some(known) => assert_eq!(row_id, known, "row id of id {id}"),
            None => {
                assert!(row_id >= fresh_from, "id {id} got reused row id {row_id}");
                row.row_id = Some(row_id);
            }
        }
        assert!(seen.insert(row_id), "row id {row_id} twice");
    }
    assert_eq!(table.num_rows(), model.len() as u64);
    assert_eq!(table.scan().count_rows().await.unwrap(), model.len() as u64);
    // Exact search over everything returns exactly the live rows that have a vector.
    let with_vector: BTreeSet<u64> = model
        .iter()
        .filter(|(id, _)| *id % 7 != 0)
        .map(|(_, r)| r.row_id.unwrap())
        .collect();
    let q = [1.0f32; DIM as usize];
    let k = with_vector.len().max(1);
    let found: BTreeSet<u64> = table
        .search("vector", &q)
        .exact(true)
        .limit(k)
        .nearest()
        .await
        .unwrap()
        .iter()
        .map(|n| n.id)
        .collect();
    assert_eq!(found, with_vector, "search results");
}

async fn run(ops: Vec<Op>) {
    let uri = format!("memory://model-{}/t", uuid_like());
    let keyed = WriteOptions {
        primary_key: vec!["id".into()],
        ..Default::default()
    };
    let location = vlake_table::TableLocation::parse(&uri).unwrap();
    let empty = vlake_table::BatchStream::from_batches(schema(), vec![]);
    let mut table = Table::write(location, empty, vlake_table::WriteMode::Create, &keyed)
        .await
        .unwrap();
    let mut model = Rows::new();
    let mut added = 0usize;
    let mut next_id = 0i64;
    let mut versions: Vec<(u64, Rows, usize)> = vec![(1, model.clone(), 0)];
    for op in ops {
        let fresh_from = table.manifest().next_row_id;
        let next = match &op {
            Op::Append(n) => {
                let t = table
                    .append(stream(next_id..next_id + n), &WriteOptions::default())
                    .await
                    .unwrap();
                for (i, id) in (next_id..next_id + n).enumerate() {
                    let score = (id % 5 != 0).then_some(id as f64 * 0.5);
                    model.insert(
                        id,
                        Row {
                            score,
                            extra: vec![None; added],
                            row_id: Some(fresh_from + i as u64),
                        },
                    );
                }
                next_id += n;
                t
            }
            Op::Delete { modulus, rest } => {
                let sql = id_in((0..next_id).filter(|id| id % modulus == *rest));
                model.retain(|id, _| id % modulus != *rest);
                table.delete(&Predicate::parse(&sql).unwrap()).await.unwrap()
            }
            Op::Update { modulus, rest, delta } => {
                let set = Assignment::parse_list(&format!("score = score + {delta}")).unwrap();
                let filter = Predicate::parse(&id_in((0..next_id).filter(|id| id % modulus == *rest))).unwrap();
                for (_, row) in model.iter_mut().filter(|(id, _)| *id % modulus == *rest) {
                    row.score = row.score.map(|s| s + *delta as f64);
                    row.row_id = None;
                }
                table
                    .update(&set, Some(&filter), &WriteOptions::default())
                    .await
                    .unwrap()
            }
            Op::Upsert { start, len, score } => {
                let keys: Vec<i64> = (*start..start + len).collect();
                let batches = keys
                    .iter()
                    .map(|id| {
                        let b = batch(*id..id + 1);
                        let mut columns = b.columns().to_vec();
                        columns[2] = std::sync::Arc::new(arrow_array::Float64Array::from(vec![*score as f64]));
                        arrow_array::RecordBatch::try_new(schema(), columns).unwrap()
                    })
                    .collect();
                for id in &keys {
                    let row = Row {
                        score: Some(*score as f64),
                        extra: vec![None; added],
                        row_id: None,
                    };
                    model.insert(*id, row);
                }
                next_id = next_id.max(start + len);
                let source = vlake_table::BatchStream::from_batches(schema(), batches);
                let (t, report) = table
                    .merge_insert(source, &vlake_table::MergeInsert::upsert(), &WriteOptions::default())
                    .await
                    .unwrap();
                assert_eq!(report.inserted + report.updated, keys.len() as u64);
                t
            }
            Op::AddColumn { default } => {
                let field = arrow_schema::Field::new(format!("c{added}"), arrow_schema::DataType::Int64, true);
                let value = match default {
                    Some(d) => vlake_table::ColumnValue::Default(vlake_table::Literal::Int(*d)),
                    None => vlake_table::ColumnValue::Null,
                };
                added += 1;
                for row in model.values_mut() {
                    row.extra.push(*default);
                }
                table
                    .alter_schema(&[vlake_table::SchemaChange::AddColumn { field, value }])
                    .await
                    .unwrap()
            }
            Op::Compact { target } => {
                let (t, _) = table
                    .compact(&CompactOptions {
                        target_rows_per_file: *target,
                        ..CompactOptions::default()
                    })
                    .await
                    .unwrap();
                t
            }
        };
        check(&next, &mut model, added, fresh_from).await;
        if next.version() != table.version() {
            versions.push((next.version(), model.clone(), added));
        }
        table = next;
    }
    // Every older version still reads as it was.
    for (version, rows, added) in versions {
        let old = table.checkout(VersionRef::Version(version)).await.unwrap();
        let mut rows = rows;
        check(&old, &mut rows, added, u64::MAX).await;
    }
}

/// A name no other case uses.
fn uuid_like() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    format!("{}-{}", std::process::id(), N.fetch_add(1, Ordering::SeqCst))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    #[test]
    fn mutations_agree_with_the_model(ops in proptest::collection::vec(op(), 1..14)) {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        runtime.block_on(run(ops));
    }
}
