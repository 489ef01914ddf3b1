//! KNN through SQL on the dev dataset: the rewritten plan (HNSW index, prefilter) agrees with
//! the exact plan within the index's recall, returns exactly k matching rows under a filter,
//! and finds the same rows as the Rust API.
#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use std::collections::HashSet;

use datafusion::arrow::array::{AsArray, RecordBatch};
use datafusion::arrow::datatypes::Int64Type;
use datafusion::prelude::SessionContext;
use vlake_table::Metric;

fn ids(batches: &[RecordBatch]) -> Vec<i64> {
    batches
        .iter()
        .flat_map(|b| b.column(0).as_primitive::<Int64Type>().values().to_vec())
        .collect()
}

async fn sql_ids(ctx: &SessionContext, sql: &str) -> Vec<i64> {
    ids(&ctx.sql(sql).await.unwrap().collect().await.unwrap())
}

async fn plan_text(ctx: &SessionContext, sql: &str) -> String {
    let batches = ctx
        .sql(&format!("EXPLAIN {sql}"))
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    datafusion::arrow::util::pretty::pretty_format_batches(&batches)
        .unwrap()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rewritten_knn_matches_exact_plan_and_rust_api() {
    let dir = tempfile::tempdir().unwrap();
    let table = common::dev_table(dir.path()).await;
    let ctx = vlake_datafusion::session();
    vlake_datafusion::register_table(&ctx, "dev", table.uri())
        .await
        .unwrap();
    let queries = common::queries();
    let n = 40;
    let (mut hits_sql, mut hits_exact, mut agree) = (0, 0, 0);
    let mut filtered_recall = (0, 0);
    for q in &queries[..n] {
        let knn = format!(
            "SELECT id FROM dev ORDER BY cosine_distance(vector, {}) LIMIT 10",
            common::literal(&q.vector)
        );
        if q.gt[0] == queries[0].gt[0] {
            let plan = plan_text(&ctx, &knn).await;
            assert!(plan.contains("VectorSearchExec: index vector_idx (hnsw"), "{plan}");
        }
        let got = sql_ids(&ctx, &knn).await;
        assert_eq!(got.len(), 10);
        hits_sql += got.iter().filter(|id| q.gt.contains(id)).count();

        let api = table
            .search("vector", &q.vector)
            .metric(Metric::Cosine)
            .columns(&["id"])
            .limit(10)
            .execute()
            .await
            .unwrap();
        let api_ids = ids(&[api]);
        agree += usize::from(api_ids.iter().collect::<HashSet<_>>() == got.iter().collect::<HashSet<_>>());

        ctx.sql("SET vlake.knn_rewrite = false").await.unwrap();
        let plan = plan_text(&ctx, &knn).await;
        assert!(!plan.contains("VectorSearchExec"), "{plan}");
        let exact = sql_ids(&ctx, &knn).await;
        hits_exact += exact.iter().filter(|id| q.gt.contains(id)).count();

        // A selective filter (adverbs, 3% of rows): exact vs prefiltered index search.
        let filtered = format!(
            "SELECT id FROM dev WHERE pos = 'r' ORDER BY cosine_distance(vector, {}) LIMIT 10",
            common::literal(&q.vector)
        );
        let truth: HashSet<i64> = sql_ids(&ctx, &filtered).await.into_iter().collect();
        ctx.sql("SET vlake.knn_rewrite = true").await.unwrap();
        let found = sql_ids(&ctx, &filtered).await;
        assert_eq!(found.len(), 10, "a prefilter returns k matching rows");
        filtered_recall.0 += found.iter().filter(|id| truth.contains(id)).count();
        filtered_recall.1 += 10;
    }
    let recall = hits_sql as f64 / (n * 10) as f64;
    let exact = hits_exact as f64 / (n * 10) as f64;
    let filtered = filtered_recall.0 as f64 / filtered_recall.1 as f64;
    assert!(exact >= 0.99, "exact plan recall@10 {exact}");
    assert!(recall >= 0.9, "rewritten plan recall@10 {recall}");
    assert!(filtered >= 0.95, "filtered recall@10 {filtered}");
    assert_eq!(agree, n, "SQL and the Rust API find the same rows");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filtered_rows_match_the_filter() {
    let dir = tempfile::tempdir().unwrap();
    let table = common::dev_table(dir.path()).await;
    let ctx = vlake_datafusion::session();
    vlake_datafusion::register_table(&ctx, "dev", table.uri())
        .await
        .unwrap();
    let q = common::literal(&common::queries()[3].vector);
    let sql =
        format!("SELECT pos, cosine_distance(vector, {q}) AS d FROM dev WHERE pos IN ('r', 's') ORDER BY d LIMIT 25");
    let batches = ctx.sql(&sql).await.unwrap().collect().await.unwrap();
    let mut last = f32::MIN;
    let mut rows = 0;
    for b in &batches {
        let pos = b.column(0).as_string::<i32>();
        let d = b.column(1).as_primitive::<datafusion::arrow::datatypes::Float32Type>();
        for i in 0..b.num_rows() {
            assert!(["r", "s"].contains(&pos.value(i)));
            assert!(d.value(i) >= last);
            last = d.value(i);
            rows += 1;
        }
    }
    assert_eq!(rows, 25);
}
