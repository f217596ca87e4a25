//! Joint HSV color histogram (global, or on a 2×2 spatial grid).
//!
//! * The image is shrunk (longer side at most [`WORK_SIDE`] px, never enlarged) and optionally
//!   median-denoised; each pixel is converted to HSV.
//! * Each pixel votes into a joint `hue_bins × sat_bins × val_bins` histogram (default
//!   8 × 4 × 4 = 128 bins) with trilinear soft binning: its vote is shared between the two
//!   nearest bin centers along each axis, so a small color shift moves mass gradually instead
//!   of jumping between bins. Hue is circular: a hue of 359° shares its vote between the last
//!   and the first hue bin, exactly like 1° does, so reds near the wrap stay close.
//! * Hue is meaningless for gray pixels (and noisy for nearly gray ones), so the hue vote is
//!   weighted by the pixel's chroma `max − min`: a pixel with chroma ≥ [`FULL_CHROMA`] votes for
//!   its hue, a gray pixel spreads its vote evenly over all hue bins, and in between the vote is
//!   mixed linearly.
//! * Each block's histogram is L1-normalized (sums to 1), then square-rooted (Hellinger
//!   mapping: the L2 distance of square-rooted histograms is the Hellinger distance, which
//!   compares histograms better than L2 on raw counts). The blocks are scaled by
//!   `1/√blocks`, so every vector has unit L2 norm and distances lie in `[0, √2]`.
//!
//! Grids ([`ColorGrid`]): `Global` = 1 block (128 dims); `Grid2x2` = the four quadrants
//! (4 × 128 = 512 dims, top-left, top-right, bottom-left, bottom-right); `Grid2x2Global` =
//! the whole image then the four quadrants (5 × 128 = 640 dims): adds coarse layout ("blue
//! on top, green below") to the global colors. Quadrant votes are hard-assigned by pixel
//! position.

use image::RgbImage;

use crate::error::{FeatureError, Result};
use crate::extractor::{DistanceKind, Embedding, FeatureExtractor, Features};
use crate::preprocess::{denoise, fit_within, ResizeFilter};

/// Longer side, in pixels, of the image the histogram is computed on.
pub const WORK_SIDE: u32 = 160;

/// Chroma (`max − min` of R, G, B in `[0, 1]`) from which a pixel's hue counts fully.
pub const FULL_CHROMA: f32 = 0.1;

/// Spatial layout of the color histogram.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ColorGrid {
    /// One histogram of the whole image.
    #[default]
    Global,
    /// One histogram per quadrant (4 blocks).
    Grid2x2,
    /// The whole image, then each quadrant (5 blocks).
    Grid2x2Global,
}

impl ColorGrid {
    /// Number of histogram blocks.
    pub fn blocks(self) -> usize {
        match self {
            ColorGrid::Global => 1,
            ColorGrid::Grid2x2 => 4,
            ColorGrid::Grid2x2Global => 5,
        }
    }
}

/// Settings of the color histogram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ColorOptions {
    /// Hue bins (circular), default 8.
    pub hue_bins: usize,
    /// Saturation bins, default 4.
    pub sat_bins: usize,
    /// Value (brightness) bins, default 4.
    pub val_bins: usize,
    /// Spatial layout, default global.
    pub grid: ColorGrid,
}

impl Default for ColorOptions {
    fn default() -> Self {
        ColorOptions { hue_bins: 8, sat_bins: 4, val_bins: 4, grid: ColorGrid::Global }
    }
}

/// The color histogram extractor (`color`, L2 distance).
#[derive(Debug, Clone)]
pub struct ColorHistogram {
    opts: ColorOptions,
    denoise: bool,
}

impl ColorHistogram {
    /// A color histogram with the given bins and grid; `denoise` applies a 3×3 median filter
    /// to the working image first. Every bin count must be at least 1 (at least 2 hue bins).
    pub fn new(opts: ColorOptions, denoise: bool) -> Result<Self> {
        if opts.hue_bins < 2 || opts.sat_bins == 0 || opts.val_bins == 0 {
            return Err(FeatureError::InvalidArgument(format!(
                "color histogram needs at least 2 hue bins and 1 saturation/value bin, got {}×{}×{}",
                opts.hue_bins, opts.sat_bins, opts.val_bins
            )));
        }
        if opts.hue_bins * opts.sat_bins * opts.val_bins > 4096 {
            return Err(FeatureError::InvalidArgument("color histogram: more than 4096 bins per block".into()));
        }
        Ok(ColorHistogram { opts, denoise })
    }

    /// Bins of one block.
    pub fn bins_per_block(&self) -> usize {
        self.opts.hue_bins * self.opts.sat_bins * self.opts.val_bins
    }

