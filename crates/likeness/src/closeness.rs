//! How close a search hit is, in words: per-feature distance bands that turn a distance into
//! "near duplicate", "similar", "related" or "unrelated".
//!
//! The bands come from the dedup calibration (docs/app.md, "Dedup thresholds"): the
//! near-duplicate bound is [`crate::dedup_cmd::default_threshold`]; the others are read off the
//! same table (where the nearest *distinct* sample photo lies) and are deliberately coarse. A
//! feature without a calibration (colour and texture histograms, trained heads) has no bands:
//! its distances are shown as numbers and never called a match or a miss.

use std::collections::BTreeMap;

use serde::Serialize;
use vecdb::{CollectionSchema, Metric};

/// Upper bounds (inclusive) of the distance bands of one feature.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Bands {
    /// At most this far: a copy of the same image (re-encoded, resized, cropped, brightened).
    pub near_duplicate: f32,
    /// At most this far: the same subject or scene.
    pub similar: f32,
    /// At most this far: something in common; further is unrelated ("no close match").
    pub related: f32,
}

/// The calibrated bands of a feature, if it has any.
pub fn bands(feature: &str) -> Option<Bands> {
    let near_duplicate = crate::dedup_cmd::default_threshold(feature)?;
    match feature {
        // cosine: distinct sample photos are ≥ 0.246 apart for 95% of them (median 0.618).
        "cnn" | "cnn-lite2" => Some(Bands { near_duplicate, similar: 0.35, related: 0.5 }),
        // bits of 64: distinct photos ≥ 18 bits for 95% of them (median 22).
        "phash" => Some(Bands { near_duplicate, similar: 16.0, related: 20.0 }),
        // bits of 64: distinct photos ≥ 8 bits (median 15).
        "dhash" => Some(Bands { near_duplicate, similar: 9.0, related: 13.0 }),
        _ => None,
    }
}

/// The words for a distance on a feature with `bands`.
pub fn verdict(bands: &Bands, distance: f32) -> &'static str {
    if distance <= bands.near_duplicate {
        "near duplicate"
    } else if distance <= bands.similar {
        "similar"
    } else if distance <= bands.related {
        "related"
    } else {
        "unrelated"
    }
}

/// A similarity in [0, 1] for a distance, calibrated on the bands where a feature has them:
/// near duplicates score 0.9–1, similar 0.7–0.9, related 0.5–0.7, unrelated below 0.5 (0 at
/// twice the "related" bound). Without bands: 1 − d for cosine, the share of equal bits for
/// hamming, 1 / (1 + d) for l2; none for dot products.
pub fn similarity(feature: &str, metric: Metric, dim: usize, distance: f32) -> Option<f32> {
    let d = distance.max(0.0);
    let s = match bands(feature) {
        Some(b) => {
            let lerp = |d: f32, lo: f32, hi: f32, top: f32| top - 0.2 * (d - lo) / (hi - lo);
            if d <= b.near_duplicate {
                1.0 - 0.1 * d / b.near_duplicate
            } else if d <= b.similar {
                lerp(d, b.near_duplicate, b.similar, 0.9)
            } else if d <= b.related {
                lerp(d, b.similar, b.related, 0.7)
            } else {
                0.5 * (1.0 - (d - b.related) / b.related).max(0.0)
            }
        }
        None => match metric {
            Metric::Cosine => 1.0 - d,
            Metric::Hamming => 1.0 - d / dim.max(1) as f32,
            Metric::L2 => 1.0 / (1.0 + d),
            Metric::Dot => return None,
        },
    };
    Some(s.clamp(0.0, 1.0))
}

/// What a hit's per-feature distances say together.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Judgement {
    /// Similarity in [0, 1] ([`similarity`]) of the deciding feature.
    pub similarity: Option<f32>,
    /// The calibrated verdict (`near duplicate`, `similar`, `related`, `unrelated`), when a
    /// feature with bands was measured.
    pub verdict: Option<&'static str>,
    /// The feature that decided: the calibrated one that finds the hit closest (a phash within
    /// 12 bits is a copy even when a crop moved the CNN), else the first one given.
    pub by: Option<String>,
}

