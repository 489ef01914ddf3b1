//! KNN through SQL on the dev dataset: the rewritten plan (HNSW index, prefilter) agrees with
//! the exact plan within the index's recall, returns exactly k matching rows under a filter,
//! and finds the same rows as the Rust API.
#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use std::collections::HashSet;

use datafusion::arrow::array::{AsArray, RecordBatch};
use datafusion::arrow::datatypes::Int64Type;
use datafusion::prelude::SessionContext;
use vlake_datafusion::{KeptPlans, Planned};
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

/// The dev dataset as a table with a cosine HNSW index, registered as `dev` in a new session.
async fn dev_session(dir: &std::path::Path) -> (vlake_table::Table, SessionContext) {
    let table = common::dev_table(dir).await;
    let ctx = vlake_datafusion::session();
    vlake_datafusion::register_table(&ctx, "dev", table.uri())
        .await
        .unwrap();
    (table, ctx)
}

/// The physical plan a frame runs, as indented text.
async fn physical_plan_text(df: &datafusion::dataframe::DataFrame) -> String {
    planned_text(&Planned::Frame(Box::new(df.clone()))).await
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
    let (table, ctx) = dev_session(dir.path()).await;
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
    let (_, ctx) = dev_session(dir.path()).await;
    let q = common::literal(&common::queries()[3].vector);
    let sql =
        format!("SELECT pos, cosine_distance(vector, {q}) AS d FROM dev WHERE pos IN ('r', 's') ORDER BY d LIMIT 25");
    let batches = ctx.sql(&sql).await.unwrap().collect().await.unwrap();
    let mut last = f32::MIN;
    let mut rows = 0;
    for b in &batches {
        let pos = b.column(0).as_string_view();
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

/// A statement planned once with the query vector as a parameter, bound per query by
/// `EXECUTE` (as text) or from Rust (`with_param_values`, as an array), runs as an index
/// search and finds what the statement with the vector written out finds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bound_parameters_run_as_index_searches() {
    use datafusion::arrow::array::FixedSizeListArray;
    use datafusion::common::ScalarValue;
    let dir = tempfile::tempdir().unwrap();
    let (_, ctx) = dev_session(dir.path()).await;
    let knn = "SELECT id FROM dev ORDER BY cosine_distance(vector, $1) LIMIT 10";
    ctx.sql(&format!("PREPARE knn AS {knn}")).await.unwrap();
    let template = ctx.sql(knn).await.unwrap();
    for q in &common::queries()[..5] {
        let literal = common::literal(&q.vector);
        let written = sql_ids(&ctx, &knn.replace("$1", &literal)).await;
        let executed = ctx.sql(&format!("EXECUTE knn('{literal}')")).await.unwrap();
        let array = FixedSizeListArray::from_iter_primitive::<datafusion::arrow::datatypes::Float32Type, _, _>(
            [Some(q.vector.iter().copied().map(Some))],
            q.vector.len() as i32,
        );
        let bound = template
            .clone()
            .with_param_values(vec![ScalarValue::FixedSizeList(std::sync::Arc::new(array))])
            .unwrap();
        for df in [executed, bound] {
            let text = physical_plan_text(&df).await;
            assert!(text.contains("VectorSearchExec: index vector_idx (hnsw"), "{text}");
            assert_eq!(ids(&df.collect().await.unwrap()), written);
        }
    }
}

/// One statement through [`vlake_datafusion::sql`], as `vlake sql` and Python run it.
async fn vlake_sql(ctx: &SessionContext, sql: &str) -> Planned {
    let mut statements = vlake_datafusion::parse(ctx, sql).unwrap();
    assert_eq!(statements.len(), 1);
    vlake_datafusion::sql(ctx, statements.pop().unwrap()).await.unwrap()
}

/// The session's kept plans.
fn kept(ctx: &SessionContext) -> std::sync::Arc<KeptPlans> {
    ctx.state().config().get_extension::<KeptPlans>().unwrap()
}

/// How many statements of the session ran a kept plan.
fn reruns(ctx: &SessionContext) -> u64 {
    kept(ctx).reruns()
}

/// The physical plan a statement runs, as indented text.
async fn planned_text(planned: &Planned) -> String {
    let plan = planned.physical_plan().await.unwrap();
    let text = datafusion::physical_plan::displayable(plan.as_ref())
        .indent(false)
        .to_string();
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prepared_knn_plans_are_kept_and_rerun_for_each_vector() {
    let dir = tempfile::tempdir().unwrap();
    let (_, ctx) = dev_session(dir.path()).await;
    let knn = "SELECT id, cosine_distance(vector, $1) AS d FROM dev WHERE pos = 'n' ORDER BY d LIMIT 10";
    vlake_sql(&ctx, &format!("PREPARE knn AS {knn}")).await;
    for (i, q) in common::queries()[..5].iter().enumerate() {
        let literal = common::literal(&q.vector);
        let written = sql_ids(&ctx, &knn.replace("$1", &literal)).await;
        let before = reruns(&ctx);
        let executed = vlake_sql(&ctx, &format!("EXECUTE knn('{literal}')")).await;
        // The first execution plans; the later ones run its plan with their own search.
        assert_eq!(reruns(&ctx) - before, u64::from(i > 0), "execution {i}");
        let text = planned_text(&executed).await;
        assert!(text.contains("VectorSearchExec: index vector_idx (hnsw"), "{text}");
        assert_eq!(ids(&executed.collect().await.unwrap()), written, "execution {i}");
    }
    // A setting the rewrite reads: planned again, here as the exact plan.
    vlake_sql(&ctx, "SET vlake.knn_rewrite = false").await;
    let literal = common::literal(&common::queries()[0].vector);
    let before = reruns(&ctx);
    let exact = vlake_sql(&ctx, &format!("EXECUTE knn('{literal}')")).await;
    assert_eq!(reruns(&ctx), before);
    let text = planned_text(&exact).await;
    assert!(!text.contains("VectorSearchExec"), "{text}");
    let written = sql_ids(&ctx, &knn.replace("$1", &literal)).await;
    assert_eq!(ids(&exact.collect().await.unwrap()), written);
    // Statements prepared with more parameters than the vector are never kept.
    vlake_sql(&ctx, "SET vlake.knn_rewrite = true").await;
    vlake_sql(
        &ctx,
        "PREPARE two(VARCHAR, VARCHAR) AS SELECT id FROM dev WHERE pos = $2 ORDER BY cosine_distance(vector, $1) LIMIT 10",
    )
    .await;
    let before = reruns(&ctx);
    for _ in 0..2 {
        let planned = vlake_sql(&ctx, &format!("EXECUTE two('{literal}', 'n')")).await;
        assert_eq!(
            planned
                .collect()
                .await
                .unwrap()
                .iter()
                .map(|b| b.num_rows())
                .sum::<usize>(),
            10
        );
    }
    assert_eq!(reruns(&ctx), before);
}

/// Ad-hoc KNN queries that differ only in their vector share one kept plan, which each runs
/// with its own search; a table name that resolves to another table, or a statement of
/// another shape, plans again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ad_hoc_knn_queries_share_a_kept_plan() {
    let dir = tempfile::tempdir().unwrap();
    let (_, ctx) = dev_session(dir.path()).await;
    let queries = common::queries();
    let shapes = [
        "SELECT id FROM dev WHERE pos = 'v' ORDER BY cosine_distance(vector, V) LIMIT 10",
        "SELECT id, cosine_distance(vector, V) AS d FROM dev ORDER BY cosine_distance(vector, V) LIMIT 5",
        "SELECT id FROM dev ORDER BY cosine_distance('V', vector) LIMIT 10",
    ];
    for (n, shape) in shapes.iter().enumerate() {
        let (before, unparsed) = (reruns(&ctx), kept(&ctx).unparsed());
        for (i, q) in queries[..4].iter().enumerate() {
            let sql = shape.replace('V', &common::literal(&q.vector));
            let planned = vlake_sql(&ctx, &sql).await;
            let text = planned_text(&planned).await;
            assert!(text.contains("VectorSearchExec: index vector_idx (hnsw"), "{text}");
            // DataFusion's own planning of the same statement finds the same rows.
            assert_eq!(
                ids(&planned.collect().await.unwrap()),
                sql_ids(&ctx, &sql).await,
                "{shape}, query {i}"
            );
        }
        assert_eq!(reruns(&ctx) - before, 3, "{shape}");
        // Vectors written as arrays are read from the text, which is not parsed again.
        assert_eq!(kept(&ctx).unparsed() - unparsed, if n < 2 { 3 } else { 0 }, "{shape}");
    }
    // Two different vectors in one statement: never kept.
    let (a, b) = (common::literal(&queries[0].vector), common::literal(&queries[1].vector));
    let two = format!("SELECT id FROM dev ORDER BY cosine_distance(vector, {a}) + l2_distance(vector, {b}) LIMIT 3");
    let before = reruns(&ctx);
    for _ in 0..2 {
        let rows: usize = vlake_sql(&ctx, &two)
            .await
            .collect()
            .await
            .unwrap()
            .iter()
            .map(|r| r.num_rows())
            .sum();
        assert_eq!(rows, 3);
    }
    assert_eq!(reruns(&ctx), before);
    // A function the optimizer folds into the plan (`now()`): never kept, so never stale.
    let timed = format!(
        "SELECT id FROM dev WHERE now() > TIMESTAMP '2000-01-01' ORDER BY cosine_distance(vector, {a}) LIMIT 3"
    );
    for _ in 0..2 {
        let planned = vlake_sql(&ctx, &timed).await;
        assert!(planned_text(&planned).await.contains("VectorSearchExec"));
        assert_eq!(ids(&planned.collect().await.unwrap()).len(), 3);
    }
    assert_eq!(reruns(&ctx), before);
    // `dev` names another table now (the first 100 rows): planned again, over that table.
    let first = common::read(&common::dev("base.parquet"))[0].slice(0, 100);
    let small_ids: HashSet<i64> = ids(std::slice::from_ref(&first)).into_iter().collect();
    let small = vlake_table::Table::write(
        vlake_table::TableLocation::parse(dir.path().join("small").to_str().unwrap()).unwrap(),
        vlake_table::BatchStream::from_batches(first.schema(), vec![first]),
        vlake_table::WriteMode::Create,
        &vlake_table::WriteOptions::default(),
    )
    .await
    .unwrap();
    let knn = shapes[1].replace('V', &a);
    ctx.deregister_table("dev").unwrap();
    vlake_datafusion::register_table(&ctx, "dev", small.uri())
        .await
        .unwrap();
    let before = reruns(&ctx);
    let found = ids(&vlake_sql(&ctx, &knn).await.collect().await.unwrap());
    assert_eq!(reruns(&ctx), before);
    assert!(
        found.len() == 5 && found.iter().all(|id| small_ids.contains(id)),
        "{found:?}"
    );
    assert_eq!(found, sql_ids(&ctx, &knn).await);
}

/// A DataFusion session reads its tables through the vlake session among its config's
/// extensions (registered tables, tables named by URI in the search functions), and two
/// DataFusion sessions with their own vlake sessions share no cache entry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queries_read_through_the_sessions_own_caches() {
    use std::sync::Arc;

    use datafusion::prelude::SessionConfig;
    use vlake_table::{Session, SessionOptions};

    let dir = tempfile::tempdir().unwrap();
    let table = common::small_table(dir.path()).await;
    let make = |session: &Session| {
        vlake_datafusion::session_with_config(SessionConfig::new().with_extension(Arc::new(session.clone())))
    };
    let first = Session::new(SessionOptions::default().with_index_cache_entries(8));
    let second = Session::default();
    let (a, b) = (make(&first), make(&second));
    vlake_datafusion::register_table(&a, "t", table.uri()).await.unwrap();
    let footers = |s: &Session| s.stats().get("footers").map_or(0, |c| c.entries);
    let segments = |s: &Session| s.stats().get("index_segments").map_or(0, |c| c.entries);

    let scanned = sql_ids(&a, "SELECT id FROM t WHERE id >= 0 ORDER BY id").await;
    assert_eq!(scanned.len() as u64, table.num_rows());
    assert!(footers(&first) > 0, "the scan read footers through the session");
    assert_eq!(footers(&second), 0, "the other session saw nothing");

    // A search function given the table's URI opens it in the DataFusion session's vlake session.
    let q = common::literal(&[0.0; 4]);
    let sql = format!("SELECT id FROM vector_search('{}', 'vec', {q}, 3)", table.uri());
    assert_eq!(sql_ids(&b, &sql).await.len(), 3);
    assert!(segments(&second) > 0 && footers(&second) > 0);
    assert_eq!(segments(&first), 0);
}
