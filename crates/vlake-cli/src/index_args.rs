//! Index build options on the command line, shared by `vlake index create` and `vlake-bench build`.

use vlake_table::{AnalyzerConfig, HnswParams, IndexOptions, IndexType, IvfParams, Result};

/// How to build an index.
#[derive(clap::Args, Debug)]
pub struct IndexArgs {
    /// ivf_pq, hnsw or ivf_flat (vector columns), or fts (full-text, string columns).
    #[arg(long = "type")]
    pub index_type: String,
    /// l2, cosine or dot (default cosine).
    #[arg(long)]
    pub metric: Option<String>,
    /// Index name (default <column>_idx).
    #[arg(long)]
    pub name: Option<String>,
    /// IVF partitions (default about sqrt(rows)).
    #[arg(long)]
    pub partitions: Option<usize>,
    /// IVF-PQ sub-vectors (default: the largest divisor of the dimension up to dim / 8).
    #[arg(long)]
    pub subvectors: Option<usize>,
    /// HNSW neighbours per node (default 16).
    #[arg(long)]
    pub m: Option<usize>,
    /// HNSW candidate list size while building (default 100).
    #[arg(long)]
    pub ef_construction: Option<usize>,
    /// fts: unicode (UAX #29 words, CJK bigrams; the default) or whitespace.
    #[arg(long)]
    pub tokenizer: Option<String>,
    /// fts: Snowball stemmer language, or none (default english).
    #[arg(long)]
    pub stemmer: Option<String>,
    /// fts: stop-word language, or none (default english).
    #[arg(long)]
    pub stop_words: Option<String>,
    /// fts: keep case (no lowercasing).
    #[arg(long)]
    pub keep_case: bool,
}

impl IndexArgs {
    /// The build options for `column`: what is not given takes `IndexOptions::new`'s defaults
    /// (the Python binding's `create_index` takes the same).
    pub fn options(&self, column: &str) -> Result<IndexOptions> {
        let mut opts = IndexOptions::new(column, self.index_type.parse::<IndexType>()?);
        if let Some(metric) = &self.metric {
            opts.metric = metric.parse()?;
        }
        opts.name = self.name.clone();
        opts.ivf = IvfParams {
            partitions: self.partitions,
            pq_subvectors: self.subvectors,
            ..opts.ivf
        };
        opts.hnsw = HnswParams {
            m: self.m.unwrap_or(opts.hnsw.m),
            ef_construction: self.ef_construction.unwrap_or(opts.hnsw.ef_construction),
        };
        let language = |given: &Option<String>, default: Option<String>| match given.as_deref() {
            Some("none") => None,
            Some(v) => Some(v.to_string()),
            None => default,
        };
        opts.analyzer = AnalyzerConfig {
            tokenizer: match &self.tokenizer {
                Some(t) => t.parse()?,
                None => opts.analyzer.tokenizer,
            },
            lowercase: !self.keep_case,
            stop_words: language(&self.stop_words, opts.analyzer.stop_words.clone()),
            stemmer: language(&self.stemmer, opts.analyzer.stemmer.clone()),
            ..opts.analyzer
        };
        Ok(opts)
    }
}
