//! `KDForest<t>` and `KDTree`: k-d trees after FLANN.
//!
//! * `KDForest<t>`: `t` randomized k-d trees. Each node splits on a dimension drawn at
//!   random among the 5 of highest variance (estimated on up to 100 points) at their
//!   mean. A query descends all trees, keeps the unexplored branches of all of them
//!   in one priority queue ordered by (approximate) distance to the query, and stops
//!   after `SearchParams.checks` distance computations (default [`DEFAULT_CHECKS`]);
//!   points seen in several trees are computed once.
//! * `KDTree`: one tree split on the highest-variance dimension at the median, searched
//!   exactly by backtracking with the incremental lower bound of Arya & Mount. Exact, and
//!   fast in low dimensions (≲ 16); in high dimensions it degrades to a scan.
//!
//! Metrics: `l2` and `cosine` (on unit vectors `1 − a·b = ‖a − b‖² / 2`, so the trees work
//! in Euclidean space). Range search is exact for both modes.
//!
//! Vectors added after the trees were built are scanned exactly until they exceed a
//! quarter of the indexed points, then the trees are rebuilt; removed points are
//! tombstones until they outnumber live ones.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::path::Path;

use bytemuck::{Pod, Zeroable};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::distance;
use crate::error::{Error, Result};
use crate::fsutil::corrupt;
use crate::index::common::{dense_batch, dense_distance, dense_query, DenseStore, Rng};
use crate::index::file::{read_meta, read_pod, write_meta, write_pod, META_FILE};
use crate::index::topk::{sort_neighbors, TopK};
use crate::index::{IdFilter, Neighbor, SearchParams, VectorIndex};
use crate::metric::Metric;
use crate::vector::{Vector, VectorRef, VectorsRef};

/// Default `checks` budget of the randomized forest.
pub const DEFAULT_CHECKS: usize = 512;
const LEAF_SIZE: usize = 8;
const RAND_DIMS: usize = 5;
const VAR_SAMPLE: usize = 100;
/// Fewer unindexed points than this are always just scanned.
const MIN_BUILD: usize = 256;
const LEAF: u32 = u32::MAX;
const SEED: u64 = 0x6b64_7472;

/// One node: an inner split (`dim`, `split`, children `a`/`b`) or a leaf (`dim == LEAF`, points `perm[a..b]`).
#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
struct Node {
    dim: u32,
    split: f32,
    a: u32,
    b: u32,
}

#[derive(Debug, Clone, Default)]
struct Tree {
    nodes: Vec<Node>,
    perm: Vec<u32>,
}

/// A forest of randomized k-d trees, or one exact k-d tree (see the module docs).
#[derive(Clone)]
pub struct KdForest {
    dim: usize,
    metric: Metric,
    ntrees: usize,
    exact: bool,
    store: DenseStore,
    trees: Vec<Tree>,
    /// Store slots `0..indexed` are in the trees; later slots are scanned exactly.
    indexed: usize,
}

#[derive(Serialize, Deserialize)]
struct Meta {
    kind: String,
    dim: usize,
    metric: Metric,
    ntrees: usize,
    exact: bool,
    indexed: usize,
}

struct Builder<'a> {
    store: &'a DenseStore,
    dim: usize,
    exact: bool,
    rng: Rng,
    nodes: Vec<Node>,
}

