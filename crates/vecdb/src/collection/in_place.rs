//! Float graphs over the segments' own vectors: a collection's `HNSW<M>` field reads its rows
//! in place from the memory-mapped segment columns instead of holding (and saving) a copy.
//!
//! * Build: [`add_segment_rows`] links segment rows by address, each segment held alive by
//!   the index; memtable records are copied into the index (the normal `add`).
//! * Storage changes: a checkpoint moves memtable records into a new segment, a merge or a
//!   compaction replaces segments. [`State::relocate_in_place`] then re-points every node at
//!   its record's row in the current segments (rows still in a current segment stay put), and
//!   copies the rows of removed nodes whose segment went away, so the replaced segments are
//!   released.
//! * Snapshots save the graph without the live rows, and beside it where each row is
//!   (`rows.bin`, [`State::row_hints`]: segment position and row). [`State::resolve_in_place`]
//!   attaches them in one pass over the slots on the next open (the segments a snapshot covers
//!   are still the first ones, unchanged), and looks up by id only the rows a hint does not
//!   give (a snapshot from before the hints, a damaged file).

use std::path::Path;
use std::sync::Arc;

use super::state::{Loc, State};
use crate::error::Result;
use crate::index::hnsw::{HnswIndex, KeepAlive};
use crate::index::VectorIndex;
use crate::segment::Segment;
use crate::vector::{VectorRef, VectorsRef};

/// The file beside an in-place graph's snapshot that says where its rows are.
pub(super) const ROW_HINTS_FILE: &str = "rows.bin";
/// A row hint for a row that is not in a segment.
const NO_HINT: u64 = u64::MAX;

/// The row hint of row `row` of the segment at position `si`.
fn row_hint(si: usize, row: usize) -> u64 {
    ((si as u64) << 32) | row as u64
}

/// The segment position and row a hint names.
fn hinted_row(hint: u64) -> (usize, usize) {
    ((hint >> 32) as usize, (hint & 0xffff_ffff) as usize)
}

/// How [`State::resolve_in_place`] attached a loaded graph's rows.
#[derive(Clone, Copy, PartialEq, Debug)]
pub(super) enum Attached {
    /// Every row where the saved hints say (or there was nothing to attach).
    ByHints,
    /// Some looked up by id (no hints, or stale ones): a writer saves hints for next time.
    ById,
    /// A row is in none of the segments: the snapshot is unusable.
    Missing,
}

/// Let `index` read its rows in place when it is a float HNSW graph that is still empty;
/// returns whether it does.
pub(super) fn prefer_in_place(index: &mut dyn VectorIndex) -> bool {
    index.as_hnsw_mut().is_some_and(HnswIndex::read_rows_in_place)
}

/// Address of row `row` of float field `f` in `seg`.
fn row_addr(seg: &Segment, f: usize, row: usize) -> usize {
    match seg.vector(f, row) {
        VectorRef::Dense(v) => v.as_ptr() as usize,
        VectorRef::Binary(b) => b.as_ptr() as usize,
    }
}

/// Byte range of field `f`'s column in `seg`.
fn column_range(seg: &Segment, f: usize) -> std::ops::Range<usize> {
    let (p, len) = match seg.column(f) {
        VectorsRef::Dense(v) => (v.as_ptr() as usize, 4 * v.len()),
        VectorsRef::Binary(b) => (b.as_ptr() as usize, b.len()),
    };
    p..p + len
}

fn keep(seg: &Arc<Segment>) -> KeepAlive {
    seg.clone()
}

/// Link `rows` of `seg` (ids from its id column) into `index` by address, `chunk` at a time;
/// `each` runs after every chunk with the number added and returns false to stop (the result
/// is then `Ok(false)`).
pub(super) fn add_segment_rows(
    index: &mut HnswIndex,
    seg: &Arc<Segment>,
    f: usize,
    rows: impl Iterator<Item = usize>,
    chunk: usize,
    mut each: impl FnMut(usize) -> bool,
) -> Result<bool> {
    let (mut ids, mut addrs) = (Vec::with_capacity(chunk), Vec::with_capacity(chunk));
    let mut rows = rows.peekable();
    while rows.peek().is_some() {
        ids.clear();
        addrs.clear();
        for r in rows.by_ref().take(chunk) {
            ids.push(seg.ids()[r]);
            addrs.push(row_addr(seg, f, r));
        }
        // SAFETY: the rows are `dim` floats of a mapped segment column (4-byte aligned,
        // validated when written), immutable while the segment is held, and the index holds it.
        unsafe { index.add_in_place(&ids, &addrs, keep(seg))? };
        if !each(ids.len()) {
            return Ok(false);
        }
    }
    Ok(true)
}

impl State {
    /// Link every live record of field `f` into the in-place graph `index`: segment rows by
    /// address, memtable records by copy.
    pub(super) fn add_live_in_place(&self, f: usize, index: &mut HnswIndex, chunk: usize) -> Result<usize> {
        let mut added = 0;
        for (si, seg) in self.segments.iter().enumerate() {
            let rows = &self.rows[si];
            let live = (0..seg.rows()).filter(|&r| !rows.is_dead(r));
            add_segment_rows(index, seg, f, live, chunk, |n| {
                added += n;
                true
            })?;
        }
        let mut ids = Vec::with_capacity(self.memtable.len());
        let mut data = Vec::new();
        for (&id, m) in &self.memtable {
            if let VectorRef::Dense(v) = m.vectors[f].as_ref() {
                ids.push(id);
                data.extend_from_slice(v);
            }
        }
        index.add(&ids, VectorsRef::Dense(&data))?;
        Ok(added + ids.len())
    }

