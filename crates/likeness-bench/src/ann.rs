//! `likeness-bench ann`: approximate indexes against hnswlib, faiss-cpu and usearch.
//!
//! Loads a dataset (Fashion-MNIST 60k/10k, 784-d, L2 on raw 0–255 pixels; or any `.npy`
//! matrix, e.g. 1280-d CNN embeddings, cosine), computes the exact ground truth once and
//! caches it under `data/cache/ann/`, builds every index spec through the vecdb registry
//! and sweeps its search knob (`ef` for HNSW, `nprobe` for IVF, `checks` for k-d forests,
//! `rerank` for sketches/refine), timing recall@k and queries per second at each thread
//! count. Then it runs `bench/ann_peers.py` on the identical data (written as `.npy`) with
//! the same M / ef_construction / ef, and prints one table plus the QPS ratios at matched
//! recall; `--plot` draws recall against QPS as a PNG.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{anyhow, bail, Context, Result};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use vecdb::index::hnsw::HnswIndex;
use vecdb::{Metric, SearchParams, VectorIndex, VectorsRef};

use crate::datasets;
use likeness::vector_files::{self, Matrix};

/// Arguments of `likeness-bench ann`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// `fashion-mnist`, or `npy:PATH` for a float32 matrix (e.g. CNN embeddings).
    #[arg(long, default_value = "fashion-mnist")]
    pub dataset: String,
    /// Queries for an `npy:` dataset; without it the last `--queries` rows (default 1000)
    /// of the matrix are held out as queries.
    #[arg(long)]
    pub query_npy: Option<PathBuf>,
    /// Metric for an `npy:` dataset (Fashion-MNIST is always l2).
    #[arg(long, default_value = "cosine")]
    pub metric: String,
    /// Index specs: factory strings separated by `;`, or by `,` where unambiguous
    /// (`HNSW16,HNSW32,IVF1024,PQ56,Refine,KDForest8` = four specs).
    #[arg(long, default_value = "HNSW16,HNSW32")]
    pub index: String,
    /// `ef` values swept for HNSW specs.
    #[arg(long, value_delimiter = ',', default_value = "10,20,40,80,160,320")]
    pub ef: Vec<usize>,
    /// `HNSW<M>,SQ8,Refine`: candidates re-ranked exactly at every `ef` (default: the index's,
    /// 2k + 10); `0` re-ranks the whole beam (`rerank = ef`).
    #[arg(long)]
    pub rerank: Option<usize>,
    /// HNSW specs: keep the insertion order of the nodes (no renumbering for locality after
    /// the build), to measure what the renumbering buys.
    #[arg(long)]
    pub no_reorder: bool,
    /// Values swept for other specs' knob (nprobe / checks / rerank); default per kind.
    #[arg(long, value_delimiter = ',')]
    pub sweep: Option<Vec<usize>>,
    /// Search thread counts to time.
    #[arg(long, value_delimiter = ',', default_value = "1,2")]
    pub threads: Vec<usize>,
    /// Use only the first N queries (a quick run).
    #[arg(long)]
    pub queries: Option<usize>,
    /// Timed passes over the queries per point; the fastest counts (ours and the peers').
    #[arg(long, default_value_t = 3)]
    pub passes: usize,
    /// Neighbours per query (recall@k).
    #[arg(long, default_value_t = 10)]
    pub k: usize,
    /// ef_construction for `HNSW<M>` specs (and the peers).
    #[arg(long, default_value_t = 200)]
    pub ef_construction: usize,
    /// Peer libraries to run (comma-separated), or `none`.
    #[arg(long, default_value = "hnswlib,faiss,usearch")]
    pub peers: String,
    /// faiss IVF factory strings (separated by `;`) the peers script sweeps over nprobe.
    #[arg(long, default_value = "IVF1024,PQ56")]
    pub faiss_ivf: String,
    /// Python interpreter for the peers.
    #[arg(long, default_value = "python3")]
    pub python: String,
    /// Print one JSON document instead of tables.
    #[arg(long)]
    pub json: bool,
    /// Draw recall against single-thread QPS into this PNG.
    #[arg(long)]
    pub plot: Option<PathBuf>,
}

