//! Vector search on the dev dataset (real MiniLM embeddings with exact ground truth): recall
//! of each index type with stated tolerances, filtered search, appended data, index updates,
//! and bad input.
#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use arrow_array::cast::AsArray;
use arrow_array::types::{Float32Type, Int64Type};
use arrow_array::RecordBatch;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use vlake_table::{
    BatchStream, Error, IndexOptions, IndexType, IvfParams, Metric, Table, TableLocation, WriteMode, WriteOptions,
};

fn dev(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/data/dev")
        .join(name)
}

fn read(path: PathBuf) -> Vec<RecordBatch> {
    let file =
        std::fs::File::open(&path).unwrap_or_else(|e| panic!("the dev dataset {} is needed: {e}", path.display()));
    ParquetRecordBatchReaderBuilder::try_new(file)
        .unwrap()
        .build()
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

struct Query {
    vector: Vec<f32>,
    gt: Vec<i64>,
}

fn queries() -> &'static Vec<Query> {
    static Q: OnceLock<Vec<Query>> = OnceLock::new();
    Q.get_or_init(|| {
        let mut out = vec![];
        for b in read(dev("queries.parquet")) {
            let vecs = b.column_by_name("vector").unwrap().as_fixed_size_list();
            let gts = b.column_by_name("gt").unwrap().as_list::<i32>();
            for i in 0..b.num_rows() {
                let v = vecs.value(i);
                let g = gts.value(i);
                out.push(Query {
                    vector: v.as_primitive::<Float32Type>().values().to_vec(),
                    gt: g.as_primitive::<Int64Type>().values()[..10].to_vec(),
                });
            }
        }
        out
    })
}

async fn dev_table(dir: &tempfile::TempDir) -> Table {
    let batches = read(dev("base.parquet"));
    let schema = batches[0].schema();
    let uri = dir.path().join("dev").display().to_string();
    Table::write(
        TableLocation::parse(&uri).unwrap(),
        BatchStream::from_batches(schema, batches),
        WriteMode::Create,
        &WriteOptions::default(),
    )
    .await
    .unwrap()
}

fn ids(batch: &RecordBatch) -> Vec<i64> {
    batch
        .column_by_name("id")
        .unwrap()
        .as_primitive::<Int64Type>()
        .values()
        .to_vec()
}

/// Mean recall@10 over the first `n` queries.
async fn recall(table: &Table, n: usize, tune: impl Fn(vlake_table::VectorSearch) -> vlake_table::VectorSearch) -> f64 {
    let mut hits = 0;
    for q in &queries()[..n] {
        let search = tune(
            table
                .search("vector", &q.vector)
                .metric(Metric::Cosine)
                .columns(&["id"])
                .limit(10),
        );
        let got = ids(&search.execute().await.unwrap());
        hits += got.iter().filter(|id| q.gt.contains(id)).count();
    }
    hits as f64 / (n * 10) as f64
}

#[tokio::test(flavor = "multi_thread")]
async fn exact_and_indexed_recall_on_the_dev_dataset() {
    let dir = common::tempdir();
    let table = dev_table(&dir).await;
    let exact = recall(&table, 50, |s| s.exact(true)).await;
    assert!(exact >= 0.99, "exact recall@10 {exact}");

    let hnsw = table
        .create_index(&IndexOptions::new("vector", IndexType::Hnsw))
        .await
        .unwrap();
    let r = recall(&hnsw, 100, |s| s.ef(100)).await;
    assert!(r >= 0.95, "HNSW recall@10 {r} < 0.95");

    let mut opts = IndexOptions::new("vector", IndexType::IvfPq);
    opts.name = Some("pq".into());
    let pq = table.create_index(&opts).await.unwrap();
    let r = recall(&pq, 100, |s| s.nprobes(32).refine(10)).await;
    assert!(r >= 0.95, "IVF-PQ recall@10 {r} < 0.95");

    let mut opts = IndexOptions::new("vector", IndexType::IvfFlat);
    opts.ivf = IvfParams {
        partitions: Some(64),
        ..Default::default()
    };
    let flat = pq.create_index(&opts).await.unwrap();
    let r = recall(&flat, 100, |s| s.nprobes(16)).await;
    assert!(r >= 0.95, "IVF-Flat recall@10 {r} < 0.95");
    let names: Vec<&str> = flat.manifest().indexes.iter().map(|i| i.name.as_str()).collect();
    assert_eq!(
        names,
        ["pq", "vector_idx"],
        "same default name: the HNSW index was replaced"
    );
    let r = recall(&flat, 100, |s| s.index("pq").nprobes(32)).await;
    assert!(r >= 0.95, "IVF-PQ by name: recall@10 {r} < 0.95");
    assert!(flat
        .search("vector", &queries()[0].vector)
        .index("nope")
        .execute()
        .await
        .is_err());

    // Building from a stale version conflicts with the index of that name committed since.
    let e = hnsw
        .create_index(&IndexOptions::new("vector", IndexType::IvfFlat))
        .await
        .unwrap_err();
    assert!(matches!(e, Error::CommitConflict { retryable: true, .. }), "{e}");
}

