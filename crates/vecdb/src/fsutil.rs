//! Small file-system helpers: durable atomic replace and directory fsync.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::Path;

use crate::error::{Error, Result};

/// Fsync a directory so that file creations, renames and removals in it are durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        let d = File::open(dir).map_err(|e| Error::io(dir, e))?;
        d.sync_all().map_err(|e| Error::io(dir, e))?;
    }
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// Replace `path` with `bytes` atomically and durably: write a temporary file,
/// fsync it, rename it over `path`, fsync the directory.
pub(crate) fn atomic_write(path: &Path, bytes: &[u8]) -> Result<()> {
    atomic_write_parts(path, &[bytes])
}

/// [`atomic_write`] of the concatenation of `parts` (written one after the other, not
/// copied into one buffer first). The temporary file is `path` with `.tmp` appended.
pub(crate) fn atomic_write_parts(path: &Path, parts: &[&[u8]]) -> Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = std::path::PathBuf::from(tmp);
    {
        let mut f =
            OpenOptions::new().write(true).create(true).truncate(true).open(&tmp).map_err(|e| Error::io(&tmp, e))?;
        for part in parts {
            f.write_all(part).map_err(|e| Error::io(&tmp, e))?;
        }
        f.sync_all().map_err(|e| Error::io(&tmp, e))?;
    }
    fs::rename(&tmp, path).map_err(|e| Error::io(path, e))?;
    if let Some(dir) = path.parent() {
        sync_dir(dir)?;
    }
    Ok(())
}

/// Create directory `dir` (and missing parents) durably: the new entry is fsynced into
/// its parent, so files later written into `dir` cannot outlive the directory in a crash.
pub(crate) fn create_dir(dir: &Path) -> Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    match dir.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => sync_dir(parent),
        _ => Ok(()),
    }
}

/// Remove a file if it exists.
pub(crate) fn remove_if_exists(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io(path, e)),
    }
}

/// Corruption error naming `path`.
pub(crate) fn corrupt(path: &Path, reason: impl Into<String>) -> Error {
    Error::Corrupt { path: path.to_path_buf(), reason: reason.into() }
}

/// Little-endian reader over a byte slice that reports truncation instead of panicking.
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }
    pub(crate) fn bytes(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let s = self.buf.get(self.pos..end)?;
        self.pos = end;
        Some(s)
    }
    pub(crate) fn u8(&mut self) -> Option<u8> {
        self.bytes(1).map(|b| b[0])
    }
    pub(crate) fn u32(&mut self) -> Option<u32> {
        self.bytes(4).map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")))
    }
    pub(crate) fn u64(&mut self) -> Option<u64> {
        self.bytes(8).map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
    }
    pub(crate) fn is_empty(&self) -> bool {
        self.pos == self.buf.len()
    }
}

/// Whether `bytes` have CRC32 `stored`: every checksum of the on-disk formats is checked here.
///
/// With the `fuzzing` feature a fuzz target may turn checks off ([`crate::fuzzing`]), so that
/// mutated inputs reach the parsers behind the checksums; without it this is a plain comparison.
pub(crate) fn crc_ok(bytes: &[u8], stored: u32) -> bool {
    let ok = crc32fast::hash(bytes) == stored;
    #[cfg(feature = "fuzzing")]
    let ok = ok || crate::fuzzing::checksums_ignored();
    ok
}
