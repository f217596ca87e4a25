//! Local keypoints with binary descriptors, ORB style, for geometric verification: oriented
//! FAST corners found at several scales of the image, each described by 256 BRIEF intensity
//! tests on a patch turned to the corner's orientation (so that a turned or rescaled copy of
//! the image gets the same descriptors at the corresponding places).
//!
//! The corner detector and the BRIEF tests are `imageproc`'s; this module adds the scale
//! pyramid, the steering of each patch and the spreading of corners over the image. Matching
//! is a brute-force nearest neighbour in Hamming distance with Lowe's ratio test.
//!
//! Inputs come from the guarded decoder ([`crate::decode`]); here an image too small to hold a
//! patch simply has no keypoints, and a large one is reduced to [`KeypointParams::max_side`].

use image::{GrayImage, Luma, RgbImage};
use imageproc::binary_descriptors::brief::{brief, TestPair};
use imageproc::corners::oriented_fast;
use imageproc::point::Point;

use crate::preprocess::{fit_within, resize_exact, to_gray, ResizeFilter};

/// A bad keypoint setting or a descriptor the library refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum KeypointError {
    /// A [`KeypointParams`] field is out of range.
    #[error("bad keypoint parameter: {0}")]
    BadParams(String),
    /// The BRIEF descriptor computation failed (a bug: the patches are built to fit).
    #[error("keypoint descriptors: {0}")]
    Descriptor(String),
}

/// How keypoints are found.
#[derive(Debug, Clone, PartialEq)]
pub struct KeypointParams {
    /// The image is reduced so that its longer side is at most this (pixels, 64..=4096).
    pub max_side: u32,
    /// Pyramid levels (1..=12), each smaller than the last by `scale_step`.
    pub levels: usize,
    /// Size ratio between pyramid levels (1.1..=2).
    pub scale_step: f32,
    /// Most keypoints kept over all levels (1..=20000).
    pub max_keypoints: usize,
}

impl Default for KeypointParams {
    fn default() -> Self {
        KeypointParams { max_side: 640, levels: 6, scale_step: 1.3, max_keypoints: 900 }
    }
}

impl KeypointParams {
    fn check(&self) -> Result<(), KeypointError> {
        let bad = |m: &str| Err(KeypointError::BadParams(m.into()));
        if !(64..=4096).contains(&self.max_side) {
            return bad("max_side must be 64..=4096");
        }
        if !(1..=12).contains(&self.levels) {
            return bad("levels must be 1..=12");
        }
        if !(self.scale_step >= 1.1 && self.scale_step <= 2.0) {
            return bad("scale_step must be 1.1..=2");
        }
        if !(1..=20000).contains(&self.max_keypoints) {
            return bad("max_keypoints must be 1..=20000");
        }
        Ok(())
    }
}

/// One keypoint, in the pixel coordinates of the image given to [`detect`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Keypoint {
    /// Column (x to the right).
    pub x: f32,
    /// Row (y down).
    pub y: f32,
    /// Orientation in radians (towards the patch's intensity centroid).
    pub angle: f32,
    /// Pyramid level it was found at (0 = the largest).
    pub level: u8,
}

/// A 256-bit BRIEF descriptor.
pub type Descriptor = [u128; 2];

/// The keypoints of one image and their descriptors (same order).
#[derive(Debug, Clone, Default)]
pub struct KeypointSet {
    /// The keypoints.
    pub keypoints: Vec<Keypoint>,
    /// Their descriptors.
    pub descriptors: Vec<Descriptor>,
    /// Width of the image the coordinates refer to.
    pub width: u32,
    /// Height of that image.
    pub height: u32,
}

/// BRIEF's patch is 31×31 around the keypoint; a steered patch is sampled into a tile of
/// this side with the keypoint at its centre, which BRIEF's edge check accepts.
const TILE: u32 = 34;
const TILE_CENTRE: u32 = 17;
/// Corners closer than this to a level's border are skipped (the orientation patch is 31×31).
const EDGE: u32 = 16;
/// Smallest level side searched for corners.
const MIN_LEVEL_SIDE: u32 = 48;
/// Grid cells per side over which corners are spread.
const CELLS: u32 = 4;

/// The fixed BRIEF test pairs (the same for every image, so descriptors compare): pairs of
/// points in the 31×31 patch drawn from a Gaussian around its centre by a fixed-seed generator.
fn test_pairs() -> &'static Vec<TestPair> {
    static PAIRS: std::sync::OnceLock<Vec<TestPair>> = std::sync::OnceLock::new();
    PAIRS.get_or_init(|| {
        let mut state = 0x0b51_7e57_u64;
        let mut uniform = move || {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((state >> 11) as f64 + 0.5) / (1u64 << 53) as f64
        };
        // Box–Muller, sigma 31²/25 as in BRIEF's best configuration (≈ 6.2 px).
        let mut gauss = move || {
            let (u, v) = (uniform(), uniform());
            (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos() * 6.2
        };
        let mut pairs = Vec::with_capacity(256);
        while pairs.len() < 256 {
            let c: Vec<i64> = (0..4).map(|_| (15.0 + gauss()).round() as i64).collect();
            if c.iter().all(|&v| (0..31).contains(&v)) && (c[0], c[1]) != (c[2], c[3]) {
                let p = |x: i64, y: i64| Point::new(x as u32, y as u32);
                pairs.push(TestPair { p0: p(c[0], c[1]), p1: p(c[2], c[3]) });
            }
        }
        pairs
    })
}

