//! Index snapshots: a checkpoint saves every index that is costly to rebuild, with a marker of
//! the segments it covers, so that an open (after a clean close or a crash) loads it and adds
//! only what was written since, instead of rebuilding it.

use std::fs;
use std::path::{Path, PathBuf};

use super::auto::{GRAPH_SPEC, GRAPH_SQ8_SPEC};
use super::in_place::{Attached, ROW_HINTS_FILE};
use super::state::{FieldIndex, State};
use super::{Collection, Writer};
use crate::error::{Error, Result};
use crate::fsutil::{remove_if_exists, sync_dir};
use crate::index::{VectorIndex, Verify};
use crate::manifest::Manifest;
use crate::schema::VectorField;
use crate::search::IndexOrigin;

impl Collection {
    /// The fields whose index should be saved now, with the marker each snapshot gets: every
    /// ready index that is costly to rebuild (all but `Flat`) and not saved for this manifest
    /// yet. None while the WAL holds records (a snapshot must hold exactly the segments').
    pub(super) fn snapshots_due(&self, w: &Writer, st: &State) -> Vec<(usize, SnapshotMarker)> {
        if !st.memtable.is_empty() || !st.tombstones.is_empty() {
            return vec![];
        }
        let mut due = Vec::new();
        for (f, (field, fi)) in self.schema().fields.iter().zip(&st.indexes).enumerate() {
            if !fi.ready || fi.stored || fi.index.description() == "Flat" {
                continue;
            }
            let marker = SnapshotMarker {
                spec: fi.spec.clone(),
                segments: w.manifest.segments.clone(),
                wal_gen: w.manifest.wal_gen,
            };
            if read_marker(&self.dir, &field.name).as_ref() != Some(&marker) {
                due.push((f, marker));
            }
        }
        due
    }

    /// Save field `f`'s index under `marker` (with the row hints of an in-place graph,
    /// [`State::row_hints`]); on failure, log and leave no snapshot behind.
    pub(super) fn write_snapshot(
        &self,
        f: usize,
        index: &dyn VectorIndex,
        marker: &SnapshotMarker,
        hints: Option<&[u64]>,
    ) {
        let field = &self.schema().fields[f].name;
        if let Err(e) = save_snapshot(&self.dir, field, index, marker, hints) {
            tracing::warn!(field = %field, error = %e, "could not save the index snapshot");
            discard_snapshot(&self.dir, field);
        }
    }
}
/// Largest index a checkpoint copies in memory to write its snapshot outside the writer lock;
/// a bigger one is written under the lock (writers wait for the disk) rather than doubling
/// its memory.
pub(super) const SNAPSHOT_COPY_MAX_BYTES: usize = 4 << 30;

/// What an index snapshot was saved from; it is used only when all of this still holds.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub(crate) struct SnapshotMarker {
    pub spec: String,
    pub segments: Vec<u64>,
    pub wal_gen: u64,
}

pub(crate) fn snapshot_dir(dir: &Path, field: &str) -> PathBuf {
    dir.join(format!("index-{field}"))
}
pub(crate) fn snapshot_marker(dir: &Path, field: &str) -> PathBuf {
    dir.join(format!("index-{field}.json"))
}