/// One point of a sweep, ours or a peer's.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Row {
    lib: String,
    index: String,
    param: String,
    value: usize,
    recall: f64,
    /// Queries per second by thread count.
    qps: BTreeMap<String, f64>,
    build_s: f64,
    /// Peers: resident-memory growth during the build ÷ n; ours: `memory_bytes()` ÷ n.
    mem_per_vec: f64,
    /// Ours only: resident-memory growth during the build ÷ n.
    #[serde(default)]
    rss_per_vec: Option<f64>,
}

/// QPS of one index compared with a peer's at the same recall.
#[derive(Debug, Clone, Serialize)]
struct Ratio {
    index: String,
    peer: String,
    recall: f64,
    threads: usize,
    ours_qps: f64,
    peer_qps: f64,
    ratio: f64,
}

struct Dataset {
    name: String,
    metric: Metric,
    base: Matrix<f32>,
    queries: Matrix<f32>,
}

/// Run the benchmark.
pub fn run(args: &Args) -> Result<()> {
    if args.k == 0 || args.threads.contains(&0) {
        bail!("--k and every --threads value must be at least 1");
    }
    let data = load(args)?;
    let (n, dim, nq) = (data.base.rows, data.base.cols, data.queries.rows);
    let data_dir = datasets::data_dir()?;
    let data_dir = data_dir.canonicalize().unwrap_or(data_dir);
    let cache = data_dir.join("cache").join("ann");
    std::fs::create_dir_all(&cache).with_context(|| format!("creating {}", cache.display()))?;
    let tag = format!("{}-{:016x}", data.name, fingerprint(&data));
    let gt = ground_truth(&data, &cache, &tag, args.k.max(100))?;
    let machine = machine();
    if !args.json {
        println!(
            "dataset {} ({} base × {} dims, {} queries, {}), k = {}, efC = {}; {}",
            data.name, n, dim, nq, data.metric, args.k, args.ef_construction, machine
        );
    }

    let mut rows = Vec::new();
    let pools: Vec<(usize, rayon::ThreadPool)> = args
        .threads
        .iter()
        .map(|&t| Ok((t, rayon::ThreadPoolBuilder::new().num_threads(t).build()?)))
        .collect::<Result<_>>()?;
    let specs = split_specs(&args.index);
    for spec in &specs {
        rows.extend(bench_spec(args, &data, &gt, spec, &pools)?);
    }

    if args.peers != "none" {
        match run_peers(args, &data, &gt, &cache, &tag, &specs) {
            Ok(p) => rows.extend(p),
            Err(e) => eprintln!("peers skipped: {e:#}"),
        }
    }
    let ratios = ratios(&rows, &args.threads);
    if args.json {
        let doc = serde_json::json!({
            "dataset": data.name, "n": n, "dim": dim, "queries": nq, "metric": data.metric.to_string(),
            "k": args.k, "ef_construction": args.ef_construction, "machine": machine,
            "rows": rows, "ratios": ratios,
        });
        println!("{}", serde_json::to_string_pretty(&doc)?);
    } else {
        print_table(&rows, &args.threads);
        print_ratios(&ratios);
    }
    if let Some(p) = &args.plot {
        plot(p, &rows, &data, args.k)?;
        if !args.json {
            println!("plot written to {}", p.display());
        }
    }
    Ok(())
}