#[tokio::test(flavor = "multi_thread")]
async fn filtered_search_returns_k_matching_rows() {
    let dir = common::tempdir();
    let table = dev_table(&dir)
        .await
        .create_index(&IndexOptions::new("vector", IndexType::Hnsw))
        .await
        .unwrap();
    let mut hits = 0;
    for q in &queries()[..30] {
        let run = |exact: bool| {
            let s = table
                .search("vector", &q.vector)
                .filter_sql("pos = 'r'")
                .unwrap()
                .exact(exact)
                .columns(&["id", "pos"])
                .limit(10);
            async move { s.execute().await }
        };
        let got = run(false).await.unwrap();
        let truth = ids(&run(true).await.unwrap());
        assert_eq!(got.num_rows(), 10);
        assert!(got
            .column_by_name("pos")
            .unwrap()
            .as_string::<i32>()
            .iter()
            .all(|p| p == Some("r")));
        hits += ids(&got).iter().filter(|id| truth.contains(id)).count();
    }
    let r = hits as f64 / 300.0;
    assert!(r >= 0.95, "filtered recall@10 {r} < 0.95");

    // A filter that matches 3 rows returns those 3; postfiltering may return fewer than k.
    let q = &queries()[0].vector;
    let g = &queries()[5].gt;
    let few = table
        .search("vector", q)
        .filter_sql(&format!("id IN ({}, {}, {})", g[0], g[1], g[2]))
        .unwrap()
        .execute()
        .await
        .unwrap();
    assert_eq!(few.num_rows(), 3);
    let post = table
        .search("vector", q)
        .filter_sql("pos = 'r'")
        .unwrap()
        .prefilter(false)
        .execute()
        .await
        .unwrap();
    assert!(post.num_rows() <= 10);
}

