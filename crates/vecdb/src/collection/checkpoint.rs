//! Checkpoints and compaction: the WAL's records move into a new segment (or every live record
//! into one segment), then the MANIFEST is replaced — the commit point — and only then are the
//! old WAL and (for a compaction) the old segments removed. Index changes commit through the
//! MANIFEST too.

use std::sync::Arc;

use super::snapshot::SNAPSHOT_COPY_MAX_BYTES;
use super::state::{Loc, State};
use super::{poisoned_error, Collection, Writer};
use crate::error::Result;
use crate::filter::Metadata;
use crate::fsutil::{remove_if_exists, sync_dir};
use crate::segment::{segment_file_name, write_segment, Segment, SegmentInfo, SegmentSource};
use crate::vector::{Vector, VectorRef};
use crate::wal::{wal_file_name, Wal};

/// Rows for a new segment: a sorted list of ids read from the state.
struct StateRows<'a> {
    ids: Vec<u64>,
    /// Where each row's vectors and metadata are, resolved once.
    rows: Vec<(RowRef<'a>, &'a Metadata)>,
}

enum RowRef<'a> {
    Mem(&'a [Vector]),
    Seg(&'a Segment, usize),
}

impl<'a> StateRows<'a> {
    /// Rows for `ids`, which must all be live.
    fn new(st: &'a State, ids: Vec<u64>) -> Self {
        let rows = ids
            .iter()
            .map(|id| {
                let slot = &st.slots[id];
                let r = match slot.loc {
                    Loc::Mem => RowRef::Mem(&st.memtable[id]),
                    Loc::Seg(s, r) => RowRef::Seg(&st.segments[s as usize], r as usize),
                };
                (r, &slot.meta)
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
        match self.rows[i].0 {
            RowRef::Mem(v) => v[f].as_ref(),
            RowRef::Seg(seg, r) => seg.vector(f, r),
        }
    }
    fn metadata(&self, i: usize) -> &Metadata {
        self.rows[i].1
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
                let copy = if index.memory_bytes() <= SNAPSHOT_COPY_MAX_BYTES { index.clone_index() } else { None };
                match copy {
                    Some(copy) => copies.push((f, copy, marker)),
                    None => self.write_snapshot(f, index, &marker),
                }
            }
            copies
        };
        for (f, index, marker) in copies {
            self.write_snapshot(f, index.as_ref(), &marker);
        }
        Ok(())
    }

    pub(super) fn checkpoint_locked(&self, w: &mut Writer) -> Result<()> {
        let (empty, tomb_empty) = {
            let st = self.state.read();
            (st.memtable.is_empty(), st.tombstones.is_empty())
        };
        if empty && tomb_empty {
            return Ok(());
        }
        self.rewrite(w, false)
    }

    /// Rewrite storage: `full == false` writes the memtable and pending tombstones into
    /// one new segment; `full == true` writes every live record into one segment and
    /// removes all older ones (compaction).
    pub(super) fn rewrite(&self, w: &mut Writer, full: bool) -> Result<()> {
        let schema = self.schema().clone();
        let seq = w.manifest.next_seq;
        let seg_path = self.dir.join(segment_file_name(seq));
        {
            let st = self.state.read();
            let mut ids: Vec<u64> =
                if full { st.slots.keys().copied().collect() } else { st.memtable.keys().copied().collect() };
            ids.sort_unstable();
            let mut tombs = if full { vec![] } else { st.tombstones.clone() };
            tombs.sort_unstable();
            tombs.dedup();
            let info = SegmentInfo { schema: schema.clone(), wal_gen: w.manifest.wal_gen + 1, compacted: full };
            write_segment(&seg_path, seq, &schema, &StateRows::new(&st, ids), &tombs, &info)?;
        }
        let new_gen = w.manifest.wal_gen + 1;
        let new_wal = Wal::create(&self.dir.join(wal_file_name(new_gen)), new_gen, &schema)?;
        sync_dir(&self.dir)?;
        let seg = Arc::new(Segment::open(&seg_path, seq, &schema)?);
        let mut manifest = w.manifest.clone();
        let old_segments = std::mem::take(&mut manifest.segments);
        manifest.segments = if full { vec![seq] } else { old_segments.iter().copied().chain([seq]).collect() };
        manifest.wal_gen = new_gen;
        manifest.next_seq = seq + 1;
        if let Err(e) = manifest.write(&self.dir) {
            w.poisoned = Some(format!("manifest write failed during checkpoint: {e}"));
            return Err(e);
        }
        let old_wal = std::mem::replace(&mut w.wal, new_wal);
        w.manifest = manifest;
        {
            let mut st = self.state.write();
            if full {
                st.segments.clear();
                st.seg_live = 0;
            }
            let si = st.segments.len() as u32;
            for (row, &id) in seg.ids().iter().enumerate() {
                if let Some(slot) = st.slots.get_mut(&id) {
                    slot.loc = Loc::Seg(si, row as u32);
                }
            }
            st.seg_live += seg.rows();
            st.segments.push(seg);
            st.memtable.clear();
            st.tombstones.clear();
        }
        remove_if_exists(old_wal.path())?;
        if full {
            for s in old_segments {
                remove_if_exists(&self.dir.join(segment_file_name(s)))?;
            }
        }
        sync_dir(&self.dir)
    }

    /// Rewrite all live records into one segment without deleted or replaced rows.
    pub fn compact(&self) -> Result<()> {
        self.check_alive()?;
        let mut w = self.writer()?;
        if let Some(why) = &w.poisoned {
            return Err(poisoned_error(&self.name, why));
        }
        self.rewrite(&mut w, true)
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
        self.state.write().indexes[f] = built;
        self.push_schema(schema);
        Ok(())
    }
}
