//! `HNSW<M>,SQ8,Refine`: walk the graph on 8-bit codes, then re-rank only the final
//! candidates with the full vectors.
//!
//! The beam search of width `ef` runs entirely on codes (integer kernels, a quarter of the
//! bytes). Its `rerank` closest candidates — a few more than `k`, not the whole beam — are
//! then scored with exact float distances, read by slot from the vectors kept beside the
//! codes (memory-mapped after a load) and prefetched a few rows ahead. The codes already
//! rank the beam almost right, so a short list recovers the float graph's recall at the
//! cost of the code walk plus `rerank` float distances.

use super::graph::Scored;
use super::space::Space;
use super::{with_space, HnswIndex};
use crate::distance;
use crate::error::{Error, Result};
use crate::index::topk::TopK;
use crate::index::IdFilter;
use crate::metric::Metric;
use crate::vector::VectorRef;

/// Candidates re-ranked when a search sets no `SearchParams::rerank`: `2·k + 10`.
///
/// On the CNN embeddings (1280-d, rotated 8-bit codes) and Fashion-MNIST, recall@10 with
/// this depth matches that of re-ranking the whole beam to within 0.001 at every `ef`
/// measured (BENCHMARKS.md, issue 19).
pub fn default_rerank(k: usize) -> usize {
    2 * k + 10
}

/// Rows prefetched ahead of the one being scored in the re-rank.
const AHEAD: usize = 2;

impl HnswIndex {
    /// Up to `k` nearest accepted nodes by exact distance (internal units, closest first):
    /// the `depth` best by code distance (at least `k`, at most the beam) from a beam of
    /// width `ef` (at least `k`), re-ranked.
    pub(super) fn knn_refined(
        &self,
        query: VectorRef<'_>,
        k: usize,
        ef: usize,
        depth: usize,
        filter: Option<IdFilter<'_>>,
    ) -> Result<Vec<Scored>> {
        let VectorRef::Dense(q) = query else {
            return Err(Error::InvalidVector("expected a dense query".into()));
        };
        if k == 0 {
            return Ok(Vec::new());
        }
        // The beam is never widened for the re-rank: at most the whole beam is re-ranked.
        let ef = ef.max(k);
        let depth = depth.clamp(k, ef);
        let cands = with_space!(self, s => {
            let code = s.query(query).ok_or_else(|| Error::InvalidVector("query kind does not match the index".into()))?;
            self.knn(&s, &code, depth, ef, filter)
        });
        Ok(self.rerank_exact(q, &cands, k))
    }

    /// The `k` closest of `cands` by exact distance to `q`.
    fn rerank_exact(&self, q: &[f32], cands: &[Scored], k: usize) -> Vec<Scored> {
        let data = self.exact.as_ref().map_or(&[][..], |r| r.f32s());
        let dim = self.dim;
        let row = |slot: u32| &data[slot as usize * dim..(slot as usize + 1) * dim];
        let prefetch = |slot: u32| {
            distance::prefetch_lines(row(slot).as_ptr() as *const u8, (4 * dim).div_ceil(64));
        };
        cands.iter().take(AHEAD).for_each(|c| prefetch(c.1));
        let mut top: TopK<u32> = TopK::new(k);
        for (i, c) in cands.iter().enumerate() {
            if let Some(next) = cands.get(i + AHEAD) {
                prefetch(next.1);
            }
            top.push(self.exact_dist(q, row(c.1)), c.1);
        }
        top.into_sorted_pairs().into_iter().map(|(d, slot)| Scored(d, slot)).collect()
    }

    /// Internal distance (squared L2, or negated inner product) between a query and a row.
    #[inline(always)]
    fn exact_dist(&self, q: &[f32], v: &[f32]) -> f32 {
        match self.metric {
            Metric::L2 => distance::l2_sq(q, v),
            _ => -distance::dot(q, v),
        }
    }

    /// Exact scan of the full vectors over the accepted nodes.
    pub(super) fn brute_exact(&self, q: &[f32], k: usize, accept: &dyn Fn(u32) -> bool) -> Vec<Scored> {
        let data = self.exact.as_ref().map_or(&[][..], |r| r.f32s());
        let dim = self.dim;
        let mut top: TopK<u32> = TopK::new(k);
        for slot in 0..self.graph.len() as u32 {
            if accept(slot) {
                let s = slot as usize * dim;
                top.push(self.exact_dist(q, &data[s..s + dim]), slot);
            }
        }
        top.into_sorted_pairs().into_iter().map(|(d, slot)| Scored(d, slot)).collect()
    }
}
