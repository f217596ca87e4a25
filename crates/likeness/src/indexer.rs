//! Incremental indexing of image folders into a collection, shared by `likeness index`
//! and the HTTP API's server-side path adds.
//!
//! Files are processed in chunks; each chunk's records are upserted (durably, on a writer thread
//! while the next images are decoded and embedded) as soon as its features are extracted, so an interrupted run keeps every acknowledged chunk and
//! the next run resumes with the files still missing. Files whose size and modification
//! time match their stored record are skipped; bad files are collected with their reason
//! and the run goes on.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::Instant;

use anyhow::{Context, Result};
use features::decode::DecodeLimits;
use features::pipeline::{extract_inputs_with, ImageInput};
use features::FeatureExtractor;
use serde::Serialize;
use vecdb::Collection;

use crate::catalog::{build_record, record_id, FileFacts};
use crate::image_meta::ImageMeta;
use crate::walk::{find_images, FoundFile};

/// Knobs of an indexing run.
#[derive(Debug, Clone)]
pub struct IndexOptions {
    /// Remove records of files under the roots that no longer exist.
    pub prune: bool,
    /// Files per durable chunk.
    pub chunk: usize,
    /// Decoder guards.
    pub limits: DecodeLimits,
    /// Folders never entered (canonical), e.g. the database directory.
    pub exclude: Vec<PathBuf>,
    /// A long run checkpoints this often (saving index snapshots), so that after a crash the
    /// next open loads them instead of rebuilding the indexes from every stored vector.
    pub checkpoint_every: std::time::Duration,
}

impl Default for IndexOptions {
    fn default() -> Self {
        IndexOptions {
            prune: false,
            chunk: 128,
            limits: DecodeLimits::default(),
            exclude: Vec::new(),
            checkpoint_every: std::time::Duration::from_secs(300),
        }
    }
}

/// What a run did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct IndexReport {
    /// Image files found under the roots.
    pub found: usize,
    /// New records stored.
    pub added: usize,
    /// Records replaced because their file changed.
    pub updated: usize,
    /// Files skipped because their record is current.
    pub unchanged: usize,
    /// Records removed because their file is gone (`--prune`).
    pub pruned: usize,
    /// Records under the roots whose file is gone from disk (removed only with `--prune`: without
    /// it they stay searchable and this says how many).
    pub gone: usize,
    /// Files that could not be indexed, with the reason.
    pub failed: Vec<FailedFile>,
    /// True when the run was stopped before the end (Ctrl-C).
    pub interrupted: bool,
    /// Wall time in seconds.
    pub seconds: f64,
    /// Files embedded per second (added + updated + failed over the extraction time).
    pub images_per_second: f64,
}

/// A file that could not be indexed.
#[derive(Debug, Clone, Serialize)]
pub struct FailedFile {
    /// The file.
    pub path: PathBuf,
    /// Why.
    pub reason: String,
}

/// Progress of a run: `done` of `total` files to embed.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct IndexProgress {
    /// Files processed so far.
    pub done: usize,
    /// Files to process in this run.
    pub total: usize,
    /// Failures so far.
    pub failed: usize,
}