pub(crate) fn read_marker(dir: &Path, field: &str) -> Option<SnapshotMarker> {
    let bytes = fs::read(snapshot_marker(dir, field)).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Save `index` for `field` so the next open can load it instead of rebuilding.
fn save_snapshot(
    dir: &Path,
    field: &str,
    index: &dyn VectorIndex,
    marker: &SnapshotMarker,
    hints: Option<&[u64]>,
) -> Result<()> {
    let mpath = snapshot_marker(dir, field);
    remove_if_exists(&mpath)?;
    sync_dir(dir)?;
    let sdir = snapshot_dir(dir, field);
    if sdir.exists() {
        fs::remove_dir_all(&sdir).map_err(|e| Error::io(&sdir, e))?;
    }
    index.save(&sdir)?;
    if let Some(hints) = hints {
        crate::index::file::write_pod(&sdir.join(ROW_HINTS_FILE), hints)?;
    }
    let json = serde_json::to_vec(marker).map_err(|e| Error::Metadata(e.to_string()))?;
    crate::fsutil::atomic_write(&mpath, &json)
}

/// Remove a snapshot that no longer matches.
fn discard_snapshot(dir: &Path, field: &str) {
    let _ = remove_if_exists(&snapshot_marker(dir, field));
    let sdir = snapshot_dir(dir, field);
    if sdir.exists() {
        let _ = fs::remove_dir_all(&sdir);
    }
}

impl State {
    /// Load field `f`'s saved index when it is still a base of the stored records, then
    /// bring it up to date. A follower (`read_only`) leaves a stale snapshot where it is.
    ///
    /// A snapshot is saved with an empty WAL, so it holds exactly the records of the segments
    /// its marker lists. Checkpoints since then only appended segments (a compaction replaces
    /// them all, and then the snapshot is rebuilt): the catch-up removes the ids deleted since
    /// and adds the records of the newer segments and of the replayed WAL. So a crash costs a
    /// rebuild of what changed since the last snapshot, not of the whole index.
    pub(super) fn load_snapshot(
        &self,
        dir: &Path,
        field: &VectorField,
        f: usize,
        spec: &str,
        m: &Manifest,
        read_only: bool,
    ) -> Option<FieldIndex> {
        let marker = read_marker(dir, &field.name)?;
        if marker.spec != spec || !m.segments.starts_with(&marker.segments) {
            if !read_only {
                discard_snapshot(dir, &field.name);
            }
            return None;
        }
        // A reader maps the graph in constant time; a writer, which saves it again, first
        // verifies every checksum so that damage never gets a fresh one (`db check` finds it
        // for readers).
        let verify = if read_only { Verify::Footers } else { Verify::Checksums };
        let mut index = match crate::index::open_index(&snapshot_dir(dir, &field.name), verify) {
            Ok(i) if i.dim() == field.row_dim() && i.metric() == field.metric => i,
            Ok(_) => return None,
            Err(e) => {
                tracing::warn!(field = %field.name, error = %e, "index snapshot unreadable; rebuilding");
                return None;
            }
        };
        let since = marker.segments.len();
        let sdir = snapshot_dir(dir, &field.name);
        match self.resolve_in_place(index.as_mut(), f, since, &sdir, read_only) {
            Attached::Missing => {
                tracing::warn!(field = %field.name, "index snapshot's rows are not all in the segments; rebuilding");
                return None;
            }
            // A snapshot without (usable) row hints gets them, so the next open skips the lookups.
            Attached::ById if !read_only => {
                if let Some(hints) = self.row_hints(f, index.as_ref()) {
                    let p = sdir.join(ROW_HINTS_FILE);
                    if let Err(e) = crate::index::file::write_pod(&p, &hints) {
                        tracing::warn!(field = %field.name, error = %e, "could not save the snapshot's row hints");
                    }
                }
            }
            _ => {}
        }
        let mut gone: Vec<u64> = self.segments[since..]
            .iter()
            .flat_map(|seg| seg.tombstones().iter().copied())
            .chain(self.tombstones.iter().copied())
            .filter(|&id| !self.contains(id))
            .collect();
        gone.sort_unstable();
        gone.dedup();
        if index.remove(&gone).is_err() {
            return None;
        }
        let caught_up = self.add_live_since(field, f, since, index.as_mut()).ok()?;
        if index.len() != self.len() {
            tracing::warn!(field = %field.name, "index snapshot does not match the stored records; rebuilding");
            return None;
        }
        tracing::debug!(field = %field.name, since_segment = since, "index snapshot loaded and brought up to date");
        Some(FieldIndex {
            index,
            ready: true,
            tried_at: self.len(),
            origin: IndexOrigin::Snapshot { caught_up },
            stored: false,
            spec: spec.to_string(),
            rerank: false,
            build_failed_at: None,
        })
    }

    /// [`State::load_snapshot`] for an `Auto` field: the saved graph when it is one of the
    /// policy's ([`GRAPH_SPEC`] or [`GRAPH_SQ8_SPEC`], searched with an exact re-rank).
    pub(super) fn load_auto_snapshot(
        &self,
        dir: &Path,
        field: &VectorField,
        f: usize,
        m: &Manifest,
        read_only: bool,
    ) -> Option<FieldIndex> {
        let spec = read_marker(dir, &field.name)?.spec;
        if spec != GRAPH_SPEC && spec != GRAPH_SQ8_SPEC {
            return self.load_snapshot(dir, field, f, GRAPH_SPEC, m, read_only); // discards it
        }
        let mut fi = self.load_snapshot(dir, field, f, &spec, m, read_only)?;
        fi.rerank = spec == GRAPH_SQ8_SPEC;
        Some(fi)
    }
}
