//! Regional descriptors: one pass of the network over the whole image (aspect kept, at a size
//! where a pasted or cropped part keeps about the scale the global embedding sees), then
//! windows of the head's feature map average-pooled and L2-normalized like the global
//! embedding (R-MAC's regions, with the global embedding's mean pooling so that a region that
//! covers a pasted photo lands near that photo's own global vector).
//!
//! One cell of the map covers 32 × 32 input pixels; a window of `w × h` cells is a region of
//! the image. Pooling every window costs a sum over its cells from a summed-area table, so a
//! few hundred regions cost about one network pass at the larger size.

use candle_core::Device;
use image::RgbImage;

use super::{input, CnnExtractor};
use crate::error::{FeatureError, Result};
use crate::extractor::{DistanceKind, Embedding, FeatureExtractor, Features};
use crate::preprocess::{resize_exact, ResizeFilter};

/// A region of an image, in shares of its width and height (`0..=1`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Region {
    /// Left edge.
    pub x: f32,
    /// Top edge.
    pub y: f32,
    /// Width.
    pub w: f32,
    /// Height.
    pub h: f32,
}

/// Which windows of the feature map become regions.
#[derive(Debug, Clone, PartialEq)]
pub struct RegionSettings {
    /// Shorter side of the image fed to the network, in pixels (rounded to a multiple of 32).
    pub shorter: u32,
    /// Longest side allowed (the longer side is cut to this, keeping the centre).
    pub longer_max: u32,
    /// Window sides, in cells, along the shorter side of the map (the other side follows the
    /// aspect ratios).
    pub sides: Vec<usize>,
    /// Window aspect ratios (width / height).
    pub aspects: Vec<f32>,
    /// Windows are placed every `max(1, side / step_div)` cells.
    pub step_div: usize,
}

impl Default for RegionSettings {
    fn default() -> RegionSettings {
        RegionSettings {
            shorter: 416,
            longer_max: 640,
            sides: vec![4, 5, 6, 7, 8, 10],
            aspects: vec![1.0, 4.0 / 3.0, 3.0 / 4.0],
            step_div: 3,
        }
    }
}

/// The regions of one image and their unit-length vectors.
#[derive(Debug, Clone)]
pub struct RegionVectors {
    /// Where each region is.
    pub regions: Vec<Region>,
    /// One L2-normalized vector per region, of the global embedding's dimension.
    pub vectors: Vec<Vec<f32>>,
}

/// Regions per image of the `regions` feature.
pub const STORED_REGIONS: usize = 5;
/// Shorter side of the pass that the `regions` feature pools (8 cells).
pub const STORED_SHORTER: u32 = 256;
/// Longest side of that pass (the centre is kept beyond: 12 cells).
pub const STORED_LONGER_MAX: u32 = 384;

/// The [`STORED_REGIONS`] windows of a `mw × mh` map: all of it, then its four corners at 2/3
/// of each side (rounded up).
fn fixed_windows(mw: usize, mh: usize) -> Vec<(usize, usize, usize, usize)> {
    let (w, h) = ((2 * mw).div_ceil(3).max(1), (2 * mh).div_ceil(3).max(1));
    vec![(0, 0, mw, mh), (0, 0, w, h), (mw - w, 0, w, h), (0, mh - h, w, h), (mw - w, mh - h, w, h)]
}

/// Window placements `(x, y, w, h)` in cells on a `mw × mh` map.
fn windows(mw: usize, mh: usize, s: &RegionSettings) -> Vec<(usize, usize, usize, usize)> {
    let mut out = Vec::new();
    let short = mw.min(mh);
    for &side in &s.sides {
        if side > short || side == 0 {
            continue;
        }
        for &a in &s.aspects {
            // `side` cells along the shorter map side; the other side by the aspect ratio.
            let (w, h) = if mw >= mh {
                (((side as f32) * a).round() as usize, side)
            } else {
                (side, ((side as f32) / a).round() as usize)
            };
            if w == 0 || h == 0 || w > mw || h > mh {
                continue;
            }
            let step = (side / s.step_div.max(1)).max(1);
            let xs: Vec<usize> = (0..=mw - w).step_by(step).chain(std::iter::once(mw - w)).collect();
            let ys: Vec<usize> = (0..=mh - h).step_by(step).chain(std::iter::once(mh - h)).collect();
            for &y in &ys {
                for &x in &xs {
                    out.push((x, y, w, h));
                }
            }
        }
    }
    out.sort_unstable();
    out.dedup();
    out
}

impl CnnExtractor {
    /// Regional descriptors of `image` (see the module docs): one network pass at
    /// `settings.shorter`, then every window of `settings` pooled into a unit vector.
    pub fn region_vectors(&self, image: &RgbImage, settings: &RegionSettings) -> Result<RegionVectors> {
        self.pooled_regions(image, settings.shorter, settings.longer_max, |mw, mh| windows(mw, mh, settings))
    }

    /// The vectors of [`STORED_REGIONS`] fixed regions of `image` (the whole image and its four
    /// corners at 2/3 of each side) from one pass at [`STORED_SHORTER`] pixels: what the
    /// `regions` feature stores ([`RegionsExtractor`]).
    pub fn stored_regions(&self, image: &RgbImage) -> Result<RegionVectors> {
        self.pooled_regions(image, STORED_SHORTER, STORED_LONGER_MAX, fixed_windows)
    }

