//! The per-collection manifest: schema, live segments and current WAL generation.
//!
//! File `MANIFEST`: magic `VDBMAN01`, `u32` JSON length, `u32` CRC32 of the JSON, JSON body.
//! It is replaced atomically (temp file + fsync + rename + directory fsync).

use std::fs;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::fsutil::{atomic_write, corrupt, crc_ok};
use crate::schema::CollectionSchema;

const MAGIC: &[u8; 8] = b"VDBMAN01";
/// File name of the manifest inside a collection directory.
pub(crate) const MANIFEST: &str = "MANIFEST";

/// What a collection directory holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Manifest {
    /// The schema (index specs included).
    pub schema: CollectionSchema,
    /// Live segment sequence numbers, oldest first.
    pub segments: Vec<u64>,
    /// Generation of the WAL file that holds writes after the last segment.
    pub wal_gen: u64,
    /// Next segment sequence number.
    pub next_seq: u64,
}

impl Manifest {
    /// Write durably into `dir`.
    pub(crate) fn write(&self, dir: &Path) -> Result<()> {
        let json = serde_json::to_vec(self).map_err(|e| Error::Metadata(e.to_string()))?;
        let mut buf = Vec::with_capacity(json.len() + 16);
        buf.extend_from_slice(MAGIC);
        buf.extend_from_slice(&(json.len() as u32).to_le_bytes());
        buf.extend_from_slice(&crc32fast::hash(&json).to_le_bytes());
        buf.extend_from_slice(&json);
        atomic_write(&dir.join(MANIFEST), &buf)
    }

    /// Read and verify the manifest in `dir`.
    pub(crate) fn read(dir: &Path) -> Result<Manifest> {
        let path = dir.join(MANIFEST);
        let buf = fs::read(&path).map_err(|e| Error::io(&path, e))?;
        if buf.len() < 16 || &buf[..8] != MAGIC {
            return Err(corrupt(&path, "bad magic or truncated header"));
        }
        let len = u32::from_le_bytes(buf[8..12].try_into().expect("4 bytes")) as usize;
        let crc = u32::from_le_bytes(buf[12..16].try_into().expect("4 bytes"));
        let body = &buf[16..];
        if body.len() != len {
            return Err(corrupt(&path, format!("length {} does not match header {len}", body.len())));
        }
        if !crc_ok(body, crc) {
            return Err(corrupt(&path, "checksum mismatch"));
        }
        let m: Manifest = serde_json::from_slice(body).map_err(|e| corrupt(&path, format!("unreadable JSON: {e}")))?;
        m.schema.check_stored(&path)?;
        Ok(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metric::Metric;
    use crate::schema::VectorField;

    /// Fuzzing (manifest_open, wal_replay): a schema with a dimension no collection can have
    /// (here 2^62: `dim * 4` overflows) is a corrupt file, not an overflow later on.
    #[test]
    fn a_stored_schema_with_an_impossible_dimension_is_corrupt() {
        let dir = tempfile::tempdir().unwrap();
        let schema = CollectionSchema { fields: vec![VectorField::new("v", 1 << 62, Metric::L2, "Flat")] };
        let m = Manifest { schema: schema.clone(), segments: vec![], wal_gen: 1, next_seq: 1 };
        m.write(dir.path()).unwrap();
        assert!(matches!(Manifest::read(dir.path()), Err(Error::Corrupt { .. })));
        let wal = dir.path().join("wal.log");
        drop(crate::wal::Wal::create(&wal, 1, &schema).unwrap());
        let data = fs::read(&wal).unwrap();
        assert!(matches!(crate::wal::parse_header(&data, &wal), Err(Error::Corrupt { .. })));
        let empty = CollectionSchema { fields: vec![] };
        Manifest { schema: empty, segments: vec![], wal_gen: 1, next_seq: 1 }.write(dir.path()).unwrap();
        assert!(matches!(Manifest::read(dir.path()), Err(Error::Corrupt { .. })));
    }
}
