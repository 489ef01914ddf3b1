//! Index build options on the command line, shared by `vlake index create` and `vlake-bench build`.

use vlake_table::{AnalyzerConfig, Error, HnswParams, IndexOptions, IndexType, IvfParams, Result, TokenizerKind};

/// How to build an index.
#[derive(clap::Args, Debug)]
pub struct IndexArgs {
    /// ivf_pq, hnsw or ivf_flat (vector columns), or fts (full-text, string columns).
    #[arg(long = "type")]
    pub index_type: String,
    /// l2, cosine or dot.
    #[arg(long, default_value = "cosine")]
    pub metric: String,
    /// Index name (default <column>_idx).
    #[arg(long)]
    pub name: Option<String>,
    /// IVF partitions (default about sqrt(rows)).
    #[arg(long)]
    pub partitions: Option<usize>,
    /// IVF-PQ sub-vectors (default: the largest divisor of the dimension up to dim / 8).
    #[arg(long)]
    pub subvectors: Option<usize>,
    /// HNSW neighbours per node.
    #[arg(long, default_value_t = 16)]
    pub m: usize,
    /// HNSW candidate list size while building.
    #[arg(long, default_value_t = 100)]
    pub ef_construction: usize,
    /// fts: unicode (UAX #29 words, CJK bigrams) or whitespace.
    #[arg(long, default_value = "unicode")]
    pub tokenizer: String,
    /// fts: Snowball stemmer language, or none.
    #[arg(long, default_value = "english")]
    pub stemmer: String,
    /// fts: stop-word language, or none.
    #[arg(long, default_value = "english")]
    pub stop_words: String,
    /// fts: keep case (no lowercasing).
    #[arg(long)]
    pub keep_case: bool,
}

impl IndexArgs {
    /// The build options for `column`.
    pub fn options(&self, column: &str) -> Result<IndexOptions> {
        let mut opts = IndexOptions::new(column, self.index_type.parse::<IndexType>()?);
        opts.metric = self.metric.parse()?;
        opts.name = self.name.clone();
        opts.ivf = IvfParams {
            partitions: self.partitions,
            pq_subvectors: self.subvectors,
            ..Default::default()
        };
        opts.hnsw = HnswParams {
            m: self.m,
            ef_construction: self.ef_construction,
        };
        let language = |v: &str| (v != "none").then(|| v.to_string());
        opts.analyzer = AnalyzerConfig {
            tokenizer: match self.tokenizer.as_str() {
                "unicode" => TokenizerKind::Unicode,
                "whitespace" => TokenizerKind::Whitespace,
                other => {
                    return Err(Error::invalid(format!(
                        "unknown tokenizer '{other}': use unicode or whitespace"
                    )))
                }
            },
            lowercase: !self.keep_case,
            stop_words: language(&self.stop_words),
            stemmer: language(&self.stemmer),
            ..AnalyzerConfig::default()
        };
        Ok(opts)
    }
}