    fn pooled_regions(
        &self,
        image: &RgbImage,
        shorter: u32,
        longer_max: u32,
        windows: impl Fn(usize, usize) -> Vec<(usize, usize, usize, usize)>,
    ) -> Result<RegionVectors> {
        let settings = RegionSettings { shorter, longer_max, ..RegionSettings::default() };
        let (iw, ih) = image.dimensions();
        if iw == 0 || ih == 0 {
            return Err(FeatureError::InvalidArgument(format!("cannot embed an empty {iw}×{ih} image")));
        }
        let round32 = |v: f64| ((v / 32.0).round().max(1.0) as u32) * 32;
        let shorter = round32(settings.shorter as f64);
        let scale = shorter as f64 / iw.min(ih) as f64;
        let longer = round32(iw.max(ih) as f64 * scale).min(round32(settings.longer_max as f64).max(shorter));
        let (w, h) = if iw >= ih { (longer, shorter) } else { (shorter, longer) };
        // Cut the longer side (centred) when it exceeds `longer_max`, keeping the scale.
        let (cw, ch) = ((w as f64 / scale).round() as u32, (h as f64 / scale).round() as u32);
        let (cx, cy) = ((iw.saturating_sub(cw)) / 2, (ih.saturating_sub(ch)) / 2);
        let cut = crate::augment::crop(image, (cx, cy, cw.min(iw), ch.min(ih)));
        let resized = resize_exact(&cut, w, h, ResizeFilter::Bilinear);
        let mut buf = Vec::with_capacity((w * h * 3) as usize);
        input::normalize_into(&resized, &mut buf);
        let map = self.net.feature_map(buf, 1, h as usize, w as usize)?;
        let (mh, mw, c) = (map.h, map.w, map.c);
        let cells: Vec<f32> = map.t.to_device(&Device::Cpu)?.flatten_all()?.to_vec1()?;
        // Summed-area table over the cells, per channel: sat[(y, x)] = sum of cells above-left.
        let idx = |y: usize, x: usize| (y * (mw + 1) + x) * c;
        let mut sat = vec![0f32; (mh + 1) * (mw + 1) * c];
        for y in 0..mh {
            for x in 0..mw {
                let cell = &cells[(y * mw + x) * c..][..c];
                let (up, left, diag, here) = (idx(y, x + 1), idx(y + 1, x), idx(y, x), idx(y + 1, x + 1));
                for k in 0..c {
                    sat[here + k] = cell[k] + sat[up + k] + sat[left + k] - sat[diag + k];
                }
            }
        }
        let (fx, fy) = (cw.min(iw) as f32 / iw as f32, ch.min(ih) as f32 / ih as f32);
        let (ox, oy) = (cx as f32 / iw as f32, cy as f32 / ih as f32);
        let mut regions = Vec::new();
        let mut vectors = Vec::new();
        for (x, y, ww, wh) in windows(mw, mh) {
            let (a, b, d, e) = (idx(y + wh, x + ww), idx(y, x + ww), idx(y + wh, x), idx(y, x));
            let mut v: Vec<f32> = (0..c).map(|k| sat[a + k] - sat[b + k] - sat[d + k] + sat[e + k]).collect();
            let norm = v.iter().map(|t| t * t).sum::<f32>().sqrt();
            if norm > 0.0 {
                v.iter_mut().for_each(|t| *t /= norm);
            }
            vectors.push(v);
            regions.push(Region {
                x: ox + fx * x as f32 / mw as f32,
                y: oy + fy * y as f32 / mh as f32,
                w: fx * ww as f32 / mw as f32,
                h: fy * wh as f32 / mh as f32,
            });
        }
        Ok(RegionVectors { regions, vectors })
    }
}

/// The `regions` feature: [`STORED_REGIONS`] regional descriptors per image
/// ([`CnnExtractor::stored_regions`]), stored side by side in a multi-vector field; a search
/// scores an image by its best region pair with the query's, which finds an image from a
/// crop of one of its corners, or a crop from the image, better than the global embedding.
pub struct RegionsExtractor {
    cnn: CnnExtractor,
}

impl RegionsExtractor {
    /// Regional descriptors from `cnn`'s feature map.
    pub fn new(cnn: CnnExtractor) -> RegionsExtractor {
        RegionsExtractor { cnn }
    }
}

impl FeatureExtractor for RegionsExtractor {
    fn name(&self) -> &str {
        "regions"
    }
    fn dim(&self) -> usize {
        self.cnn.dim()
    }
    fn vectors_per_image(&self) -> usize {
        STORED_REGIONS
    }
    fn distance(&self) -> DistanceKind {
        DistanceKind::Cosine
    }
    fn extract(&self, image: &RgbImage) -> Result<Features> {
        let r = self.cnn.stored_regions(image)?;
        if r.vectors.len() != STORED_REGIONS {
            return Err(FeatureError::Inference(format!("{} regions instead of {STORED_REGIONS}", r.vectors.len())));
        }
        Ok(Features { vector: Embedding::Dense(r.vectors.concat()), tags: Vec::new() })
    }
    fn min_input_side(&self) -> u32 {
        STORED_SHORTER
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_stay_inside_and_cover_the_corners() {
        let s = RegionSettings::default();
        let w = windows(20, 13, &s);
        assert!(!w.is_empty());
        for &(x, y, ww, wh) in &w {
            assert!(x + ww <= 20 && y + wh <= 13, "{x},{y} {ww}x{wh}");
        }
        assert!(w.contains(&(0, 0, 4, 4)) && w.contains(&(16, 9, 4, 4)));
        // A map smaller than every side gives no window.
        assert!(windows(3, 3, &s).is_empty());
        // The stored regions: the whole map and four corners, whatever its size.
        assert_eq!(fixed_windows(12, 8), vec![(0, 0, 12, 8), (0, 0, 8, 6), (4, 0, 8, 6), (0, 2, 8, 6), (4, 2, 8, 6)]);
        assert_eq!(fixed_windows(1, 1).len(), STORED_REGIONS);
    }
}
