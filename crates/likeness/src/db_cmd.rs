//! `likeness db info DB`: what a database holds; `likeness db set-index`: change a field's index;
//! `likeness db check DB`: verify every checksum; `likeness db repair DB`: rebuild lost manifests.

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use serde_json::{json, Value};
use vecdb::Database;

/// `likeness db ...` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum DbCommand {
    /// Collections, record counts, vector fields (dimension, metric, index), disk size, and per field
    /// the vector bytes on disk, resident (page cache) and on the heap.
    Info(InfoArgs),
    /// Rebuild one field's index with another factory spec (e.g. Flat → HNSW16,SQ8) from the
    /// stored vectors: nothing is re-embedded; the choice is saved with the collection.
    SetIndex(SetIndexArgs),
    /// Rewrite a collection's records into one segment, reclaiming the space of deleted and
    /// replaced records (checkpoints also do this on their own past 25% dead rows or 8 segments).
    Compact(CompactArgs),
    /// Verify every checksum of every collection (MANIFEST, segments, WAL frames, index
    /// snapshots) without changing a byte; exits non-zero when anything is damaged.
    Check(CheckArgs),
    /// Rebuild the MANIFEST of every collection whose MANIFEST is missing or damaged, from the
    /// segments and WAL that verify. Deletes nothing: unused files go to <collection>/quarantine/.
    Repair(RepairArgs),
}

/// The database directory, given as `DB` or as `--db DB` like every other command takes it.
#[derive(Debug, Clone, clap::Args)]
pub struct DbArg {
    /// Database directory.
    #[arg(value_name = "DB", required_unless_present = "db_flag", conflicts_with = "db_flag")]
    db_pos: Option<PathBuf>,
    /// Database directory (instead of the positional DB).
    #[arg(long = "db", id = "db_flag", value_name = "DB")]
    db_flag: Option<PathBuf>,
}

impl DbArg {
    /// The directory, however it was given.
    pub fn path(&self) -> &Path {
        self.db_pos.as_deref().or(self.db_flag.as_deref()).expect("clap requires one of the two")
    }
}

