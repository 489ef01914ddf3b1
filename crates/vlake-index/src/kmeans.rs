//! Lloyd's k-means on f32 vectors (L2), multi-threaded assignment, empty clusters re-seeded by
//! splitting the largest one.
//!
//! Assignment finds, for each vector `x`, the centroid `c` minimising
//! `||x - c||² - ||x||² = ||c||² - 2 x·c`, for many vectors at once: long vectors in blocks of
//! rows multiplied with all centroids in one matrix product (`matrixmultiply`, which picks its
//! SIMD kernel at run time), short ones (PQ sub-vectors) with a register-blocked kernel over
//! centroids stored in groups of [`LANES`], dimension by dimension (AVX2+FMA where the CPU has it).

use std::sync::OnceLock;

use rand::rngs::StdRng;
use rand::seq::index::sample;
use rand::{Rng, SeedableRng};
use rayon::prelude::*;

use crate::distance::{l2_sq, l2_sq_short};

/// Vectors shorter than this use the short-vector kernel rather than a matrix product.
const SHORT_DIM: usize = 32;
/// Centroids per group of the short-vector kernel (four AVX2 registers).
const LANES: usize = 32;
/// Rows per matrix product (and per parallel work unit).
pub(crate) const BLOCK_ROWS: usize = 256;

/// Centroids laid out for finding the nearest one to many vectors.
#[derive(Debug, Clone)]
pub struct Codebook {
    dim: usize,
    k: usize,
    /// `||c||²` per centroid; for the short layout padded to whole groups with infinity, so
    /// that padding is never nearest.
    norms: Vec<f32>,
    /// Long vectors: the `k x dim` centroids, row-major. Short vectors: groups of [`LANES`]
    /// centroids, each group `dim x LANES` (dimension by dimension), zero-padded.
    values: Vec<f32>,
}

impl Codebook {
    /// Prepares `k x dim` row-major centroids.
    pub fn new(centroids: &[f32], dim: usize) -> Self {
        let dim = dim.max(1);
        let k = centroids.len() / dim;
        let norms: Vec<f32> = centroids
            .chunks_exact(dim)
            .map(|c| c.iter().map(|x| x * x).sum())
            .collect();
        if dim >= SHORT_DIM {
            return Self {
                dim,
                k,
                norms,
                values: centroids[..k * dim].to_vec(),
            };
        }
        let groups = k.div_ceil(LANES);
        let mut values = vec![0f32; groups * dim * LANES];
        for (c, row) in centroids.chunks_exact(dim).enumerate() {
            let (g, lane) = (c / LANES, c % LANES);
            for (j, x) in row.iter().enumerate() {
                values[(g * dim + j) * LANES + lane] = *x;
            }
        }
        let mut padded = norms;
        padded.resize(groups * LANES, f32::INFINITY);
        Self {
            dim,
            k,
            norms: padded,
            values,
        }
    }

    /// The nearest centroid to each vector of `data` (row-major), in parallel.
    pub fn assign(&self, data: &[f32]) -> Vec<u32> {
        let mut labels = vec![0u32; data.len() / self.dim];
        labels
            .par_chunks_mut(BLOCK_ROWS)
            .zip(data.par_chunks(BLOCK_ROWS * self.dim))
            .for_each_init(Vec::new, |scratch, (labels, rows)| {
                self.assign_rows(rows, self.dim, 0, labels, scratch)
            });
        labels
    }

    /// Writes to `labels[r]` the centroid nearest to the vector at `offset` in row `r` of
    /// `rows` (rows `stride` values apart, `offset + dim <= stride`); `scratch` is reused
    /// between calls. Rows past the end of `rows` or of `labels` are not touched.
    pub(crate) fn assign_rows(
        &self,
        rows: &[f32],
        stride: usize,
        offset: usize,
        labels: &mut [u32],
        scratch: &mut Vec<f32>,
    ) {
        let dim = self.dim;
        if self.k == 0 || offset + dim > stride {
            return;
        }
        let n = labels.len().min(rows.len() / stride);
        if dim < SHORT_DIM {
            let kernel = short_kernel();
            for (r, label) in labels[..n].iter_mut().enumerate() {
                let v = &rows[r * stride + offset..r * stride + offset + dim];
                *label = kernel(&self.values, &self.norms, dim, v);
            }
            return;
        }
        for (b, labels) in labels[..n].chunks_mut(BLOCK_ROWS).enumerate() {
            let block = &rows[b * BLOCK_ROWS * stride..];
            let m = labels.len();
            scratch.clear();
            scratch.resize(m * self.k, 0.0);
            gemm::products(block, stride, offset, m, dim, &self.values, self.k, scratch);
            for (label, products) in labels.iter_mut().zip(scratch.chunks_exact(self.k)) {
                // products holds -2 x·c.
                let mut best = (0u32, f32::INFINITY);
                for (c, (p, norm)) in products.iter().zip(&self.norms).enumerate() {
                    let d = norm + p;
                    if d < best.1 {
                        best = (c as u32, d);
                    }
                }
                *label = best.0;
            }
        }
    }
}