impl Builder<'_> {
    /// Build the subtree over `perm[start..end]` (`perm` is the whole permutation); returns its node index.
    fn build(&mut self, perm: &mut [u32], start: usize) -> u32 {
        let id = self.nodes.len() as u32;
        let n = perm.len();
        if n <= LEAF_SIZE {
            self.nodes.push(Node { dim: LEAF, split: 0.0, a: start as u32, b: (start + n) as u32 });
            return id;
        }
        // Mean and variance per dimension over a sample.
        let step = n.div_ceil(VAR_SAMPLE).max(1);
        let mut mean = vec![0f64; self.dim];
        let mut sq = vec![0f64; self.dim];
        let mut cnt = 0f64;
        for &s in perm.iter().step_by(step) {
            for (j, &x) in self.store.vector(s).iter().enumerate() {
                mean[j] += x as f64;
                sq[j] += (x as f64) * (x as f64);
            }
            cnt += 1.0;
        }
        let var: Vec<f64> = (0..self.dim).map(|j| sq[j] / cnt - (mean[j] / cnt).powi(2)).collect();
        let mut order: Vec<usize> = (0..self.dim).collect();
        order.sort_by(|&a, &b| var[b].total_cmp(&var[a]));
        let d = if self.exact { order[0] } else { order[self.rng.below(RAND_DIMS.min(self.dim))] };
        let key = |s: &u32| self.store.vector(*s)[d];
        let mut mid = 0;
        let mut split = (mean[d] / cnt) as f32;
        if !self.exact {
            // Partition at the mean; fall back to the median when that is too unbalanced.
            let (mut i, mut j) = (0usize, n);
            while i < j {
                if key(&perm[i]) < split {
                    i += 1;
                } else {
                    j -= 1;
                    perm.swap(i, j);
                }
            }
            mid = i;
        }
        if self.exact || mid < n / 10 || mid > n - n / 10 {
            mid = n / 2;
            perm.select_nth_unstable_by(mid, |a, b| key(a).total_cmp(&key(b)));
            split = key(&perm[mid]);
        }
        self.nodes.push(Node { dim: d as u32, split, a: 0, b: 0 });
        let (left, right) = perm.split_at_mut(mid);
        let a = self.build(left, start);
        let b = self.build(right, start + mid);
        self.nodes[id as usize].a = a;
        self.nodes[id as usize].b = b;
        id
    }
}

/// Squared-L2-like key used inside the trees (L2: ‖q−x‖²; cosine: ‖q−x‖²/2 computed as 1 − q·x).
#[inline]
fn tree_key(metric: Metric, q: &[f32], x: &[f32]) -> f32 {
    match metric {
        Metric::Cosine => 1.0 - distance::dot(q, x),
        _ => distance::l2_sq(q, x),
    }
}

/// Per-query search state.
struct Search<'a, 'f> {
    ix: &'a KdForest,
    q: &'a [f32],
    filter: Option<IdFilter<'f>>,
    top: TopK,
    visited: Vec<u64>,
    checks: usize,
}

impl Search<'_, '_> {
    #[inline]
    fn key(&self, x: &[f32]) -> f32 {
        tree_key(self.ix.metric, self.q, x)
    }
    /// Scale from squared plane distance to key units.
    #[inline]
    fn bound_scale(&self) -> f32 {
        if self.ix.metric == Metric::Cosine {
            0.5
        } else {
            1.0
        }
    }
    #[inline]
    fn check(&mut self, s: u32) {
        let (w, b) = (s as usize / 64, 1u64 << (s % 64));
        if self.visited[w] & b != 0 {
            return;
        }
        self.visited[w] |= b;
        let st = &self.ix.store;
        if !st.is_alive(s) {
            return;
        }
        let id = st.id(s);
        if self.filter.is_some_and(|f| !f(id)) {
            return;
        }
        self.checks += 1;
        let k = self.key(st.vector(s));
        self.top.push(k, id);
    }

    /// Descend tree `t` from `node` to a leaf, queueing the far branches.
    fn descend(&mut self, heap: &mut BinaryHeap<Reverse<(OrdF32, u32, u32)>>, t: usize, mut node: u32, bound: f32) {
        let ix = self.ix;
        let tree = &ix.trees[t];
        let scale = self.bound_scale();
        loop {
            let n = tree.nodes[node as usize];
            if n.dim == LEAF {
                for i in n.a..n.b {
                    self.check(tree.perm[i as usize]);
                }
                return;
            }
            let diff = self.q[n.dim as usize] - n.split;
            let (near, far) = if diff < 0.0 { (n.a, n.b) } else { (n.b, n.a) };
            let fb = bound + scale * diff * diff;
            if fb < self.top.worst() {
                heap.push(Reverse((OrdF32(fb), t as u32, far)));
            }
            node = near;
        }
    }

