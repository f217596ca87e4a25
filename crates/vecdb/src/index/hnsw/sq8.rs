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
//!
//! One step for all dimensions wastes resolution when a few components are much larger than
//! the rest, as in CNN embeddings (the largest is 12× the 90th percentile there). Training
//! therefore also tries a [`Rotation`] first: random signs, a random permutation and a
//! Walsh–Hadamard transform spread every vector's energy evenly over the components, and
//! distances are unchanged by it. The codec keeps whichever codes the training rows with the
//! smaller squared error (on grid data, the plain codes: they are exact).

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::index::common::Rng;
use crate::metric::Metric;

/// Seed of the rotation a codec tries (fixed: the same data gives the same codes).
const ROTATION_SEED: u64 = 0x5138_0ad5;
/// Rows whose coding error decides between plain and rotated codes.
const ERROR_ROWS: usize = 2_000;

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
    /// Applied to every vector before it is coded (and undone by [`Sq8Codec::decode`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotation: Option<Rotation>,
}

/// An orthogonal transform `x ↦ H·P·(s ⊙ x)`: random signs `s`, a random permutation `P`, then
/// a normalized Walsh–Hadamard transform `H` on each power-of-two block of the components
/// (1280 = 1024 + 256). It keeps lengths and distances, and spreads a few large components
/// over all of them. Costs O(d log d) per vector.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Rotation {
    /// `±1` per component.
    signs: Vec<f32>,
    /// Output position `i` takes input component `perm[i]`.
    perm: Vec<u32>,
}

impl Rotation {
    /// A rotation of `dim` components drawn from `seed`.
    pub fn new(dim: usize, seed: u64) -> Rotation {
        let mut rng = Rng::new(seed);
        let signs = (0..dim).map(|_| if rng.next_u64() & 1 == 0 { 1.0 } else { -1.0 }).collect();
        let mut perm: Vec<u32> = (0..dim as u32).collect();
        for i in (1..dim).rev() {
            perm.swap(i, rng.below(i + 1));
        }
        Rotation { signs, perm }
    }

    /// Check a rotation read from disk: `dim` signs of ±1 and a permutation of `0..dim`.
    fn validate(&self, dim: usize) -> std::result::Result<(), String> {
        let mut seen = vec![false; dim];
        let perm_ok = self.perm.len() == dim
            && self.perm.iter().all(|&p| (p as usize) < dim && !std::mem::replace(&mut seen[p as usize], true));
        if self.signs.len() != dim || self.signs.iter().any(|&x| x != 1.0 && x != -1.0) || !perm_ok {
            return Err(format!("SQ8 rotation is not a signed permutation of {dim} components"));
        }
        Ok(())
    }

    /// `out = H·P·(s ⊙ x)`.
    pub fn apply(&self, x: &[f32], out: &mut [f32]) {
        for (o, &p) in out.iter_mut().zip(&self.perm) {
            *o = x[p as usize] * self.signs[p as usize];
        }
        for_blocks(out, hadamard);
    }

    /// The inverse: `x = s ⊙ Pᵀ·H·y` (`H` is its own inverse).
    pub fn invert(&self, y: &[f32]) -> Vec<f32> {
        let mut t = y.to_vec();
        for_blocks(&mut t, hadamard);
        let mut x = vec![0.0; y.len()];
        for (&v, &p) in t.iter().zip(&self.perm) {
            x[p as usize] = v * self.signs[p as usize];
        }
        x
    }

    /// Bytes held.
    pub fn memory_bytes(&self) -> usize {
        4 * (self.signs.len() + self.perm.len())
    }
}

/// `x` clamped to `lo..=hi` and rounded to the nearest integer (ties to even). Adding and
/// subtracting 1.5·2²³ rounds without a call to `roundf`, so the coding loops vectorize on
/// every x86-64 CPU.
#[inline(always)]
fn round_clamped(x: f32, lo: f32, hi: f32) -> f32 {
    const MAGIC: f32 = 12_582_912.0;
    (x.clamp(lo, hi) + MAGIC) - MAGIC
}

/// Run `f` on consecutive power-of-two blocks of `v`, largest first (1280 → 1024, 256).
fn for_blocks(v: &mut [f32], f: fn(&mut [f32])) {
    let mut rest = v;
    while !rest.is_empty() {
        let n = 1usize << (usize::BITS - 1 - rest.len().leading_zeros());
        let (block, tail) = rest.split_at_mut(n);
        f(block);
        rest = tail;
    }
}

