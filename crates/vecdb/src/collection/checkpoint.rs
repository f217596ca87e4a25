//! Checkpoints and compaction: the WAL's records move into a new segment (or every live record
//! into one segment), then the MANIFEST is replaced — the commit point — and only then are the
//! old WAL and (for a compaction) the old segments removed. Index changes commit through the
//! MANIFEST too.

use std::sync::Arc;

use super::rows::SegRows;
use super::snapshot::SNAPSHOT_COPY_MAX_BYTES;
use super::state::{Loc, MemRec, State};
use super::{poisoned_error, Collection, Writer};
use crate::error::{Error, Result};
use crate::fsutil::{remove_if_exists, sync_dir};
use crate::segment::{segment_file_name, write_segment, Segment, SegmentInfo, SegmentSource};
use crate::vector::VectorRef;
use crate::wal::{wal_file_name, Wal};

/// Rows for a new segment: a sorted list of ids read from the state.
struct StateRows<'a> {
    ids: Vec<u64>,
    /// Where each row's vectors and metadata are, resolved once.
    rows: Vec<RowRef<'a>>,
}

enum RowRef<'a> {
    Mem(&'a MemRec),
    Seg(&'a Segment, usize),
}

impl<'a> StateRows<'a> {
    /// Rows for `ids`, which must all be live.
    fn new(st: &'a State, ids: Vec<u64>) -> Self {
        let rows = ids
            .iter()
            .map(|&id| match st.loc(id).expect("rows are written for live ids") {
                Loc::Mem => RowRef::Mem(&st.memtable[&id]),
                Loc::Seg(s, r) => RowRef::Seg(&st.segments[s as usize], r as usize),
            })
            .collect();
        StateRows { ids, rows }
    }
}

impl SegmentSource for StateRows<'_> {
    fn rows(&self) -> usize {
        self.ids.len()
    }
    fn id(&self, i: usize) -> u64 {
        self.ids[i]
    }
    fn vector(&self, i: usize, f: usize) -> VectorRef<'_> {
        match self.rows[i] {
            RowRef::Mem(m) => m.vectors[f].as_ref(),
            RowRef::Seg(seg, r) => seg.vector(f, r),
        }
    }
    fn metadata_json(&self, i: usize, out: &mut Vec<u8>) -> Result<()> {
        match self.rows[i] {
            RowRef::Mem(m) => serde_json::to_writer(out, &m.meta).map_err(|e| Error::Metadata(e.to_string())),
            RowRef::Seg(seg, r) => {
                out.extend_from_slice(seg.metadata_json(r)?);
                Ok(())
            }
        }
    }
}

impl Collection {
    /// Move the WAL's records into a new segment and start an empty WAL, then save a snapshot
    /// of every index that is costly to rebuild (all but `Flat`), so that an open after a crash
    /// loads it and adds only what was written since. Done automatically when the collection
    /// is dropped; the WAL is also moved (without snapshots) whenever it grows past 64 MiB.
    ///
    /// Writers wait only while the indexes are copied in memory
    /// ([`VectorIndex::clone_index`], for indexes up to 4 GiB); the copies are written to
    /// disk after the locks are released, and searches go on throughout.
    pub fn checkpoint(&self) -> Result<()> {
        self.checkpoint_with(SNAPSHOT_COPY_MAX_BYTES)
    }

    /// [`Collection::checkpoint`], copying in memory only the indexes of up to `copy_max` bytes
    /// (the others are written under the writer lock). A background build passes 0: it has just
    /// built the graph, and a copy would double the memory a bulk load peaks at.
    pub(super) fn checkpoint_with(&self, copy_max: usize) -> Result<()> {
        self.check_alive()?;
        let _one_at_a_time = self.snapshotting.lock();
        let copies = {
            let mut w = self.writer()?;
            if let Some(why) = &w.poisoned {
                return Err(poisoned_error(&self.name, why));
            }
            self.checkpoint_locked(&mut w)?;
            let st = self.state.read();
            let mut copies = Vec::new();
            for (f, marker) in self.snapshots_due(&w, &st) {
                let index = st.indexes[f].index.as_ref();
                let hints = st.row_hints(f, index);
                let copy = if index.memory_bytes() <= copy_max { index.clone_index() } else { None };
                match copy {
                    Some(copy) => copies.push((f, copy, marker, hints)),
                    None => self.write_snapshot(f, index, &marker, hints.as_deref()),
                }
            }
            copies
        };
        for (f, index, marker, hints) in copies {
            self.write_snapshot(f, index.as_ref(), &marker, hints.as_deref());
        }
        Ok(())
    }

