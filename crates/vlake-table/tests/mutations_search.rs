//! Vector search after deletes, updates and compaction, on the dev dataset (real MiniLM
//! embeddings): deleted rows are never returned, exactly or through an index, and compaction
//! (which remaps index coverage instead of rebuilding) returns the same neighbours as before.
#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;

use arrow_array::cast::AsArray;
use arrow_array::types::{Float32Type, Int64Type, UInt64Type};
use arrow_array::RecordBatch;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use vlake_table::{
    Assignment, BatchStream, CompactOptions, IndexOptions, IndexType, IvfParams, Metric, Neighbor, Predicate, Table,
    TableLocation, VersionRef, WriteMode, WriteOptions,
};

fn read(name: &str) -> Vec<RecordBatch> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/data/dev")
        .join(name);
    let file =
        std::fs::File::open(&path).unwrap_or_else(|e| panic!("the dev dataset {} is needed: {e}", path.display()));
    ParquetRecordBatchReaderBuilder::try_new(file)
        .unwrap()
        .build()
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

fn query_vectors(n: usize) -> Vec<Vec<f32>> {
    let mut out = vec![];
    for b in read("queries.parquet") {
        let vecs = b.column_by_name("vector").unwrap().as_fixed_size_list();
        for i in 0..b.num_rows() {
            out.push(vecs.value(i).as_primitive::<Float32Type>().values().to_vec());
        }
    }
    out.truncate(n);
    out
}

/// The dev dataset in four files of 5,000 rows, with an HNSW and an IVF-Flat index.
async fn indexed_dev_table(dir: &tempfile::TempDir) -> Table {
    let batches = read("base.parquet");
    let schema = batches[0].schema();
    let uri = dir.path().join("dev").display().to_string();
    let table = Table::write(
        TableLocation::parse(&uri).unwrap(),
        BatchStream::from_batches(schema, batches),
        WriteMode::Create,
        &WriteOptions {
            max_rows_per_file: 5000,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let mut hnsw = IndexOptions::new("vector", IndexType::Hnsw);
    hnsw.metric = Metric::Cosine;
    hnsw.name = Some("hnsw".into());
    let table = table.create_index(&hnsw).await.unwrap();
    let mut ivf = IndexOptions::new("vector", IndexType::IvfFlat);
    ivf.metric = Metric::Cosine;
    ivf.name = Some("ivf".into());
    ivf.ivf = IvfParams {
        partitions: Some(32),
        ..IvfParams::default()
    };
    table.create_index(&ivf).await.unwrap()
}

async fn knn(table: &Table, q: &[f32], index: Option<&str>, k: usize) -> Vec<Neighbor> {
    let search = table.search("vector", q).metric(Metric::Cosine).limit(k);
    let search = match index {
        Some(name) => search.index(name).nprobes(32).ef(200),
        None => search.exact(true),
    };
    search.nearest().await.unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn deleted_and_updated_rows_are_never_found_and_compaction_keeps_neighbours() {
    let dir = common::tempdir();
    let table = indexed_dev_table(&dir).await;
    let queries = query_vectors(20);
    // Delete the exact top-5 of every query (the rows an index would surely return) and 1% more.
    let mut doomed: Vec<u64> = vec![];
    for q in &queries {
        doomed.extend(knn(&table, q, None, 5).await.iter().map(|n| n.id));
    }
    let id_of = id_by_row_id(&table).await;
    let rows_where = |rem: i64| {
        id_of
            .iter()
            .filter(move |(_, id)| id.rem_euclid(100) == rem)
            .map(|(r, _)| *r)
    };
    let sql = common::id_in(
        doomed
            .iter()
            .chain(&rows_where(7).collect::<Vec<_>>())
            .map(|r| id_of[r]),
    );
    let deleted = table.delete(&Predicate::parse(&sql).unwrap()).await.unwrap();
    let gone: HashSet<u64> = doomed.iter().copied().chain(rows_where(7)).collect();
    assert_eq!(deleted.num_rows(), 20_000 - gone.len() as u64);
    // Updated rows move to new files (searched exactly) with new row ids: the old ids are gone.
    let set = Assignment::parse_list("gloss = 'updated'").unwrap();
    let updated = deleted
        .update(
            &set,
            Some(&Predicate::parse(&common::id_in(rows_where(8).map(|r| id_of[&r]))).unwrap()),
            &WriteOptions::default(),
        )
        .await
        .unwrap();
    let gone: HashSet<u64> = gone.into_iter().chain(rows_where(8)).collect();

    for q in &queries {
        for index in [None, Some("hnsw"), Some("ivf")] {
            let found = knn(&updated, q, index, 50).await;
            assert_eq!(found.len(), 50);
            assert!(
                found.iter().all(|n| !gone.contains(&n.id)),
                "{index:?} returned a deleted row"
            );
        }
        // The search API returns rows, with the updated values.
        let rows = updated
            .search("vector", q)
            .metric(Metric::Cosine)
            .index("hnsw")
            .columns(&["id", "gloss"])
            .limit(20)
            .execute()
            .await
            .unwrap();
        let ids = rows.column(0).as_primitive::<Int64Type>();
        let gloss = rows.column(1).as_string::<i32>();
        for r in 0..rows.num_rows() {
            let id = ids.value(r);
            assert_ne!(id.rem_euclid(100), 7, "deleted id {id}");
            assert_eq!(gloss.value(r) == "updated", id.rem_euclid(100) == 8, "id {id}");
        }
    }

    // Compaction materialises the deletes; the neighbours (ids and distances) stay the same.
    let before: Vec<Vec<Vec<Neighbor>>> = futures_collect(&updated, &queries).await;
    let (compacted, report) = updated.compact(&CompactOptions::default()).await.unwrap();
    assert!(report.files_removed >= 4, "{report:?}");
    let covered = |t: &Table, name: &str| {
        t.manifest()
            .indexes
            .iter()
            .find(|i| i.name == name)
            .unwrap()
            .covered_files
            .clone()
    };
    assert!(
        !covered(&compacted, "hnsw").is_empty(),
        "the index was remapped, not dropped"
    );
    let after = futures_collect(&compacted, &queries).await;
    assert_eq!(after, before, "KNN results changed by compaction");
    // Old versions still search as they did.
    let original = compacted.checkout(VersionRef::Version(3)).await.unwrap();
    assert_eq!(original.num_rows(), 20_000);
    let first = knn(&original, &queries[0], None, 5).await;
    assert!(first.iter().all(|n| doomed.contains(&n.id)));
}

/// The dataset's `id` of every row id.
async fn id_by_row_id(table: &Table) -> HashMap<u64, i64> {
    let mut out = HashMap::new();
    for b in table.scan().columns(&["id"]).with_row_id(true).collect().await.unwrap() {
        let ids = b.column(0).as_primitive::<Int64Type>();
        let rows = b.column(1).as_primitive::<UInt64Type>();
        out.extend(rows.values().iter().copied().zip(ids.values().iter().copied()));
    }
    out
}

async fn futures_collect(table: &Table, queries: &[Vec<f32>]) -> Vec<Vec<Vec<Neighbor>>> {
    let mut out = vec![];
    for q in queries {
        let mut per = vec![];
        for index in [None, Some("hnsw"), Some("ivf")] {
            per.push(knn(table, q, index, 10).await);
        }
        out.push(per);
    }
    out
}