/// In-place normalized Walsh–Hadamard transform of a power-of-two block.
fn hadamard(a: &mut [f32]) {
    let n = a.len();
    let mut h = 1;
    if n >= 8 {
        // The first three stages as one 8-point transform per group of 8 (their butterflies
        // are too short for the loop below to vectorize).
        for g in a.chunks_exact_mut(8) {
            let [x0, x1, x2, x3, x4, x5, x6, x7] = [g[0], g[1], g[2], g[3], g[4], g[5], g[6], g[7]];
            let (a0, a1, a2, a3) = (x0 + x1, x0 - x1, x2 + x3, x2 - x3);
            let (a4, a5, a6, a7) = (x4 + x5, x4 - x5, x6 + x7, x6 - x7);
            let (b0, b1, b2, b3) = (a0 + a2, a1 + a3, a0 - a2, a1 - a3);
            let (b4, b5, b6, b7) = (a4 + a6, a5 + a7, a4 - a6, a5 - a7);
            g.copy_from_slice(&[b0 + b4, b1 + b5, b2 + b6, b3 + b7, b0 - b4, b1 - b5, b2 - b6, b3 - b7]);
        }
        h = 8;
    }
    while h < n {
        for pair in a.chunks_exact_mut(2 * h) {
            let (lo, hi) = pair.split_at_mut(h);
            for (x, y) in lo.iter_mut().zip(hi.iter_mut()) {
                let (p, q) = (*x, *y);
                *x = p + q;
                *y = p - q;
            }
        }
        h *= 2;
    }
    let norm = 1.0 / (n as f32).sqrt();
    a.iter_mut().for_each(|x| *x *= norm);
}

impl Sq8Codec {
    /// Fit the codec on the rows of `data` (`dim` floats each) for `metric`: plain codes, or
    /// codes of the rotated rows when those reproduce the rows (up to the first
    /// [`ERROR_ROWS`]) with a smaller squared error.
    pub fn train(data: &[f32], dim: usize, metric: Metric) -> Result<Sq8Codec> {
        if dim == 0 || data.len() < dim || !data.len().is_multiple_of(dim) {
            return Err(Error::InvalidArgument(format!(
                "SQ8 training needs at least one row of dimension {dim}, got {} floats",
                data.len()
            )));
        }
        if metric == Metric::Hamming {
            return Err(Error::InvalidArgument("SQ8 codes need dense vectors, not hamming bits".into()));
        }
        let plain = Self::fit(data, dim, metric, None);
        if dim < 2 {
            return Ok(plain);
        }
        let rotated = Self::fit(data, dim, metric, Some(Rotation::new(dim, ROTATION_SEED)));
        Ok(if rotated.squared_error(data, dim) < plain.squared_error(data, dim) { rotated } else { plain })
    }

    /// Fit offsets and step on `data`, rotated first when `rotation` is given.
    fn fit(data: &[f32], dim: usize, metric: Metric, rotation: Option<Rotation>) -> Sq8Codec {
        let mut buf = vec![0.0f32; dim];
        let mut lo = vec![f32::INFINITY; dim];
        let mut hi = vec![f32::NEG_INFINITY; dim];
        for row in data.chunks_exact(dim) {
            let row = match &rotation {
                Some(r) => {
                    r.apply(row, &mut buf);
                    &buf[..]
                }
                None => row,
            };
            for ((l, h), &x) in lo.iter_mut().zip(hi.iter_mut()).zip(row) {
                *l = l.min(x);
                *h = h.max(x);
            }
        }
        let (offset, step, signed) = if metric == Metric::L2 {
            let range = lo.iter().zip(&hi).map(|(l, h)| h - l).fold(0.0f32, f32::max);
            (lo, range / 255.0, false)
        } else {
            let signed = lo.iter().any(|&x| x < 0.0);
            let top = lo.iter().chain(&hi).fold(0.0f32, |m, x| m.max(x.abs()));
            (Vec::new(), top / if signed { 127.0 } else { 255.0 }, signed)
        };
        let step = if step.is_finite() && step > 0.0 { step } else { 1.0 };
        Sq8Codec { offset, step, signed, rotation }
    }

    /// Σ ‖x − decode(encode(x))‖² over the first [`ERROR_ROWS`] rows of `data`.
    fn squared_error(&self, data: &[f32], dim: usize) -> f64 {
        let mut code = vec![0u8; dim];
        data.chunks_exact(dim)
            .take(ERROR_ROWS)
            .map(|row| {
                self.encode(row, &mut code);
                row.iter().zip(self.decode(&code)).map(|(&x, y)| f64::from(x - y).powi(2)).sum::<f64>()
            })
            .sum()
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
        self.rotation.as_ref().map_or(Ok(()), |r| r.validate(dim))
    }

    /// Bytes held (offsets and rotation).
    pub fn memory_bytes(&self) -> usize {
        4 * self.offset.len() + self.rotation.as_ref().map_or(0, Rotation::memory_bytes)
    }

    /// Factor turning the integer code distance into the internal distance.
    pub fn scale(&self) -> f32 {
        self.step * self.step
    }

    /// Encode one row (`out.len()` components).
    pub fn encode(&self, v: &[f32], out: &mut [u8]) {
        match &self.rotation {
            Some(r) => {
                let mut t = vec![0.0; v.len()];
                r.apply(v, &mut t);
                self.quantize(&t, out)
            }
            None => self.quantize(v, out),
        }
    }

