//! Lloyd's k-means on f32 vectors (L2), multi-threaded assignment, empty clusters re-seeded by
//! splitting the largest one. Iterations after the first keep Hamerly's bounds per vector
//! (G. Hamerly, "Making k-means even faster", SDM 2010), so only vectors near the edge of their
//! cluster are compared with every centroid again; the result is that of plain Lloyd steps.
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
        let n = labels.len();
        self.each_nearest::<false>(rows, stride, offset, n, scratch, |r, nearest| labels[r] = nearest.label);
    }

    /// Calls `found(r, nearest)` for each of the first `n` rows of `rows` laid out as for
    /// [`Self::assign_rows`], with the runner-up's distance when `SECOND`.
    fn each_nearest<const SECOND: bool>(
        &self,
        rows: &[f32],
        stride: usize,
        offset: usize,
        n: usize,
        scratch: &mut Vec<f32>,
        mut found: impl FnMut(usize, Nearest),
    ) {
        let dim = self.dim;
        if self.k == 0 || offset + dim > stride {
            return;
        }
        let n = n.min(rows.len() / stride);
        if dim < SHORT_DIM {
            for r in 0..n {
                let v = &rows[r * stride + offset..r * stride + offset + dim];
                found(r, short_kernel::<SECOND>(&self.values, &self.norms, dim, v));
            }
            return;
        }
        for start in (0..n).step_by(BLOCK_ROWS) {
            let m = BLOCK_ROWS.min(n - start);
            scratch.clear();
            scratch.resize(m * self.k, 0.0);
            gemm::products(
                &rows[start * stride..],
                stride,
                offset,
                m,
                dim,
                &self.values,
                self.k,
                scratch,
            );
            for (i, products) in scratch.chunks_exact(self.k).enumerate() {
                // products holds -2 x·c.
                let distances = products.iter().zip(&self.norms).map(|(p, norm)| norm + p);
                found(start + i, Nearest::of::<SECOND>(distances));
            }
        }
    }
}

/// Hamerly's bounds for exact Lloyd iterations that skip most distance computations: per
/// vector its centroid, an upper bound on the distance to it and a lower bound on the distance
/// to any other centroid. A vector whose upper bound is below both its lower bound and half the
/// distance from its centroid to the next one cannot have moved to another centroid.
struct Bounds {
    labels: Vec<u32>,
    upper: Vec<f32>,
    lower: Vec<f32>,
    /// `||x||²` of each vector.
    norms: Vec<f32>,
}

/// Reusable buffers of one parallel work unit of [`Bounds::assign`].
#[derive(Default)]
struct BoundsScratch {
    picked: Vec<usize>,
    rows: Vec<f32>,
    products: Vec<f32>,
}

impl Bounds {
    /// No bounds yet for the vectors of `data`: each is compared with every centroid first.
    fn new(data: &[f32], dim: usize) -> Self {
        let norms: Vec<f32> = data
            .par_chunks_exact(dim)
            .map(|x| x.iter().map(|v| v * v).sum())
            .collect();
        let n = norms.len();
        Self {
            labels: vec![u32::MAX; n],
            upper: vec![f32::INFINITY; n],
            lower: vec![0.0; n],
            norms,
        }
    }