    /// Move the memtable and pending tombstones into a segment (nothing to do when both are
    /// empty). Where the compaction policy says so, the newest segments (or all of them) are
    /// merged into the same new segment (see [`merge_from`]).
    pub(super) fn checkpoint_locked(&self, w: &mut Writer) -> Result<()> {
        let from = {
            let st = self.state.read();
            if st.memtable.is_empty() && st.tombstones.is_empty() {
                return Ok(());
            }
            merge_from(&st, st.memtable.len())
        };
        self.rewrite(w, from)
    }

    /// Rewrite storage into one new segment that replaces segments `from..` (and the memtable):
    /// `from == segments.len()` is a checkpoint (the memtable and pending tombstones only),
    /// `from == 0` a full compaction (every live record, no tombstones), anything between a
    /// merge of the newest segments (their live records, plus the tombstones still needed to hide
    /// rows of the older segments). The new MANIFEST is the commit point; the old WAL and the
    /// replaced segments are removed after it.
    pub(super) fn rewrite(&self, w: &mut Writer, from: usize) -> Result<()> {
        let schema = self.schema().clone();
        let seq = w.manifest.next_seq;
        let seg_path = self.dir.join(segment_file_name(seq));
        let n_segments = w.manifest.segments.len();
        let from = from.min(n_segments);
        {
            let st = self.state.read();
            // Rows are written in id order: the segment's id column is then sorted, and lookups
            // binary-search it in place (see `rows.rs`).
            let mut ids: Vec<u64> = st.memtable.keys().copied().collect();
            for si in from..st.segments.len() {
                let seg = &st.segments[si];
                ids.extend(seg.ids().iter().enumerate().filter(|&(r, _)| st.is_live_row(si, r)).map(|(_, &id)| id));
            }
            ids.sort_unstable();
            let mut tombs: Vec<u64> = if from == n_segments {
                st.tombstones.clone()
            } else if from == 0 {
                vec![]
            } else {
                st.segments[from..]
                    .iter()
                    .flat_map(|s| s.tombstones().iter().copied())
                    .chain(st.tombstones.iter().copied())
                    .filter(|&id| !st.contains(id))
                    .collect()
            };
            tombs.sort_unstable();
            tombs.dedup();
            let info = SegmentInfo {
                schema: schema.clone(),
                wal_gen: w.manifest.wal_gen + 1,
                compacted: from == 0,
                sorted_ids: true, // `ids` is sorted and distinct above
            };
            write_segment(&seg_path, seq, &schema, &StateRows::new(&st, ids), &tombs, &info)?;
        }
        let new_gen = w.manifest.wal_gen + 1;
        let new_wal = Wal::create(&self.dir.join(wal_file_name(new_gen)), new_gen, &schema)?;
        sync_dir(&self.dir)?;
        let seg = Arc::new(Segment::open(&seg_path, seq, &schema)?);
        let mut manifest = w.manifest.clone();
        let replaced: Vec<u64> = manifest.segments.split_off(from);
        manifest.segments.push(seq);
        manifest.wal_gen = new_gen;
        manifest.next_seq = seq + 1;
        if let Err(e) = manifest.write(&self.dir) {
            w.poisoned = Some(format!("manifest write failed during checkpoint: {e}"));
            return Err(e);
        }
        let old_wal = std::mem::replace(&mut w.wal, new_wal);
        w.manifest = manifest;
        {
            // The new segment holds exactly the live records of the memtable and of segments
            // `from..`: the older segments' rows those replaced are dead already.
            let mut st = self.state.write();
            st.segments.truncate(from);
            st.rows.truncate(from);
            st.rows.push(SegRows::new(&seg));
            st.segments.push(seg);
            st.seg_live = st.segments.iter().zip(&st.rows).map(|(s, r)| s.rows() - r.dead_count()).sum();
            st.memtable.clear();
            st.tombstones.clear();
            st.reset_stored(&schema);
            st.relocate_in_place();
        }
        remove_if_exists(old_wal.path())?;
        for s in replaced {
            remove_if_exists(&self.dir.join(segment_file_name(s)))?;
        }
        sync_dir(&self.dir)
    }

