//! The HNSW graph: flat neighbour lists and the search / insert / prune algorithms.
//!
//! Layout: level 0 is one contiguous array of fixed-size blocks `[count, n1 .. n_M0]`
//! (`M0 = 2·M` words plus one), indexed by node. Upper levels (few nodes) live in a second
//! flat array; `upper_off[node]` is where the node's level-1 block starts, its level-`l`
//! block follows at `(l−1)·(M+1)`. Links are `AtomicU32` so a parallel build can read lists
//! while other threads rewrite them under a per-node lock; after the build, relaxed atomic
//! loads compile to plain loads.

use std::cmp::Ordering as CmpOrdering;
use std::collections::BinaryHeap;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use parking_lot::Mutex;

use super::column::Column;
use super::scratch::Scratch;
use super::space::Space;
use super::Bits;
use crate::index::topk::TopK;

/// "No node".
pub(crate) const NONE: u32 = u32::MAX;

/// A scored node ordered by distance (total order on floats), then id.
#[derive(Clone, Copy, PartialEq)]
pub(crate) struct Scored(pub f32, pub u32);

impl Eq for Scored {}
impl PartialOrd for Scored {
    fn partial_cmp(&self, o: &Self) -> Option<CmpOrdering> {
        Some(self.cmp(o))
    }
}
impl Ord for Scored {
    fn cmp(&self, o: &Self) -> CmpOrdering {
        self.0.total_cmp(&o.0).then(self.1.cmp(&o.1))
    }
}

/// Locks for a parallel build: one per node, plus one held while the top level grows.
pub(crate) struct Locks {
    /// One per node, taken while its neighbour lists change.
    pub nodes: Vec<Mutex<()>>,
    /// Taken by an insert whose level is above the current top.
    pub global: Mutex<()>,
}

impl Locks {
    /// Locks for `n` nodes.
    pub fn new(n: usize) -> Self {
        Locks { nodes: (0..n).map(|_| Mutex::new(())).collect(), global: Mutex::new(()) }
    }
}

/// The multi-layer proximity graph.
pub(crate) struct Graph {
    /// Links per node on upper levels.
    pub m: usize,
    /// Links per node on level 0 (`2·m`).
    pub m0: usize,
    /// Level-0 blocks, `m0 + 1` words per node.
    pub links0: Column<AtomicU32>,
    /// Top level of each node.
    pub levels: Column<u8>,
    /// Start of each node's level-1 block in `upper`, or [`NONE`].
    pub upper_off: Column<u32>,
    /// Upper-level blocks, `m + 1` words per node and level.
    pub upper: Column<AtomicU32>,
    /// Level-0 in-degree of each node while `indeg_tracked` (not saved; counted by
    /// [`Graph::track_in_degrees`] before a loaded graph's first insert), used to find nodes
    /// no list points at any more and link them back in.
    pub indeg0: Vec<AtomicU32>,
    /// Whether `indeg0` is kept up to date (a loaded graph starts without it: counting reads
    /// every list, which a reader never needs).
    indeg_tracked: bool,
    /// `(max_level << 32) | entry`, or `u64::MAX` when empty.
    entry: AtomicU64,
}

/// A copy of the links as they are: the caller holds the index exclusively or shared
/// (`&self`), so no insert is changing them.
impl Clone for Graph {
    fn clone(&self) -> Self {
        Graph {
            m: self.m,
            m0: self.m0,
            links0: self.links0.clone(),
            levels: self.levels.clone(),
            upper_off: self.upper_off.clone(),
            upper: self.upper.clone(),
            indeg0: self.indeg0.iter().map(|w| AtomicU32::new(w.load(Ordering::Relaxed))).collect(),
            indeg_tracked: self.indeg_tracked,
            entry: AtomicU64::new(self.entry.load(Ordering::Acquire)),
        }
    }
}

