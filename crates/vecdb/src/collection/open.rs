//! Creating a collection's files, and opening one: recovery. Segments are verified and
//! loaded oldest first, the WAL is replayed (a torn tail cut), files the MANIFEST proves
//! obsolete are removed, and every field's index is loaded from its snapshot or rebuilt.

use std::collections::HashSet;
use std::fs;
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, OnceLock};

use parking_lot::{Condvar, Mutex, RecursiveRwLock};

use super::commit::Queue;
use super::state::State;
use super::{Access, Collection, SchemaNode, Writer};
use crate::error::{Error, Result};
use crate::fsutil::{remove_if_exists, sync_dir};
use crate::lock::DbLock;
use crate::manifest::{Manifest, MANIFEST};
use crate::schema::CollectionSchema;
use crate::segment::segment_file_name;
use crate::wal::{wal_file_name, Wal, WalOp};

impl Collection {
    /// Open the collection stored in `dir` (replaying its WAL).
    pub(crate) fn open(name: &str, dir: &Path, lock: Arc<DbLock>) -> Result<Collection> {
        let manifest = Manifest::read(dir)?;
        let schema = manifest.schema.clone();
        let mut st = State::load_segments(dir, &manifest)?;
        let wal_path = dir.join(wal_file_name(manifest.wal_gen));
        let (wal, report) = Wal::open(&wal_path, manifest.wal_gen, |payload| {
            st.apply_wal_op(WalOp::decode(payload, &schema, &wal_path)?, &schema, false);
            Ok(())
        })?;
        tracing::debug!(collection = name, frames = report.frames, truncated = report.truncated_bytes, "WAL replayed");
        remove_stray_files(dir, &manifest)?;
        st.build_indexes(dir, &manifest, false)?;
        Ok(Collection {
            name: name.to_string(),
            dir: dir.to_path_buf(),
            schemas: SchemaNode { schema, next: OnceLock::new() },
            state: RecursiveRwLock::new(st),
            access: Access::Writer(Mutex::new(Writer { wal, manifest, poisoned: None })),
            snapshotting: Mutex::new(()),
            queue: Mutex::new(Queue::default()),
            cv: Condvar::new(),
            dropped: AtomicBool::new(false),
            me: OnceLock::new(),
            builds_running: Default::default(),
            _lock: Some(lock),
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
            || name.ends_with(".building")
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
