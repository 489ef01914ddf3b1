//! Lloyd's k-means on f32 vectors (L2), multi-threaded assignment, empty clusters re-seeded by
//! splitting the largest one.

use rand::rngs::StdRng;
use rand::seq::index::sample;
use rand::{Rng, SeedableRng};
use rayon::prelude::*;

use crate::distance::{l2_sq, l2_sq_short};

/// The nearest centroid to `v` and its squared distance.
#[inline]
pub fn nearest(centroids: &[f32], dim: usize, v: &[f32]) -> (usize, f32) {
    let short = dim < 32;
    let mut best = (0, f32::INFINITY);
    for (i, c) in centroids.chunks_exact(dim).enumerate() {
        let d = if short { l2_sq_short(v, c) } else { l2_sq(v, c) };
        if d < best.1 {
            best = (i, d);
        }
    }
    best
}

/// Centroids of short vectors stored transposed (`dim x k`), so that the distances of one
/// vector to all centroids are computed with the inner loop running over centroids (SIMD).
pub struct ShortCentroids {
    dim: usize,
    k: usize,
    transposed: Vec<f32>,
}

impl ShortCentroids {
    /// Transposes `k x dim` centroids.
    pub fn new(centroids: &[f32], dim: usize) -> Self {
        let k = centroids.len() / dim.max(1);
        let mut transposed = vec![0f32; k * dim];
        for (c, row) in centroids.chunks_exact(dim).enumerate() {
            for (j, x) in row.iter().enumerate() {
                transposed[j * k + c] = *x;
            }
        }
        Self { dim, k, transposed }
    }

    /// The nearest centroid to `v`; `buf` is scratch space.
    pub fn nearest(&self, v: &[f32], buf: &mut Vec<f32>) -> usize {
        buf.clear();
        buf.resize(self.k, 0.0);
        for (j, x) in v.iter().enumerate().take(self.dim) {
            for (b, c) in buf.iter_mut().zip(&self.transposed[j * self.k..(j + 1) * self.k]) {
                let d = x - c;
                *b += d * d;
            }
        }
        buf.iter()
            .enumerate()
            .fold(
                (0, f32::INFINITY),
                |best, (i, d)| if *d < best.1 { (i, *d) } else { best },
            )
            .0
    }
}

/// Assigns every vector of `data` to its nearest centroid, in parallel.
pub fn assign(centroids: &[f32], dim: usize, data: &[f32]) -> Vec<u32> {
    if dim < 32 {
        let short = ShortCentroids::new(centroids, dim);
        return data
            .par_chunks_exact(dim)
            .map_init(Vec::new, |buf, v| short.nearest(v, buf) as u32)
            .collect();
    }
    data.par_chunks_exact(dim)
        .map(|v| nearest(centroids, dim, v).0 as u32)
        .collect()
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
            .for_each(|(d, p)| *d = d.min(l2_sq(p, c)));
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
