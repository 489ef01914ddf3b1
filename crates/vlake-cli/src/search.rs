//! `vlake index ...` and `vlake search`.

use clap::{Args, Subcommand};
use serde_json::json;
use vlake_table::{Error, HybridSearchOptions, Result, Table, TextSearchOptions, VectorSearchOptions};

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
    /// Hybrid: rrf (reciprocal rank fusion, the default) or weighted.
    #[arg(long)]
    fusion: Option<String>,
    /// Hybrid, weighted fusion: the vector search's weight (0 to 1; default 0.5).
    #[arg(long)]
    vector_weight: Option<f32>,
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
        (Some(v), None) => {
            let search = table.search(&a.column, &parse_vector(v)?);
            a.vector_options().apply(search)?.execute().await?
        }
        (None, Some(q)) => {
            let mut opts = TextSearchOptions::default();
            opts.k = Some(a.k);
            opts.snippet = a.snippet;
            opts.columns.clone_from(&a.columns);
            opts.filter.clone_from(&a.filter);
            opts.apply(table.full_text_search(&a.column, q))?.execute().await?
        }
        (Some(v), Some(q)) => {
            let text_column = a
                .text_column
                .as_deref()
                .ok_or_else(|| Error::invalid("a hybrid search (--vector and --text) needs --text-column"))?;
            let mut opts = HybridSearchOptions::default();
            opts.k = Some(a.k);
            opts.fusion.clone_from(&a.fusion);
            opts.vector_weight = a.vector_weight;
            opts.columns.clone_from(&a.columns);
            opts.filter.clone_from(&a.filter);
            opts.metric.clone_from(&a.metric);
            opts.nprobes = a.nprobes;
            opts.ef = a.ef;
            opts.exact = a.exact;
            let vector = table.search(&a.column, &parse_vector(v)?);
            opts.apply(vector, table.full_text_search(text_column, q))?
                .execute()
                .await?
        }
    };
    render::batches(&batch.schema(), &[batch], output)
}

impl SearchArgs {
    /// The vector search options the arguments ask for (the Python binding hands over the same).
    fn vector_options(&self) -> VectorSearchOptions {
        let mut opts = VectorSearchOptions::default();
        opts.k = Some(self.k);
        opts.exact = self.exact;
        opts.prefilter = Some(!self.postfilter);
        opts.metric.clone_from(&self.metric);
        opts.nprobes = self.nprobes;
        opts.ef = self.ef;
        opts.refine = self.refine;
        opts.columns.clone_from(&self.columns);
        opts.filter.clone_from(&self.filter);
        opts
    }
}
