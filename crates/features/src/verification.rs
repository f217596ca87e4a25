//! Geometric verification of one image pair: match the keypoints of a query and a candidate
//! ([`crate::keypoints`]), fit the affine transform most matches agree on
//! ([`crate::geometry::ransac_affine`]) and report how many matches it explains (the inliers)
//! and where the query's corners land in the candidate (the matched quadrilateral).
//!
//! A copy of the candidate — cropped, rescaled, turned, pasted into another picture — shares
//! dozens of consistent matches with it; an unrelated image only a handful by chance.

use serde::Serialize;

use crate::geometry::{ransac_affine, Affine, Pt, RansacParams};
use crate::keypoints::{match_sets, KeypointSet, MatchParams};

/// Settings of [`verify_pair`].
#[derive(Debug, Clone, PartialEq)]
pub struct VerifyParams {
    /// Descriptor matching.
    pub matching: MatchParams,
    /// Inlier tolerance as a share of the candidate's longer side (0.02 = 2%).
    pub tolerance: f32,
    /// Inliers needed to call the pair a verified match.
    pub min_inliers: usize,
}

/// The default [`VerifyParams::min_inliers`]: unrelated photos of the copy-detection
/// benchmark stay well under it (BENCHMARKS.md).
pub const MIN_INLIERS: usize = 15;

impl Default for VerifyParams {
    fn default() -> Self {
        VerifyParams { matching: MatchParams::default(), tolerance: 0.02, min_inliers: MIN_INLIERS }
    }
}

/// The outcome of verifying a query against a candidate.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PairMatch {
    /// Descriptor matches found (before the geometric fit).
    pub matches: usize,
    /// Matches consistent with the fitted transform.
    pub inliers: usize,
    /// Whether `inliers` reaches [`VerifyParams::min_inliers`].
    pub verified: bool,
    /// The query's corners (top-left, top-right, bottom-right, bottom-left) in the candidate's
    /// pixel coordinates: where the query appears in it. `None` when nothing was fitted.
    pub quad: Option<[Pt; 4]>,
    /// The fitted query → candidate transform, `None` when nothing was fitted.
    #[serde(skip)]
    pub transform: Option<Affine>,
}

/// Verify `query` against `candidate` (keypoint sets of the two images).
pub fn verify_pair(query: &KeypointSet, candidate: &KeypointSet, params: &VerifyParams) -> PairMatch {
    let pairs: Vec<(Pt, Pt)> = match_sets(query, candidate, &params.matching)
        .into_iter()
        .map(|(i, j)| {
            let (a, b) = (query.keypoints[i], candidate.keypoints[j]);
            ((a.x, a.y), (b.x, b.y))
        })
        .collect();
    let tolerance = (params.tolerance * candidate.width.max(candidate.height) as f32).max(2.0);
    let fit = ransac_affine(&pairs, &RansacParams { tolerance, ..Default::default() });
    let inliers = fit.as_ref().map_or(0, |f| f.inliers.len());
    let (w, h) = (query.width as f32, query.height as f32);
    PairMatch {
        matches: pairs.len(),
        inliers,
        verified: inliers >= params.min_inliers,
        quad: fit.as_ref().map(|f| [(0.0, 0.0), (w, 0.0), (w, h), (0.0, h)].map(|p| f.transform.apply(p))),
        transform: fit.map(|f| f.transform),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::augment;
    use crate::keypoints::{detect, KeypointParams};
    use image::{imageops, RgbImage};

    fn scene(w: u32, h: u32, seed: u32) -> RgbImage {
        RgbImage::from_fn(w, h, |x, y| {
            let (fx, fy) = (x as f32, y as f32);
            let k = seed as f32;
            let v = 128.0
                + 60.0 * ((fx * 0.05 + k).sin() * (fy * 0.07 - k).cos())
                + 50.0 * (((x / 23) * 7 + (y / 17) * (13 + seed) + seed) % 5) as f32 / 4.0
                - 40.0 * ((fx * 0.013 + fy * 0.021 + k).sin() > 0.6) as u8 as f32;
            let v = v.clamp(0.0, 255.0) as u8;
            image::Rgb([v, v.wrapping_mul(3) / 2, 255 - v])
        })
    }

    fn kp(img: &RgbImage) -> KeypointSet {
        detect(img, &KeypointParams::default()).unwrap()
    }

    #[test]
    fn a_pasted_copy_is_verified_and_its_quad_found() {
        let original = scene(480, 360, 1);
        // The original at half size pasted at (200, 150) into another picture.
        let mut composite = scene(640, 480, 5);
        imageops::overlay(
            &mut composite,
            &imageops::resize(&original, 240, 180, imageops::FilterType::Triangle),
            200,
            150,
        );
        // Query = the original, candidate = the composite: the original's corners land on the
        // pasted rectangle.
        let m = verify_pair(&kp(&original), &kp(&composite), &VerifyParams::default());
        assert!(m.verified && m.inliers >= 30, "{m:?}");
        let quad = m.quad.unwrap();
        for (got, want) in quad.iter().zip([(200.0, 150.0), (440.0, 150.0), (440.0, 330.0), (200.0, 330.0)]) {
            assert!((got.0 - want.0).abs() < 8.0 && (got.1 - want.1).abs() < 8.0, "{quad:?}");
        }
    }

    #[test]
    fn a_turned_copy_is_verified_and_an_unrelated_image_is_not() {
        let original = scene(480, 360, 2);
        let turned = augment::rotate_inscribed(&original, 30.0);
        let m = verify_pair(&kp(&turned), &kp(&original), &VerifyParams::default());
        assert!(m.verified && m.inliers >= 25, "{m:?}");
        let other = verify_pair(&kp(&scene(480, 360, 9)), &kp(&original), &VerifyParams::default());
        assert!(!other.verified && other.inliers < m.inliers / 3, "{other:?} vs {m:?}");
    }
}
