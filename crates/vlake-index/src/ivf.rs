//! IVF indexes: vectors partitioned by their nearest k-means centroid, each partition stored
//! as a separately readable blob. IVF-Flat keeps the vectors; IVF-PQ adds 8-bit product codes of
//! the residuals (vector minus centroid) and re-ranks the best candidates with the vectors.

use rand::rngs::StdRng;
use rand::SeedableRng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use vlake_format::segment::{f32_bytes, to_f32, to_u64, u64_bytes, SegmentHeader, SegmentWriter};
use vlake_format::{Error, Result};

use crate::distance::{dot, normalize};
use crate::kmeans;
use crate::kmeans::BLOCK_ROWS;
use crate::pq::{EncodeScratch, ProductQuantizer, Space};
use crate::topk::TopK;
use crate::Metric;

/// Most residuals the product quantizer trains on (FAISS's 256 per code of each sub-space).
const PQ_TRAIN_ROWS: usize = 256 * 256;
/// Lloyd iterations of each PQ sub-space (FAISS's default).
const PQ_ITERATIONS: usize = 25;

/// Build parameters of an IVF index.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct IvfParams {
    /// Number of partitions (default: about `sqrt(rows)`).
    pub partitions: Option<usize>,
    /// PQ sub-vectors; `None` builds IVF-Flat.
    pub pq_subvectors: Option<usize>,
    /// Lloyd iterations for k-means.
    pub iterations: usize,
    /// Training sample size per partition.
    pub sample_per_partition: usize,
}

impl Default for IvfParams {
    fn default() -> Self {
        Self {
            partitions: None,
            pq_subvectors: None,
            iterations: 10,
            sample_per_partition: 256,
        }
    }
}

/// What an IVF segment's header records.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct IvfMeta {
    /// User metric.
    pub metric: Metric,
    /// Dimension.
    pub dim: usize,
    /// Partitions.
    pub partitions: usize,
    /// PQ sub-vectors, for IVF-PQ.
    pub pq_subvectors: Option<usize>,
    /// Rows per partition.
    pub rows: Vec<u64>,
}

/// The trained part of an IVF index: centroids and, for IVF-PQ, the quantizer.
#[derive(Clone, Debug)]
pub struct IvfModel {
    /// User metric.
    pub metric: Metric,
    /// Dimension.
    pub dim: usize,
    /// `partitions x dim` centroids.
    pub centroids: Vec<f32>,
    /// Quantizer of residuals, for IVF-PQ.
    pub pq: Option<ProductQuantizer>,
}

/// One partition's rows.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Partition {
    /// Row ids.
    pub ids: Vec<u64>,
    /// Vectors (normalised for cosine), row-major.
    pub vectors: Vec<f32>,
    /// PQ codes, `m` bytes per row (IVF-PQ only).
    pub codes: Vec<u8>,
}

/// Vectors prepared for the index's inner space: normalised for cosine.
pub fn prepare(metric: Metric, vectors: &mut [f32], dim: usize) {
    if metric == Metric::Cosine {
        vectors.par_chunks_exact_mut(dim).for_each(normalize);
    }
}

/// The inner space a metric is computed in.
pub fn space(metric: Metric) -> Space {
    match metric {
        Metric::L2 => Space::L2,
        Metric::Cosine | Metric::Dot => Space::Ip,
    }
}

/// Turns an inner-space distance into the user metric's distance.
pub fn report(metric: Metric, inner: f32) -> f32 {
    match metric {
        Metric::Cosine => (1.0 + inner).max(0.0),
        _ => inner,
    }
}

impl IvfModel {
    /// Trains on prepared vectors: k-means on a seeded sample of `partitions x
    /// sample_per_partition` of them (all when fewer), the partition count defaulting to about
    /// `sqrt(rows)`.
    pub fn fit(metric: Metric, dim: usize, values: &[f32], params: &IvfParams) -> Result<Self> {
        let n = values.len() / dim.max(1);
        let partitions = params
            .partitions
            .unwrap_or_else(|| ((n as f64).sqrt() as usize).clamp(1, 4096));
        if partitions == 0 {
            return Err(Error::invalid("an IVF index needs at least one partition"));
        }
        // The partition count is the user's: more than there are vectors trains one per vector.
        let sample_rows = partitions.saturating_mul(params.sample_per_partition).min(n);
        let sample: Vec<f32> = if sample_rows == n {
            values.to_vec()
        } else {
            let mut rng = StdRng::seed_from_u64(7);
            rand::seq::index::sample(&mut rng, n, sample_rows)
                .iter()
                .flat_map(|i| values[i * dim..(i + 1) * dim].iter().copied())
                .collect()
        };
        let params = IvfParams {
            partitions: Some(partitions),
            ..params.clone()
        };
        Self::train(metric, dim, &sample, n, &params)
    }

