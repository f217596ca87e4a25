//! `likeness-bench exact`: exact (brute-force) search of vecdb's `FlatIndex` against FAISS.
//!
//! For each dataset the command builds the vectors once, writes them to `.npy`
//! files in a temporary directory, measures our [`FlatIndex`] and then runs
//! `bench/exact_faiss.py` (FAISS `IndexFlatL2` / `IndexFlatIP`) on the very same
//! files, once per thread count. It reports queries per second for single
//! queries (one call per query) and for one batch of queries, the ratio
//! ours/FAISS, and how well our batch results agree with FAISS's (id recall and
//! rank-wise distance agreement, which is not fooled by ties).
//!
//! Datasets:
//! - `fashion-mnist`: base = the 60,000 training images as raw 0–255 floats (784-d),
//!   queries = the test images; metric L2.
//! - `random1280`: 100,000 standard-normal 1280-d vectors (seed 1), queries from seed 2,
//!   all unit-normalized; metric cosine (FAISS: inner product on the same unit vectors).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use vecdb::index::flat::FlatIndex;
use vecdb::{Metric, SearchParams, VectorIndex, VectorRef, VectorsRef};

use crate::datasets;
use likeness::vector_files::{self, Matrix};

/// Arguments of `likeness-bench exact`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Datasets to run: fashion-mnist, random1280 or all.
    #[arg(long, default_value = "all")]
    pub dataset: String,
    /// Comma-separated thread counts.
    #[arg(long, default_value = "1,2", value_delimiter = ',')]
    pub threads: Vec<usize>,
    /// Number of neighbours per query.
    #[arg(long, default_value_t = 10)]
    pub k: usize,
    /// Queries timed one call at a time.
    #[arg(long, default_value_t = 100)]
    pub single: usize,
    /// Queries in the timed batch.
    #[arg(long, default_value_t = 1000)]
    pub batch: usize,
    /// Directory holding fashion-mnist/ (default: $LIKENESS_TEST_DATA or <workspace>/data).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Python interpreter that has numpy and faiss-cpu.
    #[arg(long, default_value = "python3")]
    pub python: String,
    /// The FAISS harness script.
    #[arg(long, default_value = "bench/exact_faiss.py")]
    pub faiss_script: PathBuf,
    /// Skip FAISS (report ours only).
    #[arg(long)]
    pub no_faiss: bool,
    /// Print the results as JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// One measured configuration.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// Dataset name.
    pub dataset: String,
    /// `rows×dim`.
    pub shape: String,
    /// Metric name.
    pub metric: String,
    /// Threads used.
    pub threads: usize,
    /// `single` or `batch`.
    pub mode: String,
    /// Our queries per second.
    pub ours_qps: f64,
    /// FAISS queries per second, when it ran.
    pub faiss_qps: Option<f64>,
    /// ours / FAISS.
    pub ratio: Option<f64>,
    /// Our CPU milliseconds per query (all threads; robust on a loaded machine).
    pub ours_cpu_ms: f64,
    /// FAISS CPU milliseconds per query.
    pub faiss_cpu_ms: Option<f64>,
}

/// Agreement of our batch results with FAISS's.
#[derive(Debug, Clone, Serialize)]
pub struct Agreement {
    /// Dataset name.
    pub dataset: String,
    /// Threads of the compared runs.
    pub threads: usize,
    /// Mean |ours ∩ faiss| / k over the batch.
    pub id_recall: f64,
    /// Fraction of (query, rank) pairs whose distances agree within 1e-3 relative.
    pub distance_agreement: f64,
}

/// The whole report.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Kernel family vecdb selected on this CPU.
    pub simd: String,
    /// Logical CPUs visible.
    pub cpus: usize,
    /// FAISS version, when it ran.
    pub faiss_version: Option<String>,
    /// Throughput rows.
    pub rows: Vec<Row>,
    /// Result agreement rows.
    pub agreement: Vec<Agreement>,
    /// Seconds to add the base vectors to our index, per dataset.
    pub add_seconds: Vec<(String, f64)>,
}

/// What `bench/exact_faiss.py` writes.
#[derive(Debug, Deserialize)]
struct FaissResult {
    faiss_version: String,
    single_qps: f64,
    batch_qps: f64,
    single_cpu_ms: f64,
    batch_cpu_ms: f64,
    batch_ids: Vec<Vec<i64>>,
    batch_distances: Vec<Vec<f32>>,
}

struct Dataset {
    name: &'static str,
    metric: Metric,
    base: Matrix<f32>,
    queries: Matrix<f32>,
}

fn load_dataset(name: &str, args: &Args) -> Result<Dataset> {
    match name {
        "fashion-mnist" => {
            let root = match &args.data {
                Some(d) => d.clone(),
                None => datasets::data_dir()?,
            };
            let fm = datasets::load_fashion_mnist(&root.join("fashion-mnist"))?;
            Ok(Dataset { name: "fashion-mnist", metric: Metric::L2, base: fm.train, queries: fm.test })
        }
        "random1280" => {
            let mut base = datasets::random_normal(100_000, 1280, 1);
            let mut queries = datasets::random_normal(args.batch.max(args.single), 1280, 2);
            base.normalize_rows();
            queries.normalize_rows();
            Ok(Dataset { name: "random1280", metric: Metric::Cosine, base, queries })
        }
        other => bail!("unknown dataset '{other}' (expected fashion-mnist, random1280 or all)"),
    }
}

