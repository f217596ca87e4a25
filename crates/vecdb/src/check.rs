//! Verify a database without changing a byte: every checksum of every file each collection's
//! MANIFEST names (segments, the WAL, index snapshots), plus what is there that it does not name.
//!
//! ```rust
//! use vecdb::{Database, CollectionSchema, Metric, Record, Vector};
//! let dir = tempfile::tempdir().unwrap();
//! let db = Database::open(dir.path()).unwrap();
//! let c = db.create_collection("c", CollectionSchema::single("v", 2, Metric::L2, "Flat")).unwrap();
//! c.insert(vec![Record::new(1).with_vector("v", Vector::Dense(vec![1.0, 2.0]))]).unwrap();
//! drop((c, db));
//! let report = vecdb::check::check_database(dir.path()).unwrap();
//! assert!(report.is_healthy());
//! ```

use std::fs;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::collection::{read_marker, snapshot_dir, snapshot_marker};
use crate::db::{classify_collection_dir, collection_dirs, collection_file_names, existing_collections_dir, DirKind};
use crate::error::{Error, Result};
use crate::lock::DbLock;
use crate::manifest::{Manifest, MANIFEST};
use crate::schema::CollectionSchema;
use crate::segment::{read_segment_info, segment_file_name, Segment};
use crate::wal::{parse_header, scan_frames, wal_file_name, WalOp};

/// How a file fared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Every check passed.
    Ok,
    /// Nothing acknowledged is at risk, but something will change at the next open (a torn WAL
    /// tail is cut, an obsolete file removed).
    Warning,
    /// A checksum or structure check failed, or a needed file is missing.
    Damaged,
}

/// One finding about one file (or directory) of a collection.
#[derive(Debug, Clone, Serialize)]
pub struct FileCheck {
    /// File name inside the collection directory.
    pub file: String,
    /// What the file is: `manifest`, `segment`, `wal`, `snapshot`, `other`.
    pub kind: &'static str,
    /// The verdict.
    pub status: Status,
    /// What was found (record/frame counts, or what is wrong).
    pub detail: String,
}

/// The findings for one collection directory.
#[derive(Debug, Clone, Serialize)]
pub struct CollectionCheck {
    /// Collection name (its directory name).
    pub name: String,
    /// Its directory.
    pub dir: PathBuf,
    /// Findings, MANIFEST first.
    pub files: Vec<FileCheck>,
}

impl CollectionCheck {
    /// The worst status among the findings.
    pub fn status(&self) -> Status {
        worst(self.files.iter().map(|f| f.status))
    }
}

/// What [`check_database`] found.
#[derive(Debug, Clone, Serialize)]
pub struct CheckReport {
    /// The database directory.
    pub path: PathBuf,
    /// One entry per collection directory.
    pub collections: Vec<CollectionCheck>,
}

impl CheckReport {
    /// True when nothing is damaged (warnings allowed).
    pub fn is_healthy(&self) -> bool {
        self.collections.iter().all(|c| c.status() != Status::Damaged)
    }
    /// The worst status in the database.
    pub fn status(&self) -> Status {
        worst(self.collections.iter().map(|c| c.status()))
    }
}

fn worst(it: impl Iterator<Item = Status>) -> Status {
    it.fold(Status::Ok, |a, b| match (a, b) {
        (Status::Damaged, _) | (_, Status::Damaged) => Status::Damaged,
        (Status::Warning, _) | (_, Status::Warning) => Status::Warning,
        _ => Status::Ok,
    })
}