    /// Trains on a sample of prepared vectors.
    pub fn train(metric: Metric, dim: usize, sample: &[f32], total_rows: usize, params: &IvfParams) -> Result<Self> {
        let n = sample.len() / dim.max(1);
        if n == 0 {
            return Err(Error::invalid("cannot train an IVF index on zero vectors"));
        }
        let partitions = params
            .partitions
            .unwrap_or_else(|| ((total_rows as f64).sqrt() as usize).clamp(1, 4096))
            .min(n);
        let centroids = kmeans::train(sample, dim, partitions, params.iterations, 42);
        let pq = match params.pq_subvectors {
            None => None,
            Some(m) => {
                // FAISS's defaults: at most 256 training rows per code, 25 Lloyd iterations.
                let rows = PQ_TRAIN_ROWS.min(n);
                let mut rng = StdRng::seed_from_u64(11);
                let picked: Vec<f32> = rand::seq::index::sample(&mut rng, n, rows)
                    .iter()
                    .flat_map(|i| sample[i * dim..(i + 1) * dim].iter().copied())
                    .collect();
                let model = Self {
                    metric,
                    dim,
                    centroids,
                    pq: None,
                };
                let labels = kmeans::assign(&model.centroids, dim, &picked);
                let mut residuals = Vec::new();
                model.residuals(&picked, &labels, &mut residuals);
                let pq = ProductQuantizer::train(&residuals, dim, m, PQ_ITERATIONS)?;
                return Ok(Self { pq: Some(pq), ..model });
            }
        };
        Ok(Self {
            metric,
            dim,
            centroids,
            pq,
        })
    }

    /// Number of partitions.
    pub fn partitions(&self) -> usize {
        self.centroids.len() / self.dim
    }

    /// Writes `rows - centroid of label` into `out`, row by row.
    fn residuals(&self, rows: &[f32], labels: &[u32], out: &mut Vec<f32>) {
        let dim = self.dim;
        out.clear();
        for (v, l) in rows.chunks_exact(dim).zip(labels) {
            let c = &self.centroids[*l as usize * dim..(*l as usize + 1) * dim];
            out.extend(v.iter().zip(c).map(|(x, c)| x - c));
        }
    }

    /// Splits prepared vectors into partitions, with codes for IVF-PQ.
    pub fn partition(&self, ids: &[u64], vectors: &[f32]) -> Vec<Partition> {
        let dim = self.dim;
        let n = ids.len().min(vectors.len() / dim);
        let vectors = &vectors[..n * dim];
        let coarse = kmeans::Codebook::new(&self.centroids, dim);
        let (labels, codes, m) = match &self.pq {
            None => (coarse.assign(vectors), Vec::new(), 0),
            Some(pq) => {
                // Assign, take residuals and encode block by block: no n x dim residual copy.
                let encoder = pq.encoder();
                let mut labels = vec![0u32; n];
                let mut codes = vec![0u8; n * pq.m];
                labels
                    .par_chunks_mut(BLOCK_ROWS)
                    .zip(codes.par_chunks_mut(BLOCK_ROWS * pq.m))
                    .zip(vectors.par_chunks(BLOCK_ROWS * dim))
                    .for_each_init(
                        || (Vec::new(), Vec::new(), EncodeScratch::default()),
                        |(products, residuals, scratch), ((labels, codes), rows)| {
                            coarse.assign_rows(rows, dim, 0, labels, products);
                            self.residuals(rows, labels, residuals);
                            encoder.encode_rows(residuals, codes, scratch);
                        },
                    );
                (labels, codes, pq.m)
            }
        };
        let mut counts = vec![0usize; self.partitions()];
        for l in &labels {
            counts[*l as usize] += 1;
        }
        let mut parts: Vec<Partition> = counts
            .iter()
            .map(|c| Partition {
                ids: Vec::with_capacity(*c),
                vectors: Vec::with_capacity(c * dim),
                codes: Vec::with_capacity(c * m),
            })
            .collect();
        // Each thread fills a range of partitions, scanning all labels.
        let per_thread = parts.len().div_ceil(rayon::current_num_threads()).max(1);
        parts.par_chunks_mut(per_thread).enumerate().for_each(|(t, range)| {
            let first = t * per_thread;
            for (i, label) in labels.iter().enumerate() {
                let Some(p) = (*label as usize).checked_sub(first).and_then(|p| range.get_mut(p)) else {
                    continue;
                };
                p.ids.push(ids[i]);
                p.vectors.extend_from_slice(&vectors[i * dim..(i + 1) * dim]);
                p.codes.extend_from_slice(&codes[i * m..(i + 1) * m]);
            }
        });
        parts
    }

