//! Float rows read in place: a graph over a storage engine's own vectors (memory-mapped
//! segment columns) instead of a copy of them.
//!
//! Each slot holds the address of its row. Rows the engine does not keep mapped (records
//! still in its write buffer, rows of removed nodes whose storage went away) are copied into
//! chunks the index owns; [`InPlaceRows::relocate`] moves slots between the two as the
//! engine's storage changes. The engine keeps every mapping the addresses point into alive
//! by handing the index a keep-alive handle per mapping.
//!
//! A loaded index does not build its address table up front: until its rows are attached it
//! knows only its inline copies, and [`InPlaceRows::attach_hints`] lets it find each row
//! from a saved row hint (segment position and row, [`RowHints`]) when the row is first read,
//! so that opening a graph over N rows reads nothing proportional to N. The first change
//! (an insert, a relocation, a consolidation) turns the hints into the address table.
//!
//! Safety: the addresses are only dereferenced through [`InPlaceRows::row`]; the contract
//! of the `unsafe` entry points ([`InPlaceRows::push_in_place`], [`InPlaceRows::resolve`],
//! [`InPlaceRows::relocate`], [`InPlaceRows::attach_hints`]) is that every address given
//! points at `dim` aligned `f32`s that stay valid and unchanged while the handles given with
//! them are held.

use std::any::Any;
use std::sync::Arc;

use super::column::Column;

/// Keeps a mapping alive while an index reads rows from it.
pub type KeepAlive = Arc<dyn Any + Send + Sync>;

/// Where a loaded index's rows are, per slot: `segment << 32 | row` into a table of
/// segment columns (see [`InPlaceRows::attach_hints`]); any other value names no row.
pub struct RowHints {
    /// One hint per slot (usually a mapped file).
    pub(crate) hints: Column<u64>,
    /// Per segment position: address of its column's first row and its number of rows.
    pub(crate) columns: Vec<(usize, usize)>,
}

/// A loaded index's rows before the address table exists: inline copies by slot, and the
/// hints once attached.
struct Lazy {
    /// Slots.
    len: usize,
    /// Slots with an inline copy, ascending; the copy of `inline[i]` is row `i` of `owned[0]`.
    inline: Vec<u32>,
    inline_base: usize,
    /// `None` until [`InPlaceRows::attach_hints`].
    hints: Option<RowHints>,
    /// A row of zeros for a slot whose hint names no row (a damaged file a reader opened
    /// without checksums): searches stay in bounds, `db check` reports the damage.
    zeros: usize,
}

impl Lazy {
    /// Address of `slot`'s row; 0 when it is not attached.
    #[inline(always)]
    fn addr(&self, slot: u32, stride: usize) -> usize {
        if let Some(h) = &self.hints {
            if (slot as usize) < h.hints.len() {
                // SAFETY: `slot` is in range; the view points into `h`, borrowed here.
                if let Some(a) = unsafe { HintView::of(h).addr(slot, stride) } {
                    return a;
                }
            }
        }
        self.inline_or_zeros(slot, stride)
    }

    #[cold]
    fn inline_or_zeros(&self, slot: u32, stride: usize) -> usize {
        match self.inline.binary_search(&slot) {
            Ok(i) => self.inline_base + i * stride,
            Err(_) if self.hints.is_some() => self.zeros,
            Err(_) => 0,
        }
    }
}

/// The hot part of [`Lazy`]'s attached hints, inline in [`InPlaceRows`] (one load of the
/// hint and one of its segment's entry per row read; no `Arc` or enum in between). Addresses
/// into the hints and the column table that `lazy` holds.
#[derive(Clone, Copy)]
struct HintView {
    /// Slots (hints).
    len: usize,
    hints: usize,
    columns: usize,
    n_columns: usize,
}

impl HintView {
    fn of(h: &RowHints) -> HintView {
        HintView {
            len: h.hints.len(),
            hints: h.hints.as_ptr() as usize,
            columns: h.columns.as_ptr() as usize,
            n_columns: h.columns.len(),
        }
    }

    /// Address of `slot`'s row when its hint names one.
    ///
    /// # Safety
    /// `slot` is below the number of hints, and the [`Lazy`] the view was made from is held.
    #[inline(always)]
    unsafe fn addr(self, slot: u32, stride: usize) -> Option<usize> {
        let hint = *(self.hints as *const u64).add(slot as usize);
        let (seg, row) = ((hint >> 32) as usize, (hint & 0xffff_ffff) as usize);
        if seg >= self.n_columns {
            return None;
        }
        let (start, rows) = *(self.columns as *const (usize, usize)).add(seg);
        (row < rows).then_some(start + row * stride)
    }
}

/// Rows by slot: addresses into the engine's storage or into owned chunks.
#[derive(Clone)]
pub(crate) struct InPlaceRows {
    /// Address of each slot's row; 0 while unresolved (a loaded index before
    /// [`InPlaceRows::resolve`]). Empty while `lazy` answers instead.
    ptrs: Vec<usize>,
    /// A loaded index's rows before its address table exists.
    lazy: Option<Arc<Lazy>>,
    /// `lazy`'s attached hints, when it has them.
    view: Option<HintView>,
    /// Rows copied in (one chunk per batch), shared by clones.
    owned: Vec<Arc<[f32]>>,
    /// The engine's mappings the addresses point into.
    keep: Vec<KeepAlive>,
    dim: usize,
    /// Slots without a row.
    pub(crate) unresolved: usize,
}

