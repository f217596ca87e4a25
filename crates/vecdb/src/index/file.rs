//! The one file format of every saved index: each file (`index.json` included) is its
//! body followed by a fixed footer, after tantivy's:
//!
//! ```text
//! body                      : the file's content (JSON, or little-endian values)
//! footer (20 bytes)         : body_len u64 | crc32(body) u32 | magic "VDBIDX01"
//! ```
//!
//! [`write`] replaces a file atomically and durably (temporary file, body, footer, fsync,
//! rename, directory fsync); [`read`] checks the footer and returns the body, or
//! [`Error::Corrupt`] naming the file when the footer, the length or the checksum is wrong.
//! The body starts at offset 0, so a mapped file is aligned for its values ([`verify`]).

use std::fs::File;
use std::io::Read;
use std::path::Path;

use bytemuck::Pod;

use crate::error::{Error, Result};
use crate::fsutil::{atomic_write_parts, corrupt, crc_ok};

/// Bytes of the footer at the end of every index file.
pub const FOOTER_LEN: usize = 20;
/// Last eight bytes of every index file (the `01` is the format version).
const MAGIC: &[u8; 8] = b"VDBIDX01";

#[cfg(target_endian = "big")]
compile_error!("index files are little-endian; big-endian targets are not supported");

/// The footer for `body`.
fn footer(body: &[u8]) -> [u8; FOOTER_LEN] {
    let mut f = [0u8; FOOTER_LEN];
    f[..8].copy_from_slice(&(body.len() as u64).to_le_bytes());
    f[8..12].copy_from_slice(&crc32fast::hash(body).to_le_bytes());
    f[12..].copy_from_slice(MAGIC);
    f
}

/// Check the footer at the end of `bytes` (the whole content of `path`) and return the body.
///
/// Errors: [`Error::Corrupt`] naming `path` when the file is shorter than a footer, does not
/// end in the magic (not an index file of this format, or cut short), holds another length
/// than its footer says, or fails the checksum.
pub fn verify<'a>(path: &Path, bytes: &'a [u8]) -> Result<&'a [u8]> {
    let body = verify_footer(path, bytes)?;
    let tail = &bytes[body.len()..];
    let crc = u32::from_le_bytes(tail[8..12].try_into().expect("4 bytes"));
    if !crc_ok(body, crc) {
        return Err(corrupt(path, "checksum mismatch"));
    }
    Ok(body)
}

/// Check the footer at the end of `bytes` (the whole content of `path`) and return the body
/// without reading it: [`verify`] less the checksum. Constant time (a mapped file's last page
/// is all it touches), for snapshots a reader opens; [`verify`] is what `db check` and writers use.
///
/// Errors: as [`verify`], except that a body damaged in place is not detected.
pub fn verify_footer<'a>(path: &Path, bytes: &'a [u8]) -> Result<&'a [u8]> {
    let (body, tail) = bytes
        .split_at_checked(bytes.len().wrapping_sub(FOOTER_LEN))
        .ok_or_else(|| corrupt(path, format!("{} bytes, shorter than the index file footer", bytes.len())))?;
    check_footer(path, tail, body.len())?;
    Ok(body)
}

/// The body of `bytes` (the whole content of `path`): [`verify`] with `checksum`, else
/// [`verify_footer`].
pub fn body<'a>(path: &Path, bytes: &'a [u8], checksum: bool) -> Result<&'a [u8]> {
    match checksum {
        true => verify(path, bytes),
        false => verify_footer(path, bytes),
    }
}

/// Check magic and length of a footer `tail` for a body of `body_len` bytes.
fn check_footer(path: &Path, tail: &[u8], body_len: usize) -> Result<()> {
    if &tail[12..] != MAGIC {
        return Err(corrupt(path, "no index file footer (wrong format, or the file was cut short)"));
    }
    let said = u64::from_le_bytes(tail[..8].try_into().expect("8 bytes"));
    if said != body_len as u64 {
        return Err(corrupt(path, format!("footer says {said} body bytes, the file holds {body_len}")));
    }
    Ok(())
}

/// Replace `path` with `body` and its footer, atomically and durably.
pub fn write(path: &Path, body: &[u8]) -> Result<()> {
    atomic_write_parts(path, &[body, &footer(body)])
}

/// The body of index file `path`, checked (see [`verify`]); [`Error::Io`] when it cannot be read.
pub fn read(path: &Path) -> Result<Vec<u8>> {
    read_pod(path)
}

/// Write `values` as the body of `path` (little-endian, no header).
pub(crate) fn write_pod<T: Pod>(path: &Path, values: &[T]) -> Result<()> {
    write(path, bytemuck::cast_slice(values))
}

