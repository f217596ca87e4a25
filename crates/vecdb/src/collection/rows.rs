//! Which rows of a sealed segment are live, and where an id's row is, without a per-record
//! hash map: a segment's id column is sorted (checkpoints and compactions write rows in id
//! order), so an id is found by binary search in the mapped column, and a bitset marks the rows
//! that a newer segment, the memtable or a delete replaced. Building this at open costs one pass
//! over each id column (8 bytes per record, read in place) and a sorted intersection with the
//! newer segments, instead of hashing every record into a map (about 46 heap bytes per record
//! and most of the open time at a million records).

use crate::segment::Segment;

/// The live rows of one segment.
#[derive(Clone)]
pub(super) struct SegRows {
    /// One bit per row, set when the row is dead (replaced or deleted); empty while none is.
    dead: Vec<u64>,
    dead_count: usize,
    /// Rows in id order for a segment whose id column is not sorted (written by an older
    /// version); `None` when the column itself is sorted.
    order: Option<Vec<u32>>,
}

impl SegRows {
    /// The rows of `seg`, all live.
    pub(super) fn new(seg: &Segment) -> SegRows {
        let ids = seg.ids();
        // Trusted when the writer recorded it (an open then reads nothing per row).
        let sorted = seg.ids_sorted() || ids.windows(2).all(|w| w[0] < w[1]);
        let order = (!sorted).then(|| {
            let mut order: Vec<u32> = (0..ids.len() as u32).collect();
            // Stable: of an id written twice (never by this version) the later row sorts last.
            order.sort_by_key(|&r| ids[r as usize]);
            order
        });
        SegRows { dead: Vec::new(), dead_count: 0, order }
    }

    /// The row holding `id` in `seg` (whose rows these are), dead or alive; the last one for an
    /// id an unsorted column holds twice.
    pub(super) fn find(&self, seg: &Segment, id: u64) -> Option<usize> {
        let ids = seg.ids();
        match &self.order {
            None => ids.binary_search(&id).ok(),
            Some(order) => {
                let end = order.partition_point(|&r| ids[r as usize] <= id);
                (end > 0 && ids[order[end - 1] as usize] == id).then(|| order[end - 1] as usize)
            }
        }
    }

    /// True when `row` was replaced or deleted.
    #[inline]
    pub(super) fn is_dead(&self, row: usize) -> bool {
        self.dead.get(row / 64).is_some_and(|w| w & (1 << (row % 64)) != 0)
    }

    /// Mark `row` of a segment of `rows` rows dead; false when it already was.
    pub(super) fn kill(&mut self, row: usize, rows: usize) -> bool {
        if self.dead.is_empty() {
            self.dead = vec![0; rows.div_ceil(64)];
        }
        let (w, bit) = (row / 64, 1u64 << (row % 64));
        if self.dead[w] & bit != 0 {
            return false;
        }
        self.dead[w] |= bit;
        self.dead_count += 1;
        true
    }

    /// Dead rows.
    pub(super) fn dead_count(&self) -> usize {
        self.dead_count
    }

    /// Heap bytes of this bookkeeping.
    pub(super) fn heap_bytes(&self) -> usize {
        self.dead.capacity() * 8 + self.order.as_ref().map_or(0, |o| o.capacity() * 4)
    }

    /// The ids of `seg` (the segment these rows describe) in increasing order.
    pub(super) fn sorted<'a>(&'a self, seg: &'a Segment) -> SortedIds<'a> {
        SortedIds { ids: seg.ids(), order: self.order.as_deref() }
    }
}

/// A segment's ids in increasing order: its id column, or the column through a row order.
#[derive(Clone, Copy)]
pub(super) struct SortedIds<'a> {
    ids: &'a [u64],
    order: Option<&'a [u32]>,
}

impl SortedIds<'_> {
    fn len(&self) -> usize {
        self.ids.len()
    }
    /// The `i`-th smallest id and its row.
    #[inline]
    fn at(&self, i: usize) -> (u64, usize) {
        match self.order {
            None => (self.ids[i], i),
            Some(o) => (self.ids[o[i] as usize], o[i] as usize),
        }
    }
}

/// Call `cb(row in a, row in b)` for every id both hold: a merge that gallops through the
/// longer one, so a small new segment against a large old one costs O(small × log(large)).
pub(super) fn intersect(a: SortedIds<'_>, b: SortedIds<'_>, mut cb: impl FnMut(usize, usize)) {
    let swapped = a.len() > b.len();
    let (small, large) = if swapped { (b, a) } else { (a, b) };
    let mut lo = 0;
    for i in 0..small.len() {
        let (id, row_s) = small.at(i);
        // Gallop to a bound past `id`, then binary search inside it.
        let (mut hi, mut step) = (lo, 1);
        while hi < large.len() && large.at(hi).0 < id {
            lo = hi;
            hi += step;
            step *= 2;
        }
        let hi = hi.min(large.len());
        let (mut l, mut h) = (lo, hi);
        while l < h {
            let mid = (l + h) / 2;
            if large.at(mid).0 < id {
                l = mid + 1;
            } else {
                h = mid;
            }
        }
        if l >= large.len() {
            break;
        }
        let (found, row_l) = large.at(l);
        if found == id {
            if swapped {
                cb(row_l, row_s)
            } else {
                cb(row_s, row_l)
            }
        }
        lo = l;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intersect_finds_every_common_id_both_ways() {
        let a = [1u64, 3, 5, 7, 9, 1000, 1998];
        let b: Vec<u64> = (0..2000u64).step_by(3).collect();
        let view = |ids| SortedIds { ids, order: None };
        let mut got = Vec::new();
        intersect(view(&a), view(&b), |ra, rb| got.push((a[ra], b[rb])));
        assert_eq!(got, vec![(3, 3), (9, 9), (1998, 1998)]);
        let mut back = Vec::new();
        intersect(view(&b), view(&a), |rb, ra| back.push((a[ra], b[rb])));
        assert_eq!(back, got);
        // Through a row order (an unsorted column).
        let unsorted = [9u64, 1, 1998, 4];
        let order = [1u32, 3, 0, 2];
        let mut via = Vec::new();
        intersect(SortedIds { ids: &unsorted, order: Some(&order) }, view(&b), |ru, rb| via.push((ru, b[rb])));
        assert_eq!(via, vec![(0, 9), (2, 1998)]);
        let mut none = Vec::new();
        intersect(view(&a), view(&[]), |x, y| none.push((x, y)));
        assert!(none.is_empty());
    }

    #[test]
    fn kill_counts_each_row_once() {
        let mut r = SegRows { dead: Vec::new(), dead_count: 0, order: None };
        assert!(!r.is_dead(70));
        assert!(r.kill(70, 100));
        assert!(!r.kill(70, 100));
        assert!(r.is_dead(70) && !r.is_dead(69));
        assert_eq!(r.dead_count(), 1);
    }
}
