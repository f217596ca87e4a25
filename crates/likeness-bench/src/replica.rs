//! `likeness-bench replica`: a `serve --read-only` replica beside an ingesting writer.
//!
//! Builds a synthetic collection, starts a replica server in-process (`serve --read-only`, the
//! same code as the CLI) and a writer that opens the same directory for writing, as another
//! process would. Then:
//!
//! 1. search QPS on the replica with the writer idle;
//! 2. search QPS on the replica while the writer inserts `--batch` records every
//!    `--batch-every-ms` (durable, acknowledged after fsync) and checkpoints every
//!    `--checkpoint-every-s`; meanwhile a prober asks the replica for the newest acknowledged
//!    record every 2 ms and reports the catch-up latency: from the writer's acknowledgement to
//!    the first 200 from the replica.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde_json::json;
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use vecdb::{Database, Metric, Record, Vector};

use crate::datasets::random_normal;
use crate::http::{build_synthetic, load, read_response, tempfile_dir};

/// Arguments of `likeness-bench replica`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Records in the collection before the writer starts.
    #[arg(long, default_value_t = 50_000)]
    pub records: usize,
    /// Dimension of the synthetic vectors.
    #[arg(long, default_value_t = 256)]
    pub dim: usize,
    /// Index of the collection.
    #[arg(long, default_value = "Flat")]
    pub index: String,
    /// Records per write batch.
    #[arg(long, default_value_t = 100)]
    pub batch: usize,
    /// Time between two write batches, in milliseconds.
    #[arg(long, default_value_t = 50)]
    pub batch_every_ms: u64,
    /// The writer checkpoints (WAL into a segment) this often, in seconds (as `serve --snapshot-every`).
    #[arg(long, default_value_t = 2)]
    pub checkpoint_every_s: u64,
    /// The replica's `--refresh-ms`.
    #[arg(long, default_value_t = 200)]
    pub refresh_ms: u64,
    /// Search requests timed per phase.
    #[arg(long, default_value_t = 3000)]
    pub requests: usize,
    /// Concurrent search connections.
    #[arg(long, default_value_t = 2)]
    pub concurrency: usize,
    /// Results per search.
    #[arg(short, long, default_value_t = 10)]
    pub k: usize,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// Run the benchmark.
pub fn run(args: &Args) -> Result<()> {
    let dir = tempfile_dir()?;
    build_synthetic(&dir, args.records, args.dim, Metric::L2, &args.index, !args.json)?;
    let files = tempfile_dir()?;
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let out = rt.block_on(measure(args, &dir, &files));
    std::fs::remove_dir_all(&files).ok();
    std::fs::remove_dir_all(&dir).ok();
    let out = out?;
    if args.json {
        println!("{out}");
        return Ok(());
    }
    let f = |v: &serde_json::Value| v.as_f64().unwrap_or(0.0);
    println!(
        "replica of {} x {}-d ({}), refresh every {} ms, {} connections\n  \
         search, writer idle:      {:.0} requests/s, p50 {:.2} ms, p99 {:.2} ms\n  \
         search, writer ingesting: {:.0} requests/s, p50 {:.2} ms, p99 {:.2} ms ({:.0} records/s written, {} checkpoints)\n  \
         catch-up (ack -> served): p50 {:.0} ms, p90 {:.0} ms, p99 {:.0} ms, max {:.0} ms over {} probes",
        out["records"],
        out["dim"],
        args.index,
        args.refresh_ms,
        args.concurrency,
        f(&out["idle"]["requests_per_second"]),
        f(&out["idle"]["p50_ms"]),
        f(&out["idle"]["p99_ms"]),
        f(&out["ingesting"]["requests_per_second"]),
        f(&out["ingesting"]["p50_ms"]),
        f(&out["ingesting"]["p99_ms"]),
        f(&out["writer"]["records_per_second"]),
        out["writer"]["checkpoints"],
        f(&out["catch_up_ms"]["p50"]),
        f(&out["catch_up_ms"]["p90"]),
        f(&out["catch_up_ms"]["p99"]),
        f(&out["catch_up_ms"]["max"]),
        out["catch_up_ms"]["probes"],
    );
    Ok(())
}

