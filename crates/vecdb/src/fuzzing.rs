//! Entry points for the fuzz targets in `fuzz/` (cargo-fuzz): each takes the fuzzer's bytes
//! and runs one of this crate's real parsers on them, returning whatever error it reports.
//! Only compiled with the non-default `fuzzing` feature; not part of the API for users.
//!
//! Inputs that stand for files start with one flags byte: bit 0 set makes every checksum
//! comparison pass ([`crate::fsutil::crc_ok`]) for that input, so that mutated files reach the
//! parsers behind the CRCs; clear, the checksums are checked as in production. Parsers that
//! only read from a path get the bytes written to files in a per-process scratch directory
//! (on `/dev/shm` where there is one, so that fsyncs cost nothing).
//!
//! Directories travel as a [pack](pack_dir): a sequence of `name_len u8 | name | len u32 LE |
//! bytes` entries, `name` a relative path (`/`-separated, components of `[A-Za-z0-9._-]`,
//! not `.` or `..`, at most four deep); a malformed entry ends the pack.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use crate::db::Database;
use crate::error::{Error, Result};
use crate::filter::Filter;
use crate::index::{load_index, open_index, SearchParams, Verify};
use crate::manifest::{Manifest, MANIFEST};
use crate::schema::CollectionSchema;
use crate::search::{Query, SearchRequest};
use crate::segment::{read_segment_info, Segment};
use crate::vector::{Element, Vector, VectorsRef};
use crate::wal::{parse_header, read_frames_after, Wal, WalCursor, WalOp};

/// Set while the current input asked for checksums to be ignored (process-wide: the parsers
/// run parts of their work on rayon's threads; a fuzzer runs one input at a time).
static IGNORE_CHECKSUMS: AtomicBool = AtomicBool::new(false);

/// True while the current input asked for checksums to be ignored.
pub(crate) fn checksums_ignored() -> bool {
    IGNORE_CHECKSUMS.load(Ordering::Relaxed)
}

/// Split off the flags byte and set the checksum switch; the rest of the input.
fn take_flags(data: &[u8]) -> &[u8] {
    let (flags, rest) = data.split_first().map_or((0, data), |(f, r)| (*f, r));
    IGNORE_CHECKSUMS.store(flags & 1 == 1, Ordering::Relaxed);
    rest
}

/// This process's scratch directory, emptied: `sub` inside it, created.
fn scratch(sub: &str) -> PathBuf {
    let base = if Path::new("/dev/shm").is_dir() { PathBuf::from("/dev/shm") } else { std::env::temp_dir() };
    let dir = base.join(format!("vecdb-fuzz-{}", std::process::id())).join(sub);
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).expect("create the fuzz scratch directory");
    dir
}

/// A schema for files that do not carry one: a 4-dim L2 field and a 64-bit hamming field.
fn fallback_schema() -> CollectionSchema {
    use crate::metric::Metric;
    use crate::schema::VectorField;
    CollectionSchema {
        fields: vec![
            VectorField::new("dense", 4, Metric::L2, "Flat"),
            VectorField::new("bits", 64, Metric::Hamming, "Flat"),
        ],
    }
}

/// A zero query for a field of `element` and `dim`.
fn zero_query(element: Element, dim: usize) -> Vector {
    match element {
        Element::F32 => Vector::Dense(vec![0.0; dim]),
        Element::Bit => Vector::Binary(vec![0; dim.div_ceil(8)]),
    }
}

/// `MANIFEST` bytes (after the flags byte) through the real reader.
pub fn manifest_open(data: &[u8]) -> Result<()> {
    let data = take_flags(data);
    let dir = scratch("manifest");
    fs::write(dir.join(MANIFEST), data).map_err(|e| Error::io(&dir, e))?;
    let m = Manifest::read(&dir)?;
    m.schema.validate()
}

