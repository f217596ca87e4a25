//! The database directory lock: one process at a time may open a database for writing.

use std::fs::{File, OpenOptions};
use std::path::Path;

use fs4::FileExt;

use crate::error::{Error, Result};

/// File name of the lock inside a database directory.
pub(crate) const LOCK_FILE: &str = "LOCK";

/// The exclusive OS lock (`flock`) on `<db>/LOCK`; released when the last holder drops it.
#[derive(Debug)]
pub(crate) struct DbLock {
    _file: File,
}

impl DbLock {
    /// Take the lock of the database in `dir` (which must exist), or fail at once with
    /// [`Error::Locked`] when another process (or another open in this process) holds it.
    pub(crate) fn acquire(dir: &Path) -> Result<DbLock> {
        let lock_path = dir.join(LOCK_FILE);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock_path)
            .map_err(|e| Error::io(&lock_path, e))?;
        // A lock just released can stay held for a moment by a child this process forked (its copy
        // of the descriptor lives until the child's exec closes it), so a busy lock is retried
        // briefly before it is reported.
        let deadline = std::time::Instant::now() + std::time::Duration::from_millis(250);
        loop {
            match FileExt::try_lock(&file) {
                Ok(()) => return Ok(DbLock { _file: file }),
                Err(fs4::TryLockError::WouldBlock) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(5));
                }
                Err(fs4::TryLockError::WouldBlock) => return Err(Error::Locked(dir.to_path_buf())),
                Err(fs4::TryLockError::Error(e)) => return Err(Error::io(&lock_path, e)),
            }
        }
    }
}
