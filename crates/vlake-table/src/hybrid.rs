//! Hybrid search: one vector search and one full-text search, fused (format-spec/fts.md#hybrid-search).

use std::collections::HashMap;
use std::sync::Arc;

use arrow_array::{ArrayRef, Float32Array, RecordBatch};
use arrow_schema::{DataType as ArrowType, Field as ArrowField};
use vlake_format::{Error, Result};

use crate::hits::{append_columns, default_columns, MAX_K};
use crate::text::SCORE;
use crate::{Predicate, Table, TextSearch, VectorSearch};

/// How the two ranked lists become one.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Fusion {
    /// Reciprocal rank fusion: a row scores Σ 1 / (`k` + rank) over the lists it is in, ranks
    /// counted from 1 (the usual `k` is 60).
    Rrf {
        /// The rank constant.
        k: f32,
    },
    /// Weighted score fusion: each list's scores are min-max normalised to 0..1 (distances
    /// inverted, so the nearest row gets 1), and a row scores
    /// `vector_weight · vector + (1 − vector_weight) · text`, 0 for a list it is not in.
    Weighted {
        /// The vector list's weight, 0 to 1.
        vector_weight: f32,
    },
}

impl Default for Fusion {
    fn default() -> Self {
        Fusion::Rrf { k: 60.0 }
    }
}

impl Fusion {
    /// The fusion called `name` (`rrf` or `weighted`), with the rank constant `rrf_k` or the
    /// `vector_weight` where given (the defaults: 60 and 0.5).
    pub fn named(name: &str, rrf_k: Option<f32>, vector_weight: Option<f32>) -> Result<Self> {
        match name {
            "rrf" => Ok(Fusion::Rrf {
                k: rrf_k.unwrap_or(60.0),
            }),
            "weighted" => Ok(Fusion::Weighted {
                vector_weight: vector_weight.unwrap_or(0.5),
            }),
            other => Err(Error::invalid(format!("fusion must be rrf or weighted, not '{other}'"))),
        }
    }
}

/// Fuses `vector` (row ids nearest first, with distances) and `text` (best first, with BM25
/// scores): the `k` best row ids with fused scores, highest first, ties by row id.
pub fn fuse(vector: &[(u64, f32)], text: &[(u64, f32)], fusion: Fusion, k: usize) -> Vec<(u64, f32)> {
    let mut scores: HashMap<u64, f32> = HashMap::new();
    match fusion {
        Fusion::Rrf { k: c } => {
            for list in [vector, text] {
                for (rank, (id, _)) in list.iter().enumerate() {
                    *scores.entry(*id).or_default() += 1.0 / (c + rank as f32 + 1.0);
                }
            }
        }
        Fusion::Weighted { vector_weight } => {
            let normalised = |list: &[(u64, f32)], invert: bool| -> Vec<(u64, f32)> {
                let (lo, hi) = list
                    .iter()
                    .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), (_, s)| {
                        (lo.min(*s), hi.max(*s))
                    });
                list.iter()
                    .map(|(id, s)| {
                        let x = if hi > lo { (s - lo) / (hi - lo) } else { 1.0 };
                        (*id, if invert && hi > lo { 1.0 - x } else { x })
                    })
                    .collect()
            };
            for (list, weight) in [
                (normalised(vector, true), vector_weight),
                (normalised(text, false), 1.0 - vector_weight),
            ] {
                for (id, s) in list {
                    *scores.entry(id).or_default() += weight * s;
                }
            }
        }
    }
    let mut out: Vec<(u64, f32)> = scores.into_iter().collect();
    out.sort_unstable_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    out.truncate(k);
    out
}

impl Table {
    /// Starts a hybrid search: rows near `query_vector` in `vector_column` and matching
    /// `query_text` in `text_column`, fused (default: reciprocal rank fusion, `k` = 60).
    pub fn hybrid_search(
        &self,
        vector_column: &str,
        query_vector: &[f32],
        text_column: &str,
        query_text: &str,
    ) -> HybridSearch {
        HybridSearch::new(
            self.search(vector_column, query_vector),
            self.full_text_search(text_column, query_text),
        )
    }
}

impl HybridSearch {
    /// Fuses `vector` and `text`, two searches of one table version (their limits are replaced
    /// by the candidate count).
    pub fn new(vector: VectorSearch, text: TextSearch) -> Self {
        HybridSearch {
            table: vector.table().clone(),
            vector,
            text,
            k: 10,
            candidates: None,
            fusion: Fusion::default(),
            columns: None,
            with_row_id: false,
        }
    }
}

/// A hybrid search being set up; run it with [`HybridSearch::execute`].
#[derive(Clone, Debug)]
pub struct HybridSearch {
    table: Table,
    vector: VectorSearch,
    text: TextSearch,
    k: usize,
    candidates: Option<usize>,
    fusion: Fusion,
    columns: Option<Vec<String>>,
    with_row_id: bool,
}

impl HybridSearch {
    /// Number of results (default 10).
    pub fn limit(mut self, k: usize) -> Self {
        self.k = k;
        self
    }

    /// Rows each search contributes before fusion (default: the larger of 50 and `k`).
    pub fn candidates(mut self, n: usize) -> Self {
        self.candidates = Some(n);
        self
    }