impl InPlaceRows {
    pub(crate) fn new(dim: usize) -> InPlaceRows {
        InPlaceRows {
            ptrs: Vec::new(),
            lazy: None,
            view: None,
            owned: Vec::new(),
            keep: Vec::new(),
            dim,
            unresolved: 0,
        }
    }

    fn stride(&self) -> usize {
        4 * self.dim
    }

    /// Number of slots.
    pub(crate) fn len(&self) -> usize {
        match &self.lazy {
            Some(l) => l.len,
            None => self.ptrs.len(),
        }
    }

    /// Address of `slot`'s row, 0 while it is not attached.
    #[inline(always)]
    pub(crate) fn addr(&self, slot: u32) -> usize {
        match self.fast_addr(slot) {
            Some(p) => p,
            None => self.addr_slow(slot),
        }
    }

    /// The address of `slot`'s row from the address table or a usable hint, else `None`
    /// (out of range too: for prefetching).
    #[inline(always)]
    pub(crate) fn fast_addr(&self, slot: u32) -> Option<usize> {
        // The address table when there is one (`ptrs` is empty while `lazy` answers).
        if let Some(&p) = self.ptrs.get(slot as usize) {
            return Some(p);
        }
        let v = self.view?;
        if (slot as usize) < v.len {
            // SAFETY: `slot` is in range, and `self.lazy` (which the view points into) is held.
            unsafe { v.addr(slot, 4 * self.dim) }
        } else {
            None
        }
    }

    /// [`InPlaceRows::addr`] of a slot without an address or a usable hint.
    #[cold]
    fn addr_slow(&self, slot: u32) -> usize {
        match &self.lazy {
            Some(l) if (slot as usize) < l.len => l.addr(slot, 4 * self.dim),
            _ => panic!("slot {slot} out of range ({} slots)", self.len()),
        }
    }

    /// Row of `slot`.
    #[inline(always)]
    pub(crate) fn row(&self, slot: u32) -> &[f32] {
        let p = self.addr(slot);
        debug_assert!(p != 0, "unresolved row");
        // SAFETY: see the module doc: every non-zero address points at `dim` valid f32s kept
        // alive by `keep` or `owned`; searches refuse an index with unresolved slots.
        unsafe { std::slice::from_raw_parts(p as *const f32, self.dim) }
    }