/// A WAL file (after the flags byte): its header, then the replay a collection open does
/// (decoding every record against the header's schema, or a fallback one for "VDBWAL01" logs),
/// torn-tail cut included, then the read a follower does.
pub fn wal_replay(data: &[u8]) -> Result<()> {
    let data = take_flags(data);
    let dir = scratch("wal");
    let path = dir.join("wal-00000001.log");
    fs::write(&path, data).map_err(|e| Error::io(&path, e))?;
    let header = parse_header(data, &path)?;
    let schema = header.schema.clone().unwrap_or_else(fallback_schema);
    let mut ops = 0usize;
    let replay = Wal::open(&path, header.gen, |payload| {
        match WalOp::decode(payload, &schema, &path)? {
            WalOp::Put(recs) => ops += recs.len(),
            WalOp::Delete(ids) => ops += ids.len(),
        }
        Ok(())
    });
    // The follower reads the file as the open left it (a torn tail cut).
    let follow = read_frames_after(&path, WalCursor::start(header.gen));
    replay?;
    follow.map(|_| ())
}

/// A segment file (after the flags byte): its info, the open, the full verify, and a read of
/// every id, vector and metadata document, against the schema its info section records (or a
/// fallback one).
pub fn segment_open(data: &[u8]) -> Result<()> {
    let data = take_flags(data);
    let dir = scratch("segment");
    let path = dir.join("seg-00000001.seg");
    fs::write(&path, data).map_err(|e| Error::io(&path, e))?;
    let (seq, info) = read_segment_info(&path)?;
    let schema = info.map_or_else(fallback_schema, |i| i.schema);
    let seg = Segment::open(&path, seq, &schema)?;
    seg.verify()?;
    let _ = seg.ids().iter().fold(0u64, |a, &b| a ^ b);
    let _ = seg.tombstones().len();
    for f in 0..schema.fields.len() {
        let _ = seg.column(f);
        for row in 0..seg.rows() {
            let _ = seg.vector(f, row);
        }
    }
    for row in 0..seg.rows() {
        seg.metadata(row)?;
    }
    Ok(())
}

/// A packed index directory (after the flags byte) through [`open_index`] (the fast path a
/// reader uses for a collection's snapshots: footers, no checksum, no link walk), then the same through
/// [`load_index`]; each index found gets a top-k and a range search with a zero query and a
/// reconstruct of a few ids, and the opened one an insert and a removal.
pub fn index_snapshot(data: &[u8]) -> Result<()> {
    let data = take_flags(data);
    let dir = scratch("index");
    unpack_into(data, &dir)?;
    if let Ok(mut opened) = open_index(&dir, Verify::Footers) {
        if opened.dim() <= 1 << 16 {
            let _ = exercise(opened.as_ref());
            let q = zero_query(opened.metric().element(), opened.dim());
            let one = match &q {
                Vector::Dense(v) => VectorsRef::Dense(v),
                Vector::Binary(b) => VectorsRef::Binary(b),
            };
            if opened.add(&[u64::MAX - 1], one).is_ok() {
                let _ = exercise(opened.as_ref());
            }
            let _ = opened.remove(&[0, 1, u64::MAX - 1]);
        }
    }
    let index = load_index(&dir)?;
    if index.dim() > 1 << 16 {
        return Ok(()); // a zero query this large proves nothing more
    }
    exercise(index.as_ref())
}

/// Searches and reads of `index` with a zero query.
fn exercise(index: &dyn crate::index::VectorIndex) -> Result<()> {
    let q = zero_query(index.metric().element(), index.dim());
    let params = SearchParams { ef: Some(16), nprobe: Some(4), checks: Some(64), rerank: Some(16), threads: Some(1) };
    let hits = index.search(q.as_ref(), 5, &params, None)?;
    index.range_search(q.as_ref(), 1.0, &params, Some(&|id| id % 2 == 0))?;
    for h in hits {
        let _ = index.reconstruct(h.id);
        let _ = index.contains(h.id);
    }
    let _ = (index.len(), index.memory_bytes(), index.description());
    Ok(())
}

/// A packed database directory (after the flags byte) through [`Database::open`] (recovery:
/// manifest, segments, WAL replay, index snapshots), then a search of every field of every
/// collection and a read of every record.
pub fn database_open(data: &[u8]) -> Result<()> {
    let data = take_flags(data);
    let dir = scratch("db");
    unpack_into(data, &dir)?;
    let db = Database::open(&dir)?;
    for name in db.collection_names() {
        let c = db.collection(&name)?;
        for f in &c.schema().fields.clone() {
            let q = zero_query(f.element(), f.dim);
            c.search(&SearchRequest::new(f.name.clone(), Query::Vector(q), 3))?;
        }
        for id in c.ids().into_iter().take(64) {
            c.get(id)?;
        }
    }
    Ok(())
}

