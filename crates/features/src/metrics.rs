//! Retrieval quality metrics (used by `likeness eval` and `likeness train`).
//!
//! For each query, every gallery item is ranked by distance (ties broken by gallery order);
//! an item is *relevant* when its label equals the query's label.
//! * **AP** (average precision) = mean, over the relevant items, of the precision at the rank
//!   where each is found; **mAP** = mean AP over the queries.
//! * **P@k** = relevant items among the first k, divided by k (k fixed, even when the gallery
//!   is smaller).
//! * **recall@10** = relevant items among the first 10, divided by all relevant items.
//!
//! Queries without any relevant item in the gallery are skipped (not counted in
//! [`RetrievalMetrics::queries`]). Vectors of different kinds (dense vs. binary) or lengths
//! are treated as infinitely far apart.

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::extractor::{DistanceKind, Embedding};
use crate::phash::hamming;

/// Retrieval quality averaged over queries.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct RetrievalMetrics {
    /// Mean average precision.
    pub map: f64,
    /// Precision at 1.
    pub p_at_1: f64,
    /// Precision at 5.
    pub p_at_5: f64,
    /// Precision at 10.
    pub p_at_10: f64,
    /// Recall at 10.
    pub recall_at_10: f64,
    /// Queries counted (those with at least one relevant gallery item).
    pub queries: usize,
}

/// Distance between two embeddings in the user units of the vector database: Euclidean for
/// `L2`, `1 − cos` for `Cosine` (0 vectors give 1), differing bits for `Hamming`.
/// Mismatched kinds or lengths give `f32::INFINITY`.
pub fn distance(a: &Embedding, b: &Embedding, kind: DistanceKind) -> f32 {
    match (a, b) {
        (Embedding::Dense(x), Embedding::Dense(y)) if x.len() == y.len() => match kind {
            DistanceKind::L2 => x.iter().zip(y).map(|(p, q)| (p - q) * (p - q)).sum::<f32>().sqrt(),
            DistanceKind::Cosine => {
                let (mut dot, mut nx, mut ny) = (0f32, 0f32, 0f32);
                for (p, q) in x.iter().zip(y) {
                    dot += p * q;
                    nx += p * p;
                    ny += q * q;
                }
                if nx == 0.0 || ny == 0.0 {
                    1.0
                } else {
                    1.0 - dot / (nx.sqrt() * ny.sqrt())
                }
            }
            DistanceKind::Hamming => x.iter().zip(y).filter(|(p, q)| (**p > 0.5) != (**q > 0.5)).count() as f32,
        },
        (Embedding::Binary(x), Embedding::Binary(y)) if x.len() == y.len() => hamming(x, y) as f32,
        _ => f32::INFINITY,
    }
}

/// Per-query scores, summed by the callers.
#[derive(Default, Clone, Copy)]
struct Scores {
    ap: f64,
    p1: f64,
    p5: f64,
    p10: f64,
    r10: f64,
    counted: usize,
}

impl Scores {
    fn merge(self, o: Scores) -> Scores {
        Scores {
            ap: self.ap + o.ap,
            p1: self.p1 + o.p1,
            p5: self.p5 + o.p5,
            p10: self.p10 + o.p10,
            r10: self.r10 + o.r10,
            counted: self.counted + o.counted,
        }
    }

    fn finish(self) -> RetrievalMetrics {
        let n = self.counted.max(1) as f64;
        RetrievalMetrics {
            map: self.ap / n,
            p_at_1: self.p1 / n,
            p_at_5: self.p5 / n,
            p_at_10: self.p10 / n,
            recall_at_10: self.r10 / n,
            queries: self.counted,
        }
    }
}

/// Sums per-query scores in query order, so the same inputs give bit-identical metrics
/// whatever the thread count (a parallel reduce adds in a schedule-dependent order).
fn sum_in_order(per_query: Vec<Scores>) -> RetrievalMetrics {
    per_query.into_iter().fold(Scores::default(), Scores::merge).finish()
}

/// Score one ranking given as relevance flags in rank order.
fn score_ranking(relevant_in_order: impl Iterator<Item = bool>) -> Scores {
    let (mut hits, mut ap_sum) = (0usize, 0f64);
    let (mut h1, mut h5, mut h10) = (0usize, 0usize, 0usize);
    for (rank0, rel) in relevant_in_order.enumerate() {
        if rel {
            hits += 1;
            ap_sum += hits as f64 / (rank0 + 1) as f64;
            if rank0 < 1 {
                h1 += 1;
            }
            if rank0 < 5 {
                h5 += 1;
            }
            if rank0 < 10 {
                h10 += 1;
            }
        }
    }
    if hits == 0 {
        return Scores::default();
    }
    Scores {
        ap: ap_sum / hits as f64,
        p1: h1 as f64,
        p5: h5 as f64 / 5.0,
        p10: h10 as f64 / 10.0,
        r10: h10 as f64 / hits as f64,
        counted: 1,
    }
}

/// Rank `gallery` (skipping index `skip`) by distance to `query` and score it.
fn score_query(
    query: &Embedding,
    label: &str,
    gallery: &[Embedding],
    g_labels: &[String],
    distance_kind: DistanceKind,
    skip: Option<usize>,
) -> Scores {
    let mut ranked: Vec<(f32, usize)> = gallery
        .iter()
        .enumerate()
        .filter(|(j, _)| Some(*j) != skip)
        .map(|(j, g)| (distance(query, g, distance_kind), j))
        .collect();
    ranked.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    score_ranking(ranked.iter().map(|&(_, j)| g_labels.get(j).map(String::as_str) == Some(label)))
}

/// Each item queries all the others. `labels` must be as long as `vectors` (extra entries on
/// either side are ignored).
pub fn leave_one_out(vectors: &[Embedding], labels: &[String], distance: DistanceKind) -> RetrievalMetrics {
    let n = vectors.len().min(labels.len());
    let (vectors, labels) = (&vectors[..n], &labels[..n]);
    sum_in_order(
        (0..n)
            .into_par_iter()
            .map(|i| score_query(&vectors[i], &labels[i], vectors, labels, distance, Some(i)))
            .collect(),
    )
}

/// Each query searches the whole gallery (queries and gallery are disjoint sets).
pub fn query_vs_gallery(
    queries: &[Embedding],
    q_labels: &[String],
    gallery: &[Embedding],
    g_labels: &[String],
    distance: DistanceKind,
) -> RetrievalMetrics {
    let nq = queries.len().min(q_labels.len());
    let ng = gallery.len().min(g_labels.len());
    let (gallery, g_labels) = (&gallery[..ng], &g_labels[..ng]);
    sum_in_order(
        (0..nq)
            .into_par_iter()
            .map(|i| score_query(&queries[i], &q_labels[i], gallery, g_labels, distance, None))
            .collect(),
    )
}
