//! Geometric verification of search hits (`--verify`): the query's local keypoints are matched
//! with those of each of the top-N candidates, decoded from their stored paths, and an affine
//! transform is fitted by RANSAC ([`features::verification`]). Hits verified with enough
//! inliers move to the front, most inliers first; the others keep their order. Each verified
//! hit reports its inlier count and the matched quadrilateral: the query's corners in the
//! candidate's pixels, where the query appears in it.
//!
//! A mirrored copy is verified too: a candidate that fails against the query is tried against
//! the query's mirror image. A candidate whose file is missing or unreadable is reported with
//! the error and keeps its place.

use std::collections::HashMap;
use std::path::Path;

use features::keypoints::{detect, KeypointParams, KeypointSet};
use features::verification::{verify_pair, PairMatch, VerifyParams};
use features::{load_image_sized, DecodeLimits, DecodeSize};
use image::RgbImage;
use rayon::prelude::*;
use serde::Serialize;

/// Candidates verified by default (`--verify` without a number).
pub const DEFAULT_TOP_N: usize = 20;
/// Most candidates one query may verify.
pub const MAX_TOP_N: usize = 200;

/// A `--verify` value that did not parse.
#[derive(Debug, thiserror::Error)]
#[error("bad verify value '{0}': expected the number of top hits to verify, 1 to {MAX_TOP_N}")]
pub struct VerifySpecError(pub String);

/// How hits are verified.
#[derive(Debug, Clone, PartialEq)]
pub struct VerifySettings {
    /// How many of the top hits are verified.
    pub top_n: usize,
    /// Keypoint detection (query and candidates alike).
    pub keypoints: KeypointParams,
    /// Matching, RANSAC tolerance, inliers needed.
    pub pair: VerifyParams,
}

impl Default for VerifySettings {
    fn default() -> Self {
        VerifySettings { top_n: DEFAULT_TOP_N, keypoints: KeypointParams::default(), pair: VerifyParams::default() }
    }
}

impl VerifySettings {
    /// Settings verifying the top `n` hits (1..=[`MAX_TOP_N`]).
    pub fn top(n: usize) -> Result<VerifySettings, VerifySpecError> {
        if !(1..=MAX_TOP_N).contains(&n) {
            return Err(VerifySpecError(n.to_string()));
        }
        Ok(VerifySettings { top_n: n, ..Default::default() })
    }

    /// Parse a `--verify` value: the number of top hits to verify.
    pub fn parse(spec: &str) -> Result<VerifySettings, VerifySpecError> {
        let n: usize = spec.trim().parse().map_err(|_| VerifySpecError(spec.to_string()))?;
        VerifySettings::top(n).map_err(|_| VerifySpecError(spec.to_string()))
    }
}