fn load(args: &Args) -> Result<Dataset> {
    let mut d = if args.dataset == "fashion-mnist" {
        let fm = datasets::load_fashion_mnist(&datasets::data_dir()?.join("fashion-mnist"))?;
        Dataset { name: "fashion-mnist".into(), metric: Metric::L2, base: fm.train, queries: fm.test }
    } else if let Some(path) = args.dataset.strip_prefix("npy:") {
        let metric: Metric = args.metric.parse()?;
        if metric == Metric::Hamming {
            bail!("--metric hamming is not supported for npy datasets (dense float rows)");
        }
        let all = vector_files::read_npy_f32(Path::new(path))?;
        let name = Path::new(path).file_stem().map_or("npy".into(), |s| s.to_string_lossy().into_owned());
        let (base, queries) = match &args.query_npy {
            Some(q) => (all, vector_files::read_npy_f32(q)?),
            None => {
                let nq = args.queries.unwrap_or(1000).min(all.rows / 2);
                let nb = all.rows - nq;
                let base = all.head(nb);
                let queries = Matrix::new(nq, all.cols, all.data[nb * all.cols..].to_vec())?;
                (base, queries)
            }
        };
        if base.cols != queries.cols {
            bail!("base has {} dims but the queries have {}", base.cols, queries.cols);
        }
        Dataset { name, metric, base, queries }
    } else {
        bail!("unknown dataset '{}' (expected fashion-mnist or npy:PATH)", args.dataset);
    };
    if d.base.rows == 0 || d.queries.rows == 0 {
        bail!("the dataset has no base rows or no queries");
    }
    if let Some(q) = args.queries {
        d.queries = d.queries.head(q.max(1));
    }
    if d.metric == Metric::Cosine {
        d.base.normalize_rows();
        d.queries.normalize_rows();
    }
    Ok(d)
}

/// A cheap content hash naming the cache files (FNV-1a over the float bits and the shapes:
/// the same matrix split at another row is another dataset).
fn fingerprint(d: &Dataset) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64 ^ d.base.cols as u64;
    for n in [d.base.rows, d.queries.rows] {
        h = (h ^ n as u64).wrapping_mul(0x0000_0100_0000_01B3);
    }
    for x in d.base.data.iter().chain(&d.queries.data) {
        h = (h ^ x.to_bits() as u64).wrapping_mul(0x0000_0100_0000_01B3);
    }
    h ^ (d.metric as u64) << 60
}

/// Exact `k` nearest base rows of every query (cached as an `.npy` of ids).
fn ground_truth(d: &Dataset, cache: &Path, tag: &str, k: usize) -> Result<Vec<Vec<u32>>> {
    let k = k.min(d.base.rows);
    let path = cache.join(format!("{tag}-gt{k}.npy"));
    if let Ok(m) = vector_files::read_npy_f32(&path) {
        if m.rows == d.queries.rows && m.cols == k {
            return Ok((0..m.rows).map(|i| m.row(i).iter().map(|&x| x as u32).collect()).collect());
        }
    }
    let t = Instant::now();
    let dim = d.base.cols;
    let gt: Vec<Vec<u32>> = d
        .queries
        .data
        .par_chunks(dim)
        .map(|q| {
            let mut dist = vec![0f32; d.base.rows];
            match d.metric {
                Metric::L2 => vecdb::distance::l2_sq_many(q, &d.base.data, &mut dist),
                _ => {
                    vecdb::distance::dot_many(q, &d.base.data, &mut dist);
                    dist.iter_mut().for_each(|x| *x = -*x);
                }
            }
            let mut ids: Vec<u32> = (0..d.base.rows as u32).collect();
            let cmp = |a: &u32, b: &u32| dist[*a as usize].total_cmp(&dist[*b as usize]).then(a.cmp(b));
            ids.select_nth_unstable_by(k - 1, cmp);
            ids.truncate(k);
            ids.sort_by(cmp);
            ids
        })
        .collect();
    let flat: Vec<f32> = gt.iter().flatten().map(|&i| i as f32).collect();
    vector_files::write_npy_f32(&path, &Matrix::new(gt.len(), k, flat)?)?;
    eprintln!("exact ground truth computed in {:.1} s, cached at {}", t.elapsed().as_secs_f64(), path.display());
    Ok(gt)
}

/// Split `--index` into factory specs: `;` always separates; `,` separates unless it joins
/// the stages of one spec (after `PCA…`/`IVF…`, before a codec or `Refine`).
fn split_specs(s: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for group in s.split(';').map(str::trim).filter(|g| !g.is_empty()) {
        let mut cur: Vec<&str> = Vec::new();
        for tok in group.split(',').map(str::trim).filter(|t| !t.is_empty()) {
            let prev_is_prefix = cur.last().is_some_and(|p| p.starts_with("PCA") || p.starts_with("IVF"));
            let prev_is_ivf = cur.last().is_some_and(|p| p.starts_with("IVF"));
            let prev_is_hnsw = cur.last().is_some_and(|p| p.starts_with("HNSW"));
            let is_suffix = matches!(tok, "Refine" | "RFlat" | "Refine(Flat)")
                || (prev_is_ivf && (tok.starts_with("PQ") || tok == "SQ8" || tok == "Flat"))
                || (prev_is_hnsw && tok == "SQ8");
            if !cur.is_empty() && !prev_is_prefix && !is_suffix {
                out.push(cur.join(","));
                cur.clear();
            }
            cur.push(tok);
        }
        if !cur.is_empty() {
            out.push(cur.join(","));
        }
    }
    out
}