    /// Serialises the model and partitions as one segment file.
    /// Partitions are consumed as they are encoded, so that the vectors are never held twice.
    pub fn write_segment(&self, parts: Vec<Partition>) -> Result<Vec<u8>> {
        let rows = parts.iter().map(|p| p.ids.len() as u64).collect();
        let mut w = SegmentWriter::default();
        w.blob("centroids", f32_bytes(&self.centroids));
        if let Some(pq) = &self.pq {
            w.blob("pq_codebooks", f32_bytes(&pq.codebooks));
        }
        for (i, p) in parts.into_iter().enumerate() {
            w.blob(format!("p{i}.ids"), u64_bytes(&p.ids));
            w.blob(format!("p{i}.vectors"), f32_bytes(&p.vectors));
            if self.pq.is_some() {
                w.blob(format!("p{i}.codes"), p.codes);
            }
        }
        let meta = IvfMeta {
            metric: self.metric,
            dim: self.dim,
            partitions: self.partitions(),
            pq_subvectors: self.pq.as_ref().map(|p| p.m),
            rows,
        };
        w.finish(
            "ivf",
            serde_json::to_value(&meta).map_err(|e| Error::Internal(e.to_string()))?,
        )
    }

    /// Rebuilds the model from a segment's header and its `centroids` / `pq_codebooks` blobs.
    pub fn from_blobs(meta: &IvfMeta, centroids: &[u8], codebooks: Option<&[u8]>, path: &str) -> Result<Self> {
        let centroids = to_f32(centroids, path, "centroids")?;
        if meta.dim == 0 || meta.partitions == 0 || Some(centroids.len()) != meta.partitions.checked_mul(meta.dim) {
            return Err(Error::corrupt(path, "centroid count does not match the header"));
        }
        let pq = match (meta.pq_subvectors, codebooks) {
            (Some(m), Some(bytes)) => {
                let codebooks = to_f32(bytes, path, "pq_codebooks")?;
                if m == 0 || !meta.dim.is_multiple_of(m) || codebooks.len() != meta.dim * 256 {
                    return Err(Error::corrupt(path, "PQ codebooks do not match the header"));
                }
                Some(ProductQuantizer {
                    dim: meta.dim,
                    m,
                    codebooks,
                })
            }
            (None, _) => None,
            (Some(_), None) => return Err(Error::corrupt(path, "IVF-PQ segment lacks its codebooks")),
        };
        Ok(Self {
            metric: meta.metric,
            dim: meta.dim,
            centroids,
            pq,
        })
    }

    /// The `nprobes` partitions nearest the prepared query.
    /// Partitions are chosen by L2 to the centroids whatever the metric, the rule rows were
    /// assigned by, so that a query equal to a stored vector probes that vector's partition.
    pub fn probe(&self, query: &[f32], nprobes: usize) -> Vec<usize> {
        let mut top = TopK::new(nprobes.clamp(1, self.partitions().max(1)));
        for (i, c) in self.centroids.chunks_exact(self.dim).enumerate() {
            top.push(crate::distance::l2_sq(query, c), i as u64);
        }
        top.into_sorted().iter().map(|n| n.id as usize).collect()
    }

    /// Per-query state for searching partitions (the PQ lookup table, when it does not depend
    /// on the partition).
    pub fn prepare_query(&self, query: &[f32]) -> QueryTables {
        let shared = match (&self.pq, space(self.metric)) {
            (Some(pq), Space::Ip) => Some(pq.lookup_table(query, Space::Ip)),
            _ => None,
        };
        QueryTables { shared }
    }