impl Graph {
    /// An empty graph with `m` links per node (`2·m` on level 0).
    pub fn new(m: usize) -> Self {
        Graph {
            m,
            m0: 2 * m,
            links0: Column::default(),
            levels: Column::default(),
            upper_off: Column::default(),
            upper: Column::default(),
            indeg0: Vec::new(),
            indeg_tracked: true,
            entry: AtomicU64::new(u64::MAX),
        }
    }

    /// Rebuild from raw parts (loading). Nothing is read: the in-degrees are counted before
    /// the first insert ([`Graph::track_in_degrees`]). Links need not be valid: traversals
    /// skip links to nodes that do not exist and read no block out of bounds.
    pub fn from_parts(
        m: usize,
        links0: Column<AtomicU32>,
        levels: Column<u8>,
        upper_off: Column<u32>,
        upper: Column<AtomicU32>,
        entry: Option<(u32, usize)>,
    ) -> Self {
        let g = Graph {
            m,
            m0: 2 * m,
            links0,
            levels,
            upper_off,
            upper,
            indeg0: Vec::new(),
            indeg_tracked: false,
            entry: AtomicU64::new(u64::MAX),
        };
        if let Some((e, l)) = entry {
            g.set_entry(e, l);
        }
        g
    }

    /// Count the level-0 in-degrees if they are not kept yet (a loaded graph, before its
    /// first insert or repair).
    pub fn track_in_degrees(&mut self) {
        if self.indeg_tracked {
            return;
        }
        // Counted with plain adds (the caller has the graph to itself), then made atomic.
        let mut deg = vec![0u32; self.len()];
        for v in 0..self.len() as u32 {
            for nb in self.neighbors(v, 0) {
                deg[nb as usize] += 1;
            }
        }
        self.indeg0 = deg.into_iter().map(AtomicU32::new).collect();
        self.indeg_tracked = true;
    }

    /// Number of nodes (live or not).
    pub fn len(&self) -> usize {
        self.levels.len()
    }

    /// The entry point and the top level, or `None` for an empty graph.
    #[inline]
    pub fn entry(&self) -> Option<(u32, usize)> {
        let v = self.entry.load(Ordering::Acquire);
        (v != u64::MAX).then_some((v as u32, (v >> 32) as usize))
    }

    /// Set the entry point.
    pub fn set_entry(&self, node: u32, level: usize) {
        self.entry.store(((level as u64) << 32) | node as u64, Ordering::Release);
    }

    /// Make the graph empty of an entry point (all nodes gone).
    pub fn clear_entry(&self) {
        self.entry.store(u64::MAX, Ordering::Release);
    }

    /// Maximum links of a node on `level`.
    #[inline(always)]
    pub fn cap(&self, level: usize) -> usize {
        if level == 0 {
            self.m0
        } else {
            self.m
        }
    }

    /// The block `[count, links..]` of `node` on `level` (`node` must exist); empty when
    /// the node has no block there (a damaged file: never read out of bounds).
    #[inline(always)]
    fn block(&self, node: u32, level: usize) -> &[AtomicU32] {
        if level == 0 {
            let s = node as usize * (self.m0 + 1);
            &self.links0[s..s + self.m0 + 1]
        } else {
            let s = self.upper_off[node as usize] as usize + (level - 1) * (self.m + 1);
            self.upper.get(s..s + self.m + 1).unwrap_or(&[])
        }
    }

    /// Hint the CPU to load `node`'s level-0 list.
    #[inline(always)]
    pub fn prefetch_list0(&self, node: u32) {
        let words = self.m0 + 1;
        let p = self.links0.as_ptr().wrapping_add(node as usize * words) as *const u8;
        crate::distance::prefetch_lines(p, (4 * words).div_ceil(64) + 1);
    }

