//! Perceptual hashes: DCT pHash and difference hash (dHash), 64 bits each, compared with
//! Hamming distance. Bits are packed 8 per byte, least significant bit first (bit `i` is
//! `byte[i / 8] >> (i % 8) & 1`).
//!
//! * **pHash**: the image is reduced to 32×32 gray (antialiased, aspect ratio ignored), a 2-D
//!   orthonormal DCT-II is taken, and the top-left 8×8 block of coefficients (the lowest
//!   frequencies) gives the 64 bits: bit `u · 8 + v` = coefficient `(u, v)` > the median of the
//!   63 AC coefficients (the DC term, which is just the mean brightness, is left out of the
//!   median; its own bit is set for any image that is not black). It encodes the coarse
//!   light/dark layout, robust to re-encoding, rescaling and mild color changes.
//! * **dHash**: the image is reduced to 9×8 gray; bit `(row · 8 + col)` = the pixel is
//!   brighter than its right neighbour. Encodes horizontal gradients of the coarse layout.

use image::RgbImage;

use crate::error::Result;
use crate::extractor::{DistanceKind, Embedding, FeatureExtractor, Features};
use crate::preprocess::{resize_exact, to_gray, ResizeFilter};

/// Side of the gray image the pHash DCT is computed on.
pub const PHASH_SIZE: usize = 32;

/// Pack booleans into bytes, least significant bit first.
pub fn pack_bits(bits: &[bool]) -> Vec<u8> {
    let mut out = vec![0u8; bits.len().div_ceil(8)];
    for (i, &b) in bits.iter().enumerate() {
        if b {
            out[i / 8] |= 1 << (i % 8);
        }
    }
    out
}

/// Number of differing bits.
pub fn hamming(a: &[u8], b: &[u8]) -> u32 {
    let common: u32 = a.iter().zip(b).map(|(x, y)| (x ^ y).count_ones()).sum();
    let extra: u32 = a.iter().skip(b.len()).chain(b.iter().skip(a.len())).map(|x| x.count_ones()).sum();
    common + extra
}

/// The DCT pHash extractor (`phash`, 64 bits, Hamming).
#[derive(Debug, Clone)]
pub struct PHash {
    /// Orthonormal DCT-II basis, `cos[u * N + x]`.
    cos: Vec<f32>,
    /// Coefficients used `(u = vertical, v = horizontal frequency)`, in bit order.
    positions: Vec<(usize, usize)>,
}

impl Default for PHash {
    fn default() -> Self {
        Self::new()
    }
}

impl PHash {
    /// A pHash extractor.
    pub fn new() -> Self {
        let n = PHASH_SIZE;
        let mut cos = vec![0f32; n * n];
        for u in 0..n {
            let alpha = if u == 0 { (1.0 / n as f64).sqrt() } else { (2.0 / n as f64).sqrt() };
            for x in 0..n {
                let c = (std::f64::consts::PI * (2 * x + 1) as f64 * u as f64 / (2 * n) as f64).cos();
                cos[u * n + x] = (alpha * c) as f32;
            }
        }
        let positions = (0..8).flat_map(|u| (0..8).map(move |v| (u, v))).collect();
        PHash { cos, positions }
    }

    /// The 64 DCT coefficients of the top-left 8×8 block, in bit order (`u · 8 + v`; index 0 is DC).
    pub fn coefficients(&self, image: &RgbImage) -> Vec<f32> {
        let n = PHASH_SIZE;
        let small = to_gray(&resize_exact(image, n as u32, n as u32, ResizeFilter::Bilinear));
        let px: Vec<f32> = small.as_raw().iter().map(|&v| f32::from(v)).collect();
        let max_u = self.positions.iter().map(|p| p.0.max(p.1)).max().unwrap_or(0) + 1;
        // Rows first: t[y][v] = Σx px[y][x]·cos[v][x], only for the low v we need.
        let mut t = vec![0f32; n * max_u];
        for y in 0..n {
            for v in 0..max_u {
                t[y * max_u + v] = (0..n).map(|x| px[y * n + x] * self.cos[v * n + x]).sum();
            }
        }
        self.positions.iter().map(|&(u, v)| (0..n).map(|y| self.cos[u * n + y] * t[y * max_u + v]).sum()).collect()
    }
}

impl FeatureExtractor for PHash {
    fn name(&self) -> &str {
        "phash"
    }
    fn dim(&self) -> usize {
        64
    }
    fn distance(&self) -> DistanceKind {
        DistanceKind::Hamming
    }
    fn min_input_side(&self) -> u32 {
        PHASH_SIZE as u32
    }
    fn extract(&self, image: &RgbImage) -> Result<Features> {
        let coefs = self.coefficients(image);
        // Median of the 63 AC coefficients (index 0 is the DC term).
        let mut ac = coefs[1..].to_vec();
        ac.sort_by(f32::total_cmp);
        let median = ac[ac.len() / 2];
        let bits: Vec<bool> = coefs.iter().map(|&c| c > median).collect();
        Ok(Features { vector: Embedding::Binary(pack_bits(&bits)), tags: Vec::new() })
    }
}

/// The difference-hash extractor (`dhash`, 64 bits, Hamming).
#[derive(Debug, Clone, Default)]
pub struct DHash;

impl DHash {
    /// A dHash extractor.
    pub fn new() -> Self {
        DHash
    }
}

impl FeatureExtractor for DHash {
    fn name(&self) -> &str {
        "dhash"
    }
    fn dim(&self) -> usize {
        64
    }
    fn distance(&self) -> DistanceKind {
        DistanceKind::Hamming
    }
    fn min_input_side(&self) -> u32 {
        9
    }
    fn extract(&self, image: &RgbImage) -> Result<Features> {
        let small = to_gray(&resize_exact(image, 9, 8, ResizeFilter::Bilinear));
        let bits: Vec<bool> = (0..8u32)
            .flat_map(|y| (0..8u32).map(move |x| (x, y)))
            .map(|(x, y)| small.get_pixel(x, y).0[0] > small.get_pixel(x + 1, y).0[0])
            .collect();
        Ok(Features { vector: Embedding::Binary(pack_bits(&bits)), tags: Vec::new() })
    }
}
