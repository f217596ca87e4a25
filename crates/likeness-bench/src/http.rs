//! `likeness-bench http`: search latency through the HTTP API.
//!
//! Builds a collection of synthetic vectors (or uses an existing database), starts the
//! server in-process on a free port, and sends search requests from `--concurrency`
//! keep-alive connections, timing each request from the first byte written to the last
//! byte read. Reports p50/p90/p99 latency and throughput.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use vecdb::{CollectionSchema, Database, Metric, Record, Vector, VectorField};

use crate::datasets::random_normal;

/// Arguments of `likeness-bench http`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Synthetic records to create (ignored with --db).
    #[arg(long, default_value_t = 10_000)]
    pub records: usize,
    /// Dimension of the synthetic vectors.
    #[arg(long, default_value_t = 1280)]
    pub dim: usize,
    /// Metric of the synthetic collection.
    #[arg(long, default_value = "cosine")]
    pub metric: Metric,
    /// Index of the synthetic collection (Flat, HNSW32, …).
    #[arg(long, default_value = "Flat")]
    pub index: String,
    /// Use this existing database instead of a synthetic one (searches by stored id).
    #[arg(long)]
    pub db: Option<PathBuf>,
    /// Collection to search (with --db).
    #[arg(long, default_value = likeness::catalog::DEFAULT_COLLECTION)]
    pub collection: String,
    /// Query by `vector` (JSON body with the vector) or by stored `id`.
    #[arg(long, default_value = "vector")]
    pub mode: String,
    /// Requests to time (after 5% warm-up).
    #[arg(long, default_value_t = 2000)]
    pub requests: usize,
    /// Concurrent client connections.
    #[arg(long, default_value_t = 1)]
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
    if args.mode != "vector" && args.mode != "id" {
        bail!("--mode must be 'vector' or 'id'");
    }
    let tmp;
    let (db_path, collection) = match &args.db {
        Some(p) => (p.clone(), args.collection.clone()),
        None => {
            tmp = tempfile_dir()?;
            build_synthetic(&tmp, args.records, args.dim, args.metric, &args.index, !args.json)?;
            (tmp.clone(), "bench".to_string())
        }
    };
    let (field, metric, ids) = {
        let db = Database::open(&db_path)?;
        let c = likeness::catalog::open_collection(&db, &collection)?;
        let f = likeness::catalog::choose_feature(&c, None)?;
        let metric = c.schema().fields.iter().find(|x| x.name == f).map(|x| x.metric).unwrap_or(Metric::L2);
        let mut ids = c.ids();
        ids.sort_unstable();
        (f, metric, ids)
    };
    if ids.is_empty() {
        bail!("collection '{collection}' is empty");
    }
    if args.mode == "vector" && metric == Metric::Hamming {
        bail!("--mode vector needs a float field; use --mode id");
    }
    let dim = args.dim;
    let n_bodies = 200.min(args.requests.max(1));
    let bodies: Vec<String> = if args.mode == "vector" {
        let q = random_normal(n_bodies, dim, 7);
        (0..n_bodies).map(|i| json!({"vector": q.row(i), "k": args.k, "feature": field}).to_string()).collect()
    } else {
        let step = (ids.len() / n_bodies).max(1);
        (0..n_bodies)
            .map(|i| json!({"id": ids[(i * step) % ids.len()].to_string(), "k": args.k, "feature": field}).to_string())
            .collect()
    };

    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let files = tempfile_dir()?;
    let report = rt.block_on(async {
        let serve_args = likeness::server::Args {
            addr: "127.0.0.1:0".parse().expect("static address"),
            api_key: None,
            rate_limit: 0.0, // a benchmark client is one address sending as fast as it can
            features: "color".into(),
            collection: collection.clone(),
            max_body: 64 * 1024 * 1024,
            files_dir: Some(files.clone()),
            snapshot_every: 0,
            model: Default::default(),
            ..likeness::server::Args::with_db(db_path.clone())
        };
        let (tx, rx) = tokio::sync::oneshot::channel();
        let server = tokio::spawn(likeness::server::serve(serve_args, Some(tx)));
        let addr = rx.await.context("server did not start")?;
        let path = format!("/api/collections/{collection}/search");
        let warm = (args.requests / 20).max(args.concurrency);
        load(addr, &path, &bodies, warm, args.concurrency).await?;
        let start = Instant::now();
        let mut lat = load(addr, &path, &bodies, args.requests, args.concurrency).await?;
        let wall = start.elapsed();
        server.abort();
        lat.sort_unstable();
        anyhow::Ok((lat, wall))
    })?;
    std::fs::remove_dir_all(&files).ok();
    if args.db.is_none() {
        std::fs::remove_dir_all(&db_path).ok();
    }
    let (lat, wall) = report;
    let pct = |p: f64| lat[((lat.len() as f64 - 1.0) * p).round() as usize].as_secs_f64() * 1000.0;
    let mean = lat.iter().map(Duration::as_secs_f64).sum::<f64>() / lat.len() as f64 * 1000.0;
    let qps = lat.len() as f64 / wall.as_secs_f64();
    let out = json!({
        "records": ids.len(), "dim": dim, "field": field, "mode": args.mode, "k": args.k,
        "concurrency": args.concurrency, "requests": lat.len(),
        "p50_ms": pct(0.50), "p90_ms": pct(0.90), "p99_ms": pct(0.99), "mean_ms": mean, "requests_per_second": qps,
    });
    if args.json {
        println!("{out}");
    } else {
        println!(
            "{} records, field '{}', search by {}, k={}, {} connections: {} requests, p50 {:.2} ms, p90 {:.2} ms, \
             p99 {:.2} ms, mean {:.2} ms, {:.0} requests/s",
            ids.len(),
            field,
            args.mode,
            args.k,
            args.concurrency,
            lat.len(),
            pct(0.5),
            pct(0.9),
            pct(0.99),
            mean,
            qps
        );
    }
    Ok(())
}