/// What verification says about one hit.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct HitVerification {
    /// Keypoint matches consistent with the fitted transform.
    pub inliers: usize,
    /// Keypoint matches before the fit.
    pub matches: usize,
    /// Whether `inliers` reaches the threshold (the hit is a verified copy).
    pub verified: bool,
    /// The query's corners (top-left, top-right, bottom-right, bottom-left) in the candidate
    /// image's pixels; present when verified.
    pub quad: Option<[[f32; 2]; 4]>,
    /// Whether the match was found against the query's mirror image.
    pub mirrored: bool,
    /// Why the candidate could not be verified (its file missing or unreadable).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A failure to read a candidate or query for verification.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// The image could not be read or decoded.
    #[error(transparent)]
    Image(#[from] features::FeatureError),
    /// Keypoint detection refused its settings.
    #[error(transparent)]
    Keypoints(#[from] features::keypoints::KeypointError),
    /// The hit has no stored path to decode.
    #[error("the record has no stored path")]
    NoPath,
}

/// The query's keypoints and those of its mirror image.
#[derive(Debug, Clone)]
pub struct QueryKeypoints {
    plain: KeypointSet,
    mirrored: KeypointSet,
}

impl QueryKeypoints {
    /// Detect the keypoints of `image` and of its mirror image.
    pub fn of(image: &RgbImage, settings: &VerifySettings) -> Result<QueryKeypoints, VerifyError> {
        let plain = detect(image, &settings.keypoints)?;
        let mirrored = detect(&features::augment::mirror(image), &settings.keypoints)?;
        Ok(QueryKeypoints { plain, mirrored })
    }

    /// Verify against a candidate's keypoints: the query first, its mirror image when that fails.
    pub fn verify(&self, candidate: &KeypointSet, settings: &VerifySettings) -> HitVerification {
        let plain = verify_pair(&self.plain, candidate, &settings.pair);
        if plain.verified {
            return from_pair(&plain, false);
        }
        let mirrored = verify_pair(&self.mirrored, candidate, &settings.pair);
        if mirrored.inliers > plain.inliers {
            from_pair(&mirrored, true)
        } else {
            from_pair(&plain, false)
        }
    }
}

fn from_pair(m: &PairMatch, mirrored: bool) -> HitVerification {
    let quad = m.quad.filter(|_| m.verified).map(|q| {
        let q = q.map(|p| [p.0, p.1]);
        // In the mirror image the query's top-left corner is the top-right one, and so on.
        if mirrored {
            [q[1], q[0], q[3], q[2]]
        } else {
            q
        }
    });
    HitVerification { inliers: m.inliers, matches: m.matches, verified: m.verified, quad, mirrored, error: None }
}

/// Decode the image at `path` (reduced where the decoder can: keypoints are found at most
/// [`KeypointParams::max_side`] wide) and detect its keypoints, in the full image's pixels.
pub fn candidate_keypoints(path: &Path, settings: &VerifySettings) -> Result<KeypointSet, VerifyError> {
    // A JPEG may be decoded at 1/2 or 1/4 while its shorter side stays >= max_side.
    let size = DecodeSize::AtLeast(settings.keypoints.max_side);
    let decoded = load_image_sized(path, &DecodeLimits::default(), size)?;
    let mut set = detect(&decoded.image, &settings.keypoints)?;
    let (sx, sy) = (decoded.width as f32 / set.width.max(1) as f32, decoded.height as f32 / set.height.max(1) as f32);
    for k in &mut set.keypoints {
        k.x *= sx;
        k.y *= sy;
    }
    set.width = decoded.width;
    set.height = decoded.height;
    Ok(set)
}

/// Verify the first `settings.top_n` of `paths` (the hits' stored paths, best first) against
/// the query, one result per path verified; a candidate that cannot be read gets its error.
/// The candidates are decoded and matched in parallel (each file once).
pub fn verify_paths(query: &QueryKeypoints, paths: &[Option<&str>], settings: &VerifySettings) -> Vec<HitVerification> {
    let top = &paths[..paths.len().min(settings.top_n)];
    let mut unique: Vec<&str> = top.iter().flatten().copied().collect();
    unique.sort_unstable();
    unique.dedup();
    let checked: HashMap<&str, HitVerification> = unique
        .into_par_iter()
        .map(|p| {
            let v = match candidate_keypoints(Path::new(p), settings) {
                Ok(set) => query.verify(&set, settings),
                Err(e) => {
                    tracing::warn!("verify: candidate {p}: {e}");
                    HitVerification { error: Some(e.to_string()), ..Default::default() }
                }
            };
            (p, v)
        })
        .collect();
    top.iter()
        .map(|p| match p {
            Some(p) => checked[p].clone(),
            None => HitVerification { error: Some(VerifyError::NoPath.to_string()), ..Default::default() },
        })
        .collect()
}

/// The new order of hits after verification: verified hits first, most inliers first (ties
/// keep the search order), then the rest in search order. `verified[i]` is hit `i`'s result
/// (hits past the verified ones have none).
pub fn rerank_order(n: usize, verified: &[HitVerification]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    let key = |i: usize| verified.get(i).filter(|v| v.verified).map_or(0, |v| v.inliers);
    order.sort_by_key(|&i| (std::cmp::Reverse(key(i)), i));
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(inliers: usize, verified: bool) -> HitVerification {
        HitVerification { inliers, verified, ..Default::default() }
    }

    #[test]
    fn verified_hits_move_first_by_inliers_and_the_rest_keep_their_order() {
        let res = [v(3, false), v(40, true), v(0, false), v(90, true), v(12, false)];
        assert_eq!(rerank_order(7, &res), [3, 1, 0, 2, 4, 5, 6]);
        assert_eq!(rerank_order(3, &[]), [0, 1, 2]);
    }

    #[test]
    fn specs_parse_and_bad_ones_are_refused() {
        assert_eq!(VerifySettings::parse("30").unwrap().top_n, 30);
        for bad in ["0", "-1", "ten", "100000"] {
            assert!(VerifySettings::parse(bad).unwrap_err().to_string().contains("bad verify value"));
        }
    }

    #[test]
    fn a_missing_candidate_is_reported_not_fatal() {
        let img = RgbImage::from_fn(200, 150, |x, y| image::Rgb([(x * 7 % 256) as u8, (y * 5 % 256) as u8, 9]));
        let q = QueryKeypoints::of(&img, &VerifySettings::default()).unwrap();
        let out = verify_paths(&q, &[Some("/nonexistent/likeness-verify.jpg"), None], &VerifySettings::default());
        assert_eq!(out.len(), 2);
        assert!(out.iter().all(|v| !v.verified && v.error.is_some()), "{out:?}");
    }
}
