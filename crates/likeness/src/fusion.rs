//! Hybrid search: one query over several features (`cnn+color+phash`), the per-feature hit
//! lists fused by reciprocal-rank fusion (RRF): a record scores Σ 1 / (`RRF_K` + rank) over
//! the lists it appears in (rank from 1). Ranks, not distances, are added, so features with
//! incomparable scales (cosine, L2 on histograms, bits) need no calibration.

use std::collections::HashMap;

use serde::Serialize;

/// How a hybrid search combines its features' results.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Fusion {
    /// Reciprocal-rank fusion: Σ 1 / (`RRF_K` + rank).
    #[default]
    Rrf,
    /// The best calibrated similarity ([`crate::closeness::similarity`]) over the features with
    /// distance bands (cnn, phash, dhash): a record is as close as its closest calibrated
    /// feature says; uncalibrated features (colour) only break ties.
    Max,
}

impl std::str::FromStr for Fusion {
    type Err = String;
    fn from_str(s: &str) -> Result<Fusion, String> {
        match s.trim() {
            "rrf" => Ok(Fusion::Rrf),
            "max" => Ok(Fusion::Max),
            other => Err(format!("unknown fusion '{other}' (expected rrf or max)")),
        }
    }
}

/// The RRF constant (Cormack et al. 2009): damps the weight of the very first ranks.
pub const RRF_K: f64 = 60.0;

/// Parse a hybrid feature list: `cnn+color+phash` (also `cnn,color`): at least two distinct
/// names; `None` for a single feature (a plain search).
pub fn parse_hybrid(spec: &str) -> Option<Vec<String>> {
    if !spec.contains('+') || spec.contains("+head:") {
        return None; // `cnn+head:NAME` is one feature (a trained head), not a hybrid.
    }
    Some(spec.split('+').map(|s| s.trim().to_string()).collect())
}

/// A fused result: a record id and its RRF score (higher is better).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Fused {
    /// Record id.
    pub id: u64,
    /// Σ 1 / (RRF_K + rank) over the lists.
    pub score: f64,
}

/// Fuse ranked id lists (closest first) by reciprocal rank; the `k` best, ties by the first
/// list's order then id.
pub fn rrf(lists: &[Vec<u64>], k: usize) -> Vec<Fused> {
    let mut score: HashMap<u64, (f64, usize)> = HashMap::new();
    for (li, list) in lists.iter().enumerate() {
        for (rank, id) in list.iter().enumerate() {
            let e = score.entry(*id).or_insert((0.0, usize::MAX));
            e.0 += 1.0 / (RRF_K + rank as f64 + 1.0);
            if li == 0 {
                e.1 = rank;
            }
        }
    }
    let mut out: Vec<(u64, f64, usize)> = score.into_iter().map(|(id, (s, r))| (id, s, r)).collect();
    out.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.2.cmp(&b.2)).then(a.0.cmp(&b.0)));
    out.truncate(k);
    out.into_iter().map(|(id, score, _)| Fused { id, score }).collect()
}

/// The largest possible RRF score of a record over `lists` lists (first everywhere): divide a
/// score by it for a share in (0, 1].
pub fn max_score(lists: usize) -> f64 {
    lists as f64 / (RRF_K + 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fusion_names() {
        assert_eq!("max".parse::<Fusion>(), Ok(Fusion::Max));
        assert_eq!("rrf".parse::<Fusion>(), Ok(Fusion::Rrf));
        assert!("sum".parse::<Fusion>().unwrap_err().contains("unknown fusion 'sum'"));
    }

    #[test]
    fn agreement_beats_one_first_place() {
        // id 7 is 2nd in both lists, id 1 first in one and absent from the other.
        let fused = rrf(&[vec![1, 7, 3], vec![9, 7, 4]], 3);
        assert_eq!(fused[0].id, 7);
        assert!((fused[0].score - 2.0 / 62.0).abs() < 1e-12);
        assert_eq!(fused[1].id, 1, "ties go to the first list's order: {fused:?}");
        assert!(fused[0].score <= max_score(2));
    }

    #[test]
    fn hybrid_specs() {
        assert_eq!(parse_hybrid("cnn+color+phash").unwrap(), ["cnn", "color", "phash"]);
        assert_eq!(parse_hybrid("cnn"), None);
        assert_eq!(parse_hybrid("cnn+head:heads/x"), None);
    }
}