/// Judge a hit from its distances per feature (`distances` in the caller's order of
/// preference: the first one decides when none has bands).
pub fn judge(schema: &CollectionSchema, distances: &[(String, f32)]) -> Judgement {
    let field = |name: &str| schema.fields.iter().find(|f| f.name == name);
    let calibrated = distances
        .iter()
        .filter(|(f, _)| bands(f).is_some())
        .filter_map(|(f, d)| field(f).and_then(|fl| similarity(f, fl.metric, fl.dim, *d)).map(|s| (f, *d, s)))
        .max_by(|a, b| a.2.total_cmp(&b.2));
    if let Some((f, d, s)) = calibrated {
        let b = bands(f).expect("filtered on bands");
        return Judgement { similarity: Some(s), verdict: Some(verdict(&b, d)), by: Some(f.clone()) };
    }
    match distances.first() {
        Some((f, d)) => Judgement {
            similarity: field(f).and_then(|fl| similarity(f, fl.metric, fl.dim, *d)),
            verdict: None,
            by: Some(f.clone()),
        },
        None => Judgement { similarity: None, verdict: None, by: None },
    }
}

/// Per-feature distances as a map (JSON output).
pub fn distance_map(distances: &[(String, f32)]) -> BTreeMap<String, f32> {
    distances.iter().cloned().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calibrated_features_have_ordered_bands_starting_at_the_dedup_threshold() {
        for f in ["cnn", "cnn-lite2", "phash", "dhash"] {
            let b = bands(f).unwrap();
            assert_eq!(Some(b.near_duplicate), crate::dedup_cmd::default_threshold(f));
            assert!(b.near_duplicate < b.similar && b.similar < b.related, "{f}: {b:?}");
        }
        assert_eq!(bands("color"), None);
        assert_eq!(bands("texture"), None);
    }

    #[test]
    fn verdicts_follow_the_bands() {
        let b = bands("cnn").unwrap();
        assert_eq!(verdict(&b, 0.05), "near duplicate");
        assert_eq!(verdict(&b, 0.16), "near duplicate");
        assert_eq!(verdict(&b, 0.3), "similar");
        assert_eq!(verdict(&b, 0.45), "related");
        assert_eq!(verdict(&b, 0.8), "unrelated");
    }

    #[test]
    fn similarity_follows_the_bands_and_judgement_takes_the_closest_feature() {
        let s = |d| similarity("cnn", Metric::Cosine, 1280, d).unwrap();
        assert!((s(0.0) - 1.0).abs() < 1e-6 && (s(0.16) - 0.9).abs() < 1e-6);
        assert!((s(0.35) - 0.7).abs() < 1e-6 && (s(0.5) - 0.5).abs() < 1e-6 && s(1.0) == 0.0);
        assert!(s(0.1) > s(0.2) && s(0.2) > s(0.4) && s(0.4) > s(0.7));
        assert_eq!(similarity("color", Metric::L2, 48, 1.0), Some(0.5));
        assert_eq!(similarity("x", Metric::Hamming, 64, 16.0), Some(0.75));
        let schema = CollectionSchema {
            fields: vec![
                vecdb::VectorField::new("cnn", 1280, Metric::Cosine, "Flat"),
                vecdb::VectorField::new("phash", 64, Metric::Hamming, "Flat"),
                vecdb::VectorField::new("color", 48, Metric::L2, "Flat"),
            ],
        };
        // A crop: the CNN says near duplicate, phash says unrelated: near duplicate by cnn.
        let j = judge(&schema, &[("cnn".into(), 0.1), ("phash".into(), 26.0)]);
        assert_eq!((j.verdict, j.by.as_deref()), (Some("near duplicate"), Some("cnn")));
        let j = judge(&schema, &[("cnn".into(), 0.7), ("phash".into(), 25.0)]);
        assert_eq!(j.verdict, Some("unrelated"));
        let j = judge(&schema, &[("color".into(), 0.0)]);
        assert_eq!((j.verdict, j.similarity), (None, Some(1.0)));
    }
}
