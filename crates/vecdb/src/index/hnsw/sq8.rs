//! 8-bit codes for the graph's rows (`HNSW<M>,SQ8`, FAISS's `IndexHNSWSQ`).
//!
//! Unlike the per-dimension quantizer of the IVF indexes, one step size serves every
//! dimension, so the distance between two codes is an integer sum computed with the SIMD
//! kernels of [`crate::code_distance`] and scaled once:
//!
//! * `l2`: unsigned codes `c = round((x − min_d) / step)`; `‖a − b‖² ≈ step² · Σ (cₐ − c_b)²`
//!   (the per-dimension offsets cancel).
//! * `cosine`, `dot`: codes `c = round(x / step)`, `a·b ≈ step² · Σ cₐ·c_b`; signed (`−127..=127`)
//!   when the training data has negative components, else unsigned (`0..=255`, twice the
//!   resolution: embeddings taken after a ReLU, like the CNN's, are never negative).
//!
//! Queries are encoded the same way (symmetric distance). Data whose values sit on a grid
//! (8-bit pixels, as in Fashion-MNIST) is coded without loss; otherwise the error per
//! component is at most `step / 2`, and `HNSW<M>,SQ8,Refine` re-ranks with the full vectors.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::metric::Metric;

/// A trained 8-bit codec.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Sq8Codec {
    /// `l2`: per-dimension minimum subtracted before scaling (unsigned codes).
    /// Empty for inner products (codes centred on 0).
    pub offset: Vec<f32>,
    /// Value of one code step, the same in every dimension (> 0).
    pub step: f32,
    /// Inner products only: codes are `i8` (`−127..=127`) rather than `u8` (`0..=255`).
    #[serde(default)]
    pub signed: bool,
}

impl Sq8Codec {
    /// Fit the codec on the rows of `data` (`dim` floats each) for `metric`.
    pub fn train(data: &[f32], dim: usize, metric: Metric) -> Result<Sq8Codec> {
        if dim == 0 || data.len() < dim || !data.len().is_multiple_of(dim) {
            return Err(Error::InvalidArgument(format!(
                "SQ8 training needs at least one row of dimension {dim}, got {} floats",
                data.len()
            )));
        }
        let (offset, step, signed) = match metric {
            Metric::L2 => {
                let mut lo = vec![f32::INFINITY; dim];
                let mut hi = vec![f32::NEG_INFINITY; dim];
                for row in data.chunks_exact(dim) {
                    for ((l, h), &x) in lo.iter_mut().zip(hi.iter_mut()).zip(row) {
                        *l = l.min(x);
                        *h = h.max(x);
                    }
                }
                let range = lo.iter().zip(&hi).map(|(l, h)| h - l).fold(0.0f32, f32::max);
                (lo, range / 255.0, false)
            }
            Metric::Cosine | Metric::Dot => {
                let signed = data.iter().any(|&x| x < 0.0);
                let top = data.iter().fold(0.0f32, |m, x| m.max(x.abs()));
                (Vec::new(), top / if signed { 127.0 } else { 255.0 }, signed)
            }
            Metric::Hamming => {
                return Err(Error::InvalidArgument("SQ8 codes need dense vectors, not hamming bits".into()))
            }
        };
        let step = if step.is_finite() && step > 0.0 { step } else { 1.0 };
        Ok(Sq8Codec { offset, step, signed })
    }

    /// Check a codec read from disk.
    pub fn validate(&self, dim: usize, metric: Metric) -> std::result::Result<(), String> {
        let want = if metric == Metric::L2 { dim } else { 0 };
        if self.offset.len() != want {
            return Err(format!("SQ8 codec has {} offsets, expected {want}", self.offset.len()));
        }
        if !(self.step.is_finite() && self.step > 0.0) || self.offset.iter().any(|x| !x.is_finite()) {
            return Err("SQ8 codec has a non-finite or non-positive step".into());
        }
        if self.signed && metric == Metric::L2 {
            return Err("SQ8 codec for l2 with signed codes".into());
        }
        Ok(())
    }

