//! The one bounded top-k collector and the one result order of every index (after
//! FAISS's `Heap.h`): candidates are ordered by distance, then by id — the smaller
//! distance first and, on equal distances, the smaller id — with `f32::total_cmp`, so
//! the order is total and deterministic (NaN last).

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use crate::index::Neighbor;

/// A candidate, ordered by `(d, id)`.
#[derive(Debug, Clone, Copy)]
struct Entry<I> {
    d: f32,
    id: I,
}

impl<I: Ord> PartialEq for Entry<I> {
    fn eq(&self, o: &Self) -> bool {
        self.cmp(o) == Ordering::Equal
    }
}
impl<I: Ord> Eq for Entry<I> {}
impl<I: Ord> PartialOrd for Entry<I> {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl<I: Ord> Ord for Entry<I> {
    fn cmp(&self, o: &Self) -> Ordering {
        self.d.total_cmp(&o.d).then(self.id.cmp(&o.id))
    }
}

/// Keeps the `k` smallest `(distance, id)` pairs offered: a max-heap whose top is the worst
/// kept pair. `I` is the key the tie rule uses: a caller id (`u64`, the default) or an
/// index's internal slot number.
#[derive(Debug, Clone)]
pub(crate) struct TopK<I = u64> {
    k: usize,
    heap: BinaryHeap<Entry<I>>,
    /// Distance of the worst kept pair once `k` are kept; `+∞` before (`−∞` for `k = 0`:
    /// nothing enters).
    worst: f32,
}

impl<I: Ord + Copy> TopK<I> {
    /// An empty collector of the best `k`.
    pub(crate) fn new(k: usize) -> Self {
        let worst = if k == 0 { f32::NEG_INFINITY } else { f32::INFINITY };
        TopK { k, heap: BinaryHeap::with_capacity(k.min(4096) + 1), worst }
    }

    /// Would `(d, id)` enter? A cheap test to run before costlier checks (a filter).
    #[inline]
    pub(crate) fn accepts(&self, d: f32, id: I) -> bool {
        if self.heap.len() < self.k {
            return true;
        }
        if d < self.worst {
            return true;
        }
        self.heap.peek().is_some_and(|w| Entry { d, id } < *w)
    }

    /// Insert a pair that passed [`TopK::accepts`] (dropping the worst kept one when full).
    #[inline]
    pub(crate) fn insert(&mut self, d: f32, id: I) {
        if self.heap.len() == self.k {
            self.heap.pop();
        }
        self.heap.push(Entry { d, id });
        if self.heap.len() == self.k {
            self.worst = self.heap.peek().map_or(f32::INFINITY, |e| e.d);
        }
    }

    /// Offer a pair: kept when it is among the best `k` so far.
    #[inline]
    pub(crate) fn push(&mut self, d: f32, id: I) {
        if self.accepts(d, id) {
            self.insert(d, id);
        }
    }

    /// The distance a pair must beat to enter (`+∞` until `k` are kept, `−∞` when `k = 0`).
    #[inline]
    pub(crate) fn worst(&self) -> f32 {
        self.worst
    }

    /// True once `k` pairs are kept.
    pub(crate) fn is_full(&self) -> bool {
        self.heap.len() >= self.k
    }

    /// The best `k` of both collectors (for parallel scans).
    pub(crate) fn merge(mut self, other: TopK<I>) -> TopK<I> {
        for e in other.heap {
            self.push(e.d, e.id);
        }
        self
    }

    /// The kept `(distance, id)` pairs, best first.
    pub(crate) fn into_sorted_pairs(self) -> Vec<(f32, I)> {
        self.heap.into_sorted_vec().into_iter().map(|e| (e.d, e.id)).collect()
    }
}

impl TopK<u64> {
    /// The kept pairs as neighbors, best first.
    pub(crate) fn into_sorted(self) -> Vec<Neighbor> {
        self.heap.into_sorted_vec().into_iter().map(|e| Neighbor { id: e.id, distance: e.d }).collect()
    }
}

/// Sort neighbors in the order of [`TopK`]: by distance, then by id.
pub(crate) fn sort_neighbors(v: &mut [Neighbor]) {
    v.sort_unstable_by(|a, b| a.distance.total_cmp(&b.distance).then(a.id.cmp(&b.id)));
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The collector keeps exactly the first `k` of the fully sorted input, ties included.
    #[test]
    fn keeps_the_k_smallest_by_distance_then_id() {
        let mut s = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s
        };
        for round in 0..200 {
            let n = (next() % 60) as usize;
            let k = (next() % 12) as usize;
            // Few distinct distances, so that ties are common; a NaN now and then.
            let pairs: Vec<(f32, u64)> = (0..n)
                .map(|_| {
                    let d = if next() % 17 == 0 { f32::NAN } else { (next() % 5) as f32 };
                    (d, next() % 1000)
                })
                .collect();
            let mut want: Vec<Neighbor> = pairs.iter().map(|&(d, id)| Neighbor { id, distance: d }).collect();
            sort_neighbors(&mut want);
            want.dedup_by(|a, b| a.id == b.id && a.distance.to_bits() == b.distance.to_bits());
            let mut top = TopK::new(k);
            let mut halves = (TopK::new(k), TopK::new(k));
            let mut seen = std::collections::HashSet::new();
            for (i, &(d, id)) in pairs.iter().enumerate() {
                if !seen.insert((d.to_bits(), id)) {
                    continue;
                }
                top.push(d, id);
                (if i % 2 == 0 { &mut halves.0 } else { &mut halves.1 }).push(d, id);
            }
            let got = top.into_sorted();
            let merged = halves.0.merge(halves.1).into_sorted();
            let want = &want[..k.min(want.len())];
            let same = |a: &[Neighbor]| {
                a.len() == want.len()
                    && a.iter().zip(want).all(|(x, y)| x.id == y.id && x.distance.to_bits() == y.distance.to_bits())
            };
            assert!(same(&got), "round {round}: {got:?} vs {want:?}");
            assert!(same(&merged), "round {round} (merged): {merged:?} vs {want:?}");
        }
    }

    #[test]
    fn worst_is_infinite_until_full() {
        let mut top: TopK<u32> = TopK::new(2);
        assert!(!top.is_full());
        top.push(3.0, 7);
        assert_eq!(top.worst(), f32::INFINITY);
        top.push(1.0, 9);
        assert!(top.is_full());
        assert_eq!(top.worst(), 3.0);
        // An equal distance with a smaller key enters; with a larger one it does not.
        assert!(top.accepts(3.0, 6));
        assert!(!top.accepts(3.0, 8));
        top.push(3.0, 6);
        assert_eq!(top.into_sorted_pairs(), vec![(1.0, 9), (3.0, 6)]);
        let mut none: TopK = TopK::new(0);
        none.push(0.0, 1);
        assert!(none.into_sorted().is_empty());
    }
}