    /// Searches one partition, offering inner-space distances to `top`. IVF-PQ offers PQ
    /// estimates (to be refined); IVF-Flat offers exact distances. Row `j` of the partition is
    /// offered under the id `key(j)` (its row id, or a position to re-rank by).
    #[allow(clippy::too_many_arguments)]
    pub fn search_partition(
        &self,
        query: &[f32],
        tables: &QueryTables,
        partition: usize,
        part: &Partition,
        allow: &dyn Fn(u64) -> bool,
        key: &dyn Fn(usize) -> u64,
        top: &mut TopK,
    ) {
        let dim = self.dim;
        let space = space(self.metric);
        match &self.pq {
            None => {
                for (j, (id, v)) in part.ids.iter().zip(part.vectors.chunks_exact(dim)).enumerate() {
                    if allow(*id) {
                        top.push(space.distance(query, v), key(j));
                    }
                }
            }
            Some(pq) => {
                let c = &self.centroids[partition * dim..(partition + 1) * dim];
                let own;
                let (lut, base) = match (&tables.shared, space) {
                    // -<q, c + r> = -<q, c> - <q, r>: the table of -<q, r> is shared.
                    (Some(shared), _) => (shared.as_slice(), -dot(query, c)),
                    _ => {
                        let residual: Vec<f32> = query.iter().zip(c).map(|(q, c)| q - c).collect();
                        own = pq.lookup_table(&residual, Space::L2);
                        (own.as_slice(), 0.0)
                    }
                };
                // Estimates are cheap: the filter is asked only about rows that would enter.
                let mut threshold = top.threshold();
                for (j, (id, code)) in part.ids.iter().zip(part.codes.chunks_exact(pq.m)).enumerate() {
                    let d = base + ProductQuantizer::distance(lut, code);
                    if d < threshold && allow(*id) {
                        top.push(d, key(j));
                        threshold = top.threshold();
                    }
                }
            }
        }
    }
}

impl IvfModel {
    /// The `k` nearest allowed rows of the probed partitions (partition number and rows) to a
    /// prepared query, as (inner distance, row id). IVF-Flat ranks by exact distances; IVF-PQ
    /// keeps the `k * refine` best PQ estimates and re-ranks them with the stored vectors.
    pub fn search(
        &self,
        query: &[f32],
        probed: &[(usize, &Partition)],
        k: usize,
        refine: usize,
        allow: &dyn Fn(u64) -> bool,
    ) -> TopK {
        let tables = self.prepare_query(query);
        if self.pq.is_none() {
            let mut top = TopK::new(k);
            for (p, part) in probed {
                self.search_partition(query, &tables, *p, part, allow, &|j| part.ids[j], &mut top);
            }
            return top;
        }
        // PQ candidates are keyed by where they are, to re-rank without lookups.
        let mut candidates = TopK::new(k.saturating_mul(refine.max(1)));
        for (slot, (p, part)) in probed.iter().enumerate() {
            let key = |j: usize| ((slot as u64) << 32) | j as u64;
            self.search_partition(query, &tables, *p, part, allow, &key, &mut candidates);
        }
        let (dim, inner) = (self.dim, space(self.metric));
        let mut top = TopK::new(k);
        for n in candidates.into_sorted() {
            let (part, j) = (probed[(n.id >> 32) as usize].1, (n.id & 0xffff_ffff) as usize);
            top.push(
                inner.distance(query, &part.vectors[j * dim..(j + 1) * dim]),
                part.ids[j],
            );
        }
        top
    }
}

/// Lookup tables computed once per query.
#[derive(Debug, Clone)]
pub struct QueryTables {
    shared: Option<Vec<f32>>,
}

/// Decodes one partition's blobs.
pub fn partition_from_blobs(
    ids: &[u8],
    vectors: &[u8],
    codes: Option<&[u8]>,
    meta: &IvfMeta,
    path: &str,
) -> Result<Partition> {
    let ids = to_u64(ids, path, "partition ids")?;
    let vectors = to_f32(vectors, path, "partition vectors")?;
    let codes = codes.map(<[u8]>::to_vec).unwrap_or_default();
    let m = meta.pq_subvectors.unwrap_or(0);
    if vectors.len() != ids.len() * meta.dim || codes.len() != ids.len() * m {
        return Err(Error::corrupt(path, "partition sizes do not match"));
    }
    Ok(Partition { ids, vectors, codes })
}

/// Reads the IVF metadata of a segment header.
pub fn meta(header: &SegmentHeader, path: &str) -> Result<IvfMeta> {
    if header.kind != "ivf" {
        return Err(Error::corrupt(
            path,
            format!("expected an IVF segment, found '{}'", header.kind),
        ));
    }
    serde_json::from_value(header.params.clone()).map_err(|e| Error::corrupt(path, format!("bad IVF header: {e}")))
}