/// The distinct `M`s of the HNSW specs among `specs` (`HNSW16`, `HNSW16,SQ8,Refine`, …), sorted;
/// with `sq8_only`, only those whose graph holds 8-bit codes.
fn hnsw_ms(specs: &[String], sq8_only: bool) -> Vec<usize> {
    let mut ms: Vec<usize> = specs
        .iter()
        .filter_map(|s| {
            let mut stages = s.split(',');
            let m = stages.next()?.strip_prefix("HNSW")?.parse().ok()?;
            (!sq8_only || stages.any(|st| st == "SQ8")).then_some(m)
        })
        .collect();
    ms.sort_unstable();
    ms.dedup();
    ms
}

/// The knob a spec is swept over, and the default values.
fn knob(spec: &str, args: &Args) -> (&'static str, Vec<usize>) {
    let (name, default): (&str, Vec<usize>) = if spec.contains("HNSW") {
        return ("ef", args.ef.clone());
    } else if spec.contains("IVF") {
        ("nprobe", vec![1, 2, 4, 8, 16, 32, 64, 128])
    } else if spec.contains("KDForest") {
        ("checks", vec![32, 64, 128, 256, 512, 1024, 2048, 4096])
    } else if spec.contains("LSH") || spec.contains("Refine") || spec.contains("RFlat") {
        ("rerank", vec![10, 20, 50, 100, 200, 500, 1000, 2000])
    } else {
        ("-", vec![0])
    };
    (name, args.sweep.clone().unwrap_or(default))
}

fn params(knob: &str, v: usize, rerank: Option<usize>) -> SearchParams {
    let mut p = SearchParams::default();
    match knob {
        // `HNSW<M>,SQ8,Refine` re-ranks `--rerank` candidates (0: the whole beam).
        "ef" => {
            p.ef = Some(v);
            p.rerank = rerank.map(|r| if r == 0 { v } else { r });
        }
        "nprobe" => p.nprobe = Some(v),
        "checks" => p.checks = Some(v),
        "rerank" => p.rerank = Some(v),
        _ => {}
    }
    p
}

