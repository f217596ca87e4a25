//! Rebuild a lost or damaged MANIFEST from the files that verify.
//!
//! Segments describe themselves (schema, the WAL generation that follows them, whether they are
//! a compaction: see `segment.rs`), and WAL headers carry the schema, so a collection whose
//! MANIFEST is missing or fails its checksum can be put back together:
//!
//! 1. every `seg-*.seg` is verified in full (footer, every section checksum); those that fail
//!    are set aside;
//! 2. the live segments are the verified ones from the newest compaction on (older ones hold
//!    only rows it replaced);
//! 3. the WAL is the newest generation with an intact header (or an empty one is created for
//!    the generation the newest segment names);
//! 4. `next_seq` is past every segment file seen, verified or not, so nothing is overwritten.
//!
//! Nothing is deleted: files a repair does not use (damaged or obsolete segments, older WALs,
//! the damaged MANIFEST) are moved into `quarantine/` inside the collection directory, and the
//! report says which and why. A collection whose MANIFEST verifies is left alone.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::db::{classify_collection_dir, collection_dirs, collection_file_names, existing_collections_dir, DirKind};
use crate::error::{Error, Result};
use crate::fsutil::sync_dir;
use crate::lock::DbLock;
use crate::manifest::{Manifest, MANIFEST};
use crate::schema::CollectionSchema;
use crate::segment::{read_segment_info, segment_file_name, Segment, SegmentInfo};
use crate::wal::{parse_header, scan_frames, wal_file_name, Wal};

/// Name of the directory, inside a collection directory, that receives the files a repair
/// does not use.
pub const QUARANTINE_DIR: &str = "quarantine";

/// Options of a repair.
#[derive(Debug, Clone, Default)]
pub struct RepairOptions {
    /// The schema to use when no segment or WAL header records one (files written by versions
    /// before they did); otherwise the newest recorded schema is used.
    pub schema: Option<CollectionSchema>,
}

/// What a repair did to one collection.
#[derive(Debug, Clone, Serialize)]
pub struct CollectionRepair {
    /// Collection name.
    pub name: String,
    /// Its directory.
    pub dir: PathBuf,
    /// `"not needed"` (the MANIFEST verifies), `"rebuilt"`, or `"failed"`.
    pub outcome: &'static str,
    /// Segments the new MANIFEST lists, oldest first.
    pub segments: Vec<u64>,
    /// Rows in those segments (before the WAL is replayed).
    pub segment_rows: usize,
    /// The WAL generation the new MANIFEST names, and how many intact frames it holds.
    pub wal_gen: u64,
    /// Intact frames in that WAL.
    pub wal_frames: u64,
    /// Files moved into [`QUARANTINE_DIR`], each with the reason.
    pub quarantined: Vec<(String, String)>,
    /// Anything the operator should know (possible losses, assumptions made).
    pub notes: Vec<String>,
}

/// What [`repair_database`] did.
#[derive(Debug, Clone, Serialize)]
pub struct RepairReport {
    /// The database directory.
    pub path: PathBuf,
    /// One entry per collection directory.
    pub collections: Vec<CollectionRepair>,
}

/// Repair every collection of the database in `dir` whose MANIFEST is missing or damaged. Takes
/// the database lock, so fails with [`Error::Locked`] while another process has it open.
pub fn repair_database(dir: impl AsRef<Path>, opts: &RepairOptions) -> Result<RepairReport> {
    let path = dir.as_ref().to_path_buf();
    let cdir = existing_collections_dir(&path)?;
    let _lock = DbLock::acquire(&path)?;
    let mut collections = Vec::new();
    for (name, p) in collection_dirs(&cdir)? {
        let needed = match classify_collection_dir(&p) {
            Ok(DirKind::Collection) => Manifest::read(&p).is_err(),
            Ok(_) => continue,
            Err(Error::MissingManifest { .. }) => true,
            Err(e) => return Err(e),
        };
        let r = if needed {
            repair_collection_dir(&name, &p, opts)?
        } else {
            CollectionRepair::new(&name, &p, "not needed")
        };
        collections.push(r);
    }
    Ok(RepairReport { path, collections })
}