/// Verify the database in `dir`. Takes the database lock (so fails with [`Error::Locked`]
/// while another process has it open) and writes nothing. Damage is reported in the result,
/// not as an error; errors are for a directory that cannot be read at all.
pub fn check_database(dir: impl AsRef<Path>) -> Result<CheckReport> {
    let path = dir.as_ref().to_path_buf();
    let cdir = existing_collections_dir(&path)?;
    let _lock = DbLock::acquire(&path)?;
    let mut collections = Vec::new();
    for (name, p) in collection_dirs(&cdir)? {
        let files = match classify_collection_dir(&p) {
            Ok(DirKind::Other) => continue,
            Ok(DirKind::Unfinished) => vec![FileCheck {
                file: ".".into(),
                kind: "other",
                status: Status::Warning,
                detail: "an unfinished create or drop: removed at the next open".into(),
            }],
            Ok(DirKind::Collection) => check_collection(&p)?,
            Err(Error::MissingManifest { files, .. }) => {
                let mut out = vec![FileCheck {
                    file: MANIFEST.into(),
                    kind: "manifest",
                    status: Status::Damaged,
                    detail: format!(
                        "missing, but the directory holds {files}: the collection will not open; \
                         a repair rebuilds the MANIFEST from the segments that verify"
                    ),
                }];
                out.extend(check_unlisted(&p, None)?);
                out
            }
            Err(e) => return Err(e),
        };
        collections.push(CollectionCheck { name, dir: p, files });
    }
    Ok(CheckReport { path, collections })
}

fn finding(file: impl Into<String>, kind: &'static str, r: std::result::Result<String, (Status, String)>) -> FileCheck {
    let (status, detail) = match r {
        Ok(d) => (Status::Ok, d),
        Err((s, d)) => (s, d),
    };
    FileCheck { file: file.into(), kind, status, detail }
}

fn damaged(e: Error) -> (Status, String) {
    (Status::Damaged, e.to_string())
}

/// Check a collection directory that has a MANIFEST.
fn check_collection(dir: &Path) -> Result<Vec<FileCheck>> {
    let m = match Manifest::read(dir) {
        Ok(m) => m,
        Err(e) => {
            let mut out = vec![finding(MANIFEST, "manifest", Err(damaged(e)))];
            out.extend(check_unlisted(dir, None)?);
            return Ok(out);
        }
    };
    let mut out = vec![finding(
        MANIFEST,
        "manifest",
        Ok(format!(
            "{} segment(s), WAL generation {}, {} field(s)",
            m.segments.len(),
            m.wal_gen,
            m.schema.fields.len()
        )),
    )];
    for &seq in &m.segments {
        let name = segment_file_name(seq);
        let r = Segment::open_verified(&dir.join(&name), seq, &m.schema)
            .map(|s| format!("{} row(s), {} tombstone(s)", s.rows(), s.tombstones().len()))
            .map_err(damaged);
        out.push(finding(name, "segment", r));
    }
    let wal = wal_file_name(m.wal_gen);
    out.push(finding(&wal, "wal", check_wal(&dir.join(&wal), Some(m.wal_gen), &m.schema)));
    for field in &m.schema.fields {
        if let Some(f) = check_snapshot(dir, &field.name, &field.index, &m) {
            out.push(f);
        }
    }
    out.extend(check_unlisted(dir, Some(&m))?);
    Ok(out)
}

/// Verify a WAL: header, generation, every frame's checksums and decoding.
fn check_wal(
    path: &Path,
    want_gen: Option<u64>,
    schema: &CollectionSchema,
) -> std::result::Result<String, (Status, String)> {
    let data = fs::read(path).map_err(|e| damaged(Error::io(path, e)))?;
    let h = parse_header(&data, path).map_err(damaged)?;
    if let Some(g) = want_gen.filter(|&g| g != h.gen) {
        return Err((Status::Damaged, format!("WAL generation {}, the MANIFEST expects {g}", h.gen)));
    }
    let scan = scan_frames(&data, h.len, path, |p| WalOp::decode(p, schema, path).map(|_| ())).map_err(damaged)?;
    match scan.torn {
        None => Ok(format!("{} frame(s), {} bytes", scan.frames, data.len())),
        Some(t) => Err((
            Status::Warning,
            format!(
                "{} intact frame(s), then a torn tail of {} bytes at offset {} ({}): a write cut by a crash \
                 before it was acknowledged; the next open cuts it",
                scan.frames, t.bytes, scan.end, t.reason
            ),
        )),
    }
}

