//! Distance kernels for f32 and f16 vectors, dispatched at run time to AVX-512 or AVX2+FMA on
//! x86-64 when the CPU has them (no `target-cpu` flag needed); aarch64 gets NEON from the
//! baseline target.
//!
//! Distances are "smaller is closer": squared L2, cosine distance `1 - cos`, and negative dot
//! product.
#![allow(unsafe_code)]

use std::sync::OnceLock;

use serde::{Deserialize, Serialize};
use vlake_format::{Error, Result};

/// How closeness is measured.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    /// Squared Euclidean distance.
    L2,
    /// `1 - cos(a, b)`.
    Cosine,
    /// `-(a · b)`.
    Dot,
}

impl std::str::FromStr for Metric {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "l2" | "euclidean" => Ok(Self::L2),
            "cosine" => Ok(Self::Cosine),
            "dot" | "ip" | "inner_product" => Ok(Self::Dot),
            other => Err(Error::invalid(format!(
                "unknown metric '{other}': use l2, cosine or dot"
            ))),
        }
    }
}

impl std::fmt::Display for Metric {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::L2 => "l2",
            Self::Cosine => "cosine",
            Self::Dot => "dot",
        })
    }
}

const LANES: usize = 32;

/// The sum of an accumulator's lanes in 256-bit registers, folded pairwise (a short chain of
/// whole-register adds rather than 31 dependent scalar adds).
///
/// # Safety
/// The CPU must have AVX.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn lane_sum_avx(acc: &[f32; LANES]) -> f32 {
    use std::arch::x86_64::*;
    const { assert!(LANES == 32) };
    let p = acc.as_ptr();
    // SAFETY: the four 8-lane loads cover exactly the 32 lanes of `acc`; AVX is the caller's.
    unsafe {
        let low = _mm256_add_ps(_mm256_loadu_ps(p), _mm256_loadu_ps(p.add(8)));
        let high = _mm256_add_ps(_mm256_loadu_ps(p.add(16)), _mm256_loadu_ps(p.add(24)));
        let s = _mm256_add_ps(low, high);
        let s = _mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps::<1>(s));
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)))
    }
}

macro_rules! kernels {
    ($dot:ident, $l2:ident, $dot_norm:ident, $fma:expr, $sum:expr) => {
        #[inline(always)]
        fn $dot(a: &[f32], b: &[f32]) -> f32 {
            let n = a.len().min(b.len());
            let (a, b) = (&a[..n], &b[..n]);
            let mut acc = [0f32; LANES];
            let mut ca = a.chunks_exact(LANES);
            let mut cb = b.chunks_exact(LANES);
            for (x, y) in (&mut ca).zip(&mut cb) {
                for i in 0..LANES {
                    acc[i] = $fma(x[i], y[i], acc[i]);
                }
            }
            let mut sum: f32 = $sum(&acc);
            for (x, y) in ca.remainder().iter().zip(cb.remainder()) {
                sum += x * y;
            }
            sum
        }

        #[inline(always)]
        fn $l2(a: &[f32], b: &[f32]) -> f32 {
            let n = a.len().min(b.len());
            let (a, b) = (&a[..n], &b[..n]);
            let mut acc = [0f32; LANES];
            let mut ca = a.chunks_exact(LANES);
            let mut cb = b.chunks_exact(LANES);
            for (x, y) in (&mut ca).zip(&mut cb) {
                for i in 0..LANES {
                    let d = x[i] - y[i];
                    acc[i] = $fma(d, d, acc[i]);
                }
            }
            let mut sum: f32 = $sum(&acc);
            for (x, y) in ca.remainder().iter().zip(cb.remainder()) {
                sum += (x - y) * (x - y);
            }
            sum
        }

        /// `(a · b, b · b)` in one pass.
        #[inline(always)]
        fn $dot_norm(a: &[f32], b: &[f32]) -> (f32, f32) {
            let n = a.len().min(b.len());
            let (a, b) = (&a[..n], &b[..n]);
            let mut acc = [0f32; LANES];
            let mut nrm = [0f32; LANES];
            let mut ca = a.chunks_exact(LANES);
            let mut cb = b.chunks_exact(LANES);
            for (x, y) in (&mut ca).zip(&mut cb) {
                for i in 0..LANES {
                    acc[i] = $fma(x[i], y[i], acc[i]);
                    nrm[i] = $fma(y[i], y[i], nrm[i]);
                }
            }
            let (mut d, mut m): (f32, f32) = ($sum(&acc), $sum(&nrm));
            for (x, y) in ca.remainder().iter().zip(cb.remainder()) {
                d += x * y;
                m += y * y;
            }
            (d, m)
        }
    };
}