    /// Factor turning the integer code distance into the internal distance.
    pub fn scale(&self) -> f32 {
        self.step * self.step
    }

    /// Encode one row (`out.len()` components).
    pub fn encode(&self, v: &[f32], out: &mut [u8]) {
        let inv = 1.0 / self.step;
        if self.signed {
            for (o, &x) in out.iter_mut().zip(v) {
                *o = (x * inv).round().clamp(-127.0, 127.0) as i8 as u8;
            }
        } else if self.offset.is_empty() {
            for (o, &x) in out.iter_mut().zip(v) {
                *o = (x * inv).round().clamp(0.0, 255.0) as u8;
            }
        } else {
            for ((o, &x), &m) in out.iter_mut().zip(v).zip(&self.offset) {
                *o = ((x - m) * inv).round().clamp(0.0, 255.0) as u8;
            }
        }
    }

    /// Encode rows of `dim` floats, appending to `out`.
    pub fn encode_rows(&self, data: &[f32], dim: usize, out: &mut Vec<u8>) {
        let start = out.len();
        out.resize(start + data.len(), 0);
        for (row, code) in data.chunks_exact(dim).zip(out[start..].chunks_exact_mut(dim)) {
            self.encode(row, code);
        }
    }

    /// Decode one row.
    pub fn decode(&self, code: &[u8]) -> Vec<f32> {
        if self.signed {
            code.iter().map(|&c| c as i8 as f32 * self.step).collect()
        } else if self.offset.is_empty() {
            code.iter().map(|&c| c as f32 * self.step).collect()
        } else {
            code.iter().zip(&self.offset).map(|(&c, &m)| m + c as f32 * self.step).collect()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grid_data_round_trips_exactly() {
        // 8-bit pixels: every value is on the grid, so codes are lossless.
        let data: Vec<f32> = (0..4 * 16).map(|i| ((i * 37) % 256) as f32).collect();
        let mut data = data;
        data[0] = 0.0;
        data[16] = 255.0; // dimension 0 spans the grid: step 1
        let c = Sq8Codec::train(&data, 16, Metric::L2).unwrap();
        let mut code = vec![0u8; 16];
        for row in data.chunks_exact(16) {
            c.encode(row, &mut code);
            assert_eq!(c.decode(&code), row);
        }
    }

    #[test]
    fn error_is_at_most_half_a_step_and_clamps_outside() {
        let data: Vec<f32> = (0..300).map(|i| ((i as f32) * 0.61).sin() * 0.3).collect();
        for metric in [Metric::L2, Metric::Cosine] {
            let c = Sq8Codec::train(&data, 10, metric).unwrap();
            let mut code = vec![0u8; 10];
            for row in data.chunks_exact(10) {
                c.encode(row, &mut code);
                for (x, y) in row.iter().zip(c.decode(&code)) {
                    assert!((x - y).abs() <= c.step * 0.5001, "{metric}: {x} vs {y}");
                }
            }
            c.encode(&[9.0; 10], &mut code);
            let top = if metric == Metric::L2 { 255 } else { 127 };
            assert!(code.iter().all(|&b| b == top), "{metric}: {code:?} not clamped");
        }
        // Non-negative data (post-ReLU embeddings) gets unsigned codes: twice the resolution.
        let relu: Vec<f32> = data.iter().map(|x| x.max(0.0)).collect();
        let c = Sq8Codec::train(&relu, 10, Metric::Dot).unwrap();
        let signed = Sq8Codec::train(&data, 10, Metric::Dot).unwrap();
        assert!(!c.signed && signed.signed);
        assert!(c.step <= signed.step * 127.0 / 255.0 + 1e-7, "{} vs {}", c.step, signed.step);
        let mut code = vec![0u8; 10];
        for row in relu.chunks_exact(10) {
            c.encode(row, &mut code);
            for (x, y) in row.iter().zip(c.decode(&code)) {
                assert!((x - y).abs() <= c.step * 0.5001);
            }
        }
        assert!(Sq8Codec::train(&data, 10, Metric::Hamming).is_err());
        assert!(Sq8Codec::train(&[], 10, Metric::L2).is_err());
    }
}
