//! Product quantization: a vector is cut into `m` sub-vectors, each replaced by the
//! index (one byte) of its nearest centroid in a 256-entry codebook learned by k-means.
//! Distances to a query use asymmetric distance computation (ADC) with per-query
//! lookup tables of `m × 256` floats.

use rayon::prelude::*;

use crate::distance;
use crate::index::kmeans;

/// Centroids per sub-quantizer (8-bit codes).
pub(crate) const KSUB: usize = 256;

/// A trained product quantizer.
#[derive(Debug, Clone)]
pub(crate) struct ProductQuantizer {
    pub(crate) m: usize,
    pub(crate) dsub: usize,
    /// `m × KSUB × dsub` floats.
    pub(crate) codebooks: Vec<f32>,
}

impl ProductQuantizer {
    /// Fit `m` codebooks on the rows of `data` (`dim` must be divisible by `m`).
    pub(crate) fn train(data: &[f32], dim: usize, m: usize, seed: u64) -> Self {
        let dsub = dim / m;
        let n = data.len() / dim;
        let codebooks: Vec<Vec<f32>> = (0..m)
            .into_par_iter()
            .map(|j| {
                let mut sub = Vec::with_capacity(n * dsub);
                for row in data.chunks_exact(dim) {
                    sub.extend_from_slice(&row[j * dsub..(j + 1) * dsub]);
                }
                kmeans::train(&sub, dsub, KSUB, 10, seed.wrapping_add(j as u64 * 7919))
            })
            .collect();
        ProductQuantizer { m, dsub, codebooks: codebooks.concat() }
    }

    /// Rebuild from saved codebooks.
    pub(crate) fn from_parts(dim: usize, m: usize, codebooks: Vec<f32>) -> Option<Self> {
        let dsub = dim.checked_div(m)?;
        (m > 0 && codebooks.len() == m * KSUB * dsub).then_some(ProductQuantizer { m, dsub, codebooks })
    }

    #[inline]
    fn centroid(&self, j: usize, c: usize) -> &[f32] {
        let s = (j * KSUB + c) * self.dsub;
        &self.codebooks[s..s + self.dsub]
    }

    /// Encode `v` into `out` (`m` bytes).
    pub(crate) fn encode(&self, v: &[f32], out: &mut [u8]) {
        for (j, o) in out.iter_mut().enumerate().take(self.m) {
            let s = j * KSUB * self.dsub;
            let (c, _) = kmeans::nearest(
                &self.codebooks[s..s + KSUB * self.dsub],
                self.dsub,
                &v[j * self.dsub..(j + 1) * self.dsub],
            );
            *o = c as u8;
        }
    }

    /// Decode a code into `out` (`dim` floats).
    pub(crate) fn decode(&self, code: &[u8], out: &mut [f32]) {
        for (j, &c) in code.iter().enumerate().take(self.m) {
            out[j * self.dsub..(j + 1) * self.dsub].copy_from_slice(self.centroid(j, c as usize));
        }
    }

    /// Inner-product lookup table: `lut[j × 256 + c] = q_j · centroid(j, c)`.
    pub(crate) fn dot_table(&self, q: &[f32]) -> Vec<f32> {
        let mut lut = vec![0f32; self.m * KSUB];
        for (j, out) in lut.chunks_exact_mut(KSUB).enumerate() {
            let qs = &q[j * self.dsub..(j + 1) * self.dsub];
            let book = &self.codebooks[j * KSUB * self.dsub..(j + 1) * KSUB * self.dsub];
            distance::dot_many(qs, book, out);
        }
        lut
    }

    /// Sum of table entries selected by `code` (the ADC inner loop).
    #[inline]
    pub(crate) fn adc(lut: &[f32], code: &[u8]) -> f32 {
        let mut acc = [0f32; 4];
        let mut chunks = code.chunks_exact(4);
        let mut base = 0;
        for ch in &mut chunks {
            acc[0] += lut[base + ch[0] as usize];
            acc[1] += lut[base + KSUB + ch[1] as usize];
            acc[2] += lut[base + 2 * KSUB + ch[2] as usize];
            acc[3] += lut[base + 3 * KSUB + ch[3] as usize];
            base += 4 * KSUB;
        }
        for &c in chunks.remainder() {
            acc[0] += lut[base + c as usize];
            base += KSUB;
        }
        (acc[0] + acc[1]) + (acc[2] + acc[3])
    }

    pub(crate) fn memory_bytes(&self) -> usize {
        self.codebooks.len() * 4
    }
}
