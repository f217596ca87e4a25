//! The images uploaded through the API: stored under `<files>/uploads/` by content hash, and
//! removed again when the last record made from them is deleted, together with the cached
//! thumbnails of every deleted record.
//!
//! The record is deleted first (the WAL makes that durable), the file second. A crash between
//! the two leaves a file no record refers to; [`sweep`] removes such files (and half-written
//! `.tmp` uploads) when a writable server starts, before it takes requests. A record is never left
//! pointing at a removed upload: storing an upload and releasing one hold the same lock, and a
//! file is only removed while no collection holds a live record for its path (a record's id is
//! the hash of its path, so this is one lookup per collection).

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::Serialize;
use vecdb::Database;

use crate::catalog::{fnv1a, record_id};

/// Serializes storing and releasing uploads (see the [module docs](self)).
#[derive(Default)]
pub struct UploadLock(Mutex<()>);

impl UploadLock {
    /// Run `f` while no other upload is stored or released.
    pub fn with<T>(&self, f: impl FnOnce() -> T) -> T {
        let _g = self.0.lock().unwrap_or_else(|p| p.into_inner());
        f()
    }
}

/// The file an upload of `bytes` in format `ext` is stored as.
pub fn upload_path(dir: &Path, bytes: &[u8], ext: &str) -> PathBuf {
    dir.join(format!("{:016x}.{ext}", fnv1a(bytes)))
}

/// Store `bytes` as `dest` (written to a `.tmp` file, synced, renamed); an identical upload
/// already there is kept.
pub fn store(dest: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if dest.exists() {
        return Ok(());
    }
    let tmp = dest.with_extension("tmp");
    let write = || -> std::io::Result<()> {
        use std::io::Write;
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, dest)
    };
    write().inspect_err(|_| {
        std::fs::remove_file(&tmp).ok();
    })
}

/// True when a record of any collection was made from the file at `path`.
fn referenced(db: &Database, path: &Path) -> bool {
    let id = record_id(path);
    db.collection_names().iter().any(|n| db.collection(n).is_ok_and(|c| c.get_metadata(id).is_some()))
}

/// After record `id` made from `path` was deleted: remove its cached thumbnails and, when
/// `path` is an upload in `upload_dir` that no record refers to any more, the upload.
/// Returns true when the upload was removed. Failures are logged (the next [`sweep`] retries).
pub fn release(db: &Database, upload_dir: &Path, thumb_dir: &Path, id: u64, path: Option<&Path>) -> bool {
    remove_thumbnails(thumb_dir, id);
    let Some(path) = path.filter(|p| p.parent() == Some(upload_dir)) else { return false };
    if referenced(db, path) {
        return false;
    }
    match std::fs::remove_file(path) {
        Ok(()) => true,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
        Err(e) => {
            tracing::warn!(file = %path.display(), error = %e, "cannot remove the upload of a deleted record");
            false
        }
    }
}

/// Remove the cached thumbnails of record `id` (`{id:016x}-{mtime:x}.jpg`).
fn remove_thumbnails(thumb_dir: &Path, id: u64) {
    let prefix = format!("{id:016x}-");
    let Ok(entries) = std::fs::read_dir(thumb_dir) else { return };
    for e in entries.flatten() {
        if e.file_name().to_str().is_some_and(|n| n.starts_with(&prefix) && n.ends_with(".jpg")) {
            std::fs::remove_file(e.path()).ok();
        }
    }
}

/// What [`sweep`] removed.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct SweepReport {
    /// Uploads no record refers to.
    pub orphans: Vec<PathBuf>,
    /// Half-written uploads (`*.tmp`).
    pub partial: Vec<PathBuf>,
}

/// True for a name this module writes: 16 hex digits, a dot, a lower-case extension (or `tmp`).
fn is_upload_name(name: &str) -> bool {
    let Some((stem, ext)) = name.split_once('.') else { return false };
    stem.len() == 16
        && stem.bytes().all(|b| b.is_ascii_hexdigit())
        && !ext.is_empty()
        && ext.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

/// Remove the uploads in `upload_dir` that no record of `db` refers to, and half-written ones.
/// Only files named as this module names them are considered; anything else is left alone.
/// Run by a writable server before it takes requests (nothing else stores uploads).
pub fn sweep(db: &Database, upload_dir: &Path) -> std::io::Result<SweepReport> {
    let mut report = SweepReport::default();
    let entries = match std::fs::read_dir(upload_dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(report),
        Err(e) => return Err(e),
    };
    for e in entries {
        let e = e?;
        let path = e.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else { continue };
        if !is_upload_name(name) || !e.file_type()?.is_file() {
            continue;
        }
        let partial = name.ends_with(".tmp");
        if !partial && referenced(db, &path) {
            continue;
        }
        std::fs::remove_file(&path)?;
        if partial {
            report.partial.push(path);
        } else {
            report.orphans.push(path);
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_names_this_module_writes_are_swept() {
        assert!(is_upload_name("00ff00ff00ff00ff.png"));
        assert!(is_upload_name("00ff00ff00ff00ff.tmp"));
        assert!(is_upload_name("00ff00ff00ff00ff.jpg"));
        assert!(!is_upload_name("holiday.png"));
        assert!(!is_upload_name("00ff00ff00ff00f.png"));
        assert!(!is_upload_name("00ff00ff00ff00ffx.png"));
        assert!(!is_upload_name("00ff00ff00ff00ff"));
        assert!(!is_upload_name("00ff00ff00ff00ff.PNG"));
    }

    #[test]
    fn stored_uploads_are_whole_and_kept_once() {
        let tmp = tempfile::tempdir().unwrap();
        let dest = upload_path(tmp.path(), b"abc", "png");
        store(&dest, b"abc").unwrap();
        store(&dest, b"abc").unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), b"abc");
        assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 1, "no .tmp left behind");
    }
}