    /// The fusion method.
    pub fn fusion(mut self, fusion: Fusion) -> Self {
        self.fusion = fusion;
        self
    }

    /// Only rows matching this SQL filter, in both searches (applied before ranking).
    pub fn filter_sql(self, sql: &str) -> Result<Self> {
        Ok(self.filter(Predicate::parse(sql)?))
    }

    /// Only rows matching `filter`, in both searches.
    pub fn filter(mut self, filter: Predicate) -> Self {
        self.vector = self.vector.filter(filter.clone()).prefilter(true);
        self.text = self.text.filter(filter);
        self
    }

    /// Adjusts the vector search (metric, nprobes, ef, exact, index, ...).
    pub fn vector(mut self, f: impl FnOnce(VectorSearch) -> VectorSearch) -> Self {
        self.vector = f(self.vector);
        self
    }

    /// Adjusts the full-text search (BM25 parameters, expansions, index, ...).
    pub fn text(mut self, f: impl FnOnce(TextSearch) -> TextSearch) -> Self {
        self.text = f(self.text);
        self
    }

    /// Columns to return (default: all but vector columns).
    pub fn columns(mut self, columns: &[impl AsRef<str>]) -> Self {
        self.columns = Some(columns.iter().map(|c| c.as_ref().to_string()).collect());
        self
    }

    /// Add `_rowid`.
    pub fn with_row_id(mut self, yes: bool) -> Self {
        self.with_row_id = yes;
        self
    }

    fn legs(&self) -> Result<(VectorSearch, TextSearch)> {
        let (v, t) = (self.vector.table(), self.text.table());
        if v.uri() != t.uri() || v.version() != t.version() {
            return Err(Error::invalid(format!(
                "a hybrid search fuses searches of one table version, not {} version {} and {} version {}",
                v.uri(),
                v.version(),
                t.uri(),
                t.version()
            )));
        }
        if self.k == 0 || self.k > MAX_K {
            return Err(Error::invalid(format!(
                "k must be between 1 and {}, not {}",
                MAX_K, self.k
            )));
        }
        if let Fusion::Weighted { vector_weight } = self.fusion {
            if !(0.0..=1.0).contains(&vector_weight) {
                return Err(Error::invalid(format!(
                    "the vector weight must be between 0 and 1, not {vector_weight}"
                )));
            }
        }
        let n = self.candidates.unwrap_or(self.k.max(50));
        Ok((self.vector.clone().limit(n), self.text.clone().limit(n)))
    }

    /// How the search will run, for plan displays. Fails as the search would on bad input.
    pub fn describe(&self) -> Result<String> {
        let (vector, text) = self.legs()?;
        Ok(format!(
            "hybrid {:?}, k={}: vector [{}] + text [{}]",
            self.fusion,
            self.k,
            vector.describe()?,
            text.describe()?
        ))
    }

    /// The best rows: row ids and fused scores, highest first.
    pub async fn fused(&self) -> Result<Vec<(u64, f32)>> {
        let (vector, text) = self.legs()?;
        let (near, hits) = futures::try_join!(vector.nearest(), text.hits())?;
        let near: Vec<(u64, f32)> = near.iter().map(|n| (n.id, n.distance)).collect();
        let hits: Vec<(u64, f32)> = hits.iter().map(|h| (h.row_id, h.score)).collect();
        Ok(fuse(&near, &hits, self.fusion, self.k))
    }

    /// Runs the search: the requested columns of the best rows, with `_score` (the fused
    /// score) and `_rowid` when asked.
    pub async fn execute(&self) -> Result<RecordBatch> {
        let fused = self.fused().await?;
        let ids: Vec<u64> = fused.iter().map(|(id, _)| *id).collect();
        let columns = self.columns.clone().unwrap_or_else(|| default_columns(&self.table));
        let rows = self.table.take_rows(&ids, &columns).await?;
        let scores: ArrayRef = Arc::new(Float32Array::from_iter_values(fused.iter().map(|(_, s)| *s)));
        append_columns(
            rows,
            vec![(ArrowField::new(SCORE, ArrowType::Float32, false), scores)],
            self.with_row_id.then_some(&ids[..]),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rrf_and_weighted() {
        let vector = [(1, 0.1), (2, 0.2), (3, 0.9)];
        let text = [(3, 9.0), (1, 4.0), (4, 1.0)];
        let rrf = fuse(&vector, &text, Fusion::Rrf { k: 60.0 }, 10);
        let ids: Vec<u64> = rrf.iter().map(|(id, _)| *id).collect();
        assert_eq!(ids, [1, 3, 2, 4]);
        assert!((rrf[0].1 - (1.0 / 61.0 + 1.0 / 62.0)).abs() < 1e-7);
        let w = fuse(&vector, &text, Fusion::Weighted { vector_weight: 0.5 }, 2);
        // Row 1: vector 1.0, text 0.375; row 3: vector 0.0, text 1.0.
        assert_eq!(w.iter().map(|(id, _)| *id).collect::<Vec<_>>(), [1, 3]);
        assert!((w[0].1 - 0.6875).abs() < 1e-6 && (w[1].1 - 0.5).abs() < 1e-6);
    }
}
