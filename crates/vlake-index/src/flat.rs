//! Exact (brute-force) search over blocks of vectors.

use rayon::prelude::*;

use crate::topk::TopK;
use crate::Metric;

/// Rows per parallel work unit.
const BLOCK_ROWS: usize = 4096;

/// Offers every allowed, valid row of a block to `top`, in parallel. `valid(i)` says whether
/// row `i` of the block has a vector; `allow(row id)` applies a filter.
#[allow(clippy::too_many_arguments)]
pub fn search_block(
    metric: Metric,
    query: &[f32],
    query_norm: f32,
    vectors: &[f32],
    dim: usize,
    ids: &[u64],
    valid: &(dyn Fn(usize) -> bool + Sync),
    allow: &(dyn Fn(u64) -> bool + Sync),
    top: &mut TopK,
) {
    let k = top.capacity();
    let partial = vectors
        .par_chunks(BLOCK_ROWS * dim)
        .enumerate()
        .map(|(b, chunk)| {
            let mut local = TopK::new(k);
            for (j, v) in chunk.chunks_exact(dim).enumerate() {
                let i = b * BLOCK_ROWS + j;
                if valid(i) && allow(ids[i]) {
                    local.push(metric.distance(query, query_norm, v), ids[i]);
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
