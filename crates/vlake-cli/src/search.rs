//! `vlake index ...` and `vlake search`.

use clap::{Args, Subcommand};
use serde_json::json;
use vlake_table::{Error, Fusion, HybridSearch, Result, Table, VectorSearch};

use crate::index_args::IndexArgs;

use crate::render::{self, Output};

/// Index commands.
#[derive(Subcommand, Debug)]
pub enum IndexCommand {
    /// Build an index (vector, or full-text with --type fts) over every data file (a new version).
    Create(Box<CreateIndex>),
    /// List the indexes of a version.
    List {
        /// Table URI.
        uri: String,
        /// Print one JSON document.
        #[arg(long)]
        json: bool,
    },
    /// Index the data files appended since the index was built (a new version).
    Update {
        /// Table URI.
        uri: String,
        /// Index name.
        #[arg(long)]
        name: String,
    },
}

#[derive(Args, Debug)]
pub struct CreateIndex {
    /// Table URI.
    uri: String,
    /// The vector column (a string column for --type fts).
    #[arg(long)]
    column: String,
    #[command(flatten)]
    index: IndexArgs,
    /// Print one JSON document.
    #[arg(long)]
    json: bool,
}

/// `vlake search`: vector search (--vector), full-text search (--text) or both fused (--vector
/// and --text, with --text-column).
#[derive(Args, Debug)]
pub struct SearchArgs {
    /// Table URI.
    uri: String,
    /// The vector column, or the string column of a full-text search.
    #[arg(long)]
    column: String,
    /// The query vector, as a JSON list of numbers.
    #[arg(long)]
    vector: Option<String>,
    /// A full-text query: terms, "phrases", prefix*, fuzzy~1, AND, OR, NOT, parentheses.
    #[arg(long)]
    text: Option<String>,
    /// The string column of a hybrid search (--column is then the vector column).
    #[arg(long)]
    text_column: Option<String>,
    /// Full-text: add a `_snippet` column with the matches highlighted.
    #[arg(long)]
    snippet: bool,
    /// Hybrid: rrf (reciprocal rank fusion) or weighted.
    #[arg(long, default_value = "rrf")]
    fusion: String,
    /// Hybrid, weighted fusion: the vector search's weight (0 to 1).
    #[arg(long, default_value_t = 0.5)]
    vector_weight: f32,
    /// Number of results.
    #[arg(short = 'k', long, default_value_t = 10)]
    k: usize,
    /// SQL filter applied before ranking (use --postfilter to apply it after).
    #[arg(long)]
    filter: Option<String>,
    /// Apply the filter after ranking.
    #[arg(long)]
    postfilter: bool,
    /// Ignore indexes.
    #[arg(long)]
    exact: bool,
    /// l2, cosine or dot (default: the index's metric, else l2).
    #[arg(long)]
    metric: Option<String>,
    /// IVF partitions to probe.
    #[arg(long)]
    nprobes: Option<usize>,
    /// HNSW candidate list size.
    #[arg(long)]
    ef: Option<usize>,
    /// IVF-PQ refine factor.
    #[arg(long)]
    refine: Option<usize>,
    /// Comma-separated columns to return (default: all but vectors).
    #[arg(long, value_delimiter = ',')]
    columns: Option<Vec<String>>,
    /// Print one JSON document (a list of rows).
    #[arg(long)]
    json: bool,
}

/// Parses `[0.1, 2, -3e-2]`: numbers only.
pub fn parse_vector(text: &str) -> Result<Vec<f32>> {
    let value: serde_json::Value = serde_json::from_str(text)
        .map_err(|e| Error::invalid(format!("--vector must be a JSON list of numbers: {e}")))?;
    let items = value
        .as_array()
        .ok_or_else(|| Error::invalid("--vector must be a JSON list of numbers"))?;
    items
        .iter()
        .enumerate()
        .map(|(i, v)| {
            v.as_f64()
                .map(|x| x as f32)
                .ok_or_else(|| Error::invalid(format!("--vector element {i} is {v}, not a number")))
        })
        .collect()
}

pub async fn index(command: IndexCommand) -> Result<()> {
    match command {
        IndexCommand::Create(a) => {
            let opts = a.index.options(&a.column)?;
            let started = std::time::Instant::now();
            let table = Table::open(&a.uri).await?.create_index(&opts).await?;
            let seconds = started.elapsed().as_secs_f64();
            Output::new(a.json).doc(&json!({"version": table.version(), "seconds": seconds}), || {
                format!(
                    "built {} index on '{}' in {seconds:.2}s: version {}",
                    opts.index_type.name(),
                    a.column,
                    table.version()
                )
            })
        }
        IndexCommand::List { uri, json } => {
            let table = Table::open(&uri).await?;
            render::indexes(&table, Output::new(json))
        }
        IndexCommand::Update { uri, name } => {
            let before = Table::open(&uri).await?;
            let after = before.update_index(&name).await?;
            Output::new(false).doc(&(), || {
                if after.version() == before.version() {
                    format!("index '{name}' already covers every data file")
                } else {
                    format!("updated index '{name}': version {}", after.version())
                }
            })
        }
    }
}

pub async fn search(a: SearchArgs) -> Result<()> {
    let table = Table::open(&a.uri).await?;
    let output = Output::new(a.json);
    let batch = match (&a.vector, &a.text) {
        (None, None) => return Err(Error::invalid("give --vector, --text or both")),
        (Some(v), None) => vector_search(&table, &a, &parse_vector(v)?)?.execute().await?,
        (None, Some(q)) => {
            let mut s = table.full_text_search(&a.column, q).limit(a.k).snippet(a.snippet);
            if let Some(c) = &a.columns {
                s = s.columns(c);
            }
            if let Some(f) = &a.filter {
                s = s.filter_sql(f)?;
            }
            s.execute().await?
        }
        (Some(v), Some(q)) => {
            let text_column = a
                .text_column
                .as_deref()
                .ok_or_else(|| Error::invalid("a hybrid search (--vector and --text) needs --text-column"))?;
            let fusion = match a.fusion.as_str() {
                "rrf" => Fusion::default(),
                "weighted" => Fusion::Weighted {
                    vector_weight: a.vector_weight,
                },
                other => return Err(Error::invalid(format!("unknown fusion '{other}': use rrf or weighted"))),
            };
            let vector = vector_search(&table, &a, &parse_vector(v)?)?;
            let mut s = HybridSearch::new(vector, table.full_text_search(text_column, q))
                .limit(a.k)
                .fusion(fusion);
            if let Some(c) = &a.columns {
                s = s.columns(c);
            }
            if let Some(f) = &a.filter {
                s = s.filter_sql(f)?;
            }
            s.execute().await?
        }
    };
    render::batches(&batch.schema(), &[batch], output)
}

/// The vector search the arguments ask for.
fn vector_search(table: &Table, a: &SearchArgs, query: &[f32]) -> Result<VectorSearch> {
    let mut s = table
        .search(&a.column, query)
        .limit(a.k)
        .exact(a.exact)
        .prefilter(!a.postfilter);
    if let Some(m) = &a.metric {
        s = s.metric(m.parse()?);
    }
    if let Some(n) = a.nprobes {
        s = s.nprobes(n);
    }
    if let Some(ef) = a.ef {
        s = s.ef(ef);
    }
    if let Some(r) = a.refine {
        s = s.refine(r);
    }
    if let Some(c) = &a.columns {
        s = s.columns(c);
    }
    if let Some(f) = &a.filter {
        s = s.filter_sql(f)?;
    }
    Ok(s)
}