/// The text filter language, and, when the input is JSON, [`Filter::from_json`]; every filter
/// that parses is evaluated against a small metadata document.
pub fn filter_parse(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let doc: crate::filter::Metadata = serde_json::from_str(
        r#"{"label":"cat","size":12,"ratio":0.5,"tags":["a","b"],"ok":true,"none":null,"nested":{"x":1}}"#,
    )
    .expect("valid JSON");
    if let Ok(f) = Filter::parse(text) {
        let _ = (f.matches(&doc), f.fields());
    }
    if let Ok(v) = serde_json::from_str::<serde_json::Value>(text) {
        if let Ok(f) = Filter::from_json(&v) {
            let _ = (f.matches(&doc), f.fields());
        }
    }
}

/// Write the files of a pack into `dir`.
fn unpack_into(mut data: &[u8], dir: &Path) -> Result<()> {
    while let Some((&name_len, rest)) = data.split_first() {
        let Some((name, rest)) = rest.split_at_checked(name_len as usize) else { break };
        let Some((len, rest)) = rest.split_at_checked(4) else { break };
        let len = u32::from_le_bytes(len.try_into().expect("4 bytes")) as usize;
        let body = &rest[..len.min(rest.len())];
        data = &rest[body.len()..];
        let Some(rel) = safe_relative(name) else { continue };
        let path = dir.join(rel);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
        }
        if path.is_dir() {
            continue;
        }
        fs::write(&path, body).map_err(|e| Error::io(&path, e))?;
    }
    Ok(())
}

/// `name` as a relative path when it is a safe one (see the module doc).
fn safe_relative(name: &[u8]) -> Option<PathBuf> {
    let name = std::str::from_utf8(name).ok()?;
    let parts: Vec<&str> = name.split('/').collect();
    let ok = |p: &&str| {
        !p.is_empty()
            && *p != "."
            && *p != ".."
            && p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
    };
    (parts.len() <= 4 && parts.iter().all(ok)).then(|| parts.iter().collect())
}

/// Pack every file under `dir` (see the module doc), in name order: seeds for the targets
/// that take directories. Lock files are left out.
pub fn pack_dir(dir: &Path) -> std::io::Result<Vec<u8>> {
    let mut files = Vec::new();
    collect_files(dir, dir, &mut files)?;
    files.sort();
    let mut out = Vec::new();
    for rel in files {
        if rel == "LOCK" {
            continue;
        }
        let body = fs::read(dir.join(&rel))?;
        out.push(u8::try_from(rel.len()).expect("short names"));
        out.extend_from_slice(rel.as_bytes());
        out.extend_from_slice(&u32::try_from(body.len()).expect("small files").to_le_bytes());
        out.extend_from_slice(&body);
    }
    Ok(out)
}

fn collect_files(root: &Path, dir: &Path, out: &mut Vec<String>) -> std::io::Result<()> {
    for e in fs::read_dir(dir)? {
        let p = e?.path();
        if p.is_dir() {
            collect_files(root, &p, out)?;
        } else {
            let rel = p.strip_prefix(root).expect("under root").to_string_lossy().replace('\\', "/");
            out.push(rel);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pack_round_trips_and_rejects_unsafe_names() {
        let src = tempfile::tempdir().unwrap();
        fs::create_dir_all(src.path().join("a/b")).unwrap();
        fs::write(src.path().join("a/b/x.bin"), b"xyz").unwrap();
        fs::write(src.path().join("top.json"), b"{}").unwrap();
        let packed = pack_dir(src.path()).unwrap();
        let dst = scratch("pack-test");
        unpack_into(&packed, &dst).unwrap();
        assert_eq!(fs::read(dst.join("a/b/x.bin")).unwrap(), b"xyz");
        assert_eq!(fs::read(dst.join("top.json")).unwrap(), b"{}");
        assert!(safe_relative(b"../x").is_none());
        assert!(safe_relative(b"/etc/passwd").is_none());
        assert!(safe_relative(b"a/./b").is_none());
        assert!(safe_relative(b"a/b/c/d/e").is_none());
        assert!(safe_relative(b"seg-00000001.seg").is_some());
    }
}