fn rss_bytes() -> Option<usize> {
    let s = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: usize = s.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

fn bench_spec(
    args: &Args,
    d: &Dataset,
    gt: &[Vec<u32>],
    spec: &str,
    pools: &[(usize, rayon::ThreadPool)],
) -> Result<Vec<Row>> {
    let (n, dim) = (d.base.rows, d.base.cols);
    let rss0 = rss_bytes();
    // HNSW specs take `--ef-construction`; the registry builds everything else.
    let stages: Vec<&str> = spec.split(',').collect();
    let hnsw_m = stages[0].strip_prefix("HNSW").and_then(|m| m.parse::<usize>().ok());
    let efc = args.ef_construction;
    let hnsw = match (hnsw_m, &stages[1..]) {
        (Some(m), []) => Some(HnswIndex::new(dim, d.metric, m, efc)),
        (Some(m), ["SQ8"]) => Some(HnswIndex::with_sq8(dim, d.metric, m, efc)?),
        (Some(m), ["SQ8", "Refine"]) => Some(HnswIndex::with_sq8_refine(dim, d.metric, m, efc)?),
        _ => None,
    };
    let mut index: Box<dyn VectorIndex> = match hnsw {
        Some(mut h) => {
            h.set_reorder_after_build(!args.no_reorder);
            Box::new(h)
        }
        None => vecdb::index::build_index(spec, dim, d.metric)?,
    };
    let ids: Vec<u64> = (0..n as u64).collect();
    let t = Instant::now();
    if !index.is_trained() {
        index.train(VectorsRef::Dense(&d.base.data))?;
    }
    index.add(&ids, VectorsRef::Dense(&d.base.data)).with_context(|| format!("building {spec}"))?;
    let build_s = t.elapsed().as_secs_f64();
    let rss_per_vec = rss0.zip(rss_bytes()).map(|(a, b)| b.saturating_sub(a) as f64 / n as f64);
    let mem_per_vec = index.memory_bytes() as f64 / n as f64;
    if !args.json {
        eprintln!("{spec}: built in {build_s:.2} s, {mem_per_vec:.0} B/vector");
    }
    let (knob, values) = knob(spec, args);
    let k = args.k;
    let mut rows = Vec::new();
    for v in values {
        let p = params(knob, v, args.rerank);
        let mut qps = BTreeMap::new();
        let mut recall = 0.0;
        for (threads, pool) in pools {
            // All queries in one batched call, as the peers are timed (`index.search(queries)`,
            // `knn_query(queries)`); the pool sets the thread count.
            let search = || index.search_batch(VectorsRef::Dense(&d.queries.data), k, &p, None);
            // The best of `--passes` timed passes over all queries (the peers do the same).
            let mut best = f64::INFINITY;
            for _ in 0..args.passes.max(1) {
                let t = Instant::now();
                let found = pool.install(search)?;
                best = best.min(t.elapsed().as_secs_f64());
                recall = mean_recall(&found, gt, k);
            }
            qps.insert(threads.to_string(), d.queries.rows as f64 / best);
        }
        rows.push(Row {
            lib: "likeness".into(),
            index: spec.to_string(),
            param: knob.into(),
            value: v,
            recall,
            qps,
            build_s,
            mem_per_vec,
            rss_per_vec,
        });
    }
    Ok(rows)
}

fn mean_recall(found: &[Vec<vecdb::Neighbor>], gt: &[Vec<u32>], k: usize) -> f64 {
    let hits: usize = found
        .iter()
        .zip(gt)
        .map(|(f, t)| {
            let truth = &t[..k.min(t.len())];
            f.iter().take(k).filter(|nb| truth.contains(&(nb.id as u32))).count()
        })
        .sum();
    hits as f64 / (k * found.len()).max(1) as f64
}

fn run_peers(args: &Args, d: &Dataset, gt: &[Vec<u32>], cache: &Path, tag: &str, specs: &[String]) -> Result<Vec<Row>> {
    let base_p = cache.join(format!("{tag}-base.npy"));
    let query_p = cache.join(format!("{tag}-queries.npy"));
    let gt_p = cache.join(format!("{tag}-gt-k{}.npy", args.k));
    if !base_p.exists() {
        vector_files::write_npy_f32(&base_p, &d.base)?;
    }
    vector_files::write_npy_f32(&query_p, &d.queries)?;
    let k = args.k.min(gt[0].len());
    let flat: Vec<f32> = gt.iter().flat_map(|r| r[..k].iter().map(|&i| i as f32)).collect();
    vector_files::write_npy_f32(&gt_p, &Matrix::new(gt.len(), k, flat)?)?;
    let script =
        [Path::new(env!("CARGO_MANIFEST_DIR")).join("../../bench/ann_peers.py"), PathBuf::from("bench/ann_peers.py")]
            .into_iter()
            .find(|p| p.exists())
            .ok_or_else(|| anyhow!("bench/ann_peers.py not found"))?;
    let out_p = cache.join(format!("{tag}-peers.jsonl"));
    let list = |v: &[usize]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>().join(",");
    // The peers build graphs with the `M`s of our HNSW specs; our `HNSW<M>,SQ8[,Refine]` specs
    // are also run against FAISS's own `IndexHNSWSQ`.
    let (ms, sq_ms) = (hnsw_ms(specs, false), hnsw_ms(specs, true));
    let mut cmd = Command::new(&args.python);
    cmd.arg(&script)
        .args(["--base".as_ref(), base_p.as_os_str(), "--queries".as_ref(), query_p.as_os_str()])
        .args(["--gt".as_ref(), gt_p.as_os_str(), "--out".as_ref(), out_p.as_os_str()])
        .args(["--metric", if d.metric == Metric::L2 { "l2" } else { "cosine" }])
        .args(["--k".to_string(), args.k.to_string(), "--efc".into(), args.ef_construction.to_string()])
        .arg(format!("--m={}", list(&ms)))
        .arg(format!("--sq-m={}", list(&sq_ms)))
        .arg(format!("--ef={}", list(&args.ef)))
        .arg(format!("--threads={}", list(&args.threads)))
        .arg(format!("--passes={}", args.passes.max(1)))
        .arg(format!("--faiss-ivf={}", args.faiss_ivf))
        .arg(format!("--libs={}", args.peers));
    if let Some(s) = &args.sweep {
        cmd.arg(format!("--nprobe={}", list(s)));
    }
    if !args.json {
        eprintln!("running peers: {} {} ...", args.python, script.display());
    }
    let status = cmd.status().with_context(|| format!("running {}", args.python))?;
    if !status.success() {
        bail!("{} exited with {status}", script.display());
    }
    let text = std::fs::read_to_string(&out_p).with_context(|| format!("reading {}", out_p.display()))?;
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str::<Row>(l).with_context(|| format!("bad peer line: {l}")))
        .collect()
}

