//! Vector search over a table version: exact (streaming, multi-threaded) or through a sidecar
//! index, with prefilters or postfilters. Data files an index does not cover are searched
//! exactly and merged, so appended rows are always found; rows an index holds that are not live
//! rows of a covered file (deleted, or compacted out of coverage) are skipped.

use std::collections::HashSet;
use std::sync::Arc;

use arrow_array::{ArrayRef, Float32Array, RecordBatch};
use arrow_schema::{DataType as ArrowType, Field as ArrowField};
use roaring::RoaringTreemap;
use vlake_format::{Error, IndexEntry, Result};
use vlake_index::ivf::{self, report, Partition};
use vlake_index::{flat, Metric, Neighbor, TopK};

use crate::hits::{append_columns, covered_live_rows, default_columns, matching_rows, MAX_K};
use crate::index::{load_segment, vector_field, Segment, StoredParams};
use crate::vectors::file_vectors;
use crate::{Predicate, Table, ROW_ID};

/// Name of the distance column of search results.
pub const DISTANCE: &str = "_distance";

/// The largest IVF-PQ refine factor a search accepts.
pub const MAX_REFINE: usize = 1_000;

/// The largest `nprobes` (IVF partitions probed) and `ef` (HNSW candidate list) a search
/// accepts: far beyond any useful value, low enough that no size derived from them overflows.
pub const MAX_PROBES: usize = 1_000_000;

/// A vector search being set up; run it with [`VectorSearch::execute`].
#[derive(Clone, Debug)]
pub struct VectorSearch {
    table: Table,
    column: String,
    query: Vec<f32>,
    k: usize,
    metric: Option<Metric>,
    nprobes: usize,
    ef: usize,
    refine: usize,
    filter: Option<Predicate>,
    prefilter: bool,
    exact: bool,
    fallback_to_exact: bool,
    columns: Option<Vec<String>>,
    with_row_id: bool,
    max_distance: Option<f32>,
    index_name: Option<String>,
}

impl Table {
    /// Starts a search for the rows whose `column` is nearest `query`.
    pub fn search(&self, column: &str, query: &[f32]) -> VectorSearch {
        VectorSearch {
            table: self.clone(),
            column: column.to_string(),
            query: query.to_vec(),
            k: 10,
            metric: None,
            nprobes: 20,
            ef: 64,
            refine: 10,
            filter: None,
            prefilter: true,
            exact: false,
            fallback_to_exact: false,
            columns: None,
            with_row_id: false,
            max_distance: None,
            index_name: None,
        }
    }
}

impl VectorSearch {
    /// The table searched.
    pub(crate) fn table(&self) -> &Table {
        &self.table
    }

    /// The query vector.
    pub fn query_vector(&self) -> &[f32] {
        &self.query
    }

    /// The same search for another query vector.
    pub fn with_query(mut self, query: &[f32]) -> Self {
        self.query = query.to_vec();
        self
    }

    /// The version of the table searched.
    pub fn table_version(&self) -> u64 {
        self.table.version()
    }

    /// Number of results (default 10).
    pub fn limit(mut self, k: usize) -> Self {
        self.k = k;
        self
    }

    /// The distance (default: the index's metric, else L2).
    pub fn metric(mut self, metric: Metric) -> Self {
        self.metric = Some(metric);
        self
    }

    /// IVF partitions to probe (default 20).
    pub fn nprobes(mut self, n: usize) -> Self {
        self.nprobes = n.max(1);
        self
    }

    /// HNSW candidate list size (default 64).
    pub fn ef(mut self, ef: usize) -> Self {
        self.ef = ef.max(1);
        self
    }

    /// IVF-PQ re-ranks `k * factor` candidates with exact distances (default 10).
    pub fn refine(mut self, factor: usize) -> Self {
        self.refine = factor.max(1);
        self
    }

    /// Only rows matching this SQL filter.
    pub fn filter_sql(self, sql: &str) -> Result<Self> {
        Ok(self.filter(Predicate::parse(sql)?))
    }

