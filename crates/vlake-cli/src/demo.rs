//! `vlake demo`: builds a table from a Parquet, CSV or JSON Lines file (`--data`, for example the
//! dev dataset), or from generated data without one, and walks through versions, time travel, tags, filtered scans, vector search, SQL, restore and
//! cleanup.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use arrow::array::{AsArray, FixedSizeListArray, Float32Array, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use rand::{Rng, SeedableRng};
use vlake_table::{
    BatchStream, CleanupOptions, Error, IndexOptions, IndexType, Result, Table, TableLocation, VersionRef, WriteMode,
    WriteOptions,
};

use crate::import::open_source;
use crate::render::{self, Output};

/// Options of `vlake demo`.
#[derive(clap::Args, Debug)]
pub struct DemoArgs {
    /// Where to build the demo table (replaced if it exists).
    #[arg(long, default_value = "vlake-demo")]
    dir: PathBuf,
    /// Rows with a fixed-size vector column, such as the dev dataset's base.parquet
    /// (default: 20,000 generated rows of 64-d vectors).
    #[arg(long)]
    data: Option<PathBuf>,
}

fn heading(text: &str) {
    println!("\n== {text}");
}

/// Loads the rows of `data`, or generates 20,000 rows shaped like the dev dataset with 64-d
/// vectors.
fn load_rows(data: Option<&Path>) -> Result<(Arc<Schema>, Vec<RecordBatch>)> {
    let Some(path) = data else {
        println!("dataset: generated (pass --data PATH to use a file)");
        return Ok(generate(20_000, 64));
    };
    let (reader, _) = open_source(&path.display().to_string(), None)?;
    let schema = reader.schema();
    let batches = reader.collect::<std::result::Result<Vec<_>, _>>()?;
    println!("dataset: {}", path.display());
    Ok((schema, batches))
}

fn generate(rows: usize, dim: i32) -> (Arc<Schema>, Vec<RecordBatch>) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(42);
    let pos = ["n", "v", "a", "s", "r"];
    let item = Arc::new(Field::new("item", DataType::Float32, true));
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("pos", DataType::Utf8, true),
        Field::new("gloss", DataType::Utf8, true),
        Field::new("vector", DataType::FixedSizeList(item.clone(), dim), true),
    ]));
    let values: Float32Array = (0..rows * dim as usize)
        .map(|_| rng.random_range(-1.0f32..1.0))
        .collect();
    let columns: Vec<arrow::array::ArrayRef> = vec![
        Arc::new(Int64Array::from_iter_values(0..rows as i64)),
        Arc::new(StringArray::from_iter_values((0..rows).map(|i| pos[i % pos.len()]))),
        Arc::new(StringArray::from_iter_values(
            (0..rows).map(|i| format!("generated row {i}")),
        )),
        Arc::new(FixedSizeListArray::new(item, dim, Arc::new(values), None)),
    ];
    let batch =
        RecordBatch::try_new(schema.clone(), columns).unwrap_or_else(|_| RecordBatch::new_empty(schema.clone()));
    (schema, vec![batch])
}

/// Splits batches into the first `n` rows and the rest.
fn split(batches: &[RecordBatch], n: usize) -> (Vec<RecordBatch>, Vec<RecordBatch>) {
    let (mut head, mut tail, mut seen) = (vec![], vec![], 0);
    for b in batches {
        let take = n.saturating_sub(seen).min(b.num_rows());
        if take > 0 {
            head.push(b.slice(0, take));
        }
        if take < b.num_rows() {
            tail.push(b.slice(take, b.num_rows() - take));
        }
        seen += b.num_rows();
    }
    (head, tail)
}

