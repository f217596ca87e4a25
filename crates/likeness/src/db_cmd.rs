//! `likeness db info DB`: what a database holds.

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use serde_json::{json, Value};
use vecdb::Database;

/// `likeness db ...` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum DbCommand {
    /// Collections, record counts, vector fields (dimension, metric, index) and disk size.
    Info(InfoArgs),
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
    }
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
                       "memory_bytes": f.memory_bytes})
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
            println!(
                "  field {:<10} dim {:>5}  {:<8} index {:<20} memory {}",
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
