//! Quick throughput check of the exact `FlatIndex` (no criterion: one timed pass per setting).
//!
//! ```text
//! VECDB_BENCH_BASE=base.npy VECDB_BENCH_QUERIES=q.npy VECDB_BENCH_METRIC=l2 \
//!     cargo bench -p vecdb --bench flat_search
//! ```
//! Without the variables it times 20,000 × 256 random vectors. The full comparison
//! with FAISS is `likeness-bench exact` (see docs/exact.md).

use std::time::Instant;

#[path = "support/npy.rs"]
mod npy;
#[path = "../tests/common/rng.rs"]
#[allow(dead_code)]
mod rng;

use npy::read_npy;
use rng::XorShift64;
use vecdb::index::flat::FlatIndex;
use vecdb::{Metric, SearchParams, VectorIndex, VectorRef, VectorsRef};

/// `n` uniform values in [-0.5, 0.5) from `seed`.
fn random(n: usize, seed: u64) -> Vec<f32> {
    let mut r = XorShift64(seed | 1);
    (0..n).map(|_| r.centered()).collect()
}

/// CPU seconds (user + system) this process has used, from /proc (0 elsewhere).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    // Fields 14 and 15 of stat (utime, stime) are the 12th and 13th after the command name; ticks of 1/100 s.
    let tick = |i: usize| f.get(i).and_then(|x| x.parse::<f64>().ok()).unwrap_or(0.0);
    (tick(11) + tick(12)) / 100.0
}

fn main() {
    let metric: Metric = std::env::var("VECDB_BENCH_METRIC").ok().and_then(|m| m.parse().ok()).unwrap_or(Metric::L2);
    let (n, dim, base, queries) = match (std::env::var("VECDB_BENCH_BASE"), std::env::var("VECDB_BENCH_QUERIES")) {
        (Ok(b), Ok(q)) => {
            let (n, dim, base) = read_npy(&b);
            let (_, qd, queries) = read_npy(&q);
            assert_eq!(qd, dim, "query and base dimensions differ");
            (n, dim, base, queries)
        }
        _ => (20_000, 256, random(20_000 * 256, 1), random(1000 * 256, 2)),
    };
    let single: usize = std::env::var("VECDB_BENCH_SINGLE").ok().and_then(|s| s.parse().ok()).unwrap_or(50);
    let nq = (queries.len() / dim).min(1000);
    let mut index = FlatIndex::new(dim, metric);
    let ids: Vec<u64> = (0..n as u64).collect();
    index.add(&ids, VectorsRef::Dense(&base)).expect("add");
    println!("flat {n}×{dim} {metric}, simd {}", vecdb::distance::simd_level());
    let tlist: Vec<usize> = std::env::var("VECDB_BENCH_THREADS")
        .ok()
        .map_or(vec![1, 2], |s| s.split(',').filter_map(|x| x.parse().ok()).collect());
    for threads in tlist {
        let p = SearchParams { threads: Some(threads), ..Default::default() };
        index.search(VectorRef::Dense(&queries[..dim]), 10, &p, None).expect("warm-up");
        let (t0, c0) = (Instant::now(), cpu_seconds());
        for i in 0..single.min(nq) {
            index.search(VectorRef::Dense(&queries[i * dim..(i + 1) * dim]), 10, &p, None).expect("search");
        }
        let sq = single.min(nq) as f64 / t0.elapsed().as_secs_f64();
        let s_cpu = (cpu_seconds() - c0) / single.min(nq) as f64;
        let (t0, c0) = (Instant::now(), cpu_seconds());
        let r = index.search_batch(VectorsRef::Dense(&queries[..nq * dim]), 10, &p, None).expect("batch");
        let bq = nq as f64 / t0.elapsed().as_secs_f64();
        let b_cpu = (cpu_seconds() - c0) / nq as f64;
        println!(
            "threads {threads}: single {sq:.1} q/s ({:.2} cpu-ms/q), batch{nq} {bq:.1} q/s ({:.2} cpu-ms/q) (first id {})",
            s_cpu * 1e3,
            b_cpu * 1e3,
            r[0][0].id
        );
    }
}