/// Single-thread QPS of a (lib, index) curve at `target` recall, interpolating
/// log(QPS) linearly in recall between the two sweep points around it.
fn qps_at(rows: &[&Row], target: f64, threads: usize) -> Option<f64> {
    let key = threads.to_string();
    let mut pts: Vec<(f64, f64)> = rows.iter().filter_map(|r| Some((r.recall, *r.qps.get(&key)?))).collect();
    pts.sort_by(|a, b| a.0.total_cmp(&b.0));
    // Keep the Pareto front: the best QPS reaching at least each recall.
    let mut front: Vec<(f64, f64)> = Vec::new();
    for &(r, q) in pts.iter().rev() {
        if front.last().is_none_or(|&(_, fq)| q > fq) {
            front.push((r, q));
        }
    }
    front.reverse();
    let i = front.iter().position(|&(r, _)| r >= target)?;
    if i == 0 {
        return Some(front[0].1);
    }
    let ((r0, q0), (r1, q1)) = (front[i - 1], front[i]);
    let f = if r1 > r0 { (target - r0) / (r1 - r0) } else { 1.0 };
    Some((q0.ln() + f * (q1.ln() - q0.ln())).exp())
}

fn ratios(rows: &[Row], threads: &[usize]) -> Vec<Ratio> {
    let mut out = Vec::new();
    let ours: Vec<&str> = {
        let mut v: Vec<&str> = rows.iter().filter(|r| r.lib == "likeness").map(|r| r.index.as_str()).collect();
        v.dedup();
        v
    };
    for index in ours {
        let mine: Vec<&Row> = rows.iter().filter(|r| r.lib == "likeness" && r.index == index).collect();
        // `HNSW16,SQ8[,Refine]` is compared with the peers' `HNSW16` graphs.
        let graph = index.split(',').next().unwrap_or(index);
        let mut peers: Vec<(&str, &str)> = rows
            .iter()
            .filter(|r| {
                r.lib != "likeness"
                    && (r.index == graph
                        || r.index == index
                        || !index.starts_with("HNSW") && !r.index.starts_with("HNSW"))
            })
            .map(|r| (r.lib.as_str(), r.index.as_str()))
            .collect();
        peers.dedup();
        for (lib, pidx) in peers {
            let theirs: Vec<&Row> = rows.iter().filter(|r| r.lib == lib && r.index == pidx).collect();
            for &target in &[0.9, 0.95, 0.99] {
                for &t in threads {
                    if let (Some(a), Some(b)) = (qps_at(&mine, target, t), qps_at(&theirs, target, t)) {
                        out.push(Ratio {
                            index: index.to_string(),
                            peer: format!("{lib} {pidx}"),
                            recall: target,
                            threads: t,
                            ours_qps: a,
                            peer_qps: b,
                            ratio: a / b,
                        });
                    }
                }
            }
        }
    }
    out
}