/// Run the benchmark.
pub fn run(args: &Args) -> Result<()> {
    if args.threads.is_empty() || args.threads.contains(&0) {
        bail!("--threads needs positive thread counts, e.g. 1,2");
    }
    if args.k == 0 || args.batch == 0 {
        bail!("--k and --batch must be positive");
    }
    let names: Vec<&str> = match args.dataset.as_str() {
        "all" => vec!["fashion-mnist", "random1280"],
        one => vec![one],
    };
    let mut report = Report {
        simd: vecdb::distance::simd_level().to_string(),
        cpus: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        faiss_version: None,
        rows: Vec::new(),
        agreement: Vec::new(),
        add_seconds: Vec::new(),
    };
    let tmp = tempfile_dir()?;
    for name in names {
        let ds = load_dataset(name, args)?;
        bench_dataset(&ds, args, &tmp, &mut report)?;
    }
    let _ = std::fs::remove_dir_all(&tmp);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_table(&report);
    }
    Ok(())
}

/// CPU seconds (user + system, all threads) this process has used, from `/proc/self/stat`; 0 where unavailable.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat.rsplit(')').next().unwrap_or("").split_whitespace().collect();
    // utime and stime are fields 14 and 15 of stat(5): the 12th and 13th after the command name, in 1/100 s.
    let ticks = |i: usize| fields.get(i).and_then(|x| x.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

/// A fresh temporary directory for the `.npy` files shared with Python.
fn tempfile_dir() -> Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("likeness-bench-exact-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}

fn bench_dataset(ds: &Dataset, args: &Args, tmp: &Path, report: &mut Report) -> Result<()> {
    let dim = ds.base.cols;
    let nb = args.batch.min(ds.queries.rows);
    let ns = args.single.min(ds.queries.rows);
    if nb == 0 || ns == 0 {
        bail!("dataset {} has no queries", ds.name);
    }
    let base_path = tmp.join(format!("{}-base.npy", ds.name));
    let query_path = tmp.join(format!("{}-queries.npy", ds.name));
    let queries = ds.queries.head(nb.max(ns));
    if !args.no_faiss {
        vector_files::write_npy_f32(&base_path, &ds.base)?;
        vector_files::write_npy_f32(&query_path, &queries)?;
    }
    eprintln!("[{}] {}×{} {}: adding to FlatIndex…", ds.name, ds.base.rows, dim, ds.metric);
    let mut index = FlatIndex::new(dim, ds.metric);
    let ids: Vec<u64> = (0..ds.base.rows as u64).collect();
    let t0 = Instant::now();
    index.add(&ids, VectorsRef::Dense(&ds.base.data))?;
    report.add_seconds.push((ds.name.to_string(), t0.elapsed().as_secs_f64()));
    let shape = format!("{}×{}", ds.base.rows, dim);

    for &t in &args.threads {
        let params = SearchParams { threads: Some(t), ..Default::default() };
        // Warm-up: page in the data and build the thread pool.
        index.search(VectorRef::Dense(queries.row(0)), args.k, &params, None)?;
        let (t0, c0) = (Instant::now(), cpu_seconds());
        for i in 0..ns {
            index.search(VectorRef::Dense(queries.row(i)), args.k, &params, None)?;
        }
        let single_qps = ns as f64 / t0.elapsed().as_secs_f64();
        let single_cpu = (cpu_seconds() - c0) * 1e3 / ns as f64;
        let batch_q = &queries.data[..nb * dim];
        let (t0, c0) = (Instant::now(), cpu_seconds());
        let ours = index.search_batch(VectorsRef::Dense(batch_q), args.k, &params, None)?;
        let batch_qps = nb as f64 / t0.elapsed().as_secs_f64();
        let batch_cpu = (cpu_seconds() - c0) * 1e3 / nb as f64;
        eprintln!("[{}] ours, {t} thread(s): single {single_qps:.1} q/s, batch {batch_qps:.1} q/s", ds.name);

        let faiss = if args.no_faiss { None } else { Some(run_faiss(args, ds, &base_path, &query_path, t, ns, nb)?) };
        if let Some(f) = &faiss {
            report.faiss_version = Some(f.faiss_version.clone());
            eprintln!(
                "[{}] faiss, {t} thread(s): single {:.1} q/s, batch {:.1} q/s",
                ds.name, f.single_qps, f.batch_qps
            );
            report.agreement.push(agreement(ds, t, &ours, f, args.k));
        }
        for (mode, q, fq, cpu, fcpu) in [
            (
                "single",
                single_qps,
                faiss.as_ref().map(|f| f.single_qps),
                single_cpu,
                faiss.as_ref().map(|f| f.single_cpu_ms),
            ),
            (
                "batch",
                batch_qps,
                faiss.as_ref().map(|f| f.batch_qps),
                batch_cpu,
                faiss.as_ref().map(|f| f.batch_cpu_ms),
            ),
        ] {
            report.rows.push(Row {
                dataset: ds.name.to_string(),
                shape: shape.clone(),
                metric: ds.metric.to_string(),
                threads: t,
                mode: if mode == "batch" { format!("batch{nb}") } else { mode.to_string() },
                ours_qps: q,
                faiss_qps: fq,
                ratio: fq.map(|f| q / f),
                ours_cpu_ms: cpu,
                faiss_cpu_ms: fcpu,
            });
        }
    }
    let _ = std::fs::remove_file(&base_path);
    let _ = std::fs::remove_file(&query_path);
    Ok(())
}

fn run_faiss(
    args: &Args,
    ds: &Dataset,
    base: &Path,
    queries: &Path,
    threads: usize,
    ns: usize,
    nb: usize,
) -> Result<FaissResult> {
    let out = base.with_file_name(format!("{}-faiss-{threads}.json", ds.name));
    let metric = if ds.metric == Metric::L2 { "l2" } else { "ip" };
    let status = Command::new(&args.python)
        .arg(&args.faiss_script)
        .args(["--base", &base.to_string_lossy(), "--queries", &queries.to_string_lossy()])
        .args(["--metric", metric, "--k", &args.k.to_string(), "--threads", &threads.to_string()])
        .args(["--single", &ns.to_string(), "--batch", &nb.to_string(), "--out", &out.to_string_lossy()])
        // One process per thread count, so BLAS and OpenMP pools are sized from the start.
        .env("OMP_NUM_THREADS", threads.to_string())
        .env("OPENBLAS_NUM_THREADS", threads.to_string())
        .env("MKL_NUM_THREADS", threads.to_string())
        .status()
        .with_context(|| format!("running {} {}", args.python, args.faiss_script.display()))?;
    if !status.success() {
        bail!(
            "{} failed ({status}); install FAISS with `python3 -m pip install -q numpy faiss-cpu` or pass --no-faiss",
            args.faiss_script.display()
        );
    }
    let text = std::fs::read_to_string(&out).with_context(|| format!("reading {}", out.display()))?;
    let _ = std::fs::remove_file(&out);
    serde_json::from_str(&text).with_context(|| format!("parsing {}", out.display()))
}

/// Compare our batch results with FAISS's (FAISS reports squared L2 and raw inner products).
fn agreement(ds: &Dataset, threads: usize, ours: &[Vec<vecdb::Neighbor>], f: &FaissResult, k: usize) -> Agreement {
    let mut hits = 0usize;
    let mut dist_ok = 0usize;
    let mut pairs = 0usize;
    for (o, (fi, fd)) in ours.iter().zip(f.batch_ids.iter().zip(&f.batch_distances)) {
        hits += o.iter().filter(|n| fi.contains(&(n.id as i64))).count();
        for (n, &d) in o.iter().zip(fd) {
            let theirs = match ds.metric {
                Metric::L2 => d.max(0.0).sqrt(),
                Metric::Cosine => 1.0 - d,
                _ => -d,
            };
            pairs += 1;
            if (n.distance - theirs).abs() <= 1e-3 * theirs.abs().max(1.0) {
                dist_ok += 1;
            }
        }
    }
    let queries = ours.len().min(f.batch_ids.len()).max(1);
    Agreement {
        dataset: ds.name.to_string(),
        threads,
        id_recall: hits as f64 / (queries * k) as f64,
        distance_agreement: dist_ok as f64 / pairs.max(1) as f64,
    }
}

fn print_table(r: &Report) {
    println!(
        "exact search, k-NN: vecdb FlatIndex ({}) vs FAISS {} — {} CPUs visible",
        r.simd,
        r.faiss_version.as_deref().unwrap_or("(not run)"),
        r.cpus
    );
    println!(
        "{:<14} {:<11} {:<7} {:>7} {:<10} {:>10} {:>10} {:>6} {:>14} {:>14}",
        "dataset",
        "n×dim",
        "metric",
        "threads",
        "mode",
        "ours q/s",
        "faiss q/s",
        "ratio",
        "ours cpu-ms/q",
        "faiss cpu-ms/q"
    );
    for row in &r.rows {
        println!(
            "{:<14} {:<11} {:<7} {:>7} {:<10} {:>10.1} {:>10} {:>6} {:>14.3} {:>14}",
            row.dataset,
            row.shape,
            row.metric,
            row.threads,
            row.mode,
            row.ours_qps,
            row.faiss_qps.map_or("-".into(), |q| format!("{q:.1}")),
            row.ratio.map_or("-".into(), |x| format!("{x:.2}")),
            row.ours_cpu_ms,
            row.faiss_cpu_ms.map_or("-".into(), |x| format!("{x:.3}")),
        );
    }
    for a in &r.agreement {
        println!(
            "agreement with FAISS ({}, {} thread(s)): id recall@k {:.4}, distances equal at each rank {:.4}",
            a.dataset, a.threads, a.id_recall, a.distance_agreement
        );
    }
    for (name, s) in &r.add_seconds {
        println!("add to FlatIndex ({name}): {s:.2} s");
    }
}
