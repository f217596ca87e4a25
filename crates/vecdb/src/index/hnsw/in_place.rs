//! Float rows read in place: a graph over a storage engine's own vectors (memory-mapped
//! segment columns) instead of a copy of them.
//!
//! Each slot holds the address of its row. Rows the engine does not keep mapped (records
//! still in its write buffer, rows of removed nodes whose storage went away) are copied into
//! chunks the index owns; [`InPlaceRows::relocate`] moves slots between the two as the
//! engine's storage changes. The engine keeps every mapping the addresses point into alive
//! by handing the index a keep-alive handle per mapping.
//!
//! Safety: the addresses are only dereferenced through [`InPlaceRows::row`]; the contract
//! of the `unsafe` entry points ([`InPlaceRows::push_in_place`], [`InPlaceRows::resolve`],
//! [`InPlaceRows::relocate`]) is that every address given points at `dim` aligned `f32`s
//! that stay valid and unchanged while the handles given with them are held.

use std::any::Any;
use std::sync::Arc;

/// Keeps a mapping alive while an index reads rows from it.
pub type KeepAlive = Arc<dyn Any + Send + Sync>;

/// Rows by slot: addresses into the engine's storage or into owned chunks.
#[derive(Clone)]
pub(crate) struct InPlaceRows {
    /// Address of each slot's row; 0 while unresolved (a loaded index before
    /// [`InPlaceRows::resolve`]).
    pub(crate) ptrs: Vec<usize>,
    /// Rows copied in (one chunk per batch), shared by clones.
    owned: Vec<Arc<[f32]>>,
    /// The engine's mappings the addresses point into.
    keep: Vec<KeepAlive>,
    dim: usize,
    /// Slots whose address is still 0.
    pub(crate) unresolved: usize,
}

impl InPlaceRows {
    pub(crate) fn new(dim: usize) -> InPlaceRows {
        InPlaceRows { ptrs: Vec::new(), owned: Vec::new(), keep: Vec::new(), dim, unresolved: 0 }
    }

    /// Row of `slot`.
    #[inline(always)]
    pub(crate) fn row(&self, slot: u32) -> &[f32] {
        let p = self.ptrs[slot as usize];
        debug_assert!(p != 0, "unresolved row");
        // SAFETY: see the module doc: every non-zero address points at `dim` valid f32s kept
        // alive by `keep` or `owned`; searches refuse an index with unresolved slots.
        unsafe { std::slice::from_raw_parts(p as *const f32, self.dim) }
    }

    /// Append rows by copying `data` (`dim` floats per row) into a new owned chunk.
    pub(crate) fn push_owned(&mut self, data: &[f32]) {
        if data.is_empty() {
            return;
        }
        let chunk: Arc<[f32]> = Arc::from(data);
        let base = chunk.as_ptr() as usize;
        self.ptrs.extend((0..data.len() / self.dim.max(1)).map(|i| base + i * 4 * self.dim));
        self.owned.push(chunk);
    }

    /// Append rows given by address.
    ///
    /// # Safety
    /// Every address points at `dim` aligned `f32`s that stay valid while `keep` is held.
    pub(crate) unsafe fn push_in_place(&mut self, rows: &[usize], keep: KeepAlive) {
        self.ptrs.extend_from_slice(rows);
        self.hold(keep);
    }

    fn hold(&mut self, keep: KeepAlive) {
        if !self.keep.iter().any(|k| Arc::ptr_eq(k, &keep)) {
            self.keep.push(keep);
        }
    }

    /// Give unresolved slots their rows (`(slot, address)`); returns how many are left.
    ///
    /// # Safety
    /// As [`InPlaceRows::push_in_place`], for every address and the handles in `keep`.
    pub(crate) unsafe fn resolve(&mut self, rows: &[(u32, usize)], keep: Vec<KeepAlive>) -> usize {
        for &(slot, addr) in rows {
            if let Some(p) = self.ptrs.get_mut(slot as usize) {
                if *p == 0 && addr != 0 {
                    *p = addr;
                    self.unresolved -= 1;
                }
            }
        }
        for k in keep {
            self.hold(k);
        }
        self.unresolved
    }