/// Builds an HNSW index and searches with the first row's vector, with and without a filter.
async fn vector_search(table: &Table, column: &str, columns: &[&str], query: &[f32]) -> Result<Table> {
    heading(&format!("build an HNSW index on '{column}' (cosine)"));
    let started = std::time::Instant::now();
    let indexed = table.create_index(&IndexOptions::new(column, IndexType::Hnsw)).await?;
    println!("built in {:.2?}: version {}", started.elapsed(), indexed.version());
    let shown: Vec<&str> = columns.iter().copied().filter(|c| *c != "gloss").collect();
    heading("the 5 nearest rows to the first row's vector");
    let started = std::time::Instant::now();
    let hits = indexed.search(column, query).columns(&shown).limit(5).execute().await?;
    let took = started.elapsed();
    render::batches(&hits.schema(), &[hits], Output::new(false))?;
    println!("in {took:.2?}");
    let filter = if columns.contains(&"pos") {
        "pos = 'v'"
    } else {
        "id % 2 = 0"
    };
    heading(&format!("the same search with the prefilter {filter}"));
    let hits = indexed
        .search(column, query)
        .columns(&shown)
        .filter_sql(filter)?
        .limit(5)
        .execute()
        .await?;
    render::batches(&hits.schema(), &[hits], Output::new(false))?;
    Ok(indexed)
}

/// The first row's vector in `column`, as f32.
fn first_vector(batches: &[RecordBatch], column: &str) -> Result<Vec<f32>> {
    let first = batches.first().ok_or_else(|| Error::invalid("the dataset is empty"))?;
    let list = first
        .column_by_name(column)
        .ok_or_else(|| Error::invalid(format!("no column '{column}'")))?
        .as_fixed_size_list();
    Ok(arrow::compute::cast(&list.value(0), &DataType::Float32)?
        .as_primitive::<arrow::datatypes::Float32Type>()
        .values()
        .to_vec())
}

/// Queries the table with SQL through DataFusion: an aggregate, and a filtered KNN query that
/// the optimizer runs as an index search (its plan shown).
async fn sql(table: &Table, column: &str, query: &[f32]) -> Result<()> {
    let ctx = vlake_datafusion::session();
    vlake_datafusion::register_table(&ctx, "words", table.uri())
        .await
        .map_err(vlake_datafusion::from_df)?;
    let literal: Vec<String> = query.iter().map(|x| format!("{x:?}")).collect();
    let group = if table.schema().field_with_name("pos").is_ok() {
        "pos"
    } else {
        "id % 5"
    };
    let statements = [
        format!("SELECT {group} AS part, count(*) AS rows FROM words GROUP BY {group} ORDER BY part"),
        format!(
            "SELECT id, cosine_distance({column}, [{}]) AS d FROM words WHERE {group} = {} ORDER BY d LIMIT 5",
            literal.join(", "),
            if group == "pos" { "'v'" } else { "1" }
        ),
    ];
    for sql in &statements {
        heading(&format!("SQL: {}", abbreviate_sql(sql)));
        let started = std::time::Instant::now();
        let df = ctx.sql(sql).await.map_err(vlake_datafusion::from_df)?;
        let schema = df.schema().inner().clone();
        let rows = df.collect().await.map_err(vlake_datafusion::from_df)?;
        let took = started.elapsed();
        render::batches(&schema, &rows, Output::new(false))?;
        println!("in {took:.2?}");
    }
    let plan = ctx
        .sql(&format!("EXPLAIN {}", statements[1]))
        .await
        .map_err(vlake_datafusion::from_df)?
        .collect()
        .await
        .map_err(vlake_datafusion::from_df)?;
    let chosen = plan
        .iter()
        .flat_map(|b| {
            let lines = b.column(1).as_string::<i32>();
            (0..b.num_rows())
                .map(|i| lines.value(i).to_string())
                .collect::<Vec<_>>()
        })
        .flat_map(|p| p.lines().map(str::to_string).collect::<Vec<_>>())
        .find(|l| l.contains("VectorSearchExec"))
        .unwrap_or_else(|| "an exact scan".to_string());
    println!("the KNN query ran as: {}", chosen.trim());
    Ok(())
}

