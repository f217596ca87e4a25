//! Texture descriptor: uniform LBP histograms at two radii plus Gabor filter-bank energies.
//!
//! What it captures: the local *structure* of the gray levels, independent of color and of
//! global brightness/contrast — fine grain vs. coarse grain, edges vs. spots vs. flat areas,
//! and dominant stripe orientations (grass, bricks, gravel, text, fabric). It ignores where
//! things are in the picture (all statistics are pooled over the whole image).
//!
//! Computation, on the image resized so its shorter side is [`WORK_SHORTER_SIDE`] px (so the
//! descriptor does not depend on the file's resolution; the longer side is capped at
//! [`WORK_MAX_SIDE`]), optionally median-denoised, in gray:
//! * **LBP** (local binary patterns), 8 neighbours on a circle of radius 1 and of radius 2
//!   (bilinearly interpolated): each pixel gets an 8-bit code (neighbour ≥ center). Codes with
//!   at most two 0/1 transitions around the circle ("uniform" patterns: edges, corners, line
//!   ends, spots, flat) get one bin each (58 bins); all other codes share one bin: 59 bins per
//!   radius. Invariant to any monotonic change of brightness.
//! * **Gabor bank**: complex Gabor filters (wavelength 4 px, Gaussian σ = 0.56 · wavelength,
//!   about one octave of bandwidth) at 4 orientations (0°, 45°, 90°, 135°) on 3 scales of an
//!   image pyramid (the image at 1, 1/2 and 1/4 size, so wavelengths of 4, 8 and 16 px at
//!   working size), applied to the gray image normalized to zero mean and unit variance. For
//!   each of the 12 filters, the mean and the standard deviation (square root of the variance)
//!   of the response magnitude: 24 numbers describing how much oscillation there is at each
//!   frequency and orientation.
//!
//! Normalization: each LBP histogram is L1-normalized then square-rooted (Hellinger, unit L2
//! norm); the Gabor block is L2-normalized; the three blocks are scaled by `1/√3`, so the
//! whole 142-d vector has unit norm (the Gabor block is zero for a perfectly flat image) and
//! is compared with L2.

use image::{GrayImage, RgbImage};

use crate::error::Result;
use crate::extractor::{DistanceKind, Embedding, FeatureExtractor, Features};
use crate::preprocess::{denoise, resize_exact, shorter_side_size, to_gray, ResizeFilter};

/// Shorter side, in pixels, of the working image.
pub const WORK_SHORTER_SIDE: u32 = 128;
/// Longest side, in pixels, of the working image (only reached for aspect ratios beyond 4:1).
pub const WORK_MAX_SIDE: u32 = 4 * WORK_SHORTER_SIDE;
/// Bins of one uniform-LBP histogram (58 uniform patterns + 1 for the rest).
pub const LBP_BINS: usize = 59;
/// Gabor orientations.
pub const GABOR_ORIENTATIONS: usize = 4;
/// Gabor scales (pyramid levels).
pub const GABOR_SCALES: usize = 3;
/// Wavelength of the Gabor filters at each pyramid level, in pixels.
pub const GABOR_WAVELENGTH: f32 = 4.0;
/// Dimension of the texture vector.
pub const TEXTURE_DIM: usize = 2 * LBP_BINS + 2 * GABOR_ORIENTATIONS * GABOR_SCALES;

/// The texture extractor (`texture`, 142 dims, L2 distance).
#[derive(Debug, Clone)]
pub struct Texture {
    denoise: bool,
    lbp_map: [u8; 256],
}

impl Texture {
    /// A texture extractor; `denoise` median-filters (3×3) the working image first.
    pub fn new(denoise: bool) -> Self {
        Texture { denoise, lbp_map: uniform_lbp_map() }
    }

