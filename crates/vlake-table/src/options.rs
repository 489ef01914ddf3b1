//! The options of a search as one plain, serialisable value: what a binding or a command line
//! collects from its user and hands over whole, so that the names, their parsing and the
//! defaults live here once. A field left out keeps the search's default.
//!
//! ```
//! # use vlake_table::VectorSearchOptions;
//! let opts: VectorSearchOptions = serde_json::from_str(r#"{"k": 5, "ef": 64, "filter": "pos = 'n'"}"#).unwrap();
//! assert_eq!(opts.k, Some(5));
//! ```

use arrow_schema::DataType;
use serde::{Deserialize, Serialize};
use vlake_text::Bm25;

use crate::{Error, Fusion, HybridSearch, Metric, Result, Table, TextSearch, VectorSearch};

/// Options of a vector search ([`Table::search`]).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct VectorSearchOptions {
    /// Rows to return.
    pub k: Option<usize>,
    /// `cosine`, `l2` or `dot` (default: the index's metric, else L2).
    pub metric: Option<String>,
    /// IVF partitions to probe.
    pub nprobes: Option<usize>,
    /// HNSW candidate list size.
    pub ef: Option<usize>,
    /// IVF-PQ re-ranks `k * refine` candidates exactly.
    pub refine: Option<usize>,
    /// An SQL condition rows must match.
    pub filter: Option<String>,
    /// Filter before ranking (the default) or after.
    pub prefilter: Option<bool>,
    /// Search exactly, ignoring indexes.
    pub exact: bool,
    /// The columns to return.
    pub columns: Option<Vec<String>>,
    /// Search exactly when an index file is missing or corrupt, instead of failing.
    pub fallback_to_exact: bool,
    /// Range search: rows within this distance.
    pub max_distance: Option<f32>,
}

impl VectorSearchOptions {
    /// `search` with these options applied.
    pub fn apply(&self, mut search: VectorSearch) -> Result<VectorSearch> {
        search = search.exact(self.exact).fallback_to_exact(self.fallback_to_exact);
        if let Some(k) = self.k {
            search = search.limit(k);
        }
        if let Some(m) = &self.metric {
            search = search.metric(m.parse::<Metric>()?);
        }
        if let Some(n) = self.nprobes {
            search = search.nprobes(n);
        }
        if let Some(n) = self.ef {
            search = search.ef(n);
        }
        if let Some(n) = self.refine {
            search = search.refine(n);
        }
        if let Some(f) = &self.filter {
            search = search.filter_sql(f)?;
        }
        if let Some(p) = self.prefilter {
            search = search.prefilter(p);
        }
        if let Some(c) = &self.columns {
            search = search.columns(c);
        }
        if let Some(d) = self.max_distance {
            search = search.within(d);
        }
        Ok(search)
    }
}

/// Options of a full-text search ([`Table::full_text_search`]).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct TextSearchOptions {
    /// Rows to return.
    pub k: Option<usize>,
    /// An SQL condition rows must match.
    pub filter: Option<String>,
    /// The columns to return.
    pub columns: Option<Vec<String>>,
    /// Add `_snippet`, the text with matches marked.
    pub snippet: bool,
    /// BM25 term-frequency saturation (default 1.2).
    pub k1: Option<f64>,
    /// BM25 length normalisation (default 0.75).
    pub b: Option<f64>,
    /// Terms a prefix or fuzzy term expands to, at most.
    pub max_expansions: Option<usize>,
    /// The index to use, by name.
    pub index: Option<String>,
}

impl TextSearchOptions {
    /// `search` with these options applied.
    pub fn apply(&self, mut search: TextSearch) -> Result<TextSearch> {
        let bm25 = Bm25::default();
        search = search
            .snippet(self.snippet)
            .bm25(self.k1.unwrap_or(bm25.k1), self.b.unwrap_or(bm25.b));
        if let Some(k) = self.k {
            search = search.limit(k);
        }
        if let Some(f) = &self.filter {
            search = search.filter_sql(f)?;
        }
        if let Some(c) = &self.columns {
            search = search.columns(c);
        }
        if let Some(n) = self.max_expansions {
            search = search.max_expansions(n);
        }
        if let Some(i) = &self.index {
            search = search.index(i);
        }
        Ok(search)
    }
}

/// Options of a hybrid search ([`Table::hybrid_search`]): the vector side's index settings, and
/// how the two lists are fused.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct HybridSearchOptions {
    /// Rows to return.
    pub k: Option<usize>,
    /// An SQL condition rows must match (both searches).
    pub filter: Option<String>,
    /// The columns to return.
    pub columns: Option<Vec<String>>,
    /// `rrf` (the default) or `weighted`.
    pub fusion: Option<String>,
    /// The RRF rank constant.
    pub rrf_k: Option<f32>,
    /// The vector list's weight in weighted fusion.
    pub vector_weight: Option<f32>,
    /// Rows each search contributes.
    pub candidates: Option<usize>,
    /// The vector search's metric.
    pub metric: Option<String>,
    /// The vector search's IVF partitions to probe.
    pub nprobes: Option<usize>,
    /// The vector search's HNSW candidate list size.
    pub ef: Option<usize>,
    /// Search vectors exactly.
    pub exact: bool,
}

impl HybridSearchOptions {
    /// The hybrid search of `vector` and `text` with these options.
    pub fn apply(&self, vector: VectorSearch, text: TextSearch) -> Result<HybridSearch> {
        let vector = VectorSearchOptions {
            metric: self.metric.clone(),
            nprobes: self.nprobes,
            ef: self.ef,
            exact: self.exact,
            ..Default::default()
        }
        .apply(vector)?;
        let fusion = match &self.fusion {
            Some(name) => Fusion::named(name, self.rrf_k, self.vector_weight)?,
            None => Fusion::named("rrf", self.rrf_k, self.vector_weight)?,
        };
        let mut search = HybridSearch::new(vector, text).fusion(fusion);
        if let Some(k) = self.k {
            search = search.limit(k);
        }
        if let Some(n) = self.candidates {
            search = search.candidates(n);
        }
        if let Some(f) = &self.filter {
            search = search.filter_sql(f)?;
        }
        if let Some(c) = &self.columns {
            search = search.columns(c);
        }
        Ok(search)
    }
}

impl Table {
    /// The table's only vector column, for a search that names none.
    pub fn only_vector_column(&self) -> Result<String> {
        self.only_column("vector", |t| matches!(t, DataType::FixedSizeList(..)))
    }

    /// The table's only string column, for a full-text search that names none.
    pub fn only_text_column(&self) -> Result<String> {
        self.only_column("string", |t| matches!(t, DataType::Utf8 | DataType::LargeUtf8))
    }

    fn only_column(&self, kind: &str, is_kind: fn(&DataType) -> bool) -> Result<String> {
        let names: Vec<&str> = self
            .schema()
            .fields()
            .iter()
            .filter(|f| is_kind(f.data_type()))
            .map(|f| f.name().as_str())
            .collect();
        match names.as_slice() {
            [one] => Ok(one.to_string()),
            _ => Err(Error::invalid(format!(
                "the table has {} {kind} columns ({}): name the column to search",
                names.len(),
                if names.is_empty() {
                    "none".to_string()
                } else {
                    names.join(", ")
                }
            ))),
        }
    }
}
