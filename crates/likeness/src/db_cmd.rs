//! `likeness db info DB`: what a database holds; `likeness db set-index`: change a field's index.

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use serde_json::{json, Value};
use vecdb::Database;

/// `likeness db ...` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum DbCommand {
    /// Collections, record counts, vector fields (dimension, metric, index) and disk size.
    Info(InfoArgs),
    /// Rebuild one field's index with another factory spec (e.g. Flat → HNSW16,SQ8) from the
    /// stored vectors: nothing is re-embedded; the choice is saved with the collection.
    SetIndex(SetIndexArgs),
}

/// Arguments of `likeness db set-index`.
#[derive(Debug, clap::Args)]
pub struct SetIndexArgs {
    /// Database directory.
    pub db: PathBuf,
    /// Vector field, e.g. cnn.
    #[arg(long)]
    pub field: String,
    /// vecdb factory spec, e.g. Flat, HNSW32, HNSW16,SQ8, IVF256,SQ8, PCA128,HNSW32.
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
    /// Database directory.
    pub db: PathBuf,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// Run a `likeness db` subcommand.
pub fn run(cmd: &DbCommand) -> Result<()> {
    match cmd {
        DbCommand::Info(a) => info(a),
        DbCommand::SetIndex(a) => set_index(a),
    }
}

fn set_index(a: &SetIndexArgs) -> Result<()> {
    let db = Database::open(&a.db)?;
    let coll = crate::catalog::open_collection(&db, &a.collection)?;
    let field = crate::catalog::choose_feature(&coll, Some(&a.field))?;
    let start = std::time::Instant::now();
    coll.set_index(&field, &a.index)?;
    let secs = start.elapsed().as_secs_f64();
    let stats = coll.stats();
    let fs = stats.fields.iter().find(|f| f.name == field);
    let memory = fs.map_or(0, |f| f.memory_bytes);
    if a.json {
        println!(
            "{}",
            json!({"collection": a.collection, "field": field, "index": a.index.trim(), "records": coll.count(),
                   "seconds": secs, "memory_bytes": memory})
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
    if !args.db.is_dir() {
        bail!("{} is not a database directory", args.db.display());
    }
    let db = Database::open(&args.db)?;
    let mut collections = Vec::new();
    for name in db.collection_names() {
        let c = db.collection(&name)?;
        let s = c.stats();
        let fields: Vec<Value> = s
            .fields
            .iter()
            .map(|f| {
                json!({"name": f.name, "dim": f.dim, "metric": f.metric.to_string(), "index": f.index,
                       "memory_bytes": f.memory_bytes, "origin": f.origin})
            })
            .collect();
        collections.push(json!({
            "name": name, "count": s.count, "deleted": s.deleted, "disk_bytes": s.disk_bytes,
            "segments": s.segments, "wal_bytes": s.wal_bytes, "fields": fields,
        }));
    }
    let total = dir_size(db.path());
    if args.json {
        let out = json!({"path": db.path(), "disk_bytes": total, "collections": collections});
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    println!("database {} ({} on disk, {} collections)", db.path().display(), human_bytes(total), collections.len());
    for c in &collections {
        println!(
            "collection '{}': {} records ({} deleted), {} on disk, {} segments, WAL {}",
            c["name"].as_str().unwrap_or("?"),
            c["count"],
            c["deleted"],
            human_bytes(c["disk_bytes"].as_u64().unwrap_or(0)),
            c["segments"],
            human_bytes(c["wal_bytes"].as_u64().unwrap_or(0)),
        );
        for f in c["fields"].as_array().into_iter().flatten() {
            let origin = match f["origin"]["kind"].as_str() {
                Some("snapshot") => format!("loaded from snapshot (+{} caught up)", f["origin"]["caught_up"]),
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
