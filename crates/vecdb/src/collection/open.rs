//! Creating a collection's files, and opening one: recovery. Segments are verified and
//! loaded oldest first, the WAL is replayed (a torn tail cut), files the MANIFEST proves
//! obsolete are removed, and every field's index is loaded from its snapshot or rebuilt.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, OnceLock};

use parking_lot::{Condvar, Mutex, RecursiveRwLock};
use rayon::prelude::*;

use super::commit::Queue;
use super::state::{FieldIndex, Loc, Slot, State};
use super::{Collection, SchemaNode, Writer};
use crate::error::{Error, Result};
use crate::filter::Metadata;
use crate::fsutil::{remove_if_exists, sync_dir};
use crate::lock::DbLock;
use crate::manifest::{Manifest, MANIFEST};
use crate::schema::CollectionSchema;
use crate::segment::{segment_file_name, Segment};
use crate::wal::{wal_file_name, Wal, WalOp};

impl Collection {
    /// Open the collection stored in `dir` (replaying its WAL).
    pub(crate) fn open(name: &str, dir: &Path, lock: Arc<DbLock>) -> Result<Collection> {
        let manifest = Manifest::read(dir)?;
        let schema = manifest.schema.clone();
        let mut segments = Vec::with_capacity(manifest.segments.len());
        for &seq in &manifest.segments {
            segments.push(Arc::new(Segment::open(&dir.join(segment_file_name(seq)), seq, &schema)?));
        }
        let mut st = State {
            segments: Vec::new(),
            slots: HashMap::new(),
            memtable: HashMap::new(),
            tombstones: Vec::new(),
            seg_live: 0,
            indexes: Vec::new(),
        };
        for (si, seg) in segments.iter().enumerate() {
            for &t in seg.tombstones() {
                if let Some(old) = st.slots.remove(&t) {
                    if let Loc::Seg(..) = old.loc {
                        st.seg_live -= 1;
                    }
                }
            }
            let metas: Vec<Metadata> =
                (0..seg.rows()).into_par_iter().map(|r| seg.metadata(r)).collect::<Result<_>>()?;
            st.slots.reserve(seg.rows());
            for (row, (&id, meta)) in seg.ids().iter().zip(metas).enumerate() {
                let old = st.slots.insert(id, Slot { loc: Loc::Seg(si as u32, row as u32), meta });
                if !matches!(old, Some(Slot { loc: Loc::Seg(..), .. })) {
                    st.seg_live += 1;
                }
            }
        }
        st.segments = segments;
        let wal_path = dir.join(wal_file_name(manifest.wal_gen));
        let (wal, report) = Wal::open(&wal_path, manifest.wal_gen, |payload| {
            match WalOp::decode(payload, &schema, &wal_path)? {
                WalOp::Put(recs) => st.put(recs, &schema, false),
                WalOp::Delete(ids) => {
                    st.delete(&ids, false);
                }
            }
            Ok(())
        })?;
        tracing::debug!(collection = name, frames = report.frames, truncated = report.truncated_bytes, "WAL replayed");
        remove_stray_files(dir, &manifest)?;
        let built: Vec<Result<FieldIndex>> = schema
            .fields
            .par_iter()
            .enumerate()
            .map(|(f, field)| match st.load_snapshot(dir, field, f, &manifest) {
                Some(fi) => Ok(fi),
                None => st.build_field(&field.index, field, f),
            })
            .collect();
        st.indexes = built.into_iter().collect::<Result<_>>()?;
        Ok(Collection {
            name: name.to_string(),
            dir: dir.to_path_buf(),
            schemas: SchemaNode { schema, next: OnceLock::new() },
            state: RecursiveRwLock::new(st),
            writer: Mutex::new(Writer { wal, manifest, poisoned: None }),
            snapshotting: Mutex::new(()),
            queue: Mutex::new(Queue::default()),
            cv: Condvar::new(),
            dropped: AtomicBool::new(false),
            _lock: lock,
        })
    }

    /// Write the files of a new, empty collection into `dir` (which must exist).
    pub(crate) fn create_files(dir: &Path, schema: &CollectionSchema) -> Result<()> {
        let gen = 1;
        Wal::create(&dir.join(wal_file_name(gen)), gen, schema)?;
        sync_dir(dir)?;
        Manifest { schema: schema.clone(), segments: vec![], wal_gen: gen, next_seq: 1 }.write(dir)
    }
}

/// Remove files a crash may have left behind, each one proven obsolete by the manifest `m`:
/// temporaries (`*.tmp`, never committed); WALs of older generations (their records are in the
/// listed segments); empty WALs of newer generations (made by a checkpoint that did not commit);
/// segments not listed (numbered below `next_seq`: replaced by a compaction; from `next_seq` on:
/// written by a checkpoint or compaction that did not commit, whose records are still in the
/// WAL or the listed segments). A newer WAL that holds frames is not provably obsolete: the
/// open fails instead of deleting it.
fn remove_stray_files(dir: &Path, m: &Manifest) -> Result<()> {
    let keep_wal = wal_file_name(m.wal_gen);
    let keep_segs: HashSet<String> = m.segments.iter().map(|&s| segment_file_name(s)).collect();
    let rd = fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    for e in rd {
        let e = e.map_err(|e| Error::io(dir, e))?;
        let name = e.file_name().to_string_lossy().into_owned();
        let is_wal = name.starts_with("wal-") && name.ends_with(".log");
        let stray = name.ends_with(".tmp")
            || (is_wal && name != keep_wal)
            || (name.starts_with("seg-") && name.ends_with(".seg") && !keep_segs.contains(&name));
        if !stray || name == MANIFEST || !e.path().is_file() {
            continue;
        }
        if is_wal {
            let path = e.path();
            let data = fs::read(&path).map_err(|err| Error::io(&path, err))?;
            let newer = crate::wal::parse_header(&data, &path).map(|h| (h.gen > m.wal_gen, h.len < data.len()));
            if let Ok((true, true)) = newer {
                return Err(crate::fsutil::corrupt(
                    &path,
                    format!(
                        "holds records of WAL generation newer than the MANIFEST's ({}); refusing to remove it",
                        m.wal_gen
                    ),
                ));
            }
        }
        tracing::debug!(file = %name, "removing stray file");
        remove_if_exists(&e.path())?;
    }
    Ok(())
}