    /// The three blocks before the final `1/√3` scaling: LBP r=1 histogram and LBP r=2
    /// histogram (each L1-normalized, summing to 1), and the raw Gabor statistics
    /// (mean, std of magnitude for each scale then orientation).
    pub fn parts(&self, image: &RgbImage) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
        let (mut w, mut h) = shorter_side_size(image.width(), image.height(), WORK_SHORTER_SIDE);
        // Cap the longer side for extreme aspect ratios (a 1×10000 strip must not become
        // 128×1280000): at most WORK_MAX_SIDE, the shorter side shrinking accordingly.
        let longer = w.max(h);
        if longer > WORK_MAX_SIDE {
            let scale = f64::from(WORK_MAX_SIDE) / f64::from(longer);
            w = ((f64::from(w) * scale).round() as u32).clamp(1, WORK_MAX_SIDE);
            h = ((f64::from(h) * scale).round() as u32).clamp(1, WORK_MAX_SIDE);
        }
        let small = resize_exact(image, w, h, ResizeFilter::Bilinear);
        let small = if self.denoise { denoise(&small, 1) } else { small };
        let gray = to_gray(&small);
        let lbp1 = self.lbp_histogram(&gray, 1.0);
        let lbp2 = self.lbp_histogram(&gray, 2.0);
        let gabor = gabor_energies(&gray);
        (lbp1, lbp2, gabor)
    }

    /// L1-normalized uniform LBP histogram at radius `r` (8 neighbours).
    fn lbp_histogram(&self, gray: &GrayImage, r: f32) -> Vec<f32> {
        let (w, h) = (gray.width() as usize, gray.height() as usize);
        let px = |x: usize, y: usize| f32::from(gray.as_raw()[y * w + x]);
        let border = r.ceil() as usize;
        let mut hist = vec![0f32; LBP_BINS];
        // Neighbour offsets, counter-clockwise from the right, rounded to kill 1e-8 noise.
        let offs: Vec<(f32, f32)> = (0..8)
            .map(|p| {
                let a = std::f32::consts::TAU * p as f32 / 8.0;
                let round = |v: f32| (v * 1e5).round() / 1e5;
                (round(r * a.cos()), round(-r * a.sin()))
            })
            .collect();
        if w > 2 * border && h > 2 * border {
            for y in border..h - border {
                for x in border..w - border {
                    let c = px(x, y);
                    let mut code = 0u8;
                    for (p, &(dx, dy)) in offs.iter().enumerate() {
                        let (fx, fy) = (x as f32 + dx, y as f32 + dy);
                        let (x0, y0) = (fx.floor(), fy.floor());
                        let (tx, ty) = (fx - x0, fy - y0);
                        let (x0, y0) = (x0 as usize, y0 as usize);
                        let x1 = (x0 + 1).min(w - 1);
                        let y1 = (y0 + 1).min(h - 1);
                        let v = px(x0, y0) * (1.0 - tx) * (1.0 - ty)
                            + px(x1, y0) * tx * (1.0 - ty)
                            + px(x0, y1) * (1.0 - tx) * ty
                            + px(x1, y1) * tx * ty;
                        if v >= c - 1e-3 {
                            code |= 1 << p;
                        }
                    }
                    hist[self.lbp_map[code as usize] as usize] += 1.0;
                }
            }
        }
        let sum: f32 = hist.iter().sum();
        if sum > 0.0 {
            hist.iter_mut().for_each(|b| *b /= sum);
        } else {
            hist.iter_mut().for_each(|b| *b = 1.0 / LBP_BINS as f32);
        }
        hist
    }
}

/// Map each 8-bit LBP code to its bin: uniform codes (≤ 2 circular transitions) to 0..58 in
/// increasing code order, the others to 58.
pub fn uniform_lbp_map() -> [u8; 256] {
    let mut map = [0u8; 256];
    let mut next = 0u8;
    for code in 0..256u32 {
        let transitions = (code ^ ((code >> 1) | ((code & 1) << 7))).count_ones();
        if transitions <= 2 {
            map[code as usize] = next;
            next += 1;
        } else {
            map[code as usize] = (LBP_BINS - 1) as u8;
        }
    }
    debug_assert_eq!(next as usize, LBP_BINS - 1);
    map
}

/// A float image, row-major.
struct Plane {
    w: usize,
    h: usize,
    data: Vec<f32>,
}

impl Plane {
    /// Halve both sides by 2×2 averaging (odd last row/column dropped, at least 1 px).
    fn half(&self) -> Plane {
        let (w, h) = ((self.w / 2).max(1), (self.h / 2).max(1));
        let mut data = Vec::with_capacity(w * h);
        for y in 0..h {
            for x in 0..w {
                let (x0, y0) = ((2 * x).min(self.w - 1), (2 * y).min(self.h - 1));
                let (x1, y1) = ((x0 + 1).min(self.w - 1), (y0 + 1).min(self.h - 1));
                let s = self.data[y0 * self.w + x0]
                    + self.data[y0 * self.w + x1]
                    + self.data[y1 * self.w + x0]
                    + self.data[y1 * self.w + x1];
                data.push(s * 0.25);
            }
        }
        Plane { w, h, data }
    }
}