/// Bilinear sample of the `w`×`h` gray pixels `px` at (x, y), clamped to the image.
fn sample(px: &[u8], w: usize, h: usize, x: f32, y: f32) -> u8 {
    let x = x.clamp(0.0, (w - 1) as f32);
    let y = y.clamp(0.0, (h - 1) as f32);
    let (x0, y0) = (x as usize, y as usize);
    let (x1, y1) = ((x0 + 1).min(w - 1), (y0 + 1).min(h - 1));
    let (fx, fy) = (x - x0 as f32, y - y0 as f32);
    let p = |x: usize, y: usize| px[y * w + x] as f32;
    let top = p(x0, y0) * (1.0 - fx) + p(x1, y0) * fx;
    let bottom = p(x0, y1) * (1.0 - fx) + p(x1, y1) * fx;
    (top * (1.0 - fy) + bottom * fy + 0.5) as u8
}

/// The corners of one pyramid level, spread over a grid: at most `target`, the strongest of
/// each cell first.
fn level_corners(level: &GrayImage, target: usize, seed: u64) -> Vec<(u32, u32, f32)> {
    let (w, h) = level.dimensions();
    let found = oriented_fast(level, None, target * 3, EDGE, Some(seed));
    let per_cell = (target as u32).div_ceil(CELLS * CELLS).max(1) as usize * 2;
    let mut counts = vec![0usize; (CELLS * CELLS) as usize];
    let mut out = Vec::with_capacity(target);
    for c in found {
        let cell = ((c.corner.y * CELLS / h) * CELLS + c.corner.x * CELLS / w) as usize;
        if counts[cell] < per_cell {
            counts[cell] += 1;
            out.push((c.corner.x, c.corner.y, c.orientation));
            if out.len() == target {
                break;
            }
        }
    }
    out
}

/// The keypoints of `image` and their descriptors.
pub fn detect(image: &RgbImage, params: &KeypointParams) -> Result<KeypointSet, KeypointError> {
    params.check()?;
    let (width, height) = image.dimensions();
    let mut set = KeypointSet { width, height, ..Default::default() };
    if width.min(height) < MIN_LEVEL_SIDE {
        return Ok(set);
    }
    let base = fit_within(image, params.max_side, ResizeFilter::Bilinear);
    // Share of the keypoints per level, proportional to the level's side (not its area: the
    // small levels are what a copy pasted small matches).
    let r = 1.0 / params.scale_step;
    let total_weight: f32 = (0..params.levels).map(|l| r.powi(l as i32)).sum();
    let mut tiles: Vec<Keypoint> = Vec::new();
    let mut patches: Vec<[u8; (TILE * TILE) as usize]> = Vec::new();
    for l in 0..params.levels {
        let f = params.scale_step.powi(l as i32);
        let (lw, lh) = ((base.width() as f32 / f).round() as u32, (base.height() as f32 / f).round() as u32);
        if lw.min(lh) < MIN_LEVEL_SIDE {
            break;
        }
        let level = if l == 0 { to_gray(&base) } else { to_gray(&resize_exact(&base, lw, lh, ResizeFilter::Bilinear)) };
        // Level pixels -> the input image's pixels.
        let (sx, sy) = (width as f32 / lw as f32, height as f32 / lh as f32);
        let (w, h, px) = (lw as usize, lh as usize, level.as_raw());
        let target = ((params.max_keypoints as f32 * r.powi(l as i32) / total_weight).round() as usize).max(1);
        for (x, y, angle) in level_corners(&level, target, 0x0fa5_7000 + l as u64) {
            let (s, c) = angle.sin_cos();
            let mut patch = [0u8; (TILE * TILE) as usize];
            for v in 0..TILE {
                let dv = v as f32 - TILE_CENTRE as f32;
                let (bx, by) = (x as f32 - dv * s, y as f32 + dv * c);
                for u in 0..TILE {
                    let du = u as f32 - TILE_CENTRE as f32;
                    patch[(v * TILE + u) as usize] = sample(px, w, h, bx + du * c, by + du * s);
                }
            }
            patches.push(patch);
            let (kx, ky) = ((x as f32 + 0.5) * sx - 0.5, (y as f32 + 0.5) * sy - 0.5);
            tiles.push(Keypoint { x: kx, y: ky, angle, level: l as u8 });
        }
    }
    if tiles.is_empty() {
        return Ok(set);
    }
    // All steered patches side by side in one mosaic, described by one BRIEF call.
    let cols = (tiles.len() as f32).sqrt().ceil() as u32;
    let rows = (tiles.len() as u32).div_ceil(cols);
    let mut mosaic = GrayImage::new(cols * TILE, rows * TILE);
    let mut centres = Vec::with_capacity(tiles.len());
    for (i, patch) in patches.iter().enumerate() {
        let (ox, oy) = ((i as u32 % cols) * TILE, (i as u32 / cols) * TILE);
        for v in 0..TILE {
            for u in 0..TILE {
                mosaic.put_pixel(ox + u, oy + v, Luma([patch[(v * TILE + u) as usize]]));
            }
        }
        centres.push(Point::new(ox + TILE_CENTRE, oy + TILE_CENTRE));
    }
    let (descs, _) = brief(&mosaic, &centres, 256, Some(test_pairs())).map_err(KeypointError::Descriptor)?;
    set.descriptors = descs.into_iter().map(|d| [d.bits[0], d.bits[1]]).collect();
    set.keypoints = tiles;
    Ok(set)
}