#[tokio::test(flavor = "multi_thread")]
async fn appended_rows_are_found_and_index_updates_cover_them() {
    let dir = common::tempdir();
    let table = dev_table(&dir).await;
    let mut opts = IndexOptions::new("vector", IndexType::IvfPq);
    opts.ivf.partitions = Some(32);
    let indexed = table.create_index(&opts).await.unwrap();
    // Append the first query itself as a new row: it must come back first, at distance ~0.
    let base = read(dev("base.parquet"));
    let q = &queries()[0];
    let row = base[0].slice(0, 1);
    let mut columns = row.columns().to_vec();
    columns[0] = Arc::new(arrow_array::Int64Array::from(vec![-1]));
    let item = Arc::new(arrow_schema::Field::new(
        "element",
        arrow_schema::DataType::Float32,
        true,
    ));
    let vector = arrow_array::FixedSizeListArray::new(
        item,
        384,
        Arc::new(arrow_array::Float32Array::from(q.vector.clone())),
        None,
    );
    let vi = row.schema().index_of("vector").unwrap();
    columns[vi] = Arc::new(vector);
    let row = RecordBatch::try_new(row.schema(), columns).unwrap();
    let appended = indexed
        .append(
            BatchStream::from_batches(row.schema(), vec![row]),
            &WriteOptions::default(),
        )
        .await
        .unwrap();
    let hit = appended.search("vector", &q.vector).limit(3).execute().await.unwrap();
    assert_eq!(ids(&hit)[0], -1);
    assert!(
        hit.column_by_name("_distance")
            .unwrap()
            .as_primitive::<Float32Type>()
            .value(0)
            < 1e-5
    );

    let updated = appended.update_index("vector_idx").await.unwrap();
    let entry = &updated.manifest().indexes[0];
    assert_eq!((entry.files.len(), entry.covered_files.len()), (2, 2));
    assert_eq!(
        ids(&updated.search("vector", &q.vector).limit(3).execute().await.unwrap())[0],
        -1
    );
    // Updating again is a no-op.
    assert_eq!(
        updated.update_index("vector_idx").await.unwrap().version(),
        updated.version()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_searches_and_damaged_indexes_fail_clearly() {
    let dir = common::tempdir();
    let table = dev_table(&dir)
        .await
        .create_index(&IndexOptions::new("vector", IndexType::IvfFlat))
        .await
        .unwrap();
    let q = queries()[0].vector.clone();
    let err = |r: Result<RecordBatch, Error>| r.unwrap_err().to_string();
    assert!(err(table.search("vector", &q[..10]).execute().await).contains("10 dimensions"));
    let mut nan = q.clone();
    nan[3] = f32::NAN;
    assert!(err(table.search("vector", &nan).execute().await).contains("position 3"));
    assert!(err(table.search("vector", &q).limit(0).execute().await).contains("k must be"));
    assert!(err(table.search("vector", &q).limit(1 << 40).execute().await).contains("k must be"));
    assert!(err(table.search("gloss", &q).execute().await).contains("not a vector column"));
    assert!(err(table.search("nope", &q).execute().await).contains("nope"));
    let e = table
        .create_index(&IndexOptions::new("pos", IndexType::Hnsw))
        .await
        .unwrap_err();
    assert!(matches!(e, Error::InvalidInput(_)), "{e}");
    let mut opts = IndexOptions::new("vector", IndexType::IvfPq);
    opts.ivf.pq_subvectors = Some(7);
    assert!(table
        .create_index(&opts)
        .await
        .unwrap_err()
        .to_string()
        .contains("divide"));

    // Range search: everything within a distance, exactly.
    let top = table
        .search("vector", &q)
        .metric(Metric::Cosine)
        .exact(true)
        .limit(20)
        .execute()
        .await
        .unwrap();
    let radius = top
        .column_by_name("_distance")
        .unwrap()
        .as_primitive::<Float32Type>()
        .value(19);
    let near = table
        .search("vector", &q)
        .metric(Metric::Cosine)
        .within(radius)
        .limit(100_000)
        .execute()
        .await
        .unwrap();
    let d = near.column_by_name("_distance").unwrap().as_primitive::<Float32Type>();
    assert!(
        d.len() >= 20 && d.values().iter().all(|x| *x <= radius),
        "{} rows",
        d.len()
    );

    // A missing index file fails the query naming the file, or falls back to exact search.
    let path = table.manifest().indexes[0].files[0].clone();
    let fresh = Table::open(table.uri()).await.unwrap();
    std::fs::remove_file(dir.path().join("dev").join(&path)).unwrap();
    let e = fresh
        .search("vector", &q)
        .metric(Metric::Cosine)
        .execute()
        .await
        .unwrap_err();
    assert!(e.to_string().contains(&path), "{e}");
    let ok = fresh
        .search("vector", &q)
        .metric(Metric::Cosine)
        .fallback_to_exact(true)
        .columns(&["id"])
        .execute()
        .await
        .unwrap();
    assert_eq!(ids(&ok), queries()[0].gt);

    // Truncated segments are corrupt, never a panic.
    for (name, kind) in [("h2", IndexType::Hnsw), ("pq2", IndexType::IvfPq)] {
        let mut opts = IndexOptions::new("vector", kind);
        opts.name = Some(name.into());
        let t = fresh.create_index(&opts).await.unwrap();
        let path = t.manifest().indexes.last().unwrap().files[0].clone();
        let full = dir.path().join("dev").join(&path);
        let bytes = std::fs::read(&full).unwrap();
        std::fs::write(&full, &bytes[..bytes.len() / 2]).unwrap();
        let e = t.search("vector", &q).index(name).execute().await.unwrap_err();
        assert!(
            matches!(&e, Error::Corrupt { path: p, .. } if p.contains(&path)),
            "{name}: {e}"
        );
        let ok = t
            .search("vector", &q)
            .index(name)
            .fallback_to_exact(true)
            .columns(&["id"])
            .execute()
            .await
            .unwrap();
        assert_eq!(ids(&ok), queries()[0].gt);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn ivf_queries_read_only_the_partitions_they_probe() {
    use std::sync::atomic::Ordering;
    use vlake_io::{InstrumentedStore, IoCounters};
    let dir = common::tempdir();
    let table = dev_table(&dir).await;
    let mut opts = IndexOptions::new("vector", IndexType::IvfFlat);
    opts.ivf.partitions = Some(64);
    table.create_index(&opts).await.unwrap();
    let counters = Arc::new(IoCounters::default());
    let location = TableLocation::parse(table.uri())
        .unwrap()
        .with_store(|s| Arc::new(InstrumentedStore::new(s, counters.clone())));
    let t = vlake_table::TableBuilder::new(location)
        .version(vlake_table::VersionRef::Latest)
        .open()
        .await
        .unwrap();
    // The data files' footers, read once per session, are not the index's reads.
    t.verify_row_counts().await.unwrap();
    let before = counters.gets.load(Ordering::SeqCst);
    let q = &queries()[0].vector;
    t.search("vector", q).nprobes(4).nearest().await.unwrap();
    let first = counters.gets.load(Ordering::SeqCst) - before;
    // Prefix, header, centroids, then one ranged read per probed partition: nothing else.
    assert!(first <= 3 + 4, "first query made {first} reads");
    t.search("vector", q).nprobes(4).nearest().await.unwrap();
    assert_eq!(
        counters.gets.load(Ordering::SeqCst) - before,
        first,
        "a repeated query is served from the cache"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn float16_vectors_and_null_vectors_are_searched() {
    let dir = common::tempdir();
    let uri = dir.path().join("t").display().to_string();
    // `half` is f16 [i, 0.5]; `vector` is f32 and null on every 7th row.
    let t = Table::write(
        TableLocation::parse(&uri).unwrap(),
        common::stream(0..500),
        WriteMode::Create,
        &WriteOptions::default(),
    )
    .await
    .unwrap();
    let exact = t
        .search("half", &[50.0, 0.5])
        .metric(Metric::L2)
        .columns(&["id"])
        .limit(3)
        .execute()
        .await
        .unwrap();
    assert_eq!(ids(&exact), [50, 49, 51]);
    let indexed = t
        .create_index(&IndexOptions {
            metric: Metric::L2,
            ..IndexOptions::new("half", IndexType::Hnsw)
        })
        .await
        .unwrap();
    let got = indexed
        .search("half", &[50.0, 0.5])
        .columns(&["id"])
        .limit(3)
        .execute()
        .await
        .unwrap();
    assert_eq!(ids(&got), [50, 49, 51]);
    // Rows with a null vector are never returned.
    let q: Vec<f32> = (0..common::DIM).map(|d| 70.0 + d as f32 / 10.0).collect();
    let hits = t
        .search("vector", &q)
        .metric(Metric::L2)
        .columns(&["id"])
        .limit(5)
        .execute()
        .await
        .unwrap();
    assert!(!ids(&hits).contains(&70), "row 70 has a null vector");
    assert!([69, 71].contains(&ids(&hits)[0]), "{:?}", ids(&hits));
}

#[tokio::test(flavor = "multi_thread")]
async fn duplicates_still_give_k_rows_and_nan_vectors_cannot_be_indexed() {
    let dir = common::tempdir();
    let uri = dir.path().join("t").display().to_string();
    let schema = common::schema();
    let mut batch = common::batch(0..400);
    // Rows 0..300 all get the same vector.
    let same: Vec<f32> = (0..400)
        .flat_map(|i| (0..common::DIM).map(move |d| if i < 300 { 1.0 } else { i as f32 + d as f32 }))
        .collect();
    let item = Arc::new(arrow_schema::Field::new("item", arrow_schema::DataType::Float32, true));
    let mut columns = batch.columns().to_vec();
    columns[3] = Arc::new(arrow_array::FixedSizeListArray::new(
        item.clone(),
        common::DIM,
        Arc::new(arrow_array::Float32Array::from(same)),
        None,
    ));
    batch = RecordBatch::try_new(schema.clone(), columns.clone()).unwrap();
    let t = Table::write(
        TableLocation::parse(&uri).unwrap(),
        BatchStream::from_batches(schema.clone(), vec![batch]),
        WriteMode::Create,
        &WriteOptions::default(),
    )
    .await
    .unwrap();
    let t = t
        .create_index(&IndexOptions {
            metric: Metric::L2,
            ..IndexOptions::new("vector", IndexType::Hnsw)
        })
        .await
        .unwrap();
    let hits = t
        .search("vector", &[1.0; common::DIM as usize])
        .columns(&["id"])
        .limit(100)
        .execute()
        .await
        .unwrap();
    assert_eq!(hits.num_rows(), 100);
    assert!(ids(&hits).iter().all(|id| *id < 300));

    let mut nan = vec![0.5f32; 10 * common::DIM as usize];
    nan[13] = f32::NAN;
    columns[3] = Arc::new(arrow_array::FixedSizeListArray::new(
        item,
        common::DIM,
        Arc::new(arrow_array::Float32Array::from(nan)),
        None,
    ));
    let rows: Vec<arrow_array::ArrayRef> = columns.iter().map(|c| c.slice(0, 10)).collect();
    let mut rows = rows;
    rows[3] = columns[3].clone();
    let bad = RecordBatch::try_new(schema.clone(), rows).unwrap();
    let t = t
        .append(BatchStream::from_batches(schema, vec![bad]), &WriteOptions::default())
        .await
        .unwrap();
    let e = t
        .create_index(&IndexOptions::new("vector", IndexType::IvfFlat))
        .await
        .unwrap_err();
    assert!(matches!(&e, Error::InvalidInput(m) if m.contains("non-finite")), "{e}");
}
