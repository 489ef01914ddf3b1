//! Full-text and hybrid search through the table: an index over some files, appended files
//! analyzed at query time, deleted rows, index updates and optimize all rank exactly as one
//! index over the live rows; snippets; filters; bad input.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{Float32Type, Int64Type};
use arrow_array::{ArrayRef, FixedSizeListArray, Float32Array, Int64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use vlake_table::{
    BatchStream, Error, Fusion, IndexOptions, IndexType, OptimizeOptions, Predicate, Table, TableLocation, WriteMode,
    WriteOptions,
};

const DOCS: [&str; 12] = [
    "The quick brown fox jumps over the lazy dog",
    "A quick brown dog outpaces a quick red fox",
    "Lazy dogs sleep all day",
    "The brown bear eats honey",
    "Foxes are quick and clever",
    "A dog is a loyal companion; dogs are loyal",
    "Quickly, the fox ran to the brownstone building",
    "Honey bees make honey",
    "",
    "Bears and foxes share the forest",
    "The red fox hunts at dusk",
    "Brown bread with honey",
];

fn schema() -> SchemaRef {
    let item = Arc::new(Field::new("item", DataType::Float32, true));
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("text", DataType::Utf8, true),
        Field::new("vec", DataType::FixedSizeList(item, 2), true),
    ]))
}

/// Rows `ids` of `DOCS` (id 12 has a null text); the vector of row i points at angle i.
fn batch(ids: &[usize]) -> RecordBatch {
    let item = Arc::new(Field::new("item", DataType::Float32, true));
    let vectors: Float32Array = ids
        .iter()
        .flat_map(|i| {
            let a = *i as f32 * 0.25;
            [a.cos(), a.sin()]
        })
        .collect();
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from_iter_values(ids.iter().map(|i| *i as i64))),
        Arc::new(StringArray::from_iter(ids.iter().map(|i| DOCS.get(*i).copied()))),
        Arc::new(FixedSizeListArray::new(item, 2, Arc::new(vectors), None)),
    ];
    RecordBatch::try_new(schema(), columns).unwrap()
}

async fn table(uri: &str, files: &[&[usize]]) -> Table {
    let mut t = Table::write(
        TableLocation::parse(uri).unwrap(),
        BatchStream::from_batches(schema(), vec![batch(files[0])]),
        WriteMode::Create,
        &WriteOptions::default(),
    )
    .await
    .unwrap();
    for f in &files[1..] {
        t = t
            .append(
                BatchStream::from_batches(schema(), vec![batch(f)]),
                &WriteOptions::default(),
            )
            .await
            .unwrap();
    }
    t
}

fn fts(column: &str) -> IndexOptions {
    IndexOptions::new(column, IndexType::Fts)
}

/// (id, score) of a full-text search.
async fn ranked(t: &Table, q: &str) -> Vec<(i64, f32)> {
    let b = t.full_text_search("text", q).limit(20).execute().await.unwrap();
    let ids = b.column_by_name("id").unwrap().as_primitive::<Int64Type>();
    let scores = b.column_by_name("_score").unwrap().as_primitive::<Float32Type>();
    ids.values()
        .iter()
        .copied()
        .zip(scores.values().iter().copied())
        .collect()
}

fn same(a: &[(i64, f32)], b: &[(i64, f32)], what: &str) {
    assert_eq!(a.len(), b.len(), "{what}: {a:?} vs {b:?}");
    for (x, y) in a.iter().zip(b) {
        assert!(x.0 == y.0 && (x.1 - y.1).abs() < 1e-5, "{what}: {a:?} vs {b:?}");
    }
}

const QUERIES: [&str; 8] = [
    "fox",
    "honey OR bear",
    "\"quick brown\"",
    "brown*",
    "hooney~1",
    "fox -dog",
    "\"red fo*\"",
    "(dog OR fox) AND NOT lazy",
];