    /// Moves every vector of `data` to its nearest centroid of `centroids` (the same result as
    /// comparing it with all of them), keeping the bounds.
    fn assign(&mut self, centroids: &[f32], dim: usize, data: &[f32]) {
        let book = Codebook::new(centroids, dim);
        let k = centroids.len() / dim;
        // Half the distance from each centroid to its nearest other centroid: the runner-up
        // of each centroid searched for among all of them (itself being the nearest).
        let mut half_gap = vec![0f32; k];
        book.each_nearest::<true>(centroids, dim, 0, k, &mut Vec::new(), |c, nearest| {
            half_gap[c] = 0.5 * (book.norms[c] + nearest.second).max(0.0).sqrt();
        });
        let short = dim < SHORT_DIM;
        self.labels
            .par_chunks_mut(BLOCK_ROWS)
            .zip(self.upper.par_chunks_mut(BLOCK_ROWS))
            .zip(self.lower.par_chunks_mut(BLOCK_ROWS))
            .zip(self.norms.par_chunks(BLOCK_ROWS))
            .zip(data.par_chunks(BLOCK_ROWS * dim))
            .for_each_init(
                BoundsScratch::default,
                |scratch, ((((labels, upper), lower), norms), block)| {
                    scratch.picked.clear();
                    scratch.rows.clear();
                    for (i, x) in block.chunks_exact(dim).enumerate() {
                        let a = labels[i] as usize;
                        if a < k {
                            let bound = half_gap[a].max(lower[i]);
                            if upper[i] <= bound {
                                continue;
                            }
                            let c = &centroids[a * dim..(a + 1) * dim];
                            // Direct calls, not `distance_fn`: the short one inlines here.
                            upper[i] = if short { l2_sq_short(x, c) } else { l2_sq(x, c) }.sqrt();
                            if upper[i] <= bound {
                                continue;
                            }
                        }
                        scratch.picked.push(i);
                        if !short {
                            scratch.rows.extend_from_slice(x);
                        }
                    }
                    let BoundsScratch { picked, rows, products } = scratch;
                    let mut found = |i: usize, nearest: Nearest| {
                        labels[i] = nearest.label;
                        upper[i] = (norms[i] + nearest.first).max(0.0).sqrt();
                        lower[i] = (norms[i] + nearest.second).max(0.0).sqrt();
                    };
                    if short {
                        for &i in picked.iter() {
                            let x = &block[i * dim..(i + 1) * dim];
                            found(i, short_kernel::<true>(&book.values, &book.norms, dim, x));
                        }
                    } else {
                        book.each_nearest::<true>(rows, dim, 0, picked.len(), products, |r, nearest| {
                            found(picked[r], nearest)
                        });
                    }
                },
            );
    }

    /// Loosens the bounds after each centroid moved by `drift` (its old-to-new distance).
    fn shift(&mut self, drift: &[f32]) {
        let (mut top, mut top_c, mut next) = (0f32, usize::MAX, 0f32);
        for (c, d) in drift.iter().enumerate() {
            if *d > top {
                (next, top, top_c) = (top, *d, c);
            } else if *d > next {
                next = *d;
            }
        }
        self.labels
            .par_iter()
            .zip(self.upper.par_iter_mut())
            .zip(self.lower.par_iter_mut())
            .for_each(|((a, upper), lower)| {
                let a = *a as usize;
                *upper += drift[a];
                *lower -= if a == top_c { next } else { top };
            });
    }
}

/// Per-cluster sums of the vectors assigned to it (f64, kept up to date as vectors move).
struct Sums {
    dim: usize,
    sums: Vec<f64>,
    counts: Vec<usize>,
}

impl Sums {
    fn new(k: usize, dim: usize) -> Self {
        Self {
            dim,
            sums: vec![0.0; k * dim],
            counts: vec![0; k],
        }
    }

    /// Moves the vectors whose label changed from `before` to `after` (`u32::MAX`: none).
    fn update(&mut self, data: &[f32], before: &[u32], after: &[u32]) {
        let dim = self.dim;
        for ((x, from), to) in data.chunks_exact(dim).zip(before).zip(after) {
            if from == to {
                continue;
            }
            if let Some(count) = self.counts.get_mut(*from as usize) {
                *count -= 1;
                let sums = &mut self.sums[*from as usize * dim..][..dim];
                sums.iter_mut().zip(x).for_each(|(s, v)| *s -= *v as f64);
            }
            self.counts[*to as usize] += 1;
            let sums = &mut self.sums[*to as usize * dim..][..dim];
            sums.iter_mut().zip(x).for_each(|(s, v)| *s += *v as f64);
        }
    }