    /// The L1-normalized histograms (each block sums to 1, before the square root), blocks
    /// concatenated in grid order. Bin index = `(h · sat_bins + s) · val_bins + v`.
    pub fn histograms(&self, image: &RgbImage) -> Vec<f32> {
        let small = fit_within(image, WORK_SIDE, ResizeFilter::Bilinear);
        let small = if self.denoise { denoise(&small, 1) } else { small };
        let nb = self.bins_per_block();
        let blocks = self.opts.grid.blocks();
        let mut hist = vec![0f32; nb * blocks];
        let (w, h) = small.dimensions();
        for (x, y, px) in small.enumerate_pixels() {
            let quadrant = usize::from(2 * y >= h) * 2 + usize::from(2 * x >= w);
            match self.opts.grid {
                ColorGrid::Global => self.vote(&mut hist[..nb], px.0),
                ColorGrid::Grid2x2 => self.vote(&mut hist[quadrant * nb..(quadrant + 1) * nb], px.0),
                ColorGrid::Grid2x2Global => {
                    self.vote(&mut hist[..nb], px.0);
                    self.vote(&mut hist[(quadrant + 1) * nb..(quadrant + 2) * nb], px.0);
                }
            }
        }
        for block in hist.chunks_mut(nb) {
            let sum: f32 = block.iter().sum();
            if sum > 0.0 {
                block.iter_mut().for_each(|b| *b /= sum);
            } else {
                // An empty quadrant (image 1 px wide/high): uniform, so the block is still unit.
                block.iter_mut().for_each(|b| *b = 1.0 / nb as f32);
            }
        }
        hist
    }

    /// Add one pixel's unit vote to `hist` (one block), trilinearly.
    fn vote(&self, hist: &mut [f32], rgb: [u8; 3]) {
        let o = &self.opts;
        let (hue, sat, val, chroma) = rgb_to_hsv(rgb);
        // Hue: circular soft binning; centers at (i + 0.5) · 360/hue_bins.
        let hp = hue / 360.0 * o.hue_bins as f32 - 0.5;
        let h0f = hp.floor();
        let hf = hp - h0f;
        let h0 = (h0f as i64).rem_euclid(o.hue_bins as i64) as usize;
        let h1 = (h0 + 1) % o.hue_bins;
        let conf = (chroma / FULL_CHROMA).min(1.0);
        let spread = (1.0 - conf) / o.hue_bins as f32;
        let (s0, s1, sf) = linear_bins(sat, o.sat_bins);
        let (v0, v1, vf) = linear_bins(val, o.val_bins);
        let sv = [
            (s0, v0, (1.0 - sf) * (1.0 - vf)),
            (s0, v1, (1.0 - sf) * vf),
            (s1, v0, sf * (1.0 - vf)),
            (s1, v1, sf * vf),
        ];
        for &(s, v, w) in &sv {
            if w == 0.0 {
                continue;
            }
            let base = s * o.val_bins + v;
            let stride = o.sat_bins * o.val_bins;
            hist[h0 * stride + base] += w * conf * (1.0 - hf);
            hist[h1 * stride + base] += w * conf * hf;
            if spread > 0.0 {
                for hb in 0..o.hue_bins {
                    hist[hb * stride + base] += w * spread;
                }
            }
        }
    }
}

/// Soft binning on `[0, 1]` (not circular): the two nearest bin centers and the weight of
/// the upper one; values beyond the outer centers go fully to the outer bin.
fn linear_bins(x: f32, bins: usize) -> (usize, usize, f32) {
    if bins == 1 {
        return (0, 0, 0.0);
    }
    let p = (x * bins as f32 - 0.5).clamp(0.0, (bins - 1) as f32);
    let lo = (p.floor() as usize).min(bins - 2);
    (lo, lo + 1, p - lo as f32)
}

/// HSV of an 8-bit RGB pixel: hue in degrees `[0, 360)`, saturation and value in `[0, 1]`,
/// plus chroma `max − min` in `[0, 1]`. Gray pixels get hue 0.
pub fn rgb_to_hsv(rgb: [u8; 3]) -> (f32, f32, f32, f32) {
    let [r, g, b] = rgb.map(|c| f32::from(c) / 255.0);
    let max = r.max(g).max(b);
    let min = r.min(g).min(b);
    let c = max - min;
    let hue = if c <= 0.0 {
        0.0
    } else if max == r {
        60.0 * ((g - b) / c).rem_euclid(6.0)
    } else if max == g {
        60.0 * ((b - r) / c + 2.0)
    } else {
        60.0 * ((r - g) / c + 4.0)
    };
    let sat = if max > 0.0 { c / max } else { 0.0 };
    (hue.rem_euclid(360.0), sat, max, c)
}

impl FeatureExtractor for ColorHistogram {
    fn name(&self) -> &str {
        "color"
    }
    fn dim(&self) -> usize {
        self.bins_per_block() * self.opts.grid.blocks()
    }
    fn distance(&self) -> DistanceKind {
        DistanceKind::L2
    }
    fn min_input_side(&self) -> u32 {
        // The histograms are taken on the image shrunk to WORK_SIDE on its longer side.
        WORK_SIDE
    }
    fn extract(&self, image: &RgbImage) -> Result<Features> {
        let blocks = self.opts.grid.blocks() as f32;
        let scale = 1.0 / blocks.sqrt();
        let vector = self.histograms(image).into_iter().map(|p| p.sqrt() * scale).collect();
        Ok(Features { vector: Embedding::Dense(vector), tags: Vec::new() })
    }
}
