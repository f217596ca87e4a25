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
        for (x, y, ww, wh) in windows(mw, mh, settings) {
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
    }
}