    /// Moves each non-empty cluster's centroid to its mean; re-seeds each empty one next to
    /// the largest cluster's centroid, splitting that cluster's count for the next choice.
    fn recenter(&self, centroids: &mut [f32], rng: &mut StdRng) {
        let dim = self.dim;
        let mut counts = self.counts.clone();
        for (c, count) in self.counts.iter().enumerate() {
            if *count > 0 {
                for j in 0..dim {
                    centroids[c * dim + j] = (self.sums[c * dim + j] / *count as f64) as f32;
                }
            }
        }
        for c in 0..counts.len() {
            if counts[c] == 0 {
                let largest = (0..counts.len()).max_by_key(|&i| counts[i]).unwrap_or(0);
                for j in 0..dim {
                    let base = centroids[largest * dim + j];
                    centroids[c * dim + j] = base + base.abs().max(1e-3) * rng.random_range(-0.01f32..0.01);
                }
                counts[c] = counts[largest] / 2;
                counts[largest] -= counts[c];
            }
        }
    }
}

/// The squared L2 distance for vectors of `dim` values.
fn distance_fn(dim: usize) -> fn(&[f32], &[f32]) -> f32 {
    if dim < SHORT_DIM {
        l2_sq_short
    } else {
        l2_sq
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

/// The nearest centroid to one vector and, where asked for, the runner-up's distance. Distances
/// are `||c||² - 2 x·c` (the squared distance less `||x||²`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Nearest {
    /// The nearest centroid (the lowest number among equals).
    pub(crate) label: u32,
    /// Its distance.
    pub(crate) first: f32,
    /// The lowest distance of any other centroid (infinity when not asked for, or none).
    pub(crate) second: f32,
}

impl Nearest {
    /// The best of `distances` (`||c||² - 2 x·c` per centroid), with the runner-up's distance
    /// when `SECOND`.
    fn of<const SECOND: bool>(distances: impl Iterator<Item = f32>) -> Self {
        let mut best = Self {
            label: 0,
            first: f32::INFINITY,
            second: f32::INFINITY,
        };
        for (c, d) in distances.enumerate() {
            if d < best.first {
                best.second = best.first;
                best.first = d;
                best.label = c as u32;
            } else if SECOND && d < best.second {
                best.second = d;
            }
        }
        best
    }
}

/// The short-vector kernel; `DIM` is the dimension where known when compiling (0 if not).
#[inline(always)]
fn short_nearest<const SECOND: bool, const DIM: usize>(
    values: &[f32],
    norms: &[f32],
    dim: usize,
    v: &[f32],
    fma: impl Fn(f32, f32, f32) -> f32,
) -> Nearest {
    let dim = if DIM == 0 { dim.min(SHORT_DIM) } else { DIM };
    // Per lane: the best distance, the group it was seen in and (when SECOND) the lane's
    // runner-up distance (few registers: no spills).
    let mut best_d = [f32::INFINITY; LANES];
    let mut best_g = [0u32; LANES];
    let mut second_d = [f32::INFINITY; LANES];
    let mut x2 = [0f32; SHORT_DIM];
    for (x2, x) in x2.iter_mut().zip(v) {
        *x2 = -2.0 * x;
    }
    let x2 = &x2[..dim];
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
            // Comparisons rather than `f32::min`: no NaN handling in the loop (distances of
            // finite vectors are never NaN; infinite padding compares as it should).
            if SECOND {
                let loser = if acc[t] < best_d[t] { best_d[t] } else { acc[t] };
                second_d[t] = if loser < second_d[t] { loser } else { second_d[t] };
            }
            best_g[t] = if acc[t] < best_d[t] { g } else { best_g[t] };
            best_d[t] = if acc[t] < best_d[t] { acc[t] } else { best_d[t] };
        }
    }
    // Fold the lanes pairwise, halving the width each step (whole-register operations): the
    // lowest distance, the lowest centroid among equals, and the lowest distance of the rest.
    let mut best_c = [0u32; LANES];
    for (t, (c, g)) in best_c.iter_mut().zip(&best_g).enumerate() {
        *c = g * LANES as u32 + t as u32;
    }
    let mut width = LANES / 2;
    while width > 0 {
        for t in 0..width {
            let (a, b) = (t, t + width);
            let take = best_d[b] < best_d[a] || (best_d[b] == best_d[a] && best_c[b] < best_c[a]);
            if SECOND {
                let loser = if take { best_d[a] } else { best_d[b] };
                let rest = if second_d[b] < second_d[a] {
                    second_d[b]
                } else {
                    second_d[a]
                };
                second_d[a] = if loser < rest { loser } else { rest };
            }
            best_c[a] = if take { best_c[b] } else { best_c[a] };
            best_d[a] = if take { best_d[b] } else { best_d[a] };
        }
        width /= 2;
    }
    if best_d[0].is_finite() {
        Nearest {
            label: best_c[0],
            first: best_d[0],
            second: if SECOND { second_d[0] } else { f32::INFINITY },
        }
    } else {
        Nearest {
            label: 0,
            first: f32::INFINITY,
            second: f32::INFINITY,
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
mod x86 {
    use super::Nearest;

    /// The short-vector kernel compiled for one set of target features.
    macro_rules! short_with {
        ($(#[$doc:meta])* $name:ident, $features:literal) => {
            $(#[$doc])*
            #[target_feature(enable = $features)]
            pub(super) unsafe fn $name<const SECOND: bool, const DIM: usize>(
                values: &[f32],
                norms: &[f32],
                dim: usize,
                v: &[f32],
            ) -> Nearest {
                super::short_nearest::<SECOND, DIM>(values, norms, dim, v, f32::mul_add)
            }
        };
    }

    short_with!(short_avx2, "avx2,fma");
    short_with!(
        /// The same kernel in 512-bit registers (about 15% faster where the CPU has them).
        short_avx512,
        "avx512f,avx2,fma"
    );
}

/// The widest SIMD the short-vector kernel can use here.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Simd {
    Portable,
    #[cfg(target_arch = "x86_64")]
    Avx2,
    #[cfg(target_arch = "x86_64")]
    Avx512,
}

fn simd() -> Simd {
    static CHOSEN: OnceLock<Simd> = OnceLock::new();
    *CHOSEN.get_or_init(|| {
        #[cfg(target_arch = "x86_64")]
        if crate::distance::avx2_fma() {
            return if std::arch::is_x86_feature_detected!("avx512f") {
                Simd::Avx512
            } else {
                Simd::Avx2
            };
        }
        Simd::Portable
    })
}

/// The short-vector kernel over a group layout (see [`Codebook`]), in the widest SIMD the CPU
/// has, unrolled for the common PQ sub-vector lengths.
#[inline]
fn short_kernel<const SECOND: bool>(values: &[f32], norms: &[f32], dim: usize, v: &[f32]) -> Nearest {
    match dim {
        4 => short_simd::<SECOND, 4>(values, norms, dim, v),
        8 => short_simd::<SECOND, 8>(values, norms, dim, v),
        16 => short_simd::<SECOND, 16>(values, norms, dim, v),
        _ => short_simd::<SECOND, 0>(values, norms, dim, v),
    }
}

#[inline(always)]
fn short_simd<const SECOND: bool, const DIM: usize>(values: &[f32], norms: &[f32], dim: usize, v: &[f32]) -> Nearest {
    match simd() {
        Simd::Portable => short_nearest::<SECOND, DIM>(values, norms, dim, v, |a, b, c| a * b + c),
        #[cfg(target_arch = "x86_64")]
        #[allow(unsafe_code)]
        // SAFETY: chosen only after detecting AVX2 and FMA.
        Simd::Avx2 => unsafe { x86::short_avx2::<SECOND, DIM>(values, norms, dim, v) },
        #[cfg(target_arch = "x86_64")]
        #[allow(unsafe_code)]
        // SAFETY: chosen only after detecting AVX-512F, AVX2 and FMA.
        Simd::Avx512 => unsafe { x86::short_avx512::<SECOND, DIM>(values, norms, dim, v) },
    }
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
    let dist = distance_fn(dim);
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
    let mut bounds = Bounds::new(data, dim);
    let mut sums = Sums::new(k, dim);
    let dist = distance_fn(dim);
    for _ in 0..iterations {
        let labels = bounds.labels.clone();
        bounds.assign(&centroids, dim, data);
        sums.update(data, &labels, &bounds.labels);
        let before = centroids.clone();
        sums.recenter(&mut centroids, &mut rng);
        let drift: Vec<f32> = before
            .chunks_exact(dim)
            .zip(centroids.chunks_exact(dim))
            .map(|(a, b)| dist(a, b).sqrt())
            .collect();
        bounds.shift(&drift);
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

    /// Clustered random vectors: `n` of `dim` values around 40 centres.
    fn clustered(n: usize, dim: usize, seed: u64) -> Vec<f32> {
        let mut rng = StdRng::seed_from_u64(seed);
        let centres: Vec<f32> = (0..40 * dim).map(|_| rng.random_range(-1.0f32..1.0)).collect();
        (0..n)
            .flat_map(|_| {
                let c = rng.random_range(0..40);
                let noise: Vec<f32> = (0..dim).map(|_| rng.random_range(-0.3f32..0.3)).collect();
                centres[c * dim..(c + 1) * dim]
                    .iter()
                    .zip(noise)
                    .map(|(c, e)| c + e)
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    /// The nearest and runner-up centroids by brute force.
    fn brute_two(centroids: &[f32], dim: usize, x: &[f32]) -> (u32, f32, f32) {
        let mut d: Vec<(f32, u32)> = centroids
            .chunks_exact(dim)
            .enumerate()
            .map(|(c, v)| (l2_sq_short(x, v), c as u32))
            .collect();
        d.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        (d[0].1, d[0].0, d[1].0)
    }

    #[test]
    fn kernels_find_the_nearest_and_runner_up() {
        // 4, 8 and 16 have unrolled kernels, 5 the general one, 40 the matrix product.
        for dim in [4, 5, 8, 16, 40] {
            let data = clustered(300, dim, dim as u64);
            let centroids = clustered(100, dim, 99);
            let book = Codebook::new(&centroids, dim);
            let mut found = Vec::new();
            book.each_nearest::<true>(&data, dim, 0, 300, &mut Vec::new(), |r, nearest| {
                found.push((r, nearest))
            });
            assert_eq!(found.len(), 300);
            let labels = book.assign(&data);
            for (r, nearest) in found {
                let x = &data[r * dim..(r + 1) * dim];
                let x2: f32 = x.iter().map(|v| v * v).sum();
                let (label, first, second) = brute_two(&centroids, dim, x);
                assert_eq!(nearest.label, label, "dim {dim} row {r}");
                assert_eq!(labels[r], label, "dim {dim} row {r}");
                assert!((x2 + nearest.first - first).abs() < 1e-4, "dim {dim} row {r}");
                assert!((x2 + nearest.second - second).abs() < 1e-4, "dim {dim} row {r}");
            }
        }
    }

    #[test]
    fn bounded_iterations_match_plain_lloyd_steps() {
        for dim in [8, 5, 40] {
            let (n, k, iterations) = (3000, 64, 12);
            let data = clustered(n, dim, 3);
            // Plain Lloyd steps from the same seeds: every vector compared with every centroid.
            let mut rng = StdRng::seed_from_u64(1);
            let mut expected = plus_plus(&data, dim, k, &mut rng);
            for _ in 0..iterations {
                let labels = assign(&expected, dim, &data);
                let mut sums = Sums::new(k, dim);
                sums.update(&data, &vec![u32::MAX; n], &labels);
                sums.recenter(&mut expected, &mut rng);
            }
            let trained = train(&data, dim, k, iterations, 1);
            for (a, b) in trained.iter().zip(&expected) {
                assert!((a - b).abs() < 1e-4, "dim {dim}: {a} against {b}");
            }
        }
    }
}