kernels!(
    dot_base,
    l2_base,
    dot_norm_base,
    |a: f32, b: f32, c: f32| a * b + c,
    |acc: &[f32; LANES]| acc.iter().sum::<f32>()
);

/// The kernels compiled for one set of x86-64 target features, as a module of `unsafe`
/// wrappers: callers must have detected the features first.
#[cfg(target_arch = "x86_64")]
macro_rules! x86_kernels {
    ($module:ident, $features:literal) => {
        mod $module {
            use super::LANES;

            kernels!(
                dot_inner,
                l2_inner,
                dot_norm_inner,
                |a: f32, b: f32, c: f32| a.mul_add(b, c),
                // SAFETY: these kernels run only where AVX2 (so AVX) was detected.
                |acc: &[f32; LANES]| unsafe { super::lane_sum_avx(acc) }
            );

            #[target_feature(enable = $features)]
            pub(super) unsafe fn dot(a: &[f32], b: &[f32]) -> f32 {
                dot_inner(a, b)
            }

            #[target_feature(enable = $features)]
            pub(super) unsafe fn l2(a: &[f32], b: &[f32]) -> f32 {
                l2_inner(a, b)
            }

            #[target_feature(enable = $features)]
            pub(super) unsafe fn dot_norm(a: &[f32], b: &[f32]) -> (f32, f32) {
                dot_norm_inner(a, b)
            }
        }
    };
}

#[cfg(target_arch = "x86_64")]
x86_kernels!(avx2, "avx2,fma");
#[cfg(target_arch = "x86_64")]
x86_kernels!(avx512, "avx512f,avx2,fma");

/// Whether this CPU runs AVX2 and FMA instructions (always false off x86-64).
pub(crate) fn avx2_fma() -> bool {
    #[cfg(target_arch = "x86_64")]
    return std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma");
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// The kernels chosen for this CPU.
struct Kernels {
    dot: fn(&[f32], &[f32]) -> f32,
    l2: fn(&[f32], &[f32]) -> f32,
    dot_norm: fn(&[f32], &[f32]) -> (f32, f32),
    name: &'static str,
}

fn kernels() -> &'static Kernels {
    static CHOSEN: OnceLock<Kernels> = OnceLock::new();
    CHOSEN.get_or_init(|| {
        #[cfg(target_arch = "x86_64")]
        if avx2_fma() && std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: these wrappers are only selected after detecting AVX-512F, AVX2 and FMA.
            return Kernels {
                dot: |a, b| unsafe { avx512::dot(a, b) },
                l2: |a, b| unsafe { avx512::l2(a, b) },
                dot_norm: |a, b| unsafe { avx512::dot_norm(a, b) },
                name: "avx512f",
            };
        }
        #[cfg(target_arch = "x86_64")]
        if avx2_fma() {
            // SAFETY: these wrappers are only selected after detecting AVX2 and FMA.
            return Kernels {
                dot: |a, b| unsafe { avx2::dot(a, b) },
                l2: |a, b| unsafe { avx2::l2(a, b) },
                dot_norm: |a, b| unsafe { avx2::dot_norm(a, b) },
                name: "avx2+fma",
            };
        }
        Kernels {
            dot: dot_base,
            l2: l2_base,
            dot_norm: dot_norm_base,
            name: "portable",
        }
    })
}

/// Hints the CPU to start loading the cache line at `data` (a no-op off x86-64).
#[inline(always)]
pub fn prefetch<T>(data: &[T]) {
    #[cfg(target_arch = "x86_64")]
    if !data.is_empty() {
        // SAFETY: prefetching is a hint with no architectural effect; SSE is baseline on x86-64
        // and the pointer comes from a live slice.
        unsafe { std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(data.as_ptr().cast()) }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = data;
}

/// Squared L2 distance of short vectors (PQ sub-vectors, k-means of sub-spaces), inlined.
#[inline(always)]
pub fn l2_sq_short(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum()
}

/// Dot product of short vectors, inlined.
#[inline(always)]
pub fn dot_short(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Which kernel family this CPU runs (`avx512f`, `avx2+fma` or `portable`).
pub fn kernel_name() -> &'static str {
    kernels().name
}

/// `a · b`.
#[inline]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    (kernels().dot)(a, b)
}

