//! Node renumbering for locality: after a bulk build, slots are renumbered in breadth-first
//! order of the level-0 graph from the entry point (neighbours in list order, closest
//! first), so nodes a search expands together mostly sit in nearby rows: their codes,
//! vectors and neighbour lists share pages and cache lines (a BFS ordering, the cheap
//! member of the RCM / Gorder family). The graph is unchanged up to the renaming.

use super::graph::{Graph, NONE};
use super::{Bits, HnswIndex, Rows};

/// Graphs smaller than this are not renumbered (they fit in cache anyway).
pub(super) const REORDER_MIN: usize = 4096;

impl HnswIndex {
    /// Renumber every slot in breadth-first order from the entry point (nodes the walk does
    /// not reach keep their relative order at the end). Ids, rows, full vectors, tombstones
    /// and links all move with their node; searches return the same neighbours.
    pub fn reorder_for_locality(&mut self) {
        let n = self.graph.len();
        let Some((ep, top)) = self.graph.entry() else { return };
        let mut new_of = vec![NONE; n];
        let mut order: Vec<u32> = Vec::with_capacity(n);
        new_of[ep as usize] = 0;
        order.push(ep);
        let mut head = 0;
        while head < order.len() {
            let v = order[head];
            head += 1;
            for nb in self.graph.neighbors(v, 0) {
                if new_of[nb as usize] == NONE {
                    new_of[nb as usize] = order.len() as u32;
                    order.push(nb);
                }
            }
        }
        for v in 0..n as u32 {
            if new_of[v as usize] == NONE {
                new_of[v as usize] = order.len() as u32;
                order.push(v);
            }
        }
        let old = &self.graph;
        let mut graph = Graph::new(self.m);
        let upper_words: usize = order.iter().map(|&v| old.levels[v as usize] as usize * (self.m + 1)).sum();
        graph.reserve(n, upper_words);
        for &v in &order {
            // Cannot overflow: the same nodes fit in the old graph.
            let _ = graph.push_node(old.levels[v as usize] as usize);
        }
        let mut list = Vec::with_capacity(old.m0);
        for (new, &v) in order.iter().enumerate() {
            for level in 0..=old.levels[v as usize] as usize {
                list.clear();
                list.extend(old.neighbors(v, level).map(|x| new_of[x as usize]));
                graph.set_neighbors(new as u32, level, &list);
            }
        }
        graph.set_entry(new_of[ep as usize], top);

        let permute = |rows: &Rows, floats: bool, row_bytes: usize| -> Rows {
            if floats {
                let (src, dim) = (rows.f32s(), row_bytes / 4);
                let mut out = Vec::with_capacity(src.len());
                order.iter().for_each(|&v| out.extend_from_slice(&src[v as usize * dim..(v as usize + 1) * dim]));
                Rows::F32(out)
            } else {
                let src = rows.bytes();
                let mut out = Vec::with_capacity(src.len());
                order.iter().for_each(|&v| out.extend_from_slice(&src[v as usize * row_bytes..][..row_bytes]));
                Rows::Bits(out)
            }
        };
        let (floats, row_bytes) = (self.stores_floats(), self.row_bytes());
        self.rows = match &mut self.rows {
            // Rows read in place stay where the storage keeps them: only their addresses move.
            Rows::InPlace(r) => {
                r.permute(&order);
                Rows::InPlace(std::mem::replace(r, super::InPlaceRows::new(self.dim)))
            }
            rows => permute(rows, floats, row_bytes),
        };
        if let Some(codes) = &mut self.build_codes.0 {
            codes.permute(&order);
        }
        if let Some(exact) = &self.exact {
            self.exact = Some(permute(exact, true, 4 * self.dim));
        }
        let mut deleted = Bits::default();
        deleted.resize(n);
        for (new, &v) in order.iter().enumerate() {
            if self.deleted.get(v) {
                deleted.set(new as u32);
            }
        }
        self.ids = order.iter().map(|&v| self.ids[v as usize]).collect::<Vec<u64>>().into();
        if let Some(map) = self.slot_of.get_mut() {
            map.values_mut().for_each(|slot| *slot = new_of[*slot as usize]);
        }
        self.deleted = deleted;
        self.graph = graph;
    }
}