/// The matrix product behind long-vector assignment.
#[allow(unsafe_code)]
mod gemm {
    /// Writes `-2 x·c` for the `m` vectors `x` at `offset` in rows `stride` apart of `rows`,
    /// and the `k` row-major centroids `c` of `dim` values, into `out` (`m x k`, row-major).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn products(
        rows: &[f32],
        stride: usize,
        offset: usize,
        m: usize,
        dim: usize,
        centroids: &[f32],
        k: usize,
        out: &mut [f32],
    ) {
        let fits = m == 0 || (m - 1) * stride + offset + dim <= rows.len();
        if !fits || centroids.len() < k * dim || out.len() < m * k {
            return;
        }
        // SAFETY: the checks above keep every element the product reads inside `rows` and
        // `centroids` and every element it writes inside `out`: A is m x dim with strides
        // (stride, 1) from `offset`, B (the centroids transposed) dim x k with strides (1, dim),
        // C m x k with strides (k, 1); `out` is borrowed mutably, so C aliases nothing.
        unsafe {
            matrixmultiply::sgemm(
                m,
                dim,
                k,
                -2.0,
                rows.as_ptr().add(offset),
                stride as isize,
                1,
                centroids.as_ptr(),
                1,
                dim as isize,
                0.0,
                out.as_mut_ptr(),
                k as isize,
                1,
            );
        }
    }
}

/// The short-vector kernel: the nearest centroid of a group layout (see [`Codebook`]).
type ShortKernel = fn(&[f32], &[f32], usize, &[f32]) -> u32;

#[inline(always)]
fn short_nearest(values: &[f32], norms: &[f32], dim: usize, v: &[f32], fma: impl Fn(f32, f32, f32) -> f32) -> u32 {
    // Per lane: the best distance and the group it was seen in (few registers: no spills).
    let mut best_d = [f32::INFINITY; LANES];
    let mut best_g = [0u32; LANES];
    let mut x2 = [0f32; SHORT_DIM];
    for (x2, x) in x2.iter_mut().zip(v) {
        *x2 = -2.0 * x;
    }
    let x2 = &x2[..v.len().min(SHORT_DIM)];
    for (g, (group, norm)) in values
        .chunks_exact(dim * LANES)
        .zip(norms.chunks_exact(LANES))
        .enumerate()
    {
        let mut acc = [0f32; LANES];
        acc.copy_from_slice(norm);
        for (x, column) in x2.iter().zip(group.chunks_exact(LANES)) {
            for t in 0..LANES {
                acc[t] = fma(*x, column[t], acc[t]);
            }
        }
        let g = g as u32;
        for t in 0..LANES {
            best_g[t] = if acc[t] < best_d[t] { g } else { best_g[t] };
            best_d[t] = best_d[t].min(acc[t]);
        }
    }
    // The lowest distance, the lowest centroid among equals (branch-free folds).
    let min = best_d.iter().fold(f32::INFINITY, |m, d| if *d < m { *d } else { m });
    let mut best = u32::MAX;
    for (t, (d, g)) in best_d.iter().zip(&best_g).enumerate() {
        let c = g * LANES as u32 + t as u32;
        best = if *d == min && c < best { c } else { best };
    }
    if best == u32::MAX {
        0
    } else {
        best
    }
}

fn short_portable(values: &[f32], norms: &[f32], dim: usize, v: &[f32]) -> u32 {
    short_nearest(values, norms, dim, v, |a, b, c| a * b + c)
}

#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
mod x86 {
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn short_avx2(values: &[f32], norms: &[f32], dim: usize, v: &[f32]) -> u32 {
        super::short_nearest(values, norms, dim, v, f32::mul_add)
    }

    /// The same kernel in 512-bit registers (about 15% faster where the CPU has them).
    #[target_feature(enable = "avx512f,avx2,fma")]
    pub(super) unsafe fn short_avx512(values: &[f32], norms: &[f32], dim: usize, v: &[f32]) -> u32 {
        super::short_nearest(values, norms, dim, v, f32::mul_add)
    }
}

fn short_kernel() -> ShortKernel {
    static CHOSEN: OnceLock<ShortKernel> = OnceLock::new();
    *CHOSEN.get_or_init(|| {
        #[cfg(target_arch = "x86_64")]
        if crate::distance::avx2_fma() {
            if std::arch::is_x86_feature_detected!("avx512f") {
                #[allow(unsafe_code)]
                // SAFETY: selected only after detecting AVX-512F, AVX2 and FMA.
                return |values, norms, dim, v| unsafe { x86::short_avx512(values, norms, dim, v) };
            }
            #[allow(unsafe_code)]
            // SAFETY: selected only after detecting AVX2 and FMA.
            return |values, norms, dim, v| unsafe { x86::short_avx2(values, norms, dim, v) };
        }
        short_portable
    })
}

