//! Product quantization with 8-bit codes: `m` sub-vectors, 256 centroids each.

use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use vlake_format::{Error, Result};

use crate::distance::{dot, dot_short, l2_sq, l2_sq_short};
use crate::kmeans;

/// Which inner distance a quantizer approximates.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Space {
    /// Squared L2.
    L2,
    /// Negative inner product.
    Ip,
}

impl Space {
    /// The distance in this space.
    #[inline]
    pub fn distance(self, a: &[f32], b: &[f32]) -> f32 {
        match self {
            Self::L2 => l2_sq(a, b),
            Self::Ip => -dot(a, b),
        }
    }

    /// The distance of short vectors (sub-vectors), inlined.
    #[inline(always)]
    fn distance_short(self, a: &[f32], b: &[f32]) -> f32 {
        match self {
            Self::L2 => l2_sq_short(a, b),
            Self::Ip => -dot_short(a, b),
        }
    }
}

/// Reusable buffers for [`Encoder::encode_rows`].
#[derive(Debug, Default)]
pub struct EncodeScratch {
    labels: Vec<u32>,
    products: Vec<f32>,
}

/// A quantizer's codebooks laid out for encoding many vectors at once.
#[derive(Debug)]
pub struct Encoder<'a> {
    pq: &'a ProductQuantizer,
    books: Vec<kmeans::Codebook>,
}

impl Encoder<'_> {
    /// Writes the `m`-byte codes of the row-major vectors `rows` into `codes` (one code per
    /// whole vector, as many as both hold).
    pub fn encode_rows(&self, rows: &[f32], codes: &mut [u8], scratch: &mut EncodeScratch) {
        let (dim, m) = (self.pq.dim, self.pq.m);
        let sub = self.pq.sub();
        let n = (rows.len() / dim).min(codes.len() / m);
        scratch.labels.clear();
        scratch.labels.resize(n, 0);
        for (j, book) in self.books.iter().enumerate() {
            book.assign_rows(rows, dim, j * sub, &mut scratch.labels, &mut scratch.products);
            for (code, label) in codes.chunks_exact_mut(m).zip(&scratch.labels) {
                code[j] = *label as u8;
            }
        }
    }
}

/// A trained product quantizer.
#[derive(Clone, Debug, PartialEq)]
pub struct ProductQuantizer {
    /// Vector dimension.
    pub dim: usize,
    /// Number of sub-vectors (bytes per code).
    pub m: usize,
    /// Codebooks: `m` blocks of 256 centroids of `dim / m` values.
    pub codebooks: Vec<f32>,
}

impl ProductQuantizer {
    /// Trains on `data` (row-major); `dim` must be a multiple of `m`.
    pub fn train(data: &[f32], dim: usize, m: usize, iterations: usize) -> Result<Self> {
        if m == 0 || !dim.is_multiple_of(m) {
            return Err(Error::invalid(format!(
                "PQ sub-vectors ({m}) must divide the dimension ({dim})"
            )));
        }
        let sub = dim / m;
        let n = data.len() / dim;
        let books: Vec<Vec<f32>> = (0..m)
            .into_par_iter()
            .map(|j| {
                let part: Vec<f32> = (0..n)
                    .flat_map(|i| data[i * dim + j * sub..i * dim + (j + 1) * sub].to_vec())
                    .collect();
                kmeans::train(&part, sub, 256, iterations, j as u64)
            })
            .collect();
        Ok(Self {
            dim,
            m,
            codebooks: books.concat(),
        })
    }

    fn sub(&self) -> usize {
        self.dim / self.m
    }

    /// The codebooks laid out for encoding many vectors.
    pub fn encoder(&self) -> Encoder<'_> {
        let sub = self.sub();
        Encoder {
            pq: self,
            books: self
                .codebooks
                .chunks_exact(256 * sub)
                .map(|b| kmeans::Codebook::new(b, sub))
                .collect(),
        }
    }

    /// The lookup table of `query` for asymmetric distances: `m x 256` partial distances.
    pub fn lookup_table(&self, query: &[f32], space: Space) -> Vec<f32> {
        let sub = self.sub();
        let mut lut = Vec::with_capacity(self.m * 256);
        for j in 0..self.m {
            let q = &query[j * sub..(j + 1) * sub];
            for c in self.codebooks[j * 256 * sub..(j + 1) * 256 * sub].chunks_exact(sub) {
                lut.push(space.distance_short(q, c));
            }
        }
        lut
    }

    /// The approximate distance of a code given a lookup table.
    #[inline]
    pub fn distance(lut: &[f32], code: &[u8]) -> f32 {
        let mut acc = [0f32; 4];
        let mut chunks = code.chunks_exact(4);
        let mut j = 0;
        for c in &mut chunks {
            for (i, b) in c.iter().enumerate() {
                acc[i] += lut[(j + i) * 256 + *b as usize];
            }
            j += 4;
        }
        for (i, b) in chunks.remainder().iter().enumerate() {
            acc[i] += lut[(j + i) * 256 + *b as usize];
        }
        acc.iter().sum()
    }
}
