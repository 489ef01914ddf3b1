//! Exact (brute-force) search over blocks of vectors.

use rayon::prelude::*;

use crate::distance::{dot, l2_sq};
use crate::topk::TopK;
use crate::Metric;

/// Rows per parallel work unit.
const BLOCK_ROWS: usize = 4096;

/// A block of vectors: row ids, row-major values and each vector's Euclidean norm.
#[derive(Debug, Clone, Copy)]
pub struct Block<'a> {
    /// Row ids.
    pub ids: &'a [u64],
    /// Vectors, `ids.len() x dim`.
    pub vectors: &'a [f32],
    /// Norms (used for cosine distances).
    pub norms: &'a [f32],
}

/// The distance of `v` (with norm `v_norm`) to the query: one pass over the data.
#[inline(always)]
fn distance(metric: Metric, query: &[f32], query_norm: f32, v: &[f32], v_norm: f32) -> f32 {
    match metric {
        Metric::L2 => l2_sq(query, v),
        Metric::Dot => -dot(query, v),
        Metric::Cosine => {
            let denom = query_norm * v_norm;
            if denom > 0.0 {
                (1.0 - dot(query, v) / denom).max(0.0)
            } else {
                1.0
            }
        }
    }
}

/// Offers every allowed row of a block to `top`, in parallel; `allow(row id)` applies a filter.
pub fn search_block(
    metric: Metric,
    query: &[f32],
    query_norm: f32,
    block: Block<'_>,
    dim: usize,
    allow: &(dyn Fn(u64) -> bool + Sync),
    top: &mut TopK,
) {
    let Block { ids, vectors, norms } = block;
    let k = top.capacity();
    let partial = vectors
        .par_chunks(BLOCK_ROWS * dim)
        .enumerate()
        .map(|(b, chunk)| {
            let mut local = TopK::new(k);
            for (j, v) in chunk.chunks_exact(dim).enumerate() {
                let i = b * BLOCK_ROWS + j;
                if allow(ids[i]) {
                    let d = distance(metric, query, query_norm, v, norms[i]);
                    if d < local.threshold() {
                        local.push(d, ids[i]);
                    }
                }
            }
            local
        })
        .reduce(
            || TopK::new(k),
            |mut a, b| {
                a.merge(b);
                a
            },
        );
    top.merge(partial);
}