fn print_table(rows: &[Row], threads: &[usize]) {
    print!("\n{:<9} {:<22} {:>12} {:>8}", "lib", "index", "param", "recall");
    for t in threads {
        print!(" {:>10}", format!("QPS@{t}"));
    }
    println!(" {:>8} {:>10} {:>10}", "build s", "B/vec", "RSS B/vec");
    for r in rows {
        print!("{:<9} {:<22} {:>12} {:>8.4}", r.lib, r.index, format!("{}={}", r.param, r.value), r.recall);
        for t in threads {
            print!(" {:>10.0}", r.qps.get(&t.to_string()).copied().unwrap_or(f64::NAN));
        }
        let rss = r.rss_per_vec.map_or("-".into(), |x| format!("{x:.0}"));
        println!(" {:>8.2} {:>10.0} {:>10}", r.build_s, r.mem_per_vec, rss);
    }
    println!("(B/vec: likeness = memory_bytes()/n, peers = resident-memory growth during the build / n)");
}

fn print_ratios(ratios: &[Ratio]) {
    if ratios.is_empty() {
        return;
    }
    println!("\nQPS at matched recall@k (log-interpolated along each curve):");
    println!(
        "{:<22} {:<26} {:>7} {:>4} {:>10} {:>10} {:>7}",
        "likeness index", "peer", "recall", "thr", "ours", "peer", "ratio"
    );
    for r in ratios {
        println!(
            "{:<22} {:<26} {:>7.2} {:>4} {:>10.0} {:>10.0} {:>6.2}×",
            r.index, r.peer, r.recall, r.threads, r.ours_qps, r.peer_qps, r.ratio
        );
    }
}

fn machine() -> String {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    format!("{cores} cores, {cpu}, kernels {}", vecdb::distance::simd_level())
}