/// Walk `roots` and bring the collection up to date with them.
pub fn index_roots(
    coll: &Collection,
    extractors: &[Box<dyn FeatureExtractor>],
    roots: &[PathBuf],
    opts: &IndexOptions,
    on_progress: &(dyn Fn(IndexProgress) + Sync),
    stop: &AtomicBool,
) -> Result<IndexReport> {
    let start = Instant::now();
    let (found, walk_errors) = find_images(roots, &opts.exclude);
    let mut report = IndexReport { found: found.len(), ..Default::default() };
    report.failed.extend(walk_errors.into_iter().map(|(path, reason)| FailedFile { path, reason }));

    let gone = gone_records(coll, roots, &found);
    report.gone = gone.len();
    if opts.prune && !gone.is_empty() {
        report.pruned = coll.delete(&gone)?;
    }
    let mut todo = Vec::new();
    for f in found {
        match coll.get_metadata(record_id(&f.path)).map(ImageMeta::from_metadata) {
            Some(m) if m.is_unchanged(f.size, f.mtime_ns) => report.unchanged += 1,
            existing => todo.push((f, existing.is_some())),
        }
    }
    let extract_start = Instant::now();
    let stats = index_files(coll, extractors, &todo, opts, on_progress, stop)?;
    report.added = stats.added;
    report.updated = stats.updated;
    report.failed.extend(stats.failed);
    report.interrupted = stats.interrupted;
    let processed = report.added + report.updated + stats.failed_count;
    let secs = extract_start.elapsed().as_secs_f64();
    report.images_per_second = if secs > 0.0 { processed as f64 / secs } else { 0.0 };
    report.seconds = start.elapsed().as_secs_f64();
    Ok(report)
}

struct ChunkStats {
    added: usize,
    updated: usize,
    failed: Vec<FailedFile>,
    failed_count: usize,
    interrupted: bool,
}

/// Embed and upsert `files` (each flagged whether a record exists already) chunk by chunk.
///
/// Three stages overlap: one thread decodes the next few images (all cores, rayon), the calling
/// thread runs the extractors on the previous ones (the CNN in batches) and a writer thread
/// stores the finished records, `opts.chunk` at a time, durably. The channel to the writer holds
/// one chunk, so a slow disk holds back extraction instead of piling up records (memory stays
/// bounded: one decoded chunk, one being extracted, one chunk of records queued, one being
/// written). A failed write stops the run with that error.
fn index_files(
    coll: &Collection,
    extractors: &[Box<dyn FeatureExtractor>],
    files: &[(FoundFile, bool)],
    opts: &IndexOptions,
    on_progress: &(dyn Fn(IndexProgress) + Sync),
    stop: &AtomicBool,
) -> Result<ChunkStats> {
    let mut stats = ChunkStats { added: 0, updated: 0, failed: Vec::new(), failed_count: 0, interrupted: false };
    let total = files.len();
    on_progress(IndexProgress { done: 0, total, failed: 0 });
    let chunk = opts.chunk.max(1);
    let inputs: Vec<ImageInput> = files.iter().map(|(f, _)| ImageInput::Path(f.path.clone())).collect();
    let (tx, rx) = mpsc::sync_channel::<Vec<vecdb::Record>>(1);
    std::thread::scope(|scope| {
        let writer = scope.spawn(move || store_chunks(coll, rx, opts.checkpoint_every));
        let mut pending: Vec<vecdb::Record> = Vec::with_capacity(chunk);
        let mut next = 0;
        extract_inputs_with(inputs, extractors, &opts.limits, &mut |results| {
            for res in results {
                let (file, existed) = &files[next];
                next += 1;
                match res {
                    Ok(img) => {
                        let facts = FileFacts {
                            root: Some(file.root.clone()),
                            path: file.path.clone(),
                            label: file.label.clone(),
                            size: file.size,
                            mtime_ns: file.mtime_ns,
                            original_name: None,
                        };
                        pending.push(build_record(&facts, &img));
                        if *existed {
                            stats.updated += 1;
                        } else {
                            stats.added += 1;
                        }
                    }
                    Err(e) => {
                        stats.failed_count += 1;
                        stats.failed.push(FailedFile { path: file.path.clone(), reason: reason_of(&e) });
                    }
                }
            }
            let stopping = stop.load(Ordering::SeqCst) && next < total;
            // Full chunks go to the writer; the rest waits for more, unless this is the end.
            while pending.len() >= chunk || ((stopping || next == total) && !pending.is_empty()) {
                let part: Vec<vecdb::Record> = pending.drain(..pending.len().min(chunk)).collect();
                if tx.send(part).is_err() {
                    return false; // the writer failed: its error is reported below
                }
            }
            on_progress(IndexProgress { done: next, total, failed: stats.failed_count });
            stats.interrupted = stopping;
            !stopping
        });
        drop(tx);
        writer.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })?;
    Ok(stats)
}

