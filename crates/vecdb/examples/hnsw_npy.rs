//! HNSW speed and recall on real data kept as `.npy` files: `DIR` holds `base.npy`,
//! `queries.npy` and `gt.npy` (true neighbour ids as floats, at least 10 a row), e.g. the files
//! `likeness-bench ann` caches. Prints build time, bytes per vector, and single-thread QPS and
//! recall@10 per `ef`; exits with status 1 when the best recall@10 is under 0.9.
//!
//! ```text
//! cargo run -p vecdb --release --example hnsw_npy -- DIR [max_queries] [M]
//! ```

#[path = "../benches/support/npy.rs"]
mod npy;

use std::process::ExitCode;
use std::time::Instant;

use npy::read_npy;
use vecdb::index::hnsw::HnswIndex;
use vecdb::{Metric, Neighbor, SearchParams, VectorIndex, VectorRef, VectorsRef};

/// The recall@10 the best `ef` must reach for the run to pass.
const MIN_RECALL: f64 = 0.9;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let Some(dir) = args.get(1).map(std::path::PathBuf::from) else {
        eprintln!("usage: hnsw_npy DIR [max_queries] [M]  (DIR holds base.npy, queries.npy, gt.npy)");
        return ExitCode::from(2);
    };
    let num = |i: usize| args.get(i).and_then(|s| s.parse::<usize>().ok());
    let (n, dim, base) = read_npy(dir.join("base.npy"));
    let (nq, qdim, queries) = read_npy(dir.join("queries.npy"));
    let (gn, gk, gt) = read_npy(dir.join("gt.npy"));
    assert_eq!(qdim, dim, "query and base dimensions differ");
    assert!(gn >= nq && gk >= 10, "gt.npy needs 10 neighbours for each of the {nq} queries, has {gn} × {gk}");
    let nq = nq.min(num(2).unwrap_or(nq));
    let m = num(3).unwrap_or(16);

    let ids: Vec<u64> = (0..n as u64).collect();
    let mut idx = HnswIndex::new(dim, Metric::L2, m, 200);
    let t = Instant::now();
    idx.add(&ids, VectorsRef::Dense(&base)).expect("hnsw add");
    println!(
        "HNSW{m},efC200 on {n} × {dim} (l2): build {:.2} s, {:.0} B/vector, {nq} queries",
        t.elapsed().as_secs_f64(),
        idx.memory_bytes() as f64 / n as f64
    );
    let mut best = 0.0f64;
    for ef in [10, 20, 40, 80, 160] {
        let p = SearchParams { ef: Some(ef), threads: Some(1), ..Default::default() };
        let t = Instant::now();
        let found: Vec<Vec<Neighbor>> = (0..nq)
            .map(|i| idx.search(VectorRef::Dense(&queries[i * dim..(i + 1) * dim]), 10, &p, None).expect("search"))
            .collect();
        let qps = nq as f64 / t.elapsed().as_secs_f64();
        let hits: usize = found
            .iter()
            .enumerate()
            .map(|(i, f)| f.iter().filter(|nb| gt[i * gk..i * gk + 10].contains(&(nb.id as f32))).count())
            .sum();
        let r = hits as f64 / (10 * nq) as f64;
        best = best.max(r);
        println!("ef {ef:>3}: recall@10 {r:.4}, {qps:.0} q/s");
    }
    if best < MIN_RECALL {
        eprintln!("best recall@10 {best:.4} is under {MIN_RECALL}");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