    /// Exact backtracking over one tree with the incremental per-dimension bound.
    fn exact(&mut self, t: usize, node: u32, bound: f32, off: &mut [f32], radius: Option<(f32, &mut Vec<(f32, u32)>)>) {
        // (Written iteratively over an explicit stack to keep deep trees off the call stack.)
        enum Step {
            Visit(u32, f32),
            Restore(usize, f32),
        }
        let ix = self.ix;
        let tree = &ix.trees[t];
        let scale = self.bound_scale();
        let mut radius = radius;
        let mut stack = vec![Step::Visit(node, bound)];
        while let Some(step) = stack.pop() {
            let (node, bound) = match step {
                Step::Restore(d, v) => {
                    off[d] = v;
                    continue;
                }
                Step::Visit(n, b) => (n, b),
            };
            let limit = match &radius {
                Some((r, _)) => *r,
                None => self.top.worst(),
            };
            if bound > limit {
                continue;
            }
            let n = tree.nodes[node as usize];
            if n.dim == LEAF {
                for i in n.a..n.b {
                    let s = tree.perm[i as usize];
                    match &mut radius {
                        Some((r, out)) => {
                            let st = &self.ix.store;
                            if st.is_alive(s) && self.filter.is_none_or(|f| f(st.id(s))) {
                                let k = self.key(st.vector(s));
                                if k <= *r {
                                    out.push((k, s));
                                }
                            }
                        }
                        None => self.check(s),
                    }
                }
                continue;
            }
            let d = n.dim as usize;
            let diff = self.q[d] - n.split;
            let (near, far) = if diff < 0.0 { (n.a, n.b) } else { (n.b, n.a) };
            let old = off[d];
            let new = scale * diff * diff;
            let far_bound = bound - old + new;
            // Popped in order: the near subtree, then (with off[d] = new) the far one, then restore off[d].
            stack.push(Step::Restore(d, old));
            stack.push(Step::Visit(far, far_bound));
            stack.push(Step::Restore(d, new));
            stack.push(Step::Visit(near, bound));
        }
    }
}

/// `f32` with a total order, for the branch queue.
#[derive(Debug, Clone, Copy, PartialEq)]
struct OrdF32(f32);
impl Eq for OrdF32 {}
impl PartialOrd for OrdF32 {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for OrdF32 {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&o.0)
    }
}

impl KdForest {
    /// `ntrees` randomized trees (`exact = false`), or one exact tree (`exact = true`).
    pub fn new(dim: usize, metric: Metric, ntrees: usize, exact: bool) -> Result<Self> {
        let spec = if exact { "KDTree".to_string() } else { format!("KDForest{ntrees}") };
        if !matches!(metric, Metric::L2 | Metric::Cosine) {
            return Err(Error::InvalidIndexSpec {
                spec,
                reason: format!("k-d trees need a Euclidean geometry: use metric l2 or cosine, not {metric}"),
            });
        }
        if dim == 0 || (!exact && !(1..=64).contains(&ntrees)) {
            return Err(Error::InvalidIndexSpec {
                spec,
                reason: format!("need dimension ≥ 1 and 1..=64 trees (dim {dim}, trees {ntrees})"),
            });
        }
        Ok(KdForest {
            dim,
            metric,
            ntrees: if exact { 1 } else { ntrees },
            exact,
            store: DenseStore::new(dim),
            trees: Vec::new(),
            indexed: 0,
        })
    }

    /// Rebuild the trees over all live vectors (dropping tombstones).
    fn rebuild(&mut self) {
        self.store.compact();
        let n = self.store.slots();
        let (store, dim, exact) = (&self.store, self.dim, self.exact);
        self.trees = (0..self.ntrees)
            .into_par_iter()
            .map(|t| {
                let mut perm: Vec<u32> = (0..n as u32).collect();
                let mut b = Builder { store, dim, exact, rng: Rng::new(SEED + t as u64), nodes: Vec::new() };
                b.build(&mut perm, 0);
                Tree { nodes: b.nodes, perm }
            })
            .collect();
        self.indexed = n;
    }

    fn maintain(&mut self) {
        let unindexed = self.store.slots() - self.indexed;
        let dead = self.store.dead();
        if (unindexed >= MIN_BUILD && unindexed * 4 > self.indexed) || (dead > self.store.live() && dead >= MIN_BUILD) {
            self.rebuild();
        }
    }

    fn new_search<'a, 'f>(&'a self, q: &'a [f32], k: usize, filter: Option<IdFilter<'f>>) -> Search<'a, 'f> {
        Search { ix: self, q, filter, top: TopK::new(k), visited: vec![0u64; self.indexed.div_ceil(64)], checks: 0 }
    }

