//! How close a search hit is, in words: per-feature distance bands that turn a distance into
//! "near duplicate", "similar", "related" or "unrelated".
//!
//! The bands come from the dedup calibration (docs/app.md, "Dedup thresholds"): the
//! near-duplicate bound is [`crate::dedup_cmd::default_threshold`]; the others are read off the
//! same table (where the nearest *distinct* sample photo lies) and are deliberately coarse. A
//! feature without a calibration (colour and texture histograms, trained heads) has no bands:
//! its distances are shown as numbers and never called a match or a miss.

use serde::Serialize;

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
}