/// Arguments of `likeness db compact`.
#[derive(Debug, clap::Args)]
pub struct CompactArgs {
    #[command(flatten)]
    pub db: DbArg,
    /// Collection (default: every collection).
    #[arg(long)]
    pub collection: Option<String>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `likeness db check`.
#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    #[command(flatten)]
    pub db: DbArg,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `likeness db repair`.
#[derive(Debug, clap::Args)]
pub struct RepairArgs {
    #[command(flatten)]
    pub db: DbArg,
    /// Schema JSON ({"fields": [{"name", "dim", "metric", "index"}]}) for collections whose files
    /// predate self-describing segments; not needed otherwise.
    #[arg(long)]
    pub schema: Option<PathBuf>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `likeness db set-index`.
#[derive(Debug, clap::Args)]
pub struct SetIndexArgs {
    #[command(flatten)]
    pub db: DbArg,
    /// Vector field, e.g. cnn.
    #[arg(long)]
    pub field: String,
    /// vecdb factory spec, e.g. Auto, Auto,budget=4G, Flat, HNSW32, HNSW16,SQ8, IVF256,SQ8,
    /// PCA128,HNSW32.
    #[arg(long)]
    pub index: String,
    /// Collection.
    #[arg(long, default_value = crate::catalog::DEFAULT_COLLECTION)]
    pub collection: String,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `likeness db info`.
#[derive(Debug, clap::Args)]
pub struct InfoArgs {
    #[command(flatten)]
    pub db: DbArg,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// Run a `likeness db` subcommand.
pub fn run(cmd: &DbCommand) -> Result<()> {
    match cmd {
        DbCommand::Info(a) => info(a),
        DbCommand::SetIndex(a) => set_index(a),
        DbCommand::Compact(a) => compact(a),
        DbCommand::Check(a) => check(a),
        DbCommand::Repair(a) => repair(a),
    }
}

fn compact(a: &CompactArgs) -> Result<()> {
    let db = Database::open(a.db.path())?;
    let names = match &a.collection {
        Some(n) => vec![crate::catalog::open_collection(&db, n)?.name().to_string()],
        None => db.collection_names(),
    };
    let mut out = Vec::new();
    for name in names {
        let c = db.collection(&name)?;
        let before = c.stats();
        c.compact()?;
        let after = c.stats();
        if !a.json {
            println!(
                "collection '{name}': {} records; {} segments -> {}, {} dead rows reclaimed, {} -> {} on disk",
                after.count,
                before.segments,
                after.segments,
                before.deleted,
                human_bytes(before.disk_bytes),
                human_bytes(after.disk_bytes)
            );
        }
        out.push(json!({"collection": name, "records": after.count, "segments_before": before.segments,
                        "segments_after": after.segments, "reclaimed_rows": before.deleted,
                        "disk_bytes_before": before.disk_bytes, "disk_bytes_after": after.disk_bytes}));
    }
    if a.json {
        println!("{}", serde_json::to_string_pretty(&out)?);
    }
    Ok(())
}

fn check(a: &CheckArgs) -> Result<()> {
    let report = vecdb::check::check_database(a.db.path())?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        use vecdb::check::Status;
        for c in &report.collections {
            println!("collection '{}' ({}): {}", c.name, c.dir.display(), status_word(c.status()));
            for f in &c.files {
                let mark = match f.status {
                    Status::Ok => "ok     ",
                    Status::Warning => "WARNING",
                    Status::Damaged => "DAMAGED",
                };
                println!("  {mark} {:<26} {}", f.file, f.detail);
            }
        }
        println!(
            "{}: {} collection(s), {}",
            report.path.display(),
            report.collections.len(),
            status_word(report.status())
        );
    }
    if !report.is_healthy() {
        let hint = "run `likeness db repair` for a missing or damaged MANIFEST; see docs/storage.md for the rest";
        bail!("damage found in {} ({hint})", a.db.path().display());
    }
    Ok(())
}

fn status_word(s: vecdb::check::Status) -> &'static str {
    match s {
        vecdb::check::Status::Ok => "ok",
        vecdb::check::Status::Warning => "ok with warnings",
        vecdb::check::Status::Damaged => "DAMAGED",
    }
}

fn repair(a: &RepairArgs) -> Result<()> {
    let schema = match &a.schema {
        Some(p) => {
            let text = std::fs::read(p).map_err(|e| anyhow::anyhow!("cannot read {}: {e}", p.display()))?;
            Some(serde_json::from_slice(&text).map_err(|e| anyhow::anyhow!("{} is not a schema: {e}", p.display()))?)
        }
        None => None,
    };
    let report = vecdb::repair::repair_database(a.db.path(), &vecdb::repair::RepairOptions { schema })?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        for c in &report.collections {
            println!("collection '{}': {}", c.name, c.outcome);
            if c.outcome == "rebuilt" {
                println!(
                    "  MANIFEST lists {} segment(s) ({} rows) and WAL generation {} ({} frames)",
                    c.segments.len(),
                    c.segment_rows,
                    c.wal_gen,
                    c.wal_frames
                );
            }
            for (f, why) in &c.quarantined {
                println!("  moved {f} to {}/: {why}", vecdb::repair::QUARANTINE_DIR);
            }
            for n in &c.notes {
                println!("  note: {n}");
            }
        }
    }
    if let Some(c) = report.collections.iter().find(|c| c.outcome == "failed") {
        bail!("could not repair collection '{}': {}", c.name, c.notes.join("; "));
    }
    // Prove the result opens (and let the open finish recovery: WAL replay, stray files).
    Database::open(a.db.path())?;
    Ok(())
}

fn set_index(a: &SetIndexArgs) -> Result<()> {
    let db = Database::open(a.db.path())?;
    let coll = crate::catalog::open_collection(&db, &a.collection)?;
    let field = crate::catalog::choose_feature(&coll, Some(&a.field))?;
    let start = std::time::Instant::now();
    coll.set_index(&field, &a.index)?;
    // `Auto`: the graph (when the field is past its threshold) builds in the background; wait
    // for it so that it is saved when the command ends.
    crate::index_policy::wait_for_builds(&coll, a.json);
    let secs = start.elapsed().as_secs_f64();
    let stats = coll.stats();
    let fs = stats.fields.iter().find(|f| f.name == field);
    let memory = fs.map_or(0, |f| f.memory_bytes);
    // An index that needs training (IVF, PQ, SQ8 …) stays untrained while there are too few
    // records; the field is then searched exactly, which the user should know.
    let untrained = fs.is_some_and(|f| f.index.contains("untrained"));
    if a.json {
        println!(
            "{}",
            json!({"collection": a.collection, "field": field, "index": a.index.trim(), "records": coll.count(),
                   "seconds": secs, "memory_bytes": memory, "trained": !untrained})
        );
    } else if untrained {
        println!(
            "{}.{field}: index {} set, but not trained yet: {} records are too few for it; searches scan \
             exactly until there are enough (it trains as records arrive)",
            a.collection,
            a.index.trim(),
            coll.count()
        );
    } else {
        println!(
            "{}.{field}: index {} built over {} records in {secs:.2} s ({})",
            a.collection,
            a.index.trim(),
            coll.count(),
            human_bytes(memory as u64)
        );
    }
    Ok(())
}

/// Total size of the files under `dir`.
pub fn dir_size(dir: &Path) -> u64 {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_file())
        .filter_map(|e| e.metadata().ok())
        .map(|m| m.len())
        .sum()
}