    /// Where each node of field `f`'s in-place graph `index` reads its row, for the snapshot
    /// saved now: [`row_hint`] (segment position and row) in the current segments, [`NO_HINT`] for a
    /// row not in one (the snapshot keeps those itself). `None` when `index` holds its rows.
    pub(super) fn row_hints(&self, f: usize, index: &dyn VectorIndex) -> Option<Vec<u64>> {
        let addrs = index.as_hnsw()?.row_addresses()?;
        let mut cols: Vec<(usize, usize, usize)> = self
            .segments
            .iter()
            .enumerate()
            .map(|(si, seg)| {
                let r = column_range(seg, f);
                (r.start, r.end, si)
            })
            .collect();
        cols.sort_unstable();
        let stride = 4 * index.dim();
        let hint = |a: usize| -> u64 {
            let i = cols.partition_point(|c| c.0 <= a);
            match i.checked_sub(1).map(|i| cols[i]) {
                Some((start, end, si)) if a < end && (a - start).is_multiple_of(stride) => {
                    row_hint(si, (a - start) / stride)
                }
                _ => NO_HINT,
            }
        };
        Some(addrs.iter().map(|&a| hint(a)).collect())
    }

    /// Give a loaded in-place graph of field `f` the rows of its live nodes: where the hints
    /// saved beside its snapshot in `sdir` say ([`State::row_hints`]), else each id's row in
    /// segments `..since` (the ones its snapshot covers), newest first.
    ///
    /// With `lazy` (a reader, which never saves the graph) the hints file is mapped and each
    /// row found from its hint when first read: constant time, and a damaged hint reads a row
    /// of zeros in bounds (`db check` verifies the file). A writer resolves every hint now,
    /// bounds-checked, and looks up by id the rows a hint does not give.
    pub(super) fn resolve_in_place(
        &self,
        index: &mut dyn VectorIndex,
        f: usize,
        since: usize,
        sdir: &Path,
        lazy: bool,
    ) -> Attached {
        let Some(h) = index.as_hnsw_mut() else { return Attached::ByHints };
        // A float graph saved with its own copy of the vectors (before format 4) drops it.
        h.convert_to_in_place();
        let since = since.min(self.segments.len());
        let nodes = h.in_place_slots().unwrap_or(0);
        let stride = 4 * h.dim();
        let cols: Vec<(usize, usize)> =
            self.segments[..since].iter().map(|s| (column_range(s, f).start, s.rows())).collect();
        let held = || -> Vec<KeepAlive> { self.segments[..since].iter().map(keep).collect() };
        if lazy && nodes > 0 {
            // SAFETY: `cols` are the mapped segment columns (rows checked against their
            // lengths on every read), held by `keep`.
            if unsafe { h.attach_row_hints(&sdir.join(ROW_HINTS_FILE), cols.clone(), held()) } {
                return Attached::ByHints;
            }
        }
        let hints: Vec<u64> = crate::index::file::read_pod(&sdir.join(ROW_HINTS_FILE)).unwrap_or_default();
        if hints.len() == nodes && nodes > 0 {
            let at = |slot: u32| {
                let (si, row) = hinted_row(hints[slot as usize]);
                let &(start, rows) = cols.get(si)?;
                (row < rows).then_some(start + row * stride)
            };
            // SAFETY: addresses of rows of mapped segment columns (row in bounds), held by `keep`.
            if unsafe { h.resolve_rows_by(at, held()) } == 0 {
                return Attached::ByHints;
            }
        }
        let wanted = h.unresolved_rows();
        if wanted.is_empty() {
            return Attached::ByHints;
        }
        let mut found = Vec::with_capacity(wanted.len());
        for (slot, id) in wanted {
            let hit = (0..since).rev().find_map(|si| self.rows[si].find(&self.segments[si], id).map(|r| (si, r)));
            match hit {
                Some((si, r)) => found.push((slot, row_addr(&self.segments[si], f, r))),
                None => return Attached::Missing,
            }
        }
        // SAFETY: addresses of rows of mapped segment columns, held by `keep`.
        match unsafe { h.resolve_rows(&found, held()) } {
            Ok(()) => Attached::ById,
            Err(_) => Attached::Missing,
        }
    }

    /// Re-point every in-place graph at the current segments (after a checkpoint, a merge, a
    /// compaction, a follower's new segment, a background build's swap): rows still in a
    /// current segment stay, live records get their current segment row, the rest (memtable
    /// records, removed nodes whose segment went away) are kept as copies.
    pub(super) fn relocate_in_place(&mut self) {
        let mut indexes = std::mem::take(&mut self.indexes);
        for (f, fi) in indexes.iter_mut().enumerate() {
            let Some(h) = fi.index.as_hnsw_mut().filter(|h| h.reads_in_place()) else { continue };
            let ranges: Vec<_> = self.segments.iter().map(|s| column_range(s, f)).collect();
            let keep: Vec<KeepAlive> = self.segments.iter().map(keep).collect();
            let st = &*self;
            let to = |id: u64, removed: bool, addr: usize| {
                if ranges.iter().any(|r| r.contains(&addr)) {
                    return Some(addr);
                }
                match (removed, st.loc(id)) {
                    (false, Some(Loc::Seg(si, r))) => Some(row_addr(&st.segments[si as usize], f, r as usize)),
                    _ => None,
                }
            };
            // SAFETY: the current addresses are valid (the index still holds their segments or
            // copies during the call); new ones are rows of mapped columns held by `keep`.
            unsafe { h.relocate_rows(to, keep) };
        }
        self.indexes = indexes;
    }
}