    /// Exact distances for the final results (keys → user units).
    fn finish(&self, q: &[f32], top: TopK) -> Vec<Neighbor> {
        let mut out: Vec<Neighbor> = top
            .into_sorted()
            .into_iter()
            .map(|n| {
                let d = self.store.get(n.id).map_or(f32::INFINITY, |v| dense_distance(self.metric, q, v));
                Neighbor { id: n.id, distance: d }
            })
            .collect();
        sort_neighbors(&mut out);
        out
    }

    /// Scan the unindexed tail exactly into `s.top`.
    fn scan_tail(&self, filter: Option<IdFilter<'_>>, s: &mut Search<'_, '_>) {
        let (metric, q) = (self.metric, s.q);
        self.store.scan_from(self.indexed, filter, &mut s.top, |v| tree_key(metric, q, v));
    }

    /// Read an index saved by [`VectorIndex::save`].
    pub fn load(dir: &Path) -> Result<Self> {
        let meta: Meta = read_meta(dir)?;
        let mut ix = KdForest::new(meta.dim, meta.metric, meta.ntrees, meta.exact)?;
        ix.store = DenseStore::load_slots(dir, "vectors", meta.dim)?;
        if meta.indexed > ix.store.slots() {
            return Err(corrupt(&dir.join(META_FILE), "more indexed points than stored vectors"));
        }
        ix.indexed = meta.indexed;
        if meta.indexed > 0 {
            for t in 0..ix.ntrees {
                let nodes: Vec<Node> = read_pod(&dir.join(format!("tree{t}.nodes")))?;
                let perm: Vec<u32> = read_pod(&dir.join(format!("tree{t}.perm")))?;
                let ok = perm.len() == meta.indexed
                    && perm.iter().all(|&p| (p as usize) < meta.indexed)
                    && nodes.iter().enumerate().all(|(i, n)| {
                        if n.dim == LEAF {
                            n.a <= n.b && n.b as usize <= perm.len()
                        } else {
                            // Children come after their parent (the build writes nodes in pre-order):
                            // a link back would make the search descend forever.
                            (n.dim as usize) < meta.dim
                                && (i as u64) < u64::from(n.a.min(n.b))
                                && (n.a as usize) < nodes.len()
                                && (n.b as usize) < nodes.len()
                        }
                    })
                    && !nodes.is_empty();
                if !ok {
                    return Err(corrupt(&dir.join(format!("tree{t}.nodes")), format!("tree {t} is inconsistent")));
                }
                ix.trees.push(Tree { nodes, perm });
            }
        }
        Ok(ix)
    }
}