/// Bits that differ between two descriptors (0..=256).
pub fn hamming(a: &Descriptor, b: &Descriptor) -> u32 {
    (a[0] ^ b[0]).count_ones() + (a[1] ^ b[1]).count_ones()
}

/// Settings of [`match_sets`].
#[derive(Debug, Clone, PartialEq)]
pub struct MatchParams {
    /// Largest Hamming distance of a match (of 256 bits).
    pub max_distance: u32,
    /// A match must be closer than this share of the second-best candidate's distance.
    pub ratio: f32,
}

impl Default for MatchParams {
    fn default() -> Self {
        MatchParams { max_distance: 64, ratio: 0.85 }
    }
}

/// Pairs `(i, j)`: keypoint `i` of `a` matched to keypoint `j` of `b`, when each is the
/// other's nearest descriptor (one to one), close enough, and clearly closer than `i`'s second
/// nearest in `b`.
pub fn match_sets(a: &KeypointSet, b: &KeypointSet, params: &MatchParams) -> Vec<(usize, usize)> {
    // Nearest of each descriptor of `b` in `a`, for the cross-check.
    let mut best_in_a = vec![(u32::MAX, usize::MAX); b.descriptors.len()];
    let mut out = Vec::new();
    for (i, da) in a.descriptors.iter().enumerate() {
        let (mut best, mut second, mut best_j) = (u32::MAX, u32::MAX, 0);
        for (j, db) in b.descriptors.iter().enumerate() {
            let d = hamming(da, db);
            if d < best_in_a[j].0 {
                best_in_a[j] = (d, i);
            }
            if d < best {
                second = best;
                best = d;
                best_j = j;
            } else if d < second {
                second = d;
            }
        }
        if best <= params.max_distance && (best as f32) < params.ratio * second as f32 {
            out.push((i, best_j));
        }
    }
    out.retain(|&(i, j)| best_in_a[j].1 == i);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A textured test image: blobs and bars of varied brightness.
    pub(crate) fn scene(w: u32, h: u32) -> RgbImage {
        RgbImage::from_fn(w, h, |x, y| {
            let (fx, fy) = (x as f32, y as f32);
            let v = 128.0
                + 60.0 * ((fx * 0.05).sin() * (fy * 0.07).cos())
                + 50.0 * (((x / 23) * 7 + (y / 17) * 13) % 5) as f32 / 4.0
                - 40.0 * ((fx * 0.013 + fy * 0.021).sin() > 0.6) as u8 as f32;
            let v = v.clamp(0.0, 255.0) as u8;
            image::Rgb([v, v.wrapping_mul(3) / 2, 255 - v])
        })
    }

    #[test]
    fn tiny_images_have_no_keypoints_and_bad_params_are_refused() {
        let set = detect(&RgbImage::new(20, 400), &KeypointParams::default()).unwrap();
        assert!(set.keypoints.is_empty() && set.descriptors.is_empty());
        let flat = detect(&RgbImage::new(300, 200), &KeypointParams::default()).unwrap();
        assert!(flat.keypoints.is_empty());
        let bad = KeypointParams { levels: 0, ..Default::default() };
        assert!(matches!(detect(&scene(100, 100), &bad), Err(KeypointError::BadParams(_))));
    }

    #[test]
    fn an_image_matches_itself_at_the_same_places() {
        let img = scene(400, 300);
        let set = detect(&img, &KeypointParams::default()).unwrap();
        assert!(set.keypoints.len() > 100, "{} keypoints", set.keypoints.len());
        assert_eq!(set.keypoints.len(), set.descriptors.len());
        let m = match_sets(&set, &set, &MatchParams { ratio: 1.01, ..Default::default() });
        let same = m.iter().filter(|(i, j)| {
            let (a, b) = (set.keypoints[*i], set.keypoints[*j]);
            (a.x - b.x).abs() < 1.0 && (a.y - b.y).abs() < 1.0
        });
        assert!(same.count() * 10 >= set.keypoints.len() * 9);
    }
}