    /// Address of each slot's row (0: not attached).
    pub(crate) fn addresses(&self) -> std::borrow::Cow<'_, [usize]> {
        match &self.lazy {
            None => std::borrow::Cow::Borrowed(&self.ptrs),
            Some(l) => (0..l.len as u32).map(|s| l.addr(s, self.stride())).collect(),
        }
    }

    /// Build the address table of a loaded index (before any change to its slots).
    fn materialize(&mut self) {
        if self.lazy.is_some() {
            self.ptrs = self.addresses().into_owned();
            self.lazy = None;
            self.view = None;
        }
    }

    /// Append rows by copying `data` (`dim` floats per row) into a new owned chunk.
    pub(crate) fn push_owned(&mut self, data: &[f32]) {
        if data.is_empty() {
            return;
        }
        self.materialize();
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
        self.materialize();
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
        self.materialize();
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
        self.materialize();
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

    /// Attach the rows of a loaded index's slots without visiting them: each slot without an
    /// inline copy finds its row from `hints` when first read; a hint that names no row
    /// (`segment` or `row` out of range: a damaged file) reads a row of zeros. Returns false
    /// (and changes nothing) unless the index waits for its rows and `hints` holds one per
    /// slot.
    ///
    /// # Safety
    /// Every row of every column in `hints.columns` (`dim` aligned `f32`s from its start
    /// address) stays valid and unchanged while the handles in `keep` are held.
    pub(crate) unsafe fn attach_hints(&mut self, hints: RowHints, keep: Vec<KeepAlive>) -> bool {
        let Some(lazy) = self.lazy.as_mut().and_then(Arc::get_mut) else { return false };
        if lazy.hints.is_some() || hints.hints.len() != lazy.len {
            return false;
        }
        let zeros: Arc<[f32]> = vec![0.0; self.dim].into();
        lazy.zeros = zeros.as_ptr() as usize;
        self.view = Some(HintView::of(&hints));
        lazy.hints = Some(hints);
        self.owned.push(zeros);
        self.unresolved = 0;
        for k in keep {
            self.hold(k);
        }
        true
    }

    /// True while rows are found from attached hints ([`InPlaceRows::attach_hints`]).
    #[cfg(test)]
    pub(crate) fn reads_hints(&self) -> bool {
        self.lazy.as_ref().is_some_and(|l| l.hints.is_some())
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
        self.materialize();
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
        self.materialize();
        let mut i = 0;
        self.ptrs.retain(|_| {
            let k = keep_slot(i);
            i += 1;
            k
        });
    }

    /// Reorder: new slot `i` takes old slot `order[i]`.
    pub(crate) fn permute(&mut self, order: &[u32]) {
        self.materialize();
        self.ptrs = order.iter().map(|&o| self.ptrs[o as usize]).collect();
    }

    /// True when `slot`'s row is a private copy (not in the engine's storage).
    pub(crate) fn is_owned(&self, slot: u32) -> bool {
        let p = self.addr(slot);
        self.owned.iter().any(|c| {
            let b = c.as_ptr() as usize;
            p >= b && p < b + 4 * c.len()
        })
    }

    /// Heap bytes: the address table (or the inline slot list) and the owned copies (not the
    /// engine's mapped rows, nor mapped hints).
    pub(crate) fn heap_bytes(&self) -> usize {
        let table = match &self.lazy {
            None => 8 * self.ptrs.capacity(),
            Some(l) => {
                4 * l.inline.capacity()
                    + l.hints.as_ref().map_or(0, |h| {
                        16 * h.columns.capacity() + if h.hints.is_mapped() { 0 } else { 8 * h.hints.len() }
                    })
            }
        };
        table + self.owned.iter().map(|c| 4 * c.len()).sum::<usize>()
    }

    /// A loaded index's `n` slots: `inline` gives a row for some (copied in), the others wait
    /// for [`InPlaceRows::attach_hints`] or [`InPlaceRows::resolve`]. Nothing here is
    /// proportional to `n`.
    pub(crate) fn with_unresolved(dim: usize, n: usize, inline: &[(u32, &[f32])]) -> InPlaceRows {
        let mut rows = InPlaceRows::new(dim);
        let mut order: Vec<usize> = (0..inline.len()).collect();
        order.sort_unstable_by_key(|&i| inline[i].0);
        let mut data = Vec::with_capacity(inline.len() * dim);
        for &i in &order {
            data.extend_from_slice(inline[i].1);
        }
        let chunk: Arc<[f32]> = Arc::from(data);
        let inline_base = chunk.as_ptr() as usize;
        let slots: Vec<u32> = order.iter().map(|&i| inline[i].0).collect();
        if !inline.is_empty() {
            rows.owned.push(chunk);
        }
        rows.unresolved = n.saturating_sub(slots.len());
        rows.lazy = Some(Arc::new(Lazy { len: n, inline: slots, inline_base, hints: None, zeros: 0 }));
        rows
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two "segment columns" of 3 and 2 rows (dim 2), and an index of 6 slots whose slot 4
    /// is an inline copy: hints find the others, a hint out of range reads zeros, and the
    /// first change builds the same addresses into a table.
    #[test]
    fn hints_find_rows_when_read_and_become_addresses_on_the_first_change() {
        let seg0 = Arc::new(vec![0.0f32, 1.0, 10.0, 11.0, 20.0, 21.0]);
        let seg1 = Arc::new(vec![100.0f32, 101.0, 110.0, 111.0]);
        let columns = vec![(seg0.as_ptr() as usize, 3), (seg1.as_ptr() as usize, 2)];
        let inline = [7.0f32, 7.5];
        let mut rows = InPlaceRows::with_unresolved(2, 6, &[(4, &inline[..])]);
        assert_eq!((rows.len(), rows.unresolved), (6, 5));
        assert_eq!(rows.addr(0), 0, "not attached yet");
        assert_eq!(rows.row(4), &inline);
        let hints: Vec<u64> = vec![2, 1 << 32, 0, (1 << 32) | 5, u64::MAX, 9 << 32];
        let keep: Vec<KeepAlive> = vec![seg0.clone(), seg1.clone()];
        // SAFETY: the columns are held by `keep` for as long as `rows` lives.
        assert!(unsafe { rows.attach_hints(RowHints { hints: hints.into(), columns: columns.clone() }, keep) });
        assert_eq!(rows.unresolved, 0);
        assert!(rows.reads_hints());
        let want: [[f32; 2]; 6] = [[20.0, 21.0], [100.0, 101.0], [0.0, 1.0], [0.0, 0.0], [7.0, 7.5], [0.0, 0.0]];
        for (s, w) in want.iter().enumerate() {
            assert_eq!(rows.row(s as u32), w, "slot {s}");
        }
        assert!(rows.is_owned(4) && !rows.is_owned(0));
        // SAFETY: no addresses given.
        assert!(!unsafe { rows.attach_hints(RowHints { hints: vec![0; 6].into(), columns }, Vec::new()) });
        let before = rows.addresses().into_owned();
        rows.push_owned(&[5.0, 5.5]);
        assert!(!rows.reads_hints());
        assert_eq!(rows.len(), 7);
        assert_eq!(&rows.addresses()[..6], &before[..]);
        for (s, w) in want.iter().enumerate() {
            assert_eq!(rows.row(s as u32), w, "slot {s} after the change");
        }
        assert_eq!(rows.row(6), &[5.0, 5.5]);
    }
}