#[tokio::test]
async fn index_uncovered_files_and_deletions_rank_like_one_fresh_index() {
    let dir = tempfile::tempdir().unwrap();
    let uri = |n: &str| dir.path().join(n).display().to_string();
    let t = table(&uri("t"), &[&[0, 1, 2, 3, 4], &[5, 6, 7, 8]]).await;
    let no_index = ranked(&t, "fox").await;
    let t = t.create_index(&fts("text")).await.unwrap();
    same(&ranked(&t, "fox").await, &no_index, "index = no index");
    assert_eq!(
        no_index.iter().map(|r| r.0).collect::<Vec<_>>(),
        [4, 6, 0, 1],
        "shorter documents first, ties by row id"
    );
    // Appended rows are found without an update; deleted rows never are.
    let t = t
        .append(
            BatchStream::from_batches(schema(), vec![batch(&[9, 10, 11, 12])]),
            &WriteOptions::default(),
        )
        .await
        .unwrap();
    let t = t.delete(&Predicate::parse("id IN (1, 10)").unwrap()).await.unwrap();
    let live: Vec<usize> = [0, 2, 3, 4, 5, 6, 7, 8, 9, 11, 12].into();
    let fresh = table(&uri("fresh"), &[&live])
        .await
        .create_index(&fts("text"))
        .await
        .unwrap();
    // After an update (one more segment) and after optimize (compaction): the same.
    let updated = t.update_index("text_idx").await.unwrap();
    assert_eq!(updated.manifest().indexes[0].files.len(), 2);
    let (optimized, _) = updated.optimize(&OptimizeOptions::default()).await.unwrap();
    assert_eq!(optimized.manifest().data_files.len(), 1);
    for q in QUERIES {
        let want = ranked(&fresh, q).await;
        same(&ranked(&t, q).await, &want, q);
        same(&ranked(&updated, q).await, &want, q);
        same(&ranked(&optimized, q).await, &want, q);
    }
    let ids = |r: Vec<(i64, f32)>| {
        let mut v: Vec<i64> = r.into_iter().map(|x| x.0).collect();
        v.sort_unstable();
        v
    };
    assert_eq!(ids(ranked(&t, "fox").await), [0, 4, 6, 9]);
    assert_eq!(ids(ranked(&t, "\"red fo*\"").await), Vec::<i64>::new());
    assert_eq!(ids(ranked(&t, "honey OR bear").await), [3, 7, 9, 11]);
    assert_eq!(ids(ranked(&t, "brown*").await), [0, 3, 6, 11]);
}

#[tokio::test]
async fn snippets_filters_columns_and_row_ids() {
    let dir = tempfile::tempdir().unwrap();
    let t = table(&dir.path().join("t").display().to_string(), &[&[0, 1, 2, 3, 7, 11, 12]])
        .await
        .create_index(&fts("text"))
        .await
        .unwrap();
    let b = t
        .full_text_search("text", "honey bear*")
        .snippet(true)
        .with_row_id(true)
        .columns(&["id"])
        .execute()
        .await
        .unwrap();
    let schema = b.schema();
    let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    assert_eq!(names, ["id", "_rowid", "_score", "_snippet"]);
    let snippets: Vec<&str> = b.column(3).as_string::<i32>().iter().map(|s| s.unwrap()).collect();
    assert_eq!(
        snippets,
        [
            "The brown <b>bear</b> eats <b>honey</b>",
            "<b>Honey</b> bees make <b>honey</b>",
            "Brown bread with <b>honey</b>"
        ]
    );
    let filtered = t
        .full_text_search("text", "honey")
        .filter_sql("id > 5")
        .unwrap()
        .execute()
        .await
        .unwrap();
    let ids = filtered.column_by_name("id").unwrap().as_primitive::<Int64Type>();
    assert_eq!(ids.values(), &[7, 11]);
    // A filter does not change scores: BM25 statistics count every live row.
    let all = ranked(&t, "honey").await;
    let score7 = filtered
        .column_by_name("_score")
        .unwrap()
        .as_primitive::<Float32Type>()
        .value(0);
    assert_eq!(all.iter().find(|r| r.0 == 7).unwrap().1, score7);
}

