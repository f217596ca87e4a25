//! Read-only handles that follow another process's writes, as SQLite's WAL-mode readers and
//! RocksDB's secondary instances do.
//!
//! A follower takes no lock and writes nothing. It loads the segments its MANIFEST lists and the
//! intact frames of the WAL (a torn tail may be a frame being written right now: it is left for
//! the next read), and [`Collection::refresh`] catches up:
//!
//! * same MANIFEST: the WAL frames appended since the last read are applied, whole frames only,
//!   so a batch is never seen in part;
//! * segments appended (the writer checkpointed): each new segment holds the final state of the
//!   WAL records the follower has applied plus those it has not, so it is applied on top and the
//!   new WAL is read from its start;
//! * anything else (a compaction replaced the segments, `set_index` changed the schema): the
//!   collection is loaded again off to the side and swapped in.
//!
//! Files the writer removes meanwhile (an old WAL, compacted segments) stay readable while they
//! are mapped, so a search in progress is never broken; a read that finds a file gone re-reads
//! the MANIFEST and starts over.

use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use parking_lot::{Condvar, Mutex, RecursiveRwLock};

use super::commit::Queue;
use super::state::State;
use super::{Access, Collection, SchemaNode};
use crate::error::{Error, Result};
use crate::manifest::Manifest;
use crate::segment::{segment_file_name, Segment};
use crate::wal::{read_frames_after, wal_file_name, WalCursor, WalOp};

/// Attempts at a consistent read while the writer keeps replacing files.
const RETRIES: usize = 50;

/// Where a follower has got to.
pub(super) struct Follower {
    /// The MANIFEST its state reflects.
    manifest: Manifest,
    /// Its position in that MANIFEST's WAL.
    wal: WalCursor,
}

impl Follower {
    /// Bytes of the WAL read so far.
    pub(super) fn wal_bytes(&self) -> u64 {
        self.wal.pos
    }
}

/// What one [`Collection::refresh`] applied.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RefreshReport {
    /// WAL frames (whole write batches) applied.
    pub frames: u64,
    /// New segments applied (checkpoints by the writer).
    pub segments: usize,
    /// True when the collection was loaded again from scratch (the writer compacted it or changed
    /// an index).
    pub reloaded: bool,
}

impl RefreshReport {
    /// True when anything changed.
    pub fn changed(&self) -> bool {
        self.frames > 0 || self.segments > 0 || self.reloaded
    }
}

fn is_not_found(e: &Error) -> bool {
    matches!(e, Error::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound)
}

/// Run `f` until it does not fail on a file the writer removed meanwhile.
fn retrying<T>(mut f: impl FnMut() -> Result<T>) -> Result<T> {
    let mut last = None;
    for attempt in 0..RETRIES {
        match f() {
            Err(e) if is_not_found(&e) => {
                last = Some(e);
                std::thread::sleep(Duration::from_millis(2 * attempt as u64 + 1));
            }
            r => return r,
        }
    }
    Err(last.expect("at least one attempt"))
}

/// Load the collection in `dir` as its files stand: segments, the WAL's intact frames, indexes
/// (from snapshots where they match, never discarding one).
fn load(dir: &Path) -> Result<(State, Follower)> {
    retrying(|| {
        let manifest = Manifest::read(dir)?;
        let mut st = State::load_segments(dir, &manifest)?;
        let path = dir.join(wal_file_name(manifest.wal_gen));
        let (payloads, wal) = read_frames_after(&path, WalCursor::start(manifest.wal_gen))?;
        for p in payloads {
            st.apply_wal_op(WalOp::decode(&p, &manifest.schema, &path)?, &manifest.schema, false);
        }
        st.build_indexes(dir, &manifest, true)?;
        Ok((st, Follower { manifest, wal }))
    })
}

impl Collection {
    /// Open the collection in `dir` read-only, beside a writer in another process (or none).
    pub(crate) fn open_read_only(name: &str, dir: &Path) -> Result<Collection> {
        let (st, follower) = load(dir)?;
        let schema = follower.manifest.schema.clone();
        Ok(Collection {
            name: name.to_string(),
            dir: dir.to_path_buf(),
            schemas: SchemaNode { schema, next: OnceLock::new() },
            state: RecursiveRwLock::new(st),
            access: Access::Follower(Mutex::new(follower)),
            snapshotting: Mutex::new(()),
            queue: Mutex::new(Queue::default()),
            cv: Condvar::new(),
            dropped: AtomicBool::new(false),
            me: OnceLock::new(),
            builds_running: Default::default(),
            _lock: None,
        })
    }

    /// Catch up with the writer (a handle from [`crate::Database::open_read_only`]): apply what it
    /// has acknowledged since the last refresh. Searches go on meanwhile and see the state before
    /// or after each whole write batch. On a writable handle this does nothing (it is always
    /// current).
    pub fn refresh(&self) -> Result<RefreshReport> {
        self.check_alive()?;
        let Access::Follower(f) = &self.access else {
            return Ok(RefreshReport::default());
        };
        let mut f = f.lock();
        let report = retrying(|| self.refresh_once(&mut f))?;
        drop(f);
        if report.changed() {
            self.start_due_builds();
        }
        Ok(report)
    }

    fn refresh_once(&self, f: &mut Follower) -> Result<RefreshReport> {
        let m = Manifest::read(&self.dir)?;
        let mut rep = RefreshReport::default();
        let appended = m.schema == f.manifest.schema && m.segments.starts_with(&f.manifest.segments);
        if !appended || (m.segments.len() == f.manifest.segments.len() && m.wal_gen != f.manifest.wal_gen) {
            return self.reload(f);
        }
        if m.segments.len() > f.manifest.segments.len() {
            let new: Vec<Arc<Segment>> = m.segments[f.manifest.segments.len()..]
                .iter()
                .map(|&seq| Segment::open(&self.dir.join(segment_file_name(seq)), seq, &m.schema).map(Arc::new))
                .collect::<Result<_>>()?;
            rep.segments = new.len();
            {
                let mut st = self.state.write();
                for seg in new {
                    st.apply_segment(seg, &m.schema, true)?;
                }
            }
            f.wal = WalCursor::start(m.wal_gen);
            f.manifest = m;
        }
        let path = self.dir.join(wal_file_name(f.manifest.wal_gen));
        let (payloads, cursor) = read_frames_after(&path, f.wal)?;
        if !payloads.is_empty() {
            let schema = &f.manifest.schema;
            let ops: Vec<WalOp> = payloads.iter().map(|p| WalOp::decode(p, schema, &path)).collect::<Result<_>>()?;
            rep.frames = ops.len() as u64;
            let mut st = self.state.write();
            for op in ops {
                st.apply_wal_op(op, schema, true);
            }
            if st.indexes.iter().any(|fi| !fi.ready) {
                st.retry_unready(schema);
            }
        }
        f.wal = cursor;
        Ok(rep)
    }

    /// Load the collection again off to the side, then swap it in.
    fn reload(&self, f: &mut Follower) -> Result<RefreshReport> {
        let (st, follower) = load(&self.dir)?;
        if follower.manifest.schema != *self.schema() {
            self.push_schema(follower.manifest.schema.clone());
        }
        {
            let mut old = self.state.write();
            old.cancel_builds();
            *old = st;
        }
        *f = follower;
        Ok(RefreshReport { reloaded: true, ..RefreshReport::default() })
    }
}