/// Assigns every vector of `data` to its nearest centroid, in parallel.
pub fn assign(centroids: &[f32], dim: usize, data: &[f32]) -> Vec<u32> {
    Codebook::new(centroids, dim).assign(data)
}

/// k-means++ seeding on a subsample of at most `8 k` points (enough to spread the seeds, cheap
/// enough for thousands of clusters).
fn plus_plus(data: &[f32], dim: usize, k: usize, rng: &mut StdRng) -> Vec<f32> {
    let n = data.len() / dim;
    let picks = sample(rng, n, (8 * k).min(n));
    let points: Vec<&[f32]> = picks.iter().map(|i| &data[i * dim..(i + 1) * dim]).collect();
    let mut centroids: Vec<f32> = points[0].to_vec();
    let dist: fn(&[f32], &[f32]) -> f32 = if dim < 32 { l2_sq_short } else { l2_sq };
    let mut nearest: Vec<f32> = points.iter().map(|p| dist(p, points[0])).collect();
    while centroids.len() < k * dim {
        let total: f64 = nearest.iter().map(|d| *d as f64).sum();
        let chosen = if !(total.is_finite() && total > 0.0) {
            rng.random_range(0..points.len())
        } else {
            let mut target = rng.random_range(0.0..total);
            nearest
                .iter()
                .position(|d| {
                    target -= *d as f64;
                    target <= 0.0
                })
                .unwrap_or(points.len() - 1)
        };
        let c = points[chosen];
        centroids.extend_from_slice(c);
        nearest
            .par_iter_mut()
            .zip(&points)
            .for_each(|(d, p)| *d = d.min(dist(p, c)));
    }
    centroids
}

/// Trains `k` centroids on `data` (row-major, `dim` columns) with `iterations` Lloyd steps.
pub fn train(data: &[f32], dim: usize, k: usize, iterations: usize, seed: u64) -> Vec<f32> {
    let n = data.len() / dim;
    let mut rng = StdRng::seed_from_u64(seed);
    if n <= k {
        // Fewer points than clusters: each point is a centroid; the rest repeat them.
        return (0..k)
            .flat_map(|i| data[(i % n.max(1)) * dim..][..dim.min(data.len())].to_vec())
            .collect();
    }
    let mut centroids = plus_plus(data, dim, k, &mut rng);
    for _ in 0..iterations {
        let labels = assign(&centroids, dim, data);
        let (sums, mut counts) = labels
            .par_iter()
            .zip(data.par_chunks_exact(dim))
            .fold(
                || (vec![0f64; k * dim], vec![0usize; k]),
                |(mut sums, mut counts), (&label, v)| {
                    let l = label as usize;
                    counts[l] += 1;
                    for (s, x) in sums[l * dim..(l + 1) * dim].iter_mut().zip(v) {
                        *s += *x as f64;
                    }
                    (sums, counts)
                },
            )
            .reduce(
                || (vec![0f64; k * dim], vec![0usize; k]),
                |(mut a, mut ca), (b, cb)| {
                    a.iter_mut().zip(&b).for_each(|(x, y)| *x += y);
                    ca.iter_mut().zip(&cb).for_each(|(x, y)| *x += y);
                    (a, ca)
                },
            );
        for c in 0..k {
            if counts[c] > 0 {
                for j in 0..dim {
                    centroids[c * dim + j] = (sums[c * dim + j] / counts[c] as f64) as f32;
                }
            }
        }
        // Re-seed empty clusters next to the largest cluster's centroid.
        for c in 0..k {
            if counts[c] == 0 {
                let largest = (0..k).max_by_key(|&i| counts[i]).unwrap_or(0);
                for j in 0..dim {
                    let base = centroids[largest * dim + j];
                    centroids[c * dim + j] = base + base.abs().max(1e-3) * rng.random_range(-0.01f32..0.01);
                }
                counts[c] = counts[largest] / 2;
                counts[largest] -= counts[c];
            }
        }
    }
    centroids
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_well_separated_clusters() {
        let mut data = Vec::new();
        for c in 0..4 {
            for i in 0..50 {
                data.extend([c as f32 * 100.0 + (i % 5) as f32 * 0.1, -(c as f32) * 100.0]);
            }
        }
        let centroids = train(&data, 2, 4, 10, 7);
        let labels = assign(&centroids, 2, &data);
        for c in 0..4 {
            let group = &labels[c * 50..(c + 1) * 50];
            assert!(group.iter().all(|l| *l == group[0]), "cluster {c} split");
        }
        let distinct: std::collections::BTreeSet<u32> = labels.into_iter().collect();
        assert_eq!(distinct.len(), 4);
    }
}