impl VectorIndex for KdForest {
    fn description(&self) -> String {
        if self.exact {
            "KDTree".into()
        } else {
            format!("KDForest{}", self.ntrees)
        }
    }
    fn dim(&self) -> usize {
        self.dim
    }
    fn metric(&self) -> Metric {
        self.metric
    }
    fn len(&self) -> usize {
        self.store.live()
    }
    fn add(&mut self, ids: &[u64], vectors: VectorsRef<'_>) -> Result<()> {
        let data = dense_batch(ids, vectors, self.dim)?;
        for (i, &id) in ids.iter().enumerate() {
            self.store.insert(id, &data[i * self.dim..(i + 1) * self.dim]);
        }
        self.maintain();
        Ok(())
    }
    fn remove(&mut self, ids: &[u64]) -> Result<usize> {
        let n = ids.iter().filter(|&&id| self.store.remove(id)).count();
        self.maintain();
        Ok(n)
    }
    fn contains(&self, id: u64) -> bool {
        self.store.contains(id)
    }
    fn search(
        &self,
        query: VectorRef<'_>,
        k: usize,
        params: &SearchParams,
        filter: Option<IdFilter<'_>>,
    ) -> Result<Vec<Neighbor>> {
        let q = dense_query(query, self.dim)?;
        let mut s = self.new_search(q, k, filter);
        self.scan_tail(filter, &mut s);
        if self.trees.is_empty() || k == 0 {
            return Ok(self.finish(q, s.top));
        }
        if self.exact {
            let mut off = vec![0f32; self.dim];
            s.exact(0, 0, 0.0, &mut off, None);
            return Ok(self.finish(q, s.top));
        }
        let budget = params.checks.unwrap_or(DEFAULT_CHECKS).max(1);
        let mut heap = BinaryHeap::new();
        for t in 0..self.trees.len() {
            s.descend(&mut heap, t, 0, 0.0);
        }
        while let Some(Reverse((OrdF32(bound), t, node))) = heap.pop() {
            // Past the budget, go on only while fewer than k accepted points were found.
            if s.checks >= budget && s.top.is_full() {
                break;
            }
            if bound >= s.top.worst() {
                break;
            }
            s.descend(&mut heap, t as usize, node, bound);
        }
        Ok(self.finish(q, s.top))
    }
    /// Exact: backtracking over the first tree with a correct lower bound, plus the unindexed tail.
    fn range_search(
        &self,
        query: VectorRef<'_>,
        radius: f32,
        _params: &SearchParams,
        filter: Option<IdFilter<'_>>,
    ) -> Result<Vec<Neighbor>> {
        let q = dense_query(query, self.dim)?;
        // Radius in key units (L2: squared; cosine: 1 − cos already).
        let rk = match self.metric {
            Metric::L2 if radius >= 0.0 => radius * radius,
            Metric::L2 => -1.0,
            _ => radius,
        };
        let mut out = Vec::new();
        if !self.trees.is_empty() && rk >= 0.0 {
            let mut s = self.new_search(q, 0, filter);
            let mut hits = Vec::new();
            let mut off = vec![0f32; self.dim];
            // Small slack so points exactly on the radius are not lost to rounding of the key.
            s.exact(0, 0, 0.0, &mut off, Some((rk * (1.0 + 1e-5) + 1e-6, &mut hits)));
            for (_, slot) in hits {
                let d = dense_distance(self.metric, q, self.store.vector(slot));
                if d <= radius {
                    out.push(Neighbor { id: self.store.id(slot), distance: d });
                }
            }
        }
        self.store.range_into(self.metric, q, radius, filter, self.indexed, &mut out);
        sort_neighbors(&mut out);
        Ok(out)
    }
    fn reconstruct(&self, id: u64) -> Option<Vector> {
        self.store.get(id).map(|v| Vector::Dense(v.to_vec()))
    }
    fn memory_bytes(&self) -> usize {
        self.store.memory_bytes()
            + self.trees.iter().map(|t| t.nodes.capacity() * 16 + t.perm.capacity() * 4).sum::<usize>()
    }
    fn clone_index(&self) -> Option<Box<dyn VectorIndex>> {
        Some(Box::new(self.clone()))
    }
    fn save(&self, dir: &Path) -> Result<()> {
        write_meta(
            dir,
            &Meta {
                kind: "kdforest".into(),
                dim: self.dim,
                metric: self.metric,
                ntrees: self.ntrees,
                exact: self.exact,
                indexed: self.indexed,
            },
        )?;
        self.store.save_slots(dir, "vectors")?;
        for (t, tree) in self.trees.iter().enumerate() {
            write_pod(&dir.join(format!("tree{t}.nodes")), &tree.nodes)?;
            write_pod(&dir.join(format!("tree{t}.perm")), &tree.perm)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Fuzzing (index_snapshot): a saved tree whose node links back to itself made every
    /// search descend forever, queueing until memory ran out. Such a tree is now corrupt.
    #[test]
    fn a_tree_with_a_cycle_is_corrupt() {
        let dir = tempfile::tempdir().unwrap();
        let mut ix = KdForest::new(2, Metric::L2, 1, false).unwrap();
        let data: Vec<f32> = (0..600).map(|i| (i * 7 % 13) as f32).collect();
        let ids: Vec<u64> = (0..300).collect();
        ix.add(&ids, VectorsRef::Dense(&data)).unwrap();
        ix.save(dir.path()).unwrap();
        assert!(KdForest::load(dir.path()).is_ok());
        let path = dir.path().join("tree0.nodes");
        let mut nodes: Vec<Node> = read_pod(&path).unwrap();
        assert_ne!(nodes[0].dim, LEAF, "the root of 300 points is an inner node");
        nodes[0].a = 0;
        write_pod(&path, &nodes).unwrap();
        assert!(matches!(KdForest::load(dir.path()), Err(Error::Corrupt { .. })));
    }
}
