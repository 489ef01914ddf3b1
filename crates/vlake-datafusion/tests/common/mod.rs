//! Fixtures shared by the SQL tests: the dev dataset (real MiniLM embeddings with exact ground
//! truth) as a vlake table with an HNSW index.
#![allow(dead_code, clippy::unwrap_used, clippy::panic)]

use std::path::{Path, PathBuf};

use datafusion::arrow::array::{AsArray, RecordBatch};
use datafusion::arrow::datatypes::{Float32Type, Int64Type};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use vlake_table::{BatchStream, IndexOptions, IndexType, Metric, Table, TableLocation, WriteMode, WriteOptions};

/// A file of the dev dataset.
pub fn dev(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/data/dev")
        .join(name)
}

/// All batches of a Parquet file.
pub fn read(path: &Path) -> Vec<RecordBatch> {
    let file =
        std::fs::File::open(path).unwrap_or_else(|e| panic!("the dev dataset {} is needed: {e}", path.display()));
    ParquetRecordBatchReaderBuilder::try_new(file)
        .unwrap()
        .build()
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

/// A query of the dev dataset and the ids of its 10 true nearest neighbours (cosine).
pub struct Query {
    pub vector: Vec<f32>,
    pub gt: Vec<i64>,
}

/// The dev dataset's queries.
pub fn queries() -> Vec<Query> {
    let mut out = vec![];
    for b in read(&dev("queries.parquet")) {
        let vecs = b.column_by_name("vector").unwrap().as_fixed_size_list();
        let gts = b.column_by_name("gt").unwrap().as_list::<i32>();
        for i in 0..b.num_rows() {
            out.push(Query {
                vector: vecs.value(i).as_primitive::<Float32Type>().values().to_vec(),
                gt: gts.value(i).as_primitive::<Int64Type>().values()[..10].to_vec(),
            });
        }
    }
    out
}

/// A vector as an SQL array literal.
pub fn literal(v: &[f32]) -> String {
    let parts: Vec<String> = v.iter().map(|x| format!("{x:?}")).collect();
    format!("[{}]", parts.join(", "))
}

/// The dev dataset as a table at `dir/dev`, with a cosine HNSW index on `vector`.
pub async fn dev_table(dir: &Path) -> Table {
    let batches = read(&dev("base.parquet"));
    let uri = dir.join("dev").display().to_string();
    let table = Table::write(
        TableLocation::parse(&uri).unwrap(),
        BatchStream::from_batches(batches[0].schema(), batches),
        WriteMode::Create,
        &WriteOptions::default(),
    )
    .await
    .unwrap();
    let mut opts = IndexOptions::new("vector", IndexType::Hnsw);
    opts.metric = Metric::Cosine;
    table.create_index(&opts).await.unwrap()
}

/// A small table at `dir/small`: 2,000 rows of `id`, `grp` ('a'..'e') and a 4-d `vec`, with an
/// L2 HNSW index.
pub async fn small_table(dir: &Path) -> Table {
    use std::sync::Arc;

    use datafusion::arrow::array::{FixedSizeListArray, Float32Array, Int64Array, StringArray};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};

    let n = 2000;
    let ids = Int64Array::from_iter_values(0..n);
    let groups = StringArray::from_iter_values((0..n).map(|i| ["a", "b", "c", "d", "e"][(i % 5) as usize]));
    let values = Float32Array::from_iter_values((0..n).flat_map(|i| {
        let t = i as f32 * 0.37;
        [t.cos(), t.sin(), (i % 7) as f32 / 7.0, (i % 11) as f32 / 11.0]
    }));
    let item = Arc::new(Field::new("item", DataType::Float32, true));
    let vectors = FixedSizeListArray::new(item.clone(), 4, Arc::new(values), None);
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("grp", DataType::Utf8, true),
        Field::new("vec", DataType::FixedSizeList(item, 4), true),
    ]));
    let batch = RecordBatch::try_new(schema.clone(), vec![Arc::new(ids), Arc::new(groups), Arc::new(vectors)]).unwrap();
    let uri = dir.join("small").display().to_string();
    let table = Table::write(
        TableLocation::parse(&uri).unwrap(),
        BatchStream::from_batches(schema, vec![batch]),
        WriteMode::Create,
        &WriteOptions::default(),
    )
    .await
    .unwrap();
    let mut opts = IndexOptions::new("vec", IndexType::Hnsw);
    opts.metric = Metric::L2;
    table.create_index(&opts).await.unwrap()
}

/// A table at `dir/text` of `id`, `text` and a 2-d `vec`: eight short texts in a file covered
/// by a full-text index on `text`, then two appended texts it does not cover.
pub async fn text_table(dir: &Path) -> Table {
    use std::sync::Arc;

    use datafusion::arrow::array::{FixedSizeListArray, Float32Array, Int64Array, StringArray};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};

    const TEXTS: [&str; 10] = [
        "The quick brown fox jumps over the lazy dog",
        "A quick brown dog outpaces a quick red fox",
        "Lazy dogs sleep all day",
        "The brown bear eats honey",
        "Foxes are quick and clever",
        "A dog is a loyal companion",
        "Quickly, the fox ran to the brownstone building",
        "Honey bees make honey",
        "The red fox hunts at dusk",
        "Brown bread with honey",
    ];
    let item = Arc::new(Field::new("item", DataType::Float32, true));
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("text", DataType::Utf8, true),
        Field::new("vec", DataType::FixedSizeList(item.clone(), 2), true),
    ]));
    let batch = |rows: std::ops::Range<i64>| {
        let values = Float32Array::from_iter_values(rows.clone().flat_map(|i| {
            let a = i as f32 * 0.3;
            [a.cos(), a.sin()]
        }));
        RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(Int64Array::from_iter_values(rows.clone())),
                Arc::new(StringArray::from_iter_values(rows.map(|i| TEXTS[i as usize]))),
                Arc::new(FixedSizeListArray::new(item.clone(), 2, Arc::new(values), None)),
            ],
        )
        .unwrap()
    };
    let uri = dir.join("text").display().to_string();
    let table = Table::write(
        TableLocation::parse(&uri).unwrap(),
        BatchStream::from_batches(schema.clone(), vec![batch(0..8)]),
        WriteMode::Create,
        &WriteOptions::default(),
    )
    .await
    .unwrap()
    .create_index(&IndexOptions::new("text", IndexType::Fts))
    .await
    .unwrap();
    table
        .append(
            BatchStream::from_batches(schema.clone(), vec![batch(8..10)]),
            &WriteOptions::default(),
        )
        .await
        .unwrap()
}