/// An SQL statement with its long vector literal shortened for display.
fn abbreviate_sql(sql: &str) -> String {
    match (sql.find('['), sql.find(']')) {
        (Some(a), Some(b)) if b > a + 40 => format!("{}[{} …]{}", &sql[..a], &sql[a + 1..a + 30], &sql[b + 1..]),
        _ => sql.to_string(),
    }
}

pub async fn run(args: DemoArgs) -> Result<()> {
    let (schema, batches) = load_rows(args.data.as_deref())?;
    let total: usize = batches.iter().map(|b| b.num_rows()).sum();
    if args.dir.exists() {
        std::fs::remove_dir_all(&args.dir).map_err(|e| Error::io(args.dir.display().to_string(), e))?;
    }
    let uri = args.dir.display().to_string();
    let location = TableLocation::parse(&uri)?;
    let (first, rest) = split(&batches, total / 2);
    let opts = WriteOptions::default();
    let text = Output::new(false);

    heading(&format!(
        "create the table with {} rows, then append {} more",
        total / 2,
        total - total / 2
    ));
    let started = std::time::Instant::now();
    let v1 = Table::write(
        location.clone(),
        BatchStream::from_batches(schema.clone(), first),
        WriteMode::Create,
        &opts,
    )
    .await?;
    let v2 = v1
        .append(BatchStream::from_batches(schema.clone(), rest), &opts)
        .await?;
    println!("wrote {total} rows in {:.2?}", started.elapsed());
    v2.create_tag("first-half", v1.version()).await?;
    render::info(&v2, text)?;

    heading("versions");
    render::versions(&v2.versions().await?, text)?;

    heading("time travel: row counts by version, tag and time");
    let by_tag = v2.checkout(VersionRef::Tag("first-half".into())).await?;
    let by_time = v2.checkout(VersionRef::Timestamp(v1.manifest().timestamp_ms)).await?;
    println!("latest (version {}): {} rows", v2.version(), v2.num_rows());
    println!(
        "tag 'first-half' (version {}): {} rows",
        by_tag.version(),
        by_tag.num_rows()
    );
    println!(
        "as of version 1's commit time (version {}): {} rows",
        by_time.version(),
        by_time.num_rows()
    );

    let filter = if schema.field_with_name("pos").is_ok() {
        "pos = 'v'"
    } else {
        "id < 5"
    };
    heading(&format!("a filtered scan: {filter}, first 5 rows"));
    let columns: Vec<&str> = ["id", "pos", "words", "gloss"]
        .into_iter()
        .filter(|c| schema.field_with_name(c).is_ok())
        .collect();
    let scan = v2
        .scan()
        .columns(&columns)
        .filter_sql(filter)?
        .with_row_id(true)
        .limit(5);
    render::batches(&scan.output_schema()?, &scan.collect().await?, text)?;
    println!("matching rows: {}", v2.scan().filter_sql(filter)?.count_rows().await?);

    let vector_column = schema
        .fields()
        .iter()
        .find(|f| matches!(f.data_type(), DataType::FixedSizeList(..)))
        .map(|f| f.name().clone());
    if let Some(column) = vector_column {
        let query = first_vector(&batches, &column)?;
        let indexed = vector_search(&v2, &column, &columns, &query).await?;
        sql(&indexed, &column, &query).await?;
    }

    heading("restore version 1 as the newest version, then clean up");
    let v3 = by_tag.restore().await?;
    println!("version {} has {} rows again", v3.version(), v3.num_rows());
    let report = v3.cleanup(&CleanupOptions::new(Duration::ZERO)).await?;
    println!(
        "cleanup: removed {} versions and {} files ({} unreferenced files are younger than the minimum \
         file age and kept for writers in flight); version 1 stays (tagged), version {} stays (latest)",
        report.versions_removed,
        report.files_removed,
        report.files_kept_recent,
        v3.version()
    );
    println!("\ntry: vlake head {uri} -n 3 --columns id,gloss --filter \"pos = 'n'\"");
    Ok(())
}