/// Human-readable byte count.
pub fn human_bytes(b: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

fn info(args: &InfoArgs) -> Result<()> {
    if !args.db.path().is_dir() {
        bail!("{} is not a database directory", args.db.path().display());
    }
    let db = Database::open_read_only(args.db.path())?;
    let mut collections = Vec::new();
    for name in db.collection_names() {
        let c = db.collection(&name)?;
        let s = c.stats();
        let fields: Vec<Value> = s
            .fields
            .iter()
            .map(|f| {
                let (disk, resident, heap) = f.per_vector(s.count);
                json!({"name": f.name, "dim": f.dim, "metric": f.metric.to_string(), "index": f.index,
                       "memory_bytes": f.memory_bytes, "origin": f.origin, "policy": f.policy, "build": f.build,
                       "disk_bytes": f.disk_bytes, "resident_bytes": f.resident_bytes, "heap_bytes": f.heap_bytes,
                       "per_vector": {"disk_bytes": disk, "resident_bytes": resident, "heap_bytes": heap}})
            })
            .collect();
        collections.push(json!({
            "name": name, "count": s.count, "deleted": s.deleted, "disk_bytes": s.disk_bytes,
            "segments": s.segments, "wal_bytes": s.wal_bytes, "records_heap_bytes": s.records_heap_bytes,
            "fields": fields,
        }));
    }
    let total = dir_size(db.path());
    if args.json {
        let out = json!({"path": db.path(), "disk_bytes": total, "collections": collections});
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    let n = collections.len();
    println!(
        "database {} ({} on disk, {n} collection{})",
        db.path().display(),
        human_bytes(total),
        if n == 1 { "" } else { "s" }
    );
    for c in &collections {
        println!(
            "collection '{}': {} records ({} deleted), {} on disk, {} segments, WAL {}, record map {} on the heap",
            c["name"].as_str().unwrap_or("?"),
            c["count"],
            c["deleted"],
            human_bytes(c["disk_bytes"].as_u64().unwrap_or(0)),
            c["segments"],
            human_bytes(c["wal_bytes"].as_u64().unwrap_or(0)),
            human_bytes(c["records_heap_bytes"].as_u64().unwrap_or(0)),
        );
        for f in c["fields"].as_array().into_iter().flatten() {
            let origin = match f["origin"]["kind"].as_str() {
                Some("snapshot") => format!("loaded from snapshot (+{} caught up)", f["origin"]["caught_up"]),
                _ if f["index"].as_str() == Some("Flat") => "scans the mapped segments in place".to_string(),
                _ => "built on open".to_string(),
            };
            println!(
                "  field {:<10} dim {:>5}  {:<8} index {:<20} memory {}  {origin}",
                f["name"].as_str().unwrap_or("?"),
                f["dim"],
                f["metric"].as_str().unwrap_or("?"),
                f["index"].as_str().unwrap_or("?"),
                human_bytes(f["memory_bytes"].as_u64().unwrap_or(0)),
            );
            let pv = &f["per_vector"];
            println!(
                "        vectors: {} on disk, {} resident (page cache), {} on the heap; per vector {:.1} / {:.1} / {:.1} B",
                human_bytes(f["disk_bytes"].as_u64().unwrap_or(0)),
                human_bytes(f["resident_bytes"].as_u64().unwrap_or(0)),
                human_bytes(f["heap_bytes"].as_u64().unwrap_or(0)),
                pv["disk_bytes"].as_f64().unwrap_or(0.0),
                pv["resident_bytes"].as_f64().unwrap_or(0.0),
                pv["heap_bytes"].as_f64().unwrap_or(0.0),
            );
            if let Some(why) = f["policy"].as_str() {
                println!("        Auto policy: {why}");
            }
            if let Some(b) = f["build"].as_object() {
                println!(
                    "        building {} in the background: {}/{} vectors after {:.0} s (searches stay exact meanwhile)",
                    b.get("spec").and_then(|v| v.as_str()).unwrap_or("?"),
                    b.get("done").and_then(|v| v.as_u64()).unwrap_or(0),
                    b.get("total").and_then(|v| v.as_u64()).unwrap_or(0),
                    b.get("seconds").and_then(|v| v.as_f64()).unwrap_or(0.0),
                );
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::human_bytes;

    #[test]
    fn bytes_are_humanized() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(3 * 1024 * 1024), "3.0 MiB");
    }
}
