//! Quick HNSW timing on raw IDX image files (e.g. Fashion-MNIST, gunzipped): build time,
//! then recall@10 and queries per second at a few `ef` values, single queries and one batch.
//!
//! ```text
//! gunzip -c data/fashion-mnist/train-images-idx3-ubyte.gz > /tmp/train.idx
//! gunzip -c data/fashion-mnist/t10k-images-idx3-ubyte.gz > /tmp/t10k.idx
//! cargo run -p vecdb --release --example hnsw_bench -- /tmp/train.idx /tmp/t10k.idx [n_base] [n_queries] [M] [efC]
//! ```
//!
//! The full comparison with hnswlib, FAISS and usearch is `likeness bench ann`.

use std::time::Instant;

use vecdb::index::flat::FlatIndex;
use vecdb::index::hnsw::HnswIndex;
use vecdb::{Metric, SearchParams, VectorIndex, VectorRef, VectorsRef};

/// The first `n` images of an IDX3 file, as floats (0–255).
fn read_idx(path: &str, n: usize) -> (usize, Vec<f32>) {
    let raw = std::fs::read(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    assert_eq!(&raw[..4], &[0, 0, 8, 3], "{path}: not an IDX3 file of bytes");
    let be = |i: usize| u32::from_be_bytes(raw[i..i + 4].try_into().expect("4 bytes")) as usize;
    let (count, dim) = (be(4), be(8) * be(12));
    let n = n.min(count);
    (dim, raw[16..16 + n * dim].iter().map(|&b| b as f32).collect())
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let num = |i: usize, default: usize| args.get(i).and_then(|s| s.parse().ok()).unwrap_or(default);
    let (base_path, query_path) = (args.get(1).expect("base IDX file"), args.get(2).expect("query IDX file"));
    let (n, nq, m, efc) = (num(3, 20_000), num(4, 1000), num(5, 16), num(6, 100));
    let (dim, base) = read_idx(base_path, n);
    let (_, queries) = read_idx(query_path, nq);
    let (n, nq) = (base.len() / dim, queries.len() / dim);
    let ids: Vec<u64> = (0..n as u64).collect();

    let mut exact = FlatIndex::new(dim, Metric::L2);
    exact.add(&ids, VectorsRef::Dense(&base)).expect("flat add");
    let truth = exact.search_batch(VectorsRef::Dense(&queries), 10, &SearchParams::default(), None).expect("truth");

    let t = Instant::now();
    let mut index = HnswIndex::new(dim, Metric::L2, m, efc);
    index.add(&ids, VectorsRef::Dense(&base)).expect("hnsw add");
    println!("HNSW{m},efC{efc} on {n} × {dim} (l2): build {:.1} s, {nq} queries", t.elapsed().as_secs_f64());
    for ef in [20, 40, 80, 160] {
        let p = SearchParams { ef: Some(ef), threads: Some(1), ..Default::default() };
        let t = Instant::now();
        let mut found = 0;
        for (i, want) in truth.iter().enumerate() {
            let q = VectorRef::Dense(&queries[i * dim..(i + 1) * dim]);
            let got = index.search(q, 10, &p, None).expect("search");
            found += got.iter().filter(|h| want.iter().any(|w| w.id == h.id)).count();
        }
        let single = nq as f64 / t.elapsed().as_secs_f64();
        let t = Instant::now();
        index.search_batch(VectorsRef::Dense(&queries), 10, &p, None).expect("batch");
        let batch = nq as f64 / t.elapsed().as_secs_f64();
        println!(
            "ef {ef:>3}: recall@10 {:.4}, single {single:.0} q/s, batch (1 thread) {batch:.0} q/s",
            found as f64 / (10 * nq) as f64
        );
    }
}