async fn measure(args: &Args, dir: &std::path::Path, files: &std::path::Path) -> Result<serde_json::Value> {
    let q = random_normal(200, args.dim, 7);
    let bodies: Vec<String> =
        (0..200).map(|i| json!({"vector": q.row(i), "k": args.k, "feature": "vector"}).to_string()).collect();
    let serve_args = likeness::server::Args {
        read_only: true,
        refresh_ms: args.refresh_ms,
        addr: "127.0.0.1:0".parse().expect("static address"),
        api_key: None,
        rate_limit: 0.0, // a benchmark client is one address sending as fast as it can
        features: "color".into(),
        collection: "bench".into(),
        files_dir: Some(files.to_path_buf()),
        model: Default::default(),
        ..likeness::server::Args::with_db(dir)
    };
    let (tx, rx) = tokio::sync::oneshot::channel();
    let server = tokio::spawn(likeness::server::serve(serve_args, Some(tx)));
    let addr = rx.await.context("replica did not start")?;
    let path = "/api/collections/bench/search";
    load(addr, path, &bodies, (args.requests / 20).max(args.concurrency), args.concurrency).await?;

    // Phase 1: the writer holds the database open but does not write.
    let writer = {
        let dir = dir.to_path_buf();
        Arc::new(tokio::task::spawn_blocking(move || Database::open(&dir)).await??)
    };
    let t = Instant::now();
    let mut idle = load(addr, path, &bodies, args.requests, args.concurrency).await?;
    let idle_qps = idle.len() as f64 / t.elapsed().as_secs_f64();

    // Phase 2: the writer ingests while the replica is searched and probed.
    let stop = Arc::new(AtomicBool::new(false));
    let (ack_tx, mut ack_rx) = tokio::sync::mpsc::unbounded_channel::<(u64, Instant)>();
    let ingest = std::thread::spawn({
        let (writer, stop) = (writer.clone(), stop.clone());
        let (dim, batch, every) = (args.dim, args.batch, Duration::from_millis(args.batch_every_ms));
        let (start_id, ckpt) = (args.records as u64, Duration::from_secs(args.checkpoint_every_s.max(1)));
        move || -> Result<(u64, usize)> {
            let c = writer.collection("bench")?;
            let (mut next, mut checkpoints, mut last_ckpt) = (start_id, 0usize, Instant::now());
            while !stop.load(Ordering::Relaxed) {
                let t = Instant::now();
                let m = random_normal(batch, dim, next);
                let recs: Vec<Record> = (0..batch)
                    .map(|i| Record::new(next + i as u64).with_vector("vector", Vector::Dense(m.row(i).to_vec())))
                    .collect();
                c.insert(recs)?;
                next += batch as u64;
                ack_tx.send((next - 1, Instant::now())).ok();
                if last_ckpt.elapsed() >= ckpt {
                    c.checkpoint()?;
                    checkpoints += 1;
                    last_ckpt = Instant::now();
                }
                std::thread::sleep(every.saturating_sub(t.elapsed()));
            }
            Ok((next - start_id, checkpoints))
        }
    });
    let prober = tokio::spawn(async move {
        let mut lat = Vec::new();
        while let Some(mut newest) = ack_rx.recv().await {
            // Only the newest acknowledged batch is probed; those acknowledged while it was being
            // probed are skipped (the replica applies batches in order, so theirs is no larger).
            while let Ok(x) = ack_rx.try_recv() {
                newest = x;
            }
            let (id, acked) = newest;
            while record_status(addr, id).await? != 200 {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            lat.push(acked.elapsed());
        }
        anyhow::Ok(lat)
    });
    let t = Instant::now();
    let mut busy = load(addr, path, &bodies, args.requests, args.concurrency).await?;
    let busy_wall = t.elapsed();
    stop.store(true, Ordering::Relaxed);
    let (written, checkpoints) = ingest.join().map_err(|_| anyhow::anyhow!("writer thread panicked"))??;
    let mut catchup = prober.await??;
    server.abort();
    for v in [&mut idle, &mut busy, &mut catchup] {
        v.sort_unstable();
    }
    let ms = |v: &[Duration], p: f64| {
        v.get(((v.len().max(1) as f64 - 1.0) * p).round() as usize).map_or(f64::NAN, |d| d.as_secs_f64() * 1000.0)
    };
    Ok(json!({
        "records": args.records, "dim": args.dim, "index": args.index, "k": args.k,
        "concurrency": args.concurrency, "refresh_ms": args.refresh_ms,
        "writer": {"batch": args.batch, "batch_every_ms": args.batch_every_ms, "records_written": written,
                   "records_per_second": written as f64 / busy_wall.as_secs_f64(), "checkpoints": checkpoints},
        "idle": {"requests_per_second": idle_qps, "p50_ms": ms(&idle, 0.5), "p99_ms": ms(&idle, 0.99)},
        "ingesting": {"requests_per_second": busy.len() as f64 / busy_wall.as_secs_f64(),
                      "p50_ms": ms(&busy, 0.5), "p99_ms": ms(&busy, 0.99)},
        "catch_up_ms": {"probes": catchup.len(), "p50": ms(&catchup, 0.5), "p90": ms(&catchup, 0.9),
                        "p99": ms(&catchup, 0.99), "max": ms(&catchup, 1.0)},
    }))
}

/// HTTP status of `GET /api/collections/bench/records/{id}` on a fresh connection.
async fn record_status(addr: SocketAddr, id: u64) -> Result<u16> {
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let mut stream = BufReader::new(stream);
    let req = format!("GET /api/collections/bench/records/{id} HTTP/1.1\r\nhost: {addr}\r\n\r\n");
    stream.get_mut().write_all(req.as_bytes()).await?;
    read_response(&mut stream).await
}