#[tokio::test]
async fn bad_input_is_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let t = table(&dir.path().join("t").display().to_string(), &[&[0, 1]]).await;
    let err = t.create_index(&fts("id")).await.unwrap_err();
    assert!(
        matches!(err, Error::InvalidInput(_)) && err.to_string().contains("not a string column"),
        "{err}"
    );
    let err = t.create_index(&fts("nope")).await.unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err}");
    let mut bad = fts("text");
    bad.analyzer.stemmer = Some("klingon".into());
    assert!(t.create_index(&bad).await.unwrap_err().to_string().contains("klingon"));
    let err = t.full_text_search("text", "\"open").execute().await.unwrap_err();
    assert!(
        err.to_string().contains("unterminated quoted phrase at character 1"),
        "{err}"
    );
    let err = t
        .full_text_search("text", "fox")
        .index("nope")
        .execute()
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err}");
    let err = t.full_text_search("text", "fox").limit(0).execute().await.unwrap_err();
    assert!(err.to_string().contains("k must be between"), "{err}");
    // A vector search on the column ignores the full-text index, and the reverse.
    let t = t.create_index(&fts("text")).await.unwrap();
    assert!(t
        .search("text", &[1.0, 0.0])
        .execute()
        .await
        .unwrap_err()
        .to_string()
        .contains("not a vector column"));
    let err = t.full_text_search("vec", "fox").execute().await.unwrap_err();
    assert!(err.to_string().contains("not a string column"), "{err}");
}

#[tokio::test]
async fn hybrid_search_fuses_both_lists_under_one_filter() {
    let dir = tempfile::tempdir().unwrap();
    let all: Vec<usize> = (0..12).collect();
    let t = table(&dir.path().join("t").display().to_string(), &[&all])
        .await
        .create_index(&fts("text"))
        .await
        .unwrap();
    // The query vector is row 3's; the text query matches rows 0, 1, 4, 6, 9, 10.
    let q = [0.75f32.cos(), 0.75f32.sin()];
    let fused = |fusion: Fusion| {
        let t = t.clone();
        async move {
            t.hybrid_search("vec", &q, "text", "fox")
                .limit(4)
                .candidates(5)
                .fusion(fusion)
                .fused()
                .await
                .unwrap()
                .into_iter()
                .map(|(id, _)| id)
                .collect::<Vec<u64>>()
        }
    };
    // Vector ranks 3, 2|4, ...; text ranks 4, 10, 0|6, ... RRF puts row 4 (in both) first.
    let rrf = fused(Fusion::default()).await;
    assert_eq!(rrf[0], 4, "{rrf:?}");
    let vector_only: Vec<u64> = t
        .search("vec", &q)
        .limit(4)
        .nearest()
        .await
        .unwrap()
        .iter()
        .map(|n| n.id)
        .collect();
    assert_eq!(fused(Fusion::Weighted { vector_weight: 1.0 }).await, vector_only);
    let text_only: Vec<u64> = t
        .full_text_search("text", "fox")
        .limit(4)
        .hits()
        .await
        .unwrap()
        .iter()
        .map(|h| h.row_id)
        .collect();
    assert_eq!(fused(Fusion::Weighted { vector_weight: 0.0 }).await, text_only);
    // The filter applies to both searches.
    let b = t
        .hybrid_search("vec", &q, "text", "fox")
        .filter_sql("id >= 6")
        .unwrap()
        .limit(20)
        .execute()
        .await
        .unwrap();
    let ids = b.column_by_name("id").unwrap().as_primitive::<Int64Type>();
    assert!(ids.values().iter().all(|i| *i >= 6) && ids.len() == 6, "{ids:?}");
    assert_eq!(b.schema().field(b.num_columns() - 1).name(), "_score");
    let err = t
        .hybrid_search("vec", &q, "text", "fox")
        .fusion(Fusion::Weighted { vector_weight: 2.0 })
        .execute()
        .await
        .unwrap_err();
    assert!(err.to_string().contains("between 0 and 1"), "{err}");
}