/// Verify field `field`'s index snapshot if there is one.
/// True when a snapshot saved for `saved` serves a field of spec `spec` (an `Auto` field: one of
/// the graphs its policy builds).
fn snapshot_spec_fits(saved: &str, spec: &str) -> bool {
    match crate::collection::AutoPolicy::parse(spec) {
        Some(_) => crate::collection::is_auto_graph(saved),
        None => saved == spec,
    }
}

fn check_snapshot(dir: &Path, field: &str, spec: &str, m: &Manifest) -> Option<FileCheck> {
    let sdir = snapshot_dir(dir, field);
    let mpath = snapshot_marker(dir, field);
    if !sdir.exists() && !mpath.exists() {
        return None;
    }
    let name = sdir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let r = match read_marker(dir, field) {
        None => Err((Status::Warning, "no usable marker: the index is rebuilt at the next open".to_string())),
        Some(mk) if !snapshot_spec_fits(&mk.spec, spec) || !m.segments.starts_with(&mk.segments) => {
            Err((Status::Warning, "stale (saved for other segments or spec): rebuilt at the next open".into()))
        }
        Some(_) => match crate::index::load_index(&sdir) {
            Ok(i) => Ok(format!("{} ({} vectors)", i.description(), i.len())),
            Err(e) => Err((
                Status::Damaged,
                format!(
                    "{e} (derived data: the next writer to open the collection rebuilds the index \
                     from the records; readers that open it first may get wrong neighbours)"
                ),
            )),
        },
    };
    Some(finding(name, "snapshot", r))
}

/// Segments, WALs and temporaries the MANIFEST does not name (all of them when there is no
/// usable MANIFEST): verified where they can be, and reported.
fn check_unlisted(dir: &Path, m: Option<&Manifest>) -> Result<Vec<FileCheck>> {
    let names = collection_file_names(dir)?;
    let mut out = Vec::new();
    for name in names {
        let path = dir.join(&name);
        let listed = m.is_some_and(|m| {
            name == MANIFEST
                || name == wal_file_name(m.wal_gen)
                || m.segments.iter().any(|&s| segment_file_name(s) == name)
                || name.starts_with("index-")
        });
        if listed || (m.is_none() && name == MANIFEST) {
            continue;
        }
        let is_seg = name.starts_with("seg-") && name.ends_with(".seg");
        let is_wal = name.starts_with("wal-") && name.ends_with(".log");
        let f = if is_seg {
            let r = match read_segment_info(&path) {
                Err(e) => Err(damaged(e)),
                Ok((seq, info)) => {
                    let schema = info.as_ref().map(|i| i.schema.clone()).or_else(|| m.map(|m| m.schema.clone()));
                    let verified = schema.map(|s| Segment::open_verified(&path, seq, &s).map(|s| s.rows()));
                    match (verified, m) {
                        (Some(Err(e)), _) => Err(damaged(e)),
                        (Some(Ok(rows)), Some(_)) => Err((
                            Status::Warning,
                            format!("{rows} row(s), not in the MANIFEST: obsolete, removed at the next open"),
                        )),
                        (Some(Ok(rows)), None) => Ok(format!("{rows} row(s), verifies: usable by a repair")),
                        (None, _) => Err((
                            Status::Warning,
                            "written before segments described themselves: a repair needs the schema".into(),
                        )),
                    }
                }
            };
            finding(name, "segment", r)
        } else if is_wal {
            let r = match m {
                Some(_) => {
                    Err((Status::Warning, "an older or unfinished WAL generation: removed at the next open".into()))
                }
                None => {
                    let schema = fs::read(&path).ok().and_then(|d| parse_header(&d, &path).ok()).and_then(|h| h.schema);
                    match schema {
                        Some(s) => check_wal(&path, None, &s).map(|d| format!("{d}: usable by a repair")),
                        None => Err((Status::Warning, "header without a schema (or unreadable)".into())),
                    }
                }
            };
            finding(name, "wal", r)
        } else if name.ends_with(".tmp") {
            finding(
                name,
                "other",
                Err((Status::Warning, "temporary file of an unfinished write: removed at the next open".into())),
            )
        } else {
            continue;
        };
        out.push(f);
    }
    Ok(out)
}