/// Read a file written by [`write_pod`]: its body must be a whole number of `T`s.
///
/// The body is read straight into the returned vector (no second copy of large files).
pub(crate) fn read_pod<T: Pod>(path: &Path) -> Result<Vec<T>> {
    let mut f = File::open(path).map_err(|e| Error::io(path, e))?;
    let len = f.metadata().map_err(|e| Error::io(path, e))?.len();
    let body_len = len
        .checked_sub(FOOTER_LEN as u64)
        .ok_or_else(|| corrupt(path, format!("{len} bytes, shorter than the index file footer")))?;
    let size = std::mem::size_of::<T>() as u64;
    if body_len % size != 0 {
        return Err(corrupt(path, format!("{body_len} body bytes are not a whole number of {size}-byte values")));
    }
    let count = usize::try_from(body_len / size).map_err(|_| corrupt(path, "file too large for memory"))?;
    let mut out = vec![T::zeroed(); count];
    let mut tail = [0u8; FOOTER_LEN];
    f.read_exact(bytemuck::cast_slice_mut(&mut out))
        .and_then(|()| f.read_exact(&mut tail))
        .map_err(|e| Error::io(path, e))?;
    let body: &[u8] = bytemuck::cast_slice(&out);
    check_footer(path, &tail, body.len())?;
    if !crc_ok(body, u32::from_le_bytes(tail[8..12].try_into().expect("4 bytes"))) {
        return Err(corrupt(path, "checksum mismatch"));
    }
    Ok(out)
}

/// Name of the JSON description every saved index directory holds (its `kind` says which
/// loader reads the directory).
pub const META_FILE: &str = "index.json";

/// Create `dir` (durably) and write `meta` as its [`META_FILE`].
pub(crate) fn write_meta<M: serde::Serialize>(dir: &Path, meta: &M) -> Result<()> {
    crate::fsutil::create_dir(dir)?;
    write_json(&dir.join(META_FILE), meta)
}

/// Read `dir`'s [`META_FILE`] into `M`.
pub(crate) fn read_meta<M: serde::de::DeserializeOwned>(dir: &Path) -> Result<M> {
    read_json(&dir.join(META_FILE))
}

/// Write `value` as pretty JSON into index file `path`.
pub(crate) fn write_json<M: serde::Serialize>(path: &Path, value: &M) -> Result<()> {
    let text = serde_json::to_vec_pretty(value)
        .map_err(|e| Error::InvalidArgument(format!("cannot serialize {}: {e}", path.display())))?;
    write(path, &text)
}

/// Read index file `path` as JSON into `M`.
pub(crate) fn read_json<M: serde::de::DeserializeOwned>(path: &Path) -> Result<M> {
    let body = read(path)?;
    serde_json::from_slice(&body).map_err(|e| corrupt(path, format!("unreadable JSON: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_every_damage_is_reported() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("x.u32");
        let values: Vec<u32> = (0..100).collect();
        write_pod(&path, &values).unwrap();
        assert_eq!(read_pod::<u32>(&path).unwrap(), values);
        let good = std::fs::read(&path).unwrap();
        assert_eq!(good.len(), 400 + FOOTER_LEN);
        assert_eq!(verify(&path, &good).unwrap(), bytemuck::cast_slice::<u32, u8>(&values));
        for i in 0..good.len() {
            let mut bad = good.clone();
            bad[i] ^= 0x01;
            std::fs::write(&path, &bad).unwrap();
            assert!(matches!(read_pod::<u32>(&path), Err(Error::Corrupt { .. })), "flip at {i}");
            assert!(matches!(verify(&path, &bad), Err(Error::Corrupt { .. })), "flip at {i}");
        }
        for cut in 0..good.len() {
            std::fs::write(&path, &good[..cut]).unwrap();
            assert!(matches!(read(&path), Err(Error::Corrupt { .. })), "cut at {cut}");
        }
        // A body that is not a whole number of values.
        write(&path, &[1, 2, 3]).unwrap();
        assert!(matches!(read_pod::<u32>(&path), Err(Error::Corrupt { .. })));
        assert_eq!(read(&path).unwrap(), vec![1, 2, 3]);
        // Empty bodies are fine; missing files are I/O errors.
        write_pod::<u64>(&path, &[]).unwrap();
        assert!(read_pod::<u64>(&path).unwrap().is_empty());
        assert!(matches!(read(&dir.path().join("missing")), Err(Error::Io { .. })));
        assert!(!dir.path().join("x.u32.tmp").exists());
    }
}