/// Squared Euclidean distance.
#[inline]
pub fn l2_sq(a: &[f32], b: &[f32]) -> f32 {
    (kernels().l2)(a, b)
}

/// Euclidean norm.
pub fn norm(a: &[f32]) -> f32 {
    dot(a, a).sqrt()
}

/// Scales `v` to unit length (a zero vector stays zero).
pub fn normalize(v: &mut [f32]) {
    let n = norm(v);
    if n > 0.0 {
        v.iter_mut().for_each(|x| *x /= n);
    }
}

impl Metric {
    /// The distance between a query and a vector. For cosine, `query_norm` is `|query|`.
    #[inline]
    pub fn distance(self, query: &[f32], query_norm: f32, v: &[f32]) -> f32 {
        match self {
            Self::L2 => l2_sq(query, v),
            Self::Dot => -dot(query, v),
            Self::Cosine => {
                let (d, m) = (kernels().dot_norm)(query, v);
                let denom = query_norm * m.sqrt();
                if denom > 0.0 {
                    (1.0 - d / denom).max(0.0)
                } else {
                    1.0
                }
            }
        }
    }
}

/// Converts f16 values to f32 (F16C when the CPU has it).
pub fn f16_to_f32(src: &[half::f16], dst: &mut Vec<f32>) {
    use half::slice::HalfFloatSliceExt;
    dst.resize(src.len(), 0.0);
    src.convert_to_f32_slice(dst);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(metric: Metric, a: &[f32], b: &[f32]) -> f32 {
        let d: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
        match metric {
            Metric::L2 => a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum(),
            Metric::Dot => -d,
            Metric::Cosine => {
                1.0 - d / (a.iter().map(|x| x * x).sum::<f32>().sqrt() * b.iter().map(|x| x * x).sum::<f32>().sqrt())
            }
        }
    }

    #[test]
    fn kernels_match_naive_sums() {
        for dim in [1, 3, 15, 16, 17, 128, 384, 1000] {
            let a: Vec<f32> = (0..dim).map(|i| ((i * 7 % 13) as f32 - 6.0) / 3.0).collect();
            let b: Vec<f32> = (0..dim).map(|i| ((i * 5 % 11) as f32 - 4.0) / 2.0).collect();
            for metric in [Metric::L2, Metric::Dot, Metric::Cosine] {
                let got = metric.distance(&a, norm(&a), &b);
                let want = naive(metric, &a, &b);
                assert!(
                    (got - want).abs() <= 1e-4 * want.abs().max(1.0),
                    "{metric} dim {dim}: {got} vs {want}"
                );
            }
        }
    }

    /// Every kernel family this CPU can run gives the portable kernels' sums.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn x86_kernel_families_agree_with_portable() {
        type Family = (
            &'static str,
            unsafe fn(&[f32], &[f32]) -> f32,
            unsafe fn(&[f32], &[f32]) -> f32,
        );
        let mut families: Vec<Family> = Vec::new();
        if avx2_fma() {
            families.push(("avx2", avx2::dot, avx2::l2));
            if std::arch::is_x86_feature_detected!("avx512f") {
                families.push(("avx512", avx512::dot, avx512::l2));
            }
        }
        for dim in [1, 31, 32, 33, 64, 384, 1000] {
            let a: Vec<f32> = (0..dim).map(|i| ((i * 7 % 13) as f32 - 6.0) / 3.0).collect();
            let b: Vec<f32> = (0..dim).map(|i| ((i * 5 % 11) as f32 - 4.0) / 2.0).collect();
            for (name, dot, l2) in &families {
                // SAFETY: each family was pushed only after detecting its features.
                let (d, l) = unsafe { (dot(&a, &b), l2(&a, &b)) };
                let (want_d, want_l) = (dot_base(&a, &b), l2_base(&a, &b));
                assert!(
                    (d - want_d).abs() <= 1e-4 * want_d.abs().max(1.0),
                    "{name} dot dim {dim}"
                );
                assert!(
                    (l - want_l).abs() <= 1e-4 * want_l.abs().max(1.0),
                    "{name} l2 dim {dim}"
                );
            }
        }
    }

    #[test]
    fn metrics_parse() {
        assert_eq!("COSINE".parse::<Metric>().unwrap(), Metric::Cosine);
        assert!("hamming".parse::<Metric>().is_err());
    }
}