/// A fresh directory under the system temp dir.
pub(crate) fn tempfile_dir() -> Result<PathBuf> {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    let base = std::env::temp_dir().join(format!("likeness-bench-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&base)?;
    Ok(base)
}

/// A database in `dir` with collection `bench`: `records` random `dim`-d vectors in field
/// `vector`, ids 0.., metadata `{"label": "c<id % 10>"}`.
pub(crate) fn build_synthetic(
    dir: &std::path::Path,
    records: usize,
    dim: usize,
    metric: Metric,
    index: &str,
    verbose: bool,
) -> Result<()> {
    let db = Database::open(dir)?;
    let schema = CollectionSchema { fields: vec![VectorField::new("vector", dim, metric, index)] };
    let c = db.create_collection("bench", schema)?;
    let start = Instant::now();
    let batch = 10_000;
    let mut done = 0;
    while done < records {
        let n = batch.min(records - done);
        let m = random_normal(n, dim, 1000 + done as u64);
        let recs: Vec<Record> = (0..n)
            .map(|i| {
                Record::new((done + i) as u64)
                    .with_vector("vector", Vector::Dense(m.row(i).to_vec()))
                    .with_metadata(json!({"label": format!("c{}", (done + i) % 10)}))
            })
            .collect();
        c.insert(recs)?;
        done += n;
    }
    if verbose {
        eprintln!("built {records} synthetic {dim}-d records in {:.1} s", start.elapsed().as_secs_f64());
    }
    Ok(())
}

/// Send `total` requests over `conns` keep-alive connections; returns each request's latency.
pub(crate) async fn load(
    addr: SocketAddr,
    path: &str,
    bodies: &[String],
    total: usize,
    conns: usize,
) -> Result<Vec<Duration>> {
    let conns = conns.max(1);
    let mut tasks = Vec::new();
    for c in 0..conns {
        let n = total / conns + usize::from(c < total % conns);
        let reqs: Vec<Vec<u8>> = (0..n)
            .map(|i| {
                let body = &bodies[(c * 7919 + i) % bodies.len()];
                format!(
                    "POST {path} HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                    body.len()
                )
                .into_bytes()
            })
            .collect();
        tasks.push(tokio::spawn(async move {
            let stream = TcpStream::connect(addr).await?;
            stream.set_nodelay(true)?;
            let mut stream = BufReader::new(stream);
            let mut lat = Vec::with_capacity(reqs.len());
            for r in reqs {
                let t = Instant::now();
                stream.get_mut().write_all(&r).await?;
                let status = read_response(&mut stream).await?;
                lat.push(t.elapsed());
                if status != 200 {
                    bail!("search answered HTTP {status}");
                }
            }
            anyhow::Ok(lat)
        }));
    }
    let mut all = Vec::with_capacity(total);
    for t in tasks {
        all.extend(t.await??);
    }
    Ok(all)
}

/// Read one HTTP/1.1 response with a content-length; returns the status code.
pub(crate) async fn read_response(s: &mut BufReader<TcpStream>) -> Result<u16> {
    let mut line = String::new();
    s.read_line(&mut line).await?;
    let status: u16 = line.split_whitespace().nth(1).and_then(|x| x.parse().ok()).context("bad status line")?;
    let mut len = 0usize;
    loop {
        line.clear();
        if s.read_line(&mut line).await? == 0 {
            bail!("connection closed");
        }
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((k, v)) = l.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                len = v.trim().parse().context("bad content-length")?;
            }
        }
    }
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).await?;
    Ok(status)
}
