//! Recall / speed sweeps of every index kind for docs/indexes.md: for each spec and each
//! search knob, recall@10 against brute force, mean single-query latency, bytes per vector
//! and build time, as Markdown table rows on stdout.
//!
//! ```text
//! cargo bench -p vecdb --bench index_sweep [-- SPEC_PART...]
//! ```
//! With arguments, only the specs containing one of them run (e.g. `-- HNSW KDForest`).
//! Latency is single-threaded (queries run one after another) and only indicative on a shared
//! machine. The data generator is the one the recall-floor tests use (`tests/common/clustered.rs`).

#[path = "../tests/common/rng.rs"]
#[allow(dead_code)]
mod rng;

#[path = "../tests/common/clustered.rs"]
#[allow(dead_code)]
mod clustered;

use clustered::{build, clustered, params, recall};
use vecdb::{Metric, SearchParams, VectorRef};

fn main() {
    // `cargo bench` passes `--bench`; any other argument filters the specs by substring.
    let filter: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    let checks = |c: &[usize]| c.iter().map(|&c| params(None, Some(c), None)).collect::<Vec<_>>();
    let rerank = |r: &[usize]| r.iter().map(|&r| params(None, None, Some(r))).collect::<Vec<_>>();
    let nprobe = |n: &[usize], r| n.iter().map(|&n| params(Some(n), None, r)).collect::<Vec<_>>();
    let ef = |e: &[usize]| e.iter().map(|&e| SearchParams { ef: Some(e), ..Default::default() }).collect::<Vec<_>>();
    let sets = [("10k x 64, intrinsic 24", 64, 24), ("10k x 256, intrinsic 96", 256, 96)];
    for (name, dim, latent) in sets {
        let d = clustered(10_000, 100, dim, latent, 64, 1, false);
        println!("== {name}");
        println!("| spec | params | recall@10 | ms/query | bytes/vector | build s |");
        println!("|---|---|---|---|---|---|");
        let sweeps: Vec<(&str, Vec<SearchParams>)> = vec![
            ("Flat", vec![SearchParams::default()]),
            ("HNSW32", ef(&[16, 32, 64, 128])),
            ("KDForest8", checks(&[256, 512, 1024, 2048, 4096])),
            ("KDForest4", checks(&[1024, 2048])),
            ("KDForest16", checks(&[1024, 2048])),
            ("LSH256", rerank(&[50, 100, 200, 400])),
            ("LSH512", rerank(&[100, 200])),
            ("IVF256,PQ16,Refine", nprobe(&[4, 8, 16, 32], Some(100))),
            ("IVF256,PQ16", nprobe(&[8, 16, 32], None)),
            ("IVF256,SQ8", nprobe(&[8, 16, 32], None)),
            ("IVF256,Flat", nprobe(&[8, 16, 32], None)),
            ("SQ8", vec![SearchParams::default()]),
            ("PCA16,KDForest8,Refine", vec![params(None, Some(1024), Some(100))]),
            ("PCAW24,Flat,Refine", rerank(&[100, 200])),
        ];
        for (spec, ps) in sweeps {
            if !filter.is_empty() && !filter.iter().any(|f| spec.contains(f.as_str())) {
                continue;
            }
            let t = std::time::Instant::now();
            let ix = build(spec, &d, Metric::L2);
            let build_s = t.elapsed().as_secs_f64();
            for p in ps {
                let t = std::time::Instant::now();
                for i in 0..d.nq() {
                    ix.search(VectorRef::Dense(d.q(i)), 10, &p, None).expect("search");
                }
                let ms = t.elapsed().as_secs_f64() * 1e3 / d.nq() as f64;
                let r = recall(ix.as_ref(), &d, Metric::L2, &p);
                let knobs = [
                    p.ef.map(|v| format!("ef={v}")),
                    p.nprobe.map(|v| format!("nprobe={v}")),
                    p.checks.map(|v| format!("checks={v}")),
                    p.rerank.map(|v| format!("rerank={v}")),
                ];
                let knobs = knobs.into_iter().flatten().collect::<Vec<_>>().join(" ");
                let bytes = ix.memory_bytes() as f64 / d.n() as f64;
                println!("| {spec} | {knobs} | {r:.3} | {ms:.3} | {bytes:.0} | {build_s:.2} |");
            }
        }
    }
}