    /// The current neighbours of `node` on `level` (links to nodes that do not exist, which
    /// only a damaged file holds, are skipped).
    #[inline(always)]
    pub fn neighbors(&self, node: u32, level: usize) -> impl Iterator<Item = u32> + '_ {
        let (c, links) = match self.block(node, level).split_first() {
            Some((c, links)) => ((c.load(Ordering::Acquire) as usize).min(links.len()), links),
            None => (0, &[][..]),
        };
        let n = self.len() as u32;
        links[..c].iter().map(|a| a.load(Ordering::Relaxed)).filter(move |&x| x < n)
    }

    /// Replace the neighbours of `node` on `level` (at most [`Graph::cap`] of them).
    /// The caller holds `node`'s lock (or has the graph to itself).
    pub fn set_neighbors(&self, node: u32, level: usize, ids: &[u32]) {
        let b = self.block(node, level);
        if b.is_empty() {
            return;
        }
        let n = ids.len().min(b.len() - 1);
        let len = self.len() as u32;
        if level == 0 && self.indeg_tracked {
            let old = (b[0].load(Ordering::Acquire) as usize).min(b.len() - 1);
            for a in &b[1..=old] {
                let x = a.load(Ordering::Relaxed);
                if x < len && !ids[..n].contains(&x) {
                    self.indeg0[x as usize].fetch_sub(1, Ordering::Relaxed);
                }
            }
            for &x in &ids[..n] {
                if !b[1..=old].iter().any(|a| a.load(Ordering::Relaxed) == x) {
                    self.indeg0[x as usize].fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        for (slot, &id) in b[1..].iter().zip(&ids[..n]) {
            slot.store(id, Ordering::Relaxed);
        }
        b[0].store(n as u32, Ordering::Release);
    }

    /// Make room for `n` more nodes, `upper_words` of them on upper levels.
    pub fn reserve(&mut self, n: usize, upper_words: usize) {
        self.links0.reserve(n * (self.m0 + 1));
        self.levels.vec_mut().reserve(n);
        if self.indeg_tracked {
            self.indeg0.reserve(n);
        }
        self.upper_off.vec_mut().reserve(n);
        self.upper.vec_mut().reserve(upper_words);
    }

    /// Append a node with top level `level` and no links; returns false when the upper
    /// array would outgrow 32-bit offsets.
    pub fn push_node(&mut self, level: usize) -> bool {
        self.links0.vec_mut().extend((0..=self.m0).map(|_| AtomicU32::new(0)));
        self.levels.vec_mut().push(level as u8);
        if self.indeg_tracked {
            self.indeg0.push(AtomicU32::new(0));
        }
        if level == 0 {
            self.upper_off.vec_mut().push(NONE);
        } else {
            let off = self.upper.len();
            let words = level * (self.m + 1);
            if off + words >= NONE as usize {
                return false;
            }
            self.upper_off.vec_mut().push(off as u32);
            self.upper.vec_mut().extend((0..words).map(|_| AtomicU32::new(0)));
        }
        true
    }

    /// Greedy walk on an upper level: move to a closer neighbour until none is closer.
    #[inline]
    pub fn greedy<S: Space>(&self, s: &S, q: &S::Row, mut cur: Scored, level: usize) -> Scored {
        loop {
            let mut changed = false;
            for nb in self.neighbors(cur.1, level) {
                let d = s.dist(q, s.row(nb));
                if d < cur.0 {
                    cur = Scored(d, nb);
                    changed = true;
                }
            }
            if !changed {
                return cur;
            }
        }
    }

    /// Descend from the entry point to level `to` (exclusive of greedy work below it).
    pub fn descend<S: Space>(&self, s: &S, q: &S::Row, to: usize) -> Option<Scored> {
        let (ep, top) = self.entry()?;
        let mut cur = Scored(s.dist(q, s.row(ep)), ep);
        for level in (to + 1..=top).rev() {
            cur = self.greedy(s, q, cur, level);
        }
        Some(cur)
    }

    /// Beam search on `level` from `eps`, keeping the `ef` closest in `sc.pool`.
    /// Every visited node may enter the result (no filter, no tombstones).
    pub fn search_layer<S: Space>(&self, s: &S, q: &S::Row, eps: &[Scored], ef: usize, level: usize, sc: &mut Scratch) {
        let Scratch { visited, pool, buf } = sc;
        visited.reset(self.len());
        pool.reset(ef);
        for e in eps {
            if !visited.check_and_mark(e.1) {
                pool.insert(e.0, e.1);
            }
        }
        while let Some(c) = pool.next() {
            // The next node to expand is most likely the closest unexpanded one now: start
            // loading its list while this one's neighbours are scored.
            if let (0, Some(nx)) = (level, pool.peek()) {
                self.prefetch_list0(nx);
            }
            buf.clear();
            for nb in self.neighbors(c, level) {
                if !visited.check_and_mark(nb) {
                    s.prefetch(nb);
                    buf.push(nb);
                }
            }
            for &nb in buf.iter() {
                let d = s.dist(q, s.row(nb));
                pool.insert(d, nb);
            }
        }
    }

    /// Beam search on level 0 where only nodes passing `accept` may enter the result;
    /// the others still guide the walk. Returns up to `ef` accepted nodes, closest first.
    /// Stops early after distance computations to half the nodes (a scan is cheaper then).
    pub fn search_layer_accept<S: Space>(
        &self,
        s: &S,
        q: &S::Row,
        eps: &[Scored],
        ef: usize,
        accept: &dyn Fn(u32) -> bool,
        sc: &mut Scratch,
    ) -> Vec<Scored> {
        let budget = self.len() / 2 + 1;
        let Scratch { visited, buf, .. } = sc;
        visited.reset(self.len());
        let mut cand: BinaryHeap<std::cmp::Reverse<Scored>> = BinaryHeap::new();
        let mut res: TopK<u32> = TopK::new(ef);
        for &e in eps {
            if !visited.check_and_mark(e.1) {
                cand.push(std::cmp::Reverse(e));
                if accept(e.1) {
                    res.push(e.0, e.1);
                }
            }
        }
        let mut spent = 0usize;
        while let Some(std::cmp::Reverse(c)) = cand.pop() {
            if c.0 > res.worst() {
                break;
            }
            if spent >= budget {
                break;
            }
            buf.clear();
            for nb in self.neighbors(c.1, 0) {
                if !visited.check_and_mark(nb) {
                    s.prefetch(nb);
                    buf.push(nb);
                }
            }
            spent += buf.len();
            for &nb in buf.iter() {
                let d = s.dist(q, s.row(nb));
                if d < res.worst() {
                    cand.push(std::cmp::Reverse(Scored(d, nb)));
                    if accept(nb) {
                        res.insert(d, nb);
                    }
                }
            }
        }
        res.into_sorted_pairs().into_iter().map(|(d, slot)| Scored(d, slot)).collect()
    }

    /// HNSW's neighbour-selection heuristic: walk candidates closest first and keep one only
    /// when it is closer to the base than to every neighbour kept so far (spreads links out).
    pub fn select<S: Space>(s: &S, cands: &[Scored], m: usize, out: &mut Vec<u32>) {
        out.clear();
        for c in cands {
            if out.len() >= m {
                break;
            }
            let rc = s.row(c.1);
            if out.iter().all(|&r| s.dist(rc, s.row(r)) >= c.0) {
                out.push(c.1);
            }
        }
    }

    /// Link the already-stored node `node` (top level `level`) into the graph; safe to call
    /// from many threads at once with the same `locks`. The searches for candidates and the
    /// pruning of neighbours' lists compare in the space `t`; with `rescore` (`t` holds the
    /// same rows coded: [`super::build_codes`]) the candidates are scored again in `s` before
    /// the node's own neighbours are selected, so its list is chosen on exact distances.
    /// Without codes, `t` is `s`.
    #[allow(clippy::too_many_arguments)]
    pub fn insert<S: Space, T: Space>(
        &self,
        s: &S,
        t: &T,
        rescore: bool,
        node: u32,
        ef_construction: usize,
        locks: &Locks,
        is_deleted: &(dyn Fn(u32) -> bool + Sync),
        sc: &mut Scratch,
    ) {
        let level = self.levels[node as usize] as usize;
        let mut guard = None;
        let Some((_, top0)) = self.entry() else {
            // first node: take the global lock and check again
            let g = locks.global.lock();
            if self.entry().is_none() {
                self.set_entry(node, level);
                return;
            }
            drop(g);
            return self.insert(s, t, rescore, node, ef_construction, locks, is_deleted, sc);
        };
        if level > top0 {
            guard = Some(locks.global.lock());
        }
        let (ep, top) = self.entry().expect("entry exists once set");
        if level <= top {
            guard = None;
        }
        let q = s.row(node);
        let qt = t.row(node);
        let mut cur = Scored(t.dist(qt, t.row(ep)), ep);
        for l in (level + 1..=top).rev() {
            cur = self.greedy(t, qt, cur, l);
        }
        // Two phases. First `node`'s own lists on every level, top down; nothing links to
        // `node` yet, so no other insert reaches it while its lower lists are still empty
        // (one that did would start its level-0 search from a node with no links there and
        // come away with one neighbour). Then the links back to it, which publish it.
        let mut eps = vec![cur];
        let mut chosen: Vec<(usize, Vec<u32>)> = Vec::with_capacity(level.min(top) + 1);
        let mut cands: Vec<Scored> = Vec::with_capacity(ef_construction);
        for l in (0..=level.min(top)).rev() {
            self.search_layer(t, qt, &eps, ef_construction, l, sc);
            cands.clear();
            cands.extend(sc.pool.items().iter().filter(|c| c.id != node).map(|c| Scored(c.dist, c.id)));
            // The next level's search starts from the closest candidate only, as hnswlib's
            // does: starting from all of them (a wide, sparse set one level up) left the
            // graph's recall at ef 64 0.001–0.003 under hnswlib's on clustered data.
            eps.clear();
            eps.extend(cands.first().copied());
            if rescore {
                cands.iter().for_each(|c| s.prefetch(c.1));
                cands.iter_mut().for_each(|c| c.0 = s.dist(q, s.row(c.1)));
                cands.sort_unstable();
            }
            if cands.iter().any(|c| is_deleted(c.1)) && cands.iter().any(|c| !is_deleted(c.1)) {
                cands.retain(|c| !is_deleted(c.1));
            }
            let mut selected = Vec::with_capacity(self.m);
            Self::select(s, &cands, self.m, &mut selected);
            {
                let _g = locks.nodes[node as usize].lock();
                debug_assert!(self.neighbors(node, l).next().is_none(), "a node is linked before it is published");
                self.set_neighbors(node, l, &selected);
            }
            chosen.push((l, selected));
        }
        for (l, selected) in chosen {
            let cap = self.cap(l);
            for &nb in &selected {
                let _g = locks.nodes[nb as usize].lock();
                let b = self.block(nb, l);
                if b.is_empty() {
                    continue;
                }
                let cnt = (b[0].load(Ordering::Acquire) as usize).min(cap);
                if b[1..=cnt].iter().any(|a| a.load(Ordering::Relaxed) == node) {
                    continue;
                }
                if cnt < cap {
                    b[cnt + 1].store(node, Ordering::Relaxed);
                    b[0].store(cnt as u32 + 1, Ordering::Release);
                    if l == 0 && self.indeg_tracked {
                        self.indeg0[node as usize].fetch_add(1, Ordering::Relaxed);
                    }
                } else {
                    self.set_neighbors(nb, l, &self.pruned(t, nb, l, qt, node, cap));
                }
            }
        }
        if guard.is_some() && level > top {
            self.set_entry(node, level);
        }
    }
}

impl Graph {
    /// The list of `nb` on `level` once `node` (row `q`) joins it: its neighbours and `node`,
    /// closest first, thinned by the selection heuristic to `cap`.
    fn pruned<S: Space>(&self, s: &S, nb: u32, level: usize, q: &S::Row, node: u32, cap: usize) -> Vec<u32> {
        let rn = s.row(nb);
        let mut pool: Vec<Scored> = self.neighbors(nb, level).map(|x| Scored(s.dist(rn, s.row(x)), x)).collect();
        pool.push(Scored(s.dist(rn, q), node));
        pool.sort_unstable();
        let mut keep = Vec::with_capacity(cap);
        Self::select(s, &pool, cap, &mut keep);
        keep
    }

    /// Link live nodes that searches cannot reach back into the graph: a nearby reachable
    /// node with room takes each, or gives up its farthest link to a node that has other
    /// in-links. With `everywhere`, every node not reachable from the entry point (over the
    /// links of all levels; a walk of every list) is relinked, which also catches small
    /// islands of nodes that only link to each other; otherwise only nodes no level-0 list
    /// points at (a scan of the in-degrees). Run single-threaded after a batch of inserts.
    pub fn repair_unreachable<S: Space>(
        &self,
        s: &S,
        ef: usize,
        is_deleted: &(dyn Fn(u32) -> bool + Sync),
        sc: &mut Scratch,
        everywhere: bool,
    ) {
        let Some((ep, _)) = self.entry() else { return };
        // Without in-degrees (a loaded graph not yet tracking them) only the walk can tell.
        let everywhere = everywhere || !self.indeg_tracked;
        let mut reached = Reached::new(self.len());
        let stranded: Vec<u32> = if everywhere {
            reached.flood(self, ep);
            (0..self.len() as u32).filter(|&o| !reached.has(o) && !is_deleted(o)).collect()
        } else {
            (0..self.len() as u32)
                .filter(|&o| o != ep && self.indeg0[o as usize].load(Ordering::Relaxed) == 0 && !is_deleted(o))
                .collect()
        };
        for o in stranded {
            if everywhere && reached.has(o) {
                continue; // reached through a node relinked before it
            }
            let q = s.row(o);
            let Some(cur) = self.descend(s, q, 0) else {
                return;
            };
            self.search_layer(s, q, &[cur], ef, 0, sc);
            let cands: Vec<u32> = sc.pool.items().iter().map(|c| c.id).filter(|&c| c != o && !is_deleted(c)).collect();
            for c in cands {
                let mut list: Vec<u32> = self.neighbors(c, 0).collect();
                if list.contains(&o) {
                    break;
                }
                if list.len() < self.m0 {
                    list.push(o);
                } else {
                    let rc = s.row(c);
                    let victim = list
                        .iter()
                        .enumerate()
                        .filter(|(_, &x)| self.indeg0.get(x as usize).is_some_and(|d| d.load(Ordering::Relaxed) >= 2))
                        .map(|(j, &x)| Scored(s.dist(rc, s.row(x)), j as u32))
                        .max();
                    let Some(Scored(_, j)) = victim else { continue };
                    list[j as usize] = o;
                }
                self.set_neighbors(c, 0, &list);
                if everywhere {
                    reached.flood(self, o);
                }
                break;
            }
        }
    }
}

/// The nodes a walk from the entry point has reached.
struct Reached {
    seen: Bits,
    stack: Vec<u32>,
}

impl Reached {
    fn new(n: usize) -> Self {
        let mut seen = Bits::default();
        seen.resize(n);
        Reached { seen, stack: Vec::new() }
    }
    fn has(&self, v: u32) -> bool {
        self.seen.get(v)
    }
    /// Mark `v`; true when it was not marked yet.
    fn mark(&mut self, v: u32) -> bool {
        let new = !self.seen.get(v);
        self.seen.set(v);
        new
    }
    /// Mark `from` and every node its links lead to, on any level.
    fn flood(&mut self, g: &Graph, from: u32) {
        if self.mark(from) {
            self.stack.push(from);
        }
        while let Some(v) = self.stack.pop() {
            for level in 0..=g.levels[v as usize] as usize {
                for nb in g.neighbors(v, level) {
                    if self.mark(nb) {
                        self.stack.push(nb);
                    }
                }
            }
        }
    }
}