/// Register a TrueType font for plot labels (plotters draws text through ab_glyph).
fn register_font() -> Result<()> {
    const CANDIDATES: &[&str] = &[
        "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
        "/usr/share/fonts/TTF/DejaVuSans.ttf",
        "/usr/share/fonts/dejavu/DejaVuSans.ttf",
        "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    ];
    let bytes = CANDIDATES.iter().find_map(|p| std::fs::read(p).ok()).ok_or_else(|| {
        anyhow!("--plot needs a TrueType font; none of {CANDIDATES:?} exists (apt install fonts-dejavu-core)")
    })?;
    let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
    plotters::style::register_font("sans-serif", plotters::style::FontStyle::Normal, bytes)
        .map_err(|_| anyhow!("the font file could not be parsed"))
}

fn plot(path: &Path, rows: &[Row], d: &Dataset, k: usize) -> Result<()> {
    use plotters::prelude::*;
    register_font()?;
    let (w, h) = (1000u32, 700u32);
    let mut series: BTreeMap<(String, String), Vec<(f64, f64)>> = BTreeMap::new();
    for r in rows {
        if let Some(&q) = r.qps.get("1") {
            series.entry((r.lib.clone(), r.index.clone())).or_default().push((r.recall, q));
        }
    }
    if series.is_empty() {
        bail!("nothing to plot: no single-thread measurements (add 1 to --threads)");
    }
    let pts = series.values().flatten();
    let xmin = pts.clone().map(|p| p.0).fold(1.0f64, f64::min).clamp(0.0, 0.99) - 0.01;
    let ymin = pts.clone().map(|p| p.1).fold(f64::INFINITY, f64::min) * 0.8;
    let ymax = pts.map(|p| p.1).fold(0.0f64, f64::max) * 1.25;
    let mut buf = vec![0u8; (w * h * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
        let e = |e: DrawingAreaErrorKind<_>| anyhow!("drawing the plot: {e}");
        root.fill(&WHITE).map_err(e)?;
        let caption = format!("{}: recall@{k} vs QPS (1 thread, {} base × {}d)", d.name, d.base.rows, d.base.cols);
        let mut chart = ChartBuilder::on(&root)
            .caption(caption, ("sans-serif", 22))
            .margin(15)
            .x_label_area_size(45)
            .y_label_area_size(70)
            .build_cartesian_2d(xmin.max(0.0)..1.0f64, (ymin.max(1.0)..ymax.max(2.0)).log_scale())
            .map_err(e)?;
        chart
            .configure_mesh()
            .x_desc(format!("recall@{k}"))
            .y_desc("queries per second (log)")
            .y_label_formatter(&|v| format!("{v:.0}"))
            .label_style(("sans-serif", 14))
            .draw()
            .map_err(e)?;
        const COLORS: [RGBColor; 10] = [
            RGBColor(214, 39, 40),
            RGBColor(31, 119, 180),
            RGBColor(44, 160, 44),
            RGBColor(255, 127, 14),
            RGBColor(148, 103, 189),
            RGBColor(140, 86, 75),
            RGBColor(227, 119, 194),
            RGBColor(127, 127, 127),
            RGBColor(188, 189, 34),
            RGBColor(23, 190, 207),
        ];
        for (i, ((lib, index), mut pts)) in series.into_iter().enumerate() {
            pts.sort_by(|a, b| a.0.total_cmp(&b.0));
            let color = COLORS[i % COLORS.len()];
            let width = if lib == "likeness" { 3 } else { 1 };
            chart
                .draw_series(LineSeries::new(pts.clone(), color.stroke_width(width)))
                .map_err(e)?
                .label(format!("{lib} {index}"))
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(3)));
            chart.draw_series(pts.iter().map(|&p| Circle::new(p, 3, color.filled()))).map_err(e)?;
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerLeft)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .label_font(("sans-serif", 14))
            .draw()
            .map_err(e)?;
        root.present().map_err(e)?;
    }
    let img = image::RgbImage::from_raw(w, h, buf).ok_or_else(|| anyhow!("plot buffer has the wrong size"))?;
    img.save(path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_tells_splits_of_one_matrix_apart() {
        // Base + queries cut at another row is another dataset: its cached files must differ.
        let all: Vec<f32> = (0..40).map(|i| i as f32).collect();
        let split = |nb: usize| Dataset {
            name: "x".into(),
            metric: Metric::L2,
            base: Matrix::new(nb, 4, all[..nb * 4].to_vec()).unwrap(),
            queries: Matrix::new(10 - nb, 4, all[nb * 4..].to_vec()).unwrap(),
        };
        assert_ne!(fingerprint(&split(6)), fingerprint(&split(8)));
        assert_eq!(fingerprint(&split(6)), fingerprint(&split(6)));
    }

    #[test]
    fn specs_split_on_unambiguous_commas() {
        assert_eq!(split_specs("HNSW16,HNSW32"), ["HNSW16", "HNSW32"]);
        assert_eq!(split_specs("HNSW16,HNSW16,SQ8,HNSW16,SQ8,Refine"), ["HNSW16", "HNSW16,SQ8", "HNSW16,SQ8,Refine"]);
        let specs = split_specs("HNSW32;HNSW16,SQ8,Refine;HNSW16;IVF1024,PQ32");
        assert_eq!((hnsw_ms(&specs, false), hnsw_ms(&specs, true)), (vec![16, 32], vec![16]));
        assert_eq!(
            split_specs("HNSW16,IVF1024,PQ32,Refine,PCA128,HNSW32,KDForest8;LSH256"),
            ["HNSW16", "IVF1024,PQ32,Refine", "PCA128,HNSW32", "KDForest8", "LSH256"]
        );
    }

    fn row(recall: f64, qps: f64) -> Row {
        Row {
            lib: "x".into(),
            index: "y".into(),
            param: "ef".into(),
            value: 0,
            recall,
            qps: BTreeMap::from([("1".to_string(), qps)]),
            build_s: 0.0,
            mem_per_vec: 0.0,
            rss_per_vec: None,
        }
    }

    #[test]
    fn qps_is_interpolated_between_sweep_points() {
        let rows = [row(0.8, 1000.0), row(0.9, 500.0), row(1.0, 100.0)];
        let refs: Vec<&Row> = rows.iter().collect();
        let q = qps_at(&refs, 0.95, 1).unwrap();
        assert!((q - (500.0f64 * 100.0).sqrt()).abs() < 1e-6, "{q}");
        assert_eq!(qps_at(&refs, 0.5, 1), Some(1000.0));
        assert_eq!(qps_at(&refs[..2], 0.95, 1), None);
    }
}