    /// Give each unresolved slot the address `at(slot)` returns, if any; returns how many
    /// are left.
    ///
    /// # Safety
    /// As [`InPlaceRows::push_in_place`], for every address `at` returns and the handles in
    /// `keep`.
    pub(crate) unsafe fn resolve_by(
        &mut self,
        mut at: impl FnMut(u32) -> Option<usize>,
        keep: Vec<KeepAlive>,
    ) -> usize {
        let mut left = 0;
        for (slot, p) in self.ptrs.iter_mut().enumerate() {
            if *p == 0 {
                match at(slot as u32) {
                    Some(a) if a != 0 => *p = a,
                    _ => left += 1,
                }
            }
        }
        self.unresolved = left;
        for k in keep {
            self.hold(k);
        }
        left
    }

    /// Re-point every slot: `to(slot, address)` returns the row's new address in the engine's
    /// storage (the same one when it did not move), or `None` to keep a private copy. The
    /// handles held afterwards are `keep` (plus the owned chunks still used): storage the
    /// engine dropped is released.
    ///
    /// # Safety
    /// As [`InPlaceRows::push_in_place`], for every address `to` returns and the handles in
    /// `keep`; the current addresses must still be valid during the call.
    pub(crate) unsafe fn relocate(&mut self, mut to: impl FnMut(u32, usize) -> Option<usize>, keep: Vec<KeepAlive>) {
        let dim = self.dim;
        let mut copies: Vec<f32> = Vec::new();
        let mut copied: Vec<u32> = Vec::new();
        for slot in 0..self.ptrs.len() as u32 {
            let p = self.ptrs[slot as usize];
            if p == 0 {
                continue;
            }
            match to(slot, p) {
                Some(q) => self.ptrs[slot as usize] = q,
                None => {
                    copies.extend_from_slice(self.row(slot));
                    copied.push(slot);
                }
            }
        }
        let chunk: Arc<[f32]> = Arc::from(copies);
        let base = chunk.as_ptr() as usize;
        for (i, &slot) in copied.iter().enumerate() {
            self.ptrs[slot as usize] = base + i * 4 * dim;
        }
        self.owned = if copied.is_empty() { Vec::new() } else { vec![chunk] };
        self.keep = keep;
    }

    /// Keep only the slots `keep_slot` accepts, in order (a consolidation dropped the rest).
    pub(crate) fn retain_slots(&mut self, keep_slot: impl Fn(usize) -> bool) {
        let mut i = 0;
        self.ptrs.retain(|_| {
            let k = keep_slot(i);
            i += 1;
            k
        });
    }

    /// Reorder: new slot `i` takes old slot `order[i]`.
    pub(crate) fn permute(&mut self, order: &[u32]) {
        self.ptrs = order.iter().map(|&o| self.ptrs[o as usize]).collect();
    }

    /// True when `slot`'s row is a private copy (not in the engine's storage).
    pub(crate) fn is_owned(&self, slot: u32) -> bool {
        let p = self.ptrs[slot as usize];
        self.owned.iter().any(|c| {
            let b = c.as_ptr() as usize;
            p >= b && p < b + 4 * c.len()
        })
    }

    /// Heap bytes: the address table and the owned copies (not the engine's mapped rows).
    pub(crate) fn heap_bytes(&self) -> usize {
        8 * self.ptrs.capacity() + self.owned.iter().map(|c| 4 * c.len()).sum::<usize>()
    }

    /// A loaded index's slots: `resolved` gives a row for some (copied in), the others wait
    /// for [`InPlaceRows::resolve`].
    pub(crate) fn with_unresolved(dim: usize, n: usize, inline: &[(u32, &[f32])]) -> InPlaceRows {
        let mut rows = InPlaceRows::new(dim);
        rows.ptrs = vec![0; n];
        let mut data = Vec::with_capacity(inline.len() * dim);
        for (_, r) in inline {
            data.extend_from_slice(r);
        }
        let chunk: Arc<[f32]> = Arc::from(data);
        let base = chunk.as_ptr() as usize;
        for (i, &(slot, _)) in inline.iter().enumerate() {
            rows.ptrs[slot as usize] = base + i * 4 * dim;
        }
        if !inline.is_empty() {
            rows.owned.push(chunk);
        }
        rows.unresolved = rows.ptrs.iter().filter(|&&p| p == 0).count();
        rows
    }
}