/// Mean and standard deviation of the Gabor magnitude for each scale and orientation.
fn gabor_energies(gray: &GrayImage) -> Vec<f32> {
    let n = gray.as_raw().len().max(1) as f32;
    let mean = gray.as_raw().iter().map(|&v| f32::from(v)).sum::<f32>() / n;
    let var = gray.as_raw().iter().map(|&v| (f32::from(v) - mean).powi(2)).sum::<f32>() / n;
    let inv_std = if var > 1e-6 { 1.0 / var.sqrt() } else { 0.0 };
    let mut plane = Plane {
        w: gray.width() as usize,
        h: gray.height() as usize,
        data: gray.as_raw().iter().map(|&v| (f32::from(v) - mean) * inv_std).collect(),
    };
    let sigma = 0.56 * GABOR_WAVELENGTH;
    let half = (3.0 * sigma).ceil() as i64;
    let gauss: Vec<f32> = (-half..=half).map(|i| (-(i * i) as f32 / (2.0 * sigma * sigma)).exp()).collect();
    let gsum: f32 = gauss.iter().sum();
    let k = std::f32::consts::TAU / GABOR_WAVELENGTH;
    let mut out = Vec::with_capacity(2 * GABOR_ORIENTATIONS * GABOR_SCALES);
    for scale in 0..GABOR_SCALES {
        if scale > 0 {
            plane = plane.half();
        }
        for o in 0..GABOR_ORIENTATIONS {
            let theta = std::f32::consts::PI * o as f32 / GABOR_ORIENTATIONS as f32;
            let (kx, ky) = (k * theta.cos(), k * theta.sin());
            // Separable complex kernel: G(x)·e^{i·kx·x} along rows, G(y)·e^{i·ky·y} along columns.
            let fx: Vec<(f32, f32)> = (-half..=half)
                .zip(&gauss)
                .map(|(i, g)| (g / gsum * (kx * i as f32).cos(), g / gsum * (kx * i as f32).sin()))
                .collect();
            let fy: Vec<(f32, f32)> = (-half..=half)
                .zip(&gauss)
                .map(|(i, g)| (g / gsum * (ky * i as f32).cos(), g / gsum * (ky * i as f32).sin()))
                .collect();
            let (m, s) = gabor_response_stats(&plane, &fx, &fy, half);
            out.push(m);
            out.push(s);
        }
    }
    out
}

/// Filter `plane` with the separable complex kernel (replicated borders) and return the mean
/// and standard deviation of the response magnitude.
fn gabor_response_stats(plane: &Plane, fx: &[(f32, f32)], fy: &[(f32, f32)], half: i64) -> (f32, f32) {
    let (w, h) = (plane.w as i64, plane.h as i64);
    let mut re = vec![0f32; plane.data.len()];
    let mut im = vec![0f32; plane.data.len()];
    for y in 0..h {
        let row = &plane.data[(y * w) as usize..((y + 1) * w) as usize];
        for x in 0..w {
            let (mut a, mut b) = (0f32, 0f32);
            for (t, &(cr, ci)) in fx.iter().enumerate() {
                let xx = (x + t as i64 - half).clamp(0, w - 1) as usize;
                a += row[xx] * cr;
                b += row[xx] * ci;
            }
            re[(y * w + x) as usize] = a;
            im[(y * w + x) as usize] = b;
        }
    }
    let (mut sum, mut sum2) = (0f64, 0f64);
    for y in 0..h {
        for x in 0..w {
            let (mut a, mut b) = (0f32, 0f32);
            for (t, &(cr, ci)) in fy.iter().enumerate() {
                let yy = (y + t as i64 - half).clamp(0, h - 1);
                let idx = (yy * w + x) as usize;
                let (pr, pi) = (re[idx], im[idx]);
                a += pr * cr - pi * ci;
                b += pr * ci + pi * cr;
            }
            let mag = f64::from((a * a + b * b).sqrt());
            sum += mag;
            sum2 += mag * mag;
        }
    }
    let n = (w * h).max(1) as f64;
    let mean = sum / n;
    let var = (sum2 / n - mean * mean).max(0.0);
    (mean as f32, var.sqrt() as f32)
}

impl FeatureExtractor for Texture {
    fn name(&self) -> &str {
        "texture"
    }
    fn dim(&self) -> usize {
        TEXTURE_DIM
    }
    fn distance(&self) -> DistanceKind {
        DistanceKind::L2
    }
    fn min_input_side(&self) -> u32 {
        WORK_SHORTER_SIDE
    }
    fn extract(&self, image: &RgbImage) -> Result<Features> {
        let (lbp1, lbp2, gabor) = self.parts(image);
        let scale = 1.0 / 3f32.sqrt();
        let gnorm = gabor.iter().map(|v| v * v).sum::<f32>().sqrt();
        let ginv = if gnorm > 0.0 { scale / gnorm } else { 0.0 };
        let mut v = Vec::with_capacity(TEXTURE_DIM);
        v.extend(lbp1.iter().map(|p| p.sqrt() * scale));
        v.extend(lbp2.iter().map(|p| p.sqrt() * scale));
        v.extend(gabor.iter().map(|g| g * ginv));
        Ok(Features { vector: Embedding::Dense(v), tags: Vec::new() })
    }
}