    /// Code the (already rotated) components of `v`.
    fn quantize(&self, v: &[f32], out: &mut [u8]) {
        let inv = 1.0 / self.step;
        if self.signed {
            for (o, &x) in out.iter_mut().zip(v) {
                *o = round_clamped(x * inv, -127.0, 127.0) as i8 as u8;
            }
        } else if self.offset.is_empty() {
            for (o, &x) in out.iter_mut().zip(v) {
                *o = round_clamped(x * inv, 0.0, 255.0) as u8;
            }
        } else {
            for ((o, &x), &m) in out.iter_mut().zip(v).zip(&self.offset) {
                *o = round_clamped((x - m) * inv, 0.0, 255.0) as u8;
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
        let v = self.dequantize(code);
        match &self.rotation {
            Some(r) => r.invert(&v),
            None => v,
        }
    }

    /// The (rotated) components a code stands for.
    fn dequantize(&self, code: &[u8]) -> Vec<f32> {
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
        assert!(c.rotation.is_none(), "grid data is coded exactly without a rotation");
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
            let c = Sq8Codec::fit(&data, 10, metric, None);
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
        let c = Sq8Codec::fit(&relu, 10, Metric::Dot, None);
        let signed = Sq8Codec::fit(&data, 10, Metric::Dot, None);
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

    /// Floats in `[0, 1)`.
    fn uniform(seed: u64, n: usize) -> Vec<f32> {
        let mut rng = Rng::new(seed);
        (0..n).map(|_| rng.unit() as f32).collect()
    }

    #[test]
    fn rotation_keeps_lengths_and_dot_products_and_inverts() {
        for dim in [1usize, 7, 16, 784, 1280] {
            let r = Rotation::new(dim, 42);
            r.validate(dim).unwrap();
            let x: Vec<f32> = uniform(1, dim).iter().map(|v| v - 0.5).collect();
            let y: Vec<f32> = uniform(2, dim).iter().map(|v| v - 0.3).collect();
            let (mut rx, mut ry) = (vec![0.0; dim], vec![0.0; dim]);
            r.apply(&x, &mut rx);
            r.apply(&y, &mut ry);
            let dot = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(p, q)| p * q).sum::<f32>();
            let tol = 1e-4 * dim as f32;
            assert!((dot(&x, &x) - dot(&rx, &rx)).abs() < tol, "dim {dim}: length changed");
            assert!((dot(&x, &y) - dot(&rx, &ry)).abs() < tol, "dim {dim}: dot product changed");
            let back = r.invert(&rx);
            assert!(x.iter().zip(&back).all(|(a, b)| (a - b).abs() < 1e-5), "dim {dim}: inverse differs");
            if dim >= 16 {
                assert!(x.iter().zip(&rx).filter(|(a, b)| a != b).count() > dim / 2, "dim {dim}: nothing moved");
            }
        }
    }

    /// Embedding-like rows (non-negative, half zeros, two large components each, unit length):
    /// one step for all dimensions fits them badly; rotated, they are coded much closer.
    #[test]
    fn spiky_embeddings_are_rotated_and_coded_closer() {
        let (n, dim) = (500, 256);
        let u = uniform(3, n * dim);
        let mut data = Vec::with_capacity(n * dim);
        for (i, row) in u.chunks_exact(dim).enumerate() {
            let mut v: Vec<f32> = row.iter().map(|&x| if x < 0.5 { 0.0 } else { (x - 0.5) * 0.06 }).collect();
            v[(i * 7) % dim] = 0.45;
            v[(i * 13 + 5) % dim] = 0.3;
            let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
            data.extend(v.iter().map(|x| x / norm));
        }
        for metric in [Metric::Dot, Metric::L2] {
            let chosen = Sq8Codec::train(&data, dim, metric).unwrap();
            let plain = Sq8Codec::fit(&data, dim, metric, None);
            assert!(chosen.rotation.is_some(), "{metric}: spiky data was not rotated");
            let (e_rot, e_plain) = (chosen.squared_error(&data, dim), plain.squared_error(&data, dim));
            assert!(e_rot * 2.0 < e_plain, "{metric}: rotated error {e_rot} vs plain {e_plain}");
            chosen.validate(dim, metric).unwrap();
            let json = serde_json::to_string(&chosen).unwrap();
            assert_eq!(serde_json::from_str::<Sq8Codec>(&json).unwrap(), chosen);
        }
        // A codec saved before rotations existed reads back without one; a broken one is refused.
        let old: Sq8Codec = serde_json::from_str(r#"{"offset":[],"step":0.01,"signed":false}"#).unwrap();
        assert!(old.rotation.is_none());
        let mut bad = Sq8Codec::train(&data, dim, Metric::Dot).unwrap();
        if let Some(r) = bad.rotation.as_mut() {
            r.perm[0] = r.perm[1];
        }
        assert!(bad.validate(dim, Metric::Dot).is_err());
    }
}
