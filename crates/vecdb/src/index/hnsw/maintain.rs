//! Graph repair after removals: relink around tombstones, then drop them.

use std::collections::HashMap;

use rayon::prelude::*;

use super::graph::{Graph, Scored, NONE};
use super::space::Space;
use super::{with_space, Bits, HnswIndex, Rows};

impl HnswIndex {
    /// Repair the graph around removed nodes and free them.
    ///
    /// Every neighbour list that points at a removed node is rebuilt from its live
    /// neighbours plus the live neighbours of the removed ones (two hops), pruned with the
    /// usual HNSW heuristic; then removed nodes are dropped and slots renumbered. Runs
    /// automatically once a quarter of the nodes are tombstones; cost is about one pass
    /// over the graph.
    pub fn consolidate(&mut self) {
        if self.n_deleted == 0 {
            return;
        }
        let n = self.graph.len();
        // Slots are renumbered below; the next large batch codes the rows again.
        self.release_build_codes();
        let lists: Vec<Vec<Vec<u32>>> = with_space!(self, s => {
            let this = &*self;
            (0..n as u32).into_par_iter().map(|v| this.repaired_lists(&s, v)).collect()
        });
        // New numbering: live nodes keep their order.
        let mut new_of = vec![NONE; n];
        let mut next = 0u32;
        for (slot, new) in new_of.iter_mut().enumerate() {
            if !self.deleted.get(slot as u32) {
                *new = next;
                next += 1;
            }
        }
        let mut graph = Graph::new(self.m);
        let mut ids = Vec::with_capacity(next as usize);
        let rb = self.row_bytes();
        let dim = self.dim;
        let mut floats: Vec<f32> = Vec::new();
        let mut bytes: Vec<u8> = Vec::new();
        let mut exact: Vec<f32> = Vec::new();
        let src_exact = self.exact.as_ref().map_or(&[][..], |r| r.f32s());
        let (src_f, src_b) = (self.rows.f32s(), self.rows.bytes());
        let floats_kept = self.stores_floats();
        let in_place = matches!(self.rows, Rows::InPlace(_));
        for slot in 0..n {
            if new_of[slot] == NONE {
                continue;
            }
            let level = self.graph.levels[slot] as usize;
            // Cannot overflow: the new graph is no larger than the old one.
            let _ = graph.push_node(level);
            ids.push(self.ids[slot]);
            if in_place {
                // the address table is filtered below
            } else if floats_kept {
                floats.extend_from_slice(&src_f[slot * dim..(slot + 1) * dim]);
            } else {
                bytes.extend_from_slice(&src_b[slot * rb..(slot + 1) * rb]);
            }
            if self.exact.is_some() {
                exact.extend_from_slice(&src_exact[slot * dim..(slot + 1) * dim]);
            }
        }
        for (slot, per_level) in lists.iter().enumerate() {
            let v = new_of[slot];
            if v == NONE {
                continue;
            }
            for (level, list) in per_level.iter().enumerate() {
                let mapped: Vec<u32> = list.iter().map(|&x| new_of[x as usize]).filter(|&x| x != NONE).collect();
                graph.set_neighbors(v, level, &mapped);
            }
        }
        // Entry point: the old one if it survived, else the live node with the top level.
        let entry = match self.graph.entry() {
            Some((e, l)) if new_of[e as usize] != NONE => Some((new_of[e as usize], l)),
            _ => (0..graph.len())
                .max_by_key(|&i| (graph.levels[i], std::cmp::Reverse(i)))
                .map(|i| (i as u32, graph.levels[i] as usize)),
        };
        match entry {
            Some((e, l)) => graph.set_entry(e, l),
            None => graph.clear_entry(),
        }
        self.rows = match &mut self.rows {
            Rows::InPlace(r) => {
                let mut r = std::mem::replace(r, super::InPlaceRows::new(dim));
                r.retain_slots(|slot| new_of[slot] != NONE);
                Rows::InPlace(r)
            }
            _ if floats_kept => Rows::F32(floats),
            _ => Rows::Bits(bytes),
        };
        if self.exact.is_some() {
            self.exact = Some(Rows::F32(exact));
        }
        self.slot_of =
            std::sync::OnceLock::from(ids.iter().enumerate().map(|(i, &id)| (id, i as u32)).collect::<HashMap<_, _>>());
        self.ids = ids.into();
        self.graph = graph;
        self.deleted = Bits::default();
        self.deleted.resize(self.graph.len());
        self.n_deleted = 0;
        let efc = self.ef_construction;
        with_space!(self, s => {
            super::scratch::with_scratch(|sc| self.graph.repair_unreachable(&s, efc, &|_| false, sc, true))
        });
    }

    /// The neighbour lists (old slot numbers) `v` should have once tombstones are gone.
    fn repaired_lists<S: Space>(&self, s: &S, v: u32) -> Vec<Vec<u32>> {
        if self.deleted.get(v) {
            return Vec::new();
        }
        let top = self.graph.levels[v as usize] as usize;
        (0..=top)
            .map(|level| {
                let nbrs: Vec<u32> = self.graph.neighbors(v, level).collect();
                if !nbrs.iter().any(|&x| self.deleted.get(x)) {
                    return nbrs;
                }
                let mut cands: Vec<u32> = Vec::with_capacity(nbrs.len() * 2);
                for &x in &nbrs {
                    if !self.deleted.get(x) {
                        cands.push(x);
                    } else {
                        cands.extend(self.graph.neighbors(x, level).filter(|&y| y != v && !self.deleted.get(y)));
                    }
                }
                cands.sort_unstable();
                cands.dedup();
                let rv = s.row(v);
                let mut scored: Vec<Scored> = cands.iter().map(|&y| Scored(s.dist(rv, s.row(y)), y)).collect();
                scored.sort_unstable();
                let mut out = Vec::with_capacity(self.graph.cap(level));
                Graph::select(s, &scored, self.graph.cap(level), &mut out);
                out
            })
            .collect()
    }
}
