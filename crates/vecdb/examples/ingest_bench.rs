//! Durable ingest rate and reopen time.
//!
//! ```text
//! cargo run -p vecdb --release --example ingest_bench -- [--n 1000000] [--dim 128] [--batch 1000] [--threads 1] [--dir PATH] [--reopen-only]
//! ```
//!
//! Inserts `n` random vectors (L2, Flat index, small JSON metadata) in batches;
//! every `insert` returns only after its WAL record is fsynced. With `--threads T`,
//! T writers insert concurrently and share fsyncs (group commit). Then the
//! database is closed (checkpointing the WAL into a segment) and reopened, and
//! the reopen time (segment verification + index rebuild) is reported.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use rand::{RngExt, SeedableRng};
use vecdb::{CollectionSchema, Database, Metric, Query, Record, SearchRequest, Vector};

fn arg(args: &[String], name: &str, default: &str) -> String {
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned().unwrap_or_else(|| default.to_string())
}

fn main() -> vecdb::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let n: u64 = arg(&args, "--n", "1000000").parse().expect("--n");
    let dim: usize = arg(&args, "--dim", "128").parse().expect("--dim");
    let batch: u64 = arg(&args, "--batch", "1000").parse().expect("--batch");
    let threads: u64 = arg(&args, "--threads", "1").parse().expect("--threads");
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = args
        .iter()
        .position(|a| a == "--dir")
        .map(|i| args[i + 1].clone().into())
        .unwrap_or_else(|| tmp.path().to_path_buf());
    if args.iter().any(|a| a == "--reopen-only") {
        // measure opening an existing database (e.g. the --dir of an earlier run)
        let t = Instant::now();
        let db = Database::open(&dir)?;
        let c = db.collection("bench")?;
        println!("reopen: {:.2} s for {} records", t.elapsed().as_secs_f64(), c.count());
        return Ok(());
    }
    let _ = std::fs::remove_dir_all(&dir);
    println!(
        "ingest_bench: n={n} dim={dim} batch={batch} threads={threads} dir={}",
        std::path::Path::new(&dir).display()
    );

    let db = Database::open(&dir)?;
    let c = db.create_collection("bench", CollectionSchema::single("v", dim, Metric::L2, "Flat"))?;
    let next = AtomicU64::new(0);
    let t0 = Instant::now();
    std::thread::scope(|s| {
        for t in 0..threads {
            let (c, next) = (&c, &next);
            s.spawn(move || {
                let mut rng = rand::rngs::StdRng::seed_from_u64(t);
                loop {
                    let start = next.fetch_add(batch, Ordering::Relaxed);
                    if start >= n {
                        break;
                    }
                    let recs: Vec<Record> = (start..(start + batch).min(n))
                        .map(|id| {
                            let v: Vec<f32> = (0..dim).map(|_| rng.random_range(-1.0f32..1.0)).collect();
                            Record::new(id)
                                .with_vector("v", Vector::Dense(v))
                                .with_metadata(serde_json::json!({"i": id}))
                        })
                        .collect();
                    c.insert(recs).expect("insert");
                }
            });
        }
    });
    let ingest = t0.elapsed().as_secs_f64();
    let stats = c.stats();
    println!(
        "durable insert: {n} vectors in {ingest:.2} s = {:.0} vectors/s ({} segments, WAL {} MiB)",
        n as f64 / ingest,
        stats.segments,
        stats.wal_bytes >> 20
    );
    let t1 = Instant::now();
    drop(c);
    drop(db);
    println!("close (checkpoint of the WAL tail): {:.2} s", t1.elapsed().as_secs_f64());

    let t2 = Instant::now();
    let db = Database::open(&dir)?;
    let c = db.collection("bench")?;
    let reopen = t2.elapsed().as_secs_f64();
    assert_eq!(c.count() as u64, n);
    let s = c.stats();
    println!(
        "reopen: {reopen:.2} s for {} records ({} segments, {:.0} MiB on disk, index {} MiB)",
        s.count,
        s.segments,
        s.disk_bytes as f64 / (1 << 20) as f64,
        s.fields[0].memory_bytes >> 20
    );
    let t3 = Instant::now();
    let hits = c.search(&SearchRequest::new("v", Query::Id(n / 2), 10))?;
    println!("one exact top-10 query after reopen: {:.1} ms ({} hits)", t3.elapsed().as_secs_f64() * 1e3, hits.len());
    let t4 = Instant::now();
    c.compact()?;
    println!("compact: {:.2} s", t4.elapsed().as_secs_f64());
    Ok(())
}