/// The writer stage of [`index_files`]: upsert each chunk of records as it arrives (durable when
/// the call returns) and checkpoint every `checkpoint_every`.
fn store_chunks(
    coll: &Collection,
    chunks: mpsc::Receiver<Vec<vecdb::Record>>,
    checkpoint_every: std::time::Duration,
) -> Result<()> {
    let mut last_checkpoint = Instant::now();
    for records in chunks {
        coll.upsert(records).with_context(|| format!("storing into collection '{}'", coll.name()))?;
        if last_checkpoint.elapsed() >= checkpoint_every {
            coll.checkpoint().with_context(|| format!("checkpointing collection '{}'", coll.name()))?;
            last_checkpoint = Instant::now();
        }
    }
    Ok(())
}

/// The reason part of a feature error (its message without the leading path, which is reported separately).
fn reason_of(e: &features::FeatureError) -> String {
    let msg = e.to_string();
    match e.path() {
        Some(p) => {
            let prefix = format!("{}: ", p.display());
            msg.strip_prefix(&prefix).map(str::to_string).unwrap_or(msg)
        }
        None => msg,
    }
}

/// The records whose `path` lies under one of `roots` but was not found on this walk and is
/// not on disk.
fn gone_records(coll: &Collection, roots: &[PathBuf], found: &[FoundFile]) -> Vec<u64> {
    let present: HashSet<&Path> = found.iter().map(|f| f.path.as_path()).collect();
    let mut gone = Vec::new();
    for id in coll.ids() {
        let Some(path) = coll.get_metadata(id).and_then(|m| ImageMeta::from_metadata(m).path_buf()) else { continue };
        let path = path.as_path();
        if roots.iter().any(|r| path.starts_with(r)) && !present.contains(path) && !path.exists() {
            gone.push(id);
        }
    }
    gone
}

#[cfg(test)]
mod tests {
    use super::*;
    use vecdb::{CollectionSchema, Database, IndexOrigin, Metric, VectorField};

    /// With `checkpoint_every` zero every chunk checkpoints: the HNSW field's snapshot is on disk
    /// while the collection is still open, and a later open loads it.
    #[test]
    fn long_runs_checkpoint_and_save_index_snapshots() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("pics");
        std::fs::create_dir_all(&root).unwrap();
        for i in 0..6u8 {
            let img = image::RgbImage::from_fn(48, 48, |x, y| image::Rgb([x as u8 * 5, y as u8 * 5, i * 40]));
            img.save(root.join(format!("p{i}.png"))).unwrap();
        }
        let extractors = features::registry::build_extractors(&["color"], &Default::default()).unwrap();
        let dbdir = tmp.path().join("db");
        let schema = CollectionSchema { fields: vec![VectorField::new("color", 128, Metric::L2, "HNSW16")] };
        let opts = IndexOptions { chunk: 2, checkpoint_every: std::time::Duration::ZERO, ..Default::default() };
        {
            let db = Database::open(&dbdir).unwrap();
            let coll = db.create_collection("c", schema).unwrap();
            let report = index_roots(&coll, &extractors, &[root], &opts, &|_| {}, &AtomicBool::new(false)).unwrap();
            assert_eq!((report.added, report.failed.len()), (6, 0));
            assert!(coll.path().join("index-color.json").is_file(), "no snapshot saved during the run");
            assert!(coll.stats().segments >= 3, "one checkpoint per chunk of 2: {:?}", coll.stats());
        }
        let db = Database::open(&dbdir).unwrap();
        let stats = db.collection("c").unwrap().stats();
        assert_eq!(stats.count, 6);
        assert!(matches!(stats.fields[0].origin, IndexOrigin::Snapshot { .. }), "{stats:?}");
    }
}