    /// Rewrite all live records into one segment without deleted or replaced rows (the space of
    /// deleted and replaced rows is reclaimed). Checkpoints also do this on their own when the
    /// compaction policy says so (see [`merge_from`]).
    pub fn compact(&self) -> Result<()> {
        self.check_alive()?;
        let mut w = self.writer()?;
        if let Some(why) = &w.poisoned {
            return Err(poisoned_error(&self.name, why));
        }
        let from = 0;
        self.rewrite(&mut w, from)
    }

    /// Rebuild field `field`'s index with factory spec `spec` and persist the choice in the schema.
    pub fn set_index(&self, field: &str, spec: &str) -> Result<()> {
        self.check_alive()?;
        let mut w = self.writer()?;
        if let Some(why) = &w.poisoned {
            return Err(poisoned_error(&self.name, why));
        }
        let mut schema = self.schema().clone();
        let f = schema.field_index(field)?;
        let built = {
            let st = self.state.read();
            st.build_field(spec, &schema.fields[f], f)?
        };
        schema.fields[f].index = spec.trim().to_string();
        let mut manifest = w.manifest.clone();
        manifest.schema = schema.clone();
        manifest.write(&self.dir)?;
        w.manifest = manifest;
        {
            let mut st = self.state.write();
            st.cancel_build(f);
            st.indexes[f] = built;
        }
        self.push_schema(schema);
        drop(w);
        self.start_due_builds();
        Ok(())
    }
}

/// Most segments a collection keeps before a checkpoint merges the newest ones.
pub(super) const MAX_SEGMENTS: usize = 8;
/// Share of dead rows (deleted or replaced) in the segments past which a checkpoint compacts
/// everything, once there are at least [`RECLAIM_MIN_ROWS`] rows.
pub(super) const RECLAIM_DEAD_SHARE: f64 = 0.25;
/// Segments with fewer rows than this are never compacted for their dead rows alone.
pub(super) const RECLAIM_MIN_ROWS: usize = 1024;

/// The compaction policy: the first segment a checkpoint that writes `new_rows` memtable records
/// should replace (`st.segments.len()`: none, a plain checkpoint).
///
/// * Dead rows past [`RECLAIM_DEAD_SHARE`] of the stored rows: everything (`0`), so deleted
///   records stop taking space.
/// * More than [`MAX_SEGMENTS`] segments with the new one: the newest run of segments whose rows
///   add up to no more than the segment it sits on is merged (sizes then shrink geometrically
///   towards the newest, so a record is rewritten about log(n) times); everything when no
///   such run exists.
pub(super) fn merge_from(st: &State, new_rows: usize) -> usize {
    let n = st.segments.len();
    let rows: Vec<usize> = st.segments.iter().map(|s| s.rows()).chain([new_rows]).collect();
    let stored: usize = rows[..n].iter().sum();
    let dead = stored - st.seg_live.min(stored);
    if stored >= RECLAIM_MIN_ROWS && dead as f64 > RECLAIM_DEAD_SHARE * stored as f64 {
        return 0;
    }
    if rows.len() <= MAX_SEGMENTS {
        return n;
    }
    let mut suffix = rows[n];
    let mut from = None;
    for i in (1..n).rev() {
        suffix += rows[i];
        if suffix <= rows[i - 1] {
            from = Some(i);
        }
    }
    from.unwrap_or(0)
}