    /// Only rows matching `filter`.
    pub fn filter(mut self, filter: Predicate) -> Self {
        self.filter = Some(filter);
        self
    }

    /// Apply the filter before ranking (default; exactly `k` matching rows when they exist) or
    /// after (faster, may return fewer).
    pub fn prefilter(mut self, yes: bool) -> Self {
        self.prefilter = yes;
        self
    }

    /// Ignore indexes: exact search.
    pub fn exact(mut self, yes: bool) -> Self {
        self.exact = yes;
        self
    }

    /// Search exactly when an index file is missing or corrupt, instead of failing.
    pub fn fallback_to_exact(mut self, yes: bool) -> Self {
        self.fallback_to_exact = yes;
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

    /// Range search: every row within `distance` (exact), at most `k` of them (raise `k` up to
    /// ten million for range searches).
    pub fn within(mut self, distance: f32) -> Self {
        self.max_distance = Some(distance);
        self
    }

    /// Use the index called `name` (default: the newest index on the column with the metric).
    pub fn index(mut self, name: &str) -> Self {
        self.index_name = Some(name.to_string());
        self
    }

    /// Refuses `refine` above [`MAX_REFINE`] and `nprobes` or `ef` above [`MAX_PROBES`]
    /// (invalid input): they come from users and size the search's candidate lists.
    pub fn check_tuning(&self) -> Result<()> {
        for (name, value, max) in [
            ("refine", self.refine, MAX_REFINE),
            ("nprobes", self.nprobes, MAX_PROBES),
            ("ef", self.ef, MAX_PROBES),
        ] {
            if value > max {
                return Err(Error::invalid(format!(
                    "{name} must be between 1 and {max}, not {value}"
                )));
            }
        }
        Ok(())
    }

    fn validate(&self) -> Result<usize> {
        let (_, dim) = vector_field(&self.table, &self.column)?;
        if self.query.len() != dim {
            return Err(Error::invalid(format!(
                "query vector has {} dimensions but column '{}' has {dim}",
                self.query.len(),
                self.column
            )));
        }
        if let Some(i) = self.query.iter().position(|x| !x.is_finite()) {
            return Err(Error::invalid(format!(
                "query vector has a non-finite value ({}) at position {i}",
                self.query[i]
            )));
        }
        let max = if self.max_distance.is_some() { 10_000_000 } else { MAX_K };
        if self.k == 0 || self.k > max {
            return Err(Error::invalid(format!("k must be between 1 and {max}, not {}", self.k)));
        }
        self.check_tuning()?;
        Ok(dim)
    }

    /// The indexes on the searched column, newest first (only the named one, when named).
    fn column_indexes(&self) -> Result<impl Iterator<Item = &IndexEntry>> {
        let id = self.table.table_schema().field(&self.column)?.id;
        let name = self.index_name.as_deref();
        Ok(self.table.manifest().indexes.iter().rev().filter(move |i| {
            i.index_type != crate::text::FTS && i.field_ids.first() == Some(&id) && name.is_none_or(|n| n == i.name)
        }))
    }

    /// The index that serves this search, if any.
    fn serving_index(&self, metric: Metric) -> Result<Option<(&IndexEntry, StoredParams)>> {
        if self.exact || self.max_distance.is_some() {
            return Ok(None);
        }
        let mut candidates = self.column_indexes()?;
        if let Some(name) = &self.index_name {
            let entry = candidates
                .next()
                .ok_or_else(|| Error::not_found(format!("index '{name}' on column '{}'", self.column)))?;
            let params = StoredParams::from_entry(entry)?;
            if params.metric != metric {
                return Err(Error::invalid(format!(
                    "index '{name}' serves {} distances, not {metric}",
                    params.metric
                )));
            }
            return Ok(Some((entry, params)));
        }
        for entry in candidates {
            let params = StoredParams::from_entry(entry)?;
            if params.metric == metric {
                return Ok(Some((entry, params)));
            }
        }
        Ok(None)
    }

    /// The requested metric, else the newest index's, else L2.
    fn default_metric(&self) -> Result<Metric> {
        if let Some(m) = self.metric {
            return Ok(m);
        }
        match self.column_indexes()?.next() {
            Some(entry) => Ok(StoredParams::from_entry(entry)?.metric),
            None => Ok(Metric::L2),
        }
    }

    /// The nearest rows: row ids and distances, closest first.
    pub async fn nearest(&self) -> Result<Vec<Neighbor>> {
        let dim = self.validate()?;
        let metric = self.default_metric()?;
        let allow_set = match (&self.filter, self.prefilter) {
            (Some(f), true) => Some(matching_rows(&self.table, f).await?),
            _ => None,
        };
        let k = self.k;
        if allow_set.as_ref().is_some_and(|s| s.is_empty()) {
            return Ok(vec![]);
        }
        let mut covered: HashSet<&str> = HashSet::new();
        let mut top = TopK::new(k);
        if let Some((entry, params)) = self.serving_index(metric)? {
            let live = covered_live_rows(&self.table, entry).await?;
            match self
                .search_index(entry, &params, metric, dim, allow_set.clone(), &live)
                .await
            {
                Ok(found) => {
                    covered.extend(entry.covered_files.iter().map(String::as_str));
                    top.merge(found);
                }
                Err(e @ (Error::NotFound { .. } | Error::Corrupt { .. })) if !self.fallback_to_exact => return Err(e),
                Err(Error::NotFound { .. } | Error::Corrupt { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        let uncovered: Vec<_> = self
            .table
            .manifest()
            .data_files
            .iter()
            .filter(|f| !covered.contains(f.path.as_str()))
            .collect();
        top.merge(self.exact_search(&uncovered, metric, dim, allow_set.clone()).await?);
        // A search promises k rows whenever k (matching) rows exist: if an index fell short
        // (a selective filter, duplicate vectors crowding a graph), search exactly.
        let available = allow_set
            .as_ref()
            .map_or(usize::try_from(self.table.num_rows()).unwrap_or(usize::MAX), |s| {
                s.len()
            });
        if top.len() < k.min(available) && !covered.is_empty() {
            let all: Vec<_> = self.table.manifest().data_files.iter().collect();
            top = self.exact_search(&all, metric, dim, allow_set.clone()).await?;
        }
        let mut out = top.into_sorted();
        if let Some(r) = self.max_distance {
            out.retain(|n| n.distance <= r);
        }
        Ok(out)
    }

    async fn exact_search(
        &self,
        files: &[&vlake_format::DataFile],
        metric: Metric,
        dim: usize,
        allow: Option<Arc<HashSet<u64>>>,
    ) -> Result<TopK> {
        let (field, _) = vector_field(&self.table, &self.column)?;
        let query_norm = vlake_index::distance::norm(&self.query);
        let mut top = TopK::new(self.k);
        for file in files {
            let vectors = file_vectors(self.table.location(), self.table.session(), file, &field, dim).await?;
            let allow_fn = |id: u64| allow.as_ref().is_none_or(|s| s.contains(&id));
            flat::search_block(
                metric,
                &self.query,
                query_norm,
                vectors.block(),
                dim,
                &allow_fn,
                &mut top,
            );
        }
        Ok(top)
    }

    async fn search_index(
        &self,
        entry: &IndexEntry,
        params: &StoredParams,
        metric: Metric,
        dim: usize,
        allow: Option<Arc<HashSet<u64>>>,
        live: &RoaringTreemap,
    ) -> Result<TopK> {
        let mut query = self.query.clone();
        ivf::prepare(metric, &mut query, dim);
        let allow_fn = |id: u64| live.contains(id) && allow.as_ref().is_none_or(|s| s.contains(&id));
        let mut top = TopK::new(self.k);
        for path in &entry.files {
            let segment = load_segment(self.table.location(), self.table.session(), path).await?;
            let (seg_metric, seg_dim) = match &segment {
                Segment::Hnsw(g) => (g.metric(), g.dim()),
                Segment::Ivf(s) => (s.meta.metric, s.meta.dim),
                Segment::Text(_) => return Err(Error::corrupt(path, "a vector index holds a full-text segment")),
            };
            if seg_metric != params.metric || seg_dim != dim {
                return Err(Error::corrupt(
                    path,
                    format!(
                        "segment is for {seg_metric} distances on {seg_dim} dimensions; index '{}' says {} on {dim}",
                        entry.name, params.metric
                    ),
                ));
            }
            match segment {
                Segment::Hnsw(graph) => {
                    // Only allowed nodes count towards ef, so a filter needs no larger ef.
                    for n in graph.search(&query, self.k, self.ef, &allow_fn).into_sorted() {
                        top.push(report(metric, n.distance), n.id);
                    }
                }
                Segment::Text(_) => {}
                Segment::Ivf(segment) => {
                    let model = &segment.model;
                    let mut parts = Vec::new();
                    for p in model.probe(&query, self.nprobes) {
                        parts.push((p, segment.partition(self.table.location(), p).await?));
                    }
                    let probed: Vec<(usize, &Partition)> = parts.iter().map(|(p, part)| (*p, part.as_ref())).collect();
                    for n in model
                        .search(&query, &probed, self.k, self.refine, &allow_fn)
                        .into_sorted()
                    {
                        top.push(report(metric, n.distance), n.id);
                    }
                }
            }
        }
        Ok(top)
    }

    /// How the search will run, for plan displays: the serving index (with its type and
    /// coverage) or an exact scan, the metric, `k` and the filter. Fails as the search would
    /// on bad input (dimension, values, `k`).
    pub fn describe(&self) -> Result<String> {
        self.validate()?;
        let metric = self.default_metric()?;
        let how = match self.serving_index(metric)? {
            Some((entry, _)) => {
                let uncovered = self
                    .table
                    .manifest()
                    .data_files
                    .len()
                    .saturating_sub(entry.covered_files.len());
                format!(
                    "index {} ({}, nprobes={}, ef={}, refine={}) + exact over {uncovered} uncovered file(s)",
                    entry.name, entry.index_type, self.nprobes, self.ef, self.refine
                )
            }
            None => "exact".to_string(),
        };
        let mut out = format!("{how}, metric={metric}, k={}", self.k);
        if let Some(f) = &self.filter {
            let when = if self.prefilter { "prefilter" } else { "postfilter" };
            out.push_str(&format!(", {when}={f}"));
        }
        Ok(out)
    }

    /// Runs the search: the requested columns of the nearest rows, closest first, with
    /// `_distance` (and `_rowid` when asked).
    pub async fn execute(&self) -> Result<RecordBatch> {
        let neighbors = self.nearest().await?;
        let columns = self.columns.clone().unwrap_or_else(|| default_columns(&self.table));
        let postfilter = self.filter.as_ref().filter(|_| !self.prefilter);
        let mut fetch = columns.clone();
        if let Some(f) = postfilter {
            fetch.extend(
                f.columns()
                    .into_iter()
                    .map(str::to_string)
                    .filter(|c| !columns.contains(c)),
            );
        }
        let ids: Vec<u64> = neighbors.iter().map(|n| n.id).collect();
        let rows = self.table.take_rows(&ids, &fetch).await?;
        let distances: ArrayRef = Arc::new(Float32Array::from_iter_values(neighbors.iter().map(|n| n.distance)));
        let mut batch = append_columns(
            rows,
            vec![(ArrowField::new(DISTANCE, ArrowType::Float32, false), distances)],
            self.with_row_id.then_some(&ids[..]),
        )?;
        if let Some(f) = postfilter {
            let mask = f.evaluate(&batch)?;
            batch = arrow_select::filter::filter_record_batch(&batch, &mask)?;
        }
        let mut keep = columns;
        if self.with_row_id {
            keep.push(ROW_ID.to_string());
        }
        keep.push(DISTANCE.to_string());
        let indices: Vec<usize> = keep
            .iter()
            .map(|c| batch.schema().index_of(c))
            .collect::<std::result::Result<_, _>>()?;
        Ok(batch.project(&indices)?)
    }
}