impl CollectionRepair {
    fn new(name: &str, dir: &Path, outcome: &'static str) -> Self {
        CollectionRepair {
            name: name.to_string(),
            dir: dir.to_path_buf(),
            outcome,
            segments: vec![],
            segment_rows: 0,
            wal_gen: 0,
            wal_frames: 0,
            quarantined: vec![],
            notes: vec![],
        }
    }
}

/// A segment file found in the directory.
struct FoundSegment {
    name: String,
    seq: u64,
    info: Option<SegmentInfo>,
}

/// A WAL file found in the directory.
struct FoundWal {
    name: String,
    gen: u64,
    schema: Option<CollectionSchema>,
}

/// Rebuild the MANIFEST of the collection in `dir` (the caller holds the database lock).
fn repair_collection_dir(name: &str, dir: &Path, opts: &RepairOptions) -> Result<CollectionRepair> {
    let mut rep = CollectionRepair::new(name, dir, "rebuilt");
    let mut set_aside: Vec<(String, String)> = Vec::new();
    let (mut segs, mut wals, mut max_seq_seen) = (Vec::new(), Vec::new(), 0u64);
    let names = collection_file_names(dir)?;
    for fname in names {
        let path = dir.join(&fname);
        if let Some(seq) = parse_numbered(&fname, "seg-", ".seg") {
            max_seq_seen = max_seq_seen.max(seq);
            match read_segment_info(&path) {
                Ok((s, info)) if s == seq => segs.push(FoundSegment { name: fname, seq, info }),
                Ok((s, _)) => set_aside.push((fname, format!("holds segment {s}, not {seq}"))),
                Err(e) => set_aside.push((fname, e.to_string())),
            }
        } else if let Some(gen) = parse_numbered(&fname, "wal-", ".log") {
            let header = fs::read(&path).map_err(|e| Error::io(&path, e)).and_then(|d| parse_header(&d, &path));
            match header {
                Ok(h) if h.gen == gen => wals.push(FoundWal { name: fname, gen, schema: h.schema }),
                Ok(h) => set_aside.push((fname, format!("holds WAL generation {}, not {gen}", h.gen))),
                Err(e) => set_aside.push((fname, e.to_string())),
            }
        } else if fname == MANIFEST {
            set_aside.push((fname, "fails verification".into()));
        }
    }
    // The newest recorded schema: a WAL header is newer than the segment that names its generation.
    let recorded = segs
        .iter()
        .filter_map(|s| s.info.as_ref().map(|i| ((i.wal_gen, 0u8), &i.schema)))
        .chain(wals.iter().filter_map(|w| w.schema.as_ref().map(|s| ((w.gen, 1u8), s))))
        .max_by_key(|(k, _)| *k)
        .map(|(_, s)| s.clone());
    let schema = match (opts.schema.clone(), recorded) {
        (Some(s), _) => s,
        (None, Some(s)) => s,
        (None, None) => {
            let mut r = CollectionRepair::new(name, dir, "failed");
            r.notes.push(
                "no segment or WAL header records the schema (files written before they did): \
                 give the schema explicitly"
                    .into(),
            );
            return Ok(r);
        }
    };
    schema.validate()?;
    // Verify every segment in full against the schema.
    let mut verified: BTreeMap<u64, (FoundSegment, usize)> = BTreeMap::new();
    let mut damaged_segments = set_aside.iter().filter(|(n, _)| n.starts_with("seg-")).count();
    for s in segs {
        match Segment::open_verified(&dir.join(&s.name), s.seq, &schema) {
            Ok(seg) => {
                verified.insert(s.seq, (s, seg.rows()));
            }
            Err(e) => {
                damaged_segments += 1;
                set_aside.push((s.name, e.to_string()));
            }
        }
    }
    let base = verified.iter().rev().find(|(_, (s, _))| s.info.as_ref().is_some_and(|i| i.compacted)).map(|(&q, _)| q);
    let mut live = Vec::new();
    for (seq, (s, rows)) in verified {
        if base.is_some_and(|b| seq < b) {
            set_aside.push((s.name, format!("replaced by the compaction in {}", segment_file_name(base.unwrap_or(0)))));
        } else {
            rep.segment_rows += rows;
            live.push(s);
        }
    }
    if base.is_none() && live.iter().any(|s| s.info.is_none()) {
        rep.notes.push(
            "some segments predate self-describing segments: if a compaction was interrupted, records \
             deleted before it may reappear"
                .into(),
        );
    }
    if damaged_segments > 0 {
        rep.notes.push(format!(
            "{damaged_segments} segment file(s) did not verify: the records only they held are lost (they are kept in {QUARANTINE_DIR}/)"
        ));
    }
    // The WAL: the newest intact generation, at least the one the newest live segment names.
    let seg_gen = live.iter().filter_map(|s| s.info.as_ref().map(|i| i.wal_gen)).max().unwrap_or(0);
    let newest_wal = wals.iter().map(|w| w.gen).max();
    let wal_gen = newest_wal.unwrap_or(0).max(seg_gen).max(1);
    for w in wals.iter().filter(|w| w.gen != wal_gen) {
        let path = dir.join(&w.name);
        let frames = fs::read(&path)
            .ok()
            .and_then(|d| parse_header(&d, &path).ok().map(|h| (d, h.len)))
            .and_then(|(d, start)| scan_frames(&d, start, &path, |_| Ok(())).ok())
            .map_or(0, |s| s.frames);
        let why = if w.gen < seg_gen || frames == 0 {
            "an older WAL generation, already in the segments".to_string()
        } else {
            rep.notes.push(format!("{} holds {frames} frame(s) that no segment covers: they are not replayed", w.name));
            format!("{frames} frame(s) of an older generation that no segment covers")
        };
        set_aside.push((w.name.clone(), why));
    }
    // Move what is not used aside (never delete), then write the new MANIFEST.
    if !set_aside.is_empty() {
        let q = dir.join(QUARANTINE_DIR);
        fs::create_dir_all(&q).map_err(|e| Error::io(&q, e))?;
        for (f, why) in set_aside {
            let to = q.join(&f);
            fs::rename(dir.join(&f), &to).map_err(|e| Error::io(&to, e))?;
            rep.quarantined.push((f, why));
        }
        sync_dir(&q)?;
    }
    let wal_path = dir.join(wal_file_name(wal_gen));
    if !wal_path.exists() {
        Wal::create(&wal_path, wal_gen, &schema)?;
        rep.notes.push(format!("created an empty {}", wal_file_name(wal_gen)));
    } else {
        let data = fs::read(&wal_path).map_err(|e| Error::io(&wal_path, e))?;
        let h = parse_header(&data, &wal_path)?;
        match scan_frames(&data, h.len, &wal_path, |_| Ok(())) {
            Ok(s) => rep.wal_frames = s.frames,
            Err(e) => rep.notes.push(format!("the WAL is damaged in the middle and the collection will not open: {e}")),
        }
    }
    let segments: Vec<u64> = live.iter().map(|s| s.seq).collect();
    let manifest = Manifest { schema, segments: segments.clone(), wal_gen, next_seq: max_seq_seen + 1 };
    manifest.write(dir)?;
    sync_dir(dir)?;
    rep.segments = segments;
    rep.wal_gen = wal_gen;
    tracing::info!(dir = %dir.display(), segments = rep.segments.len(), wal_gen, "MANIFEST rebuilt");
    Ok(rep)
}

/// `seg-00000012.seg` → 12.
fn parse_numbered(name: &str, prefix: &str, suffix: &str) -> Option<u64> {
    name.strip_prefix(prefix)?.strip_suffix(suffix)?.parse().ok()
}
