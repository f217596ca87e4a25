// Temporary A/B (not committed): HNSW16 build + search, owned rows vs in place (heap, mapped).
use std::sync::Arc;
use std::time::Instant;
use vecdb::index::hnsw::HnswIndex;
use vecdb::index::{SearchParams, VectorIndex};
use vecdb::{Metric, VectorRef, VectorsRef};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let path = &args[1];
    let n: usize = args[2].parse().unwrap();
    let mode = &args[3];
    let d = 128;
    let f = std::fs::File::open(path).unwrap();
    let map = unsafe { memmap2::Mmap::map(&f).unwrap() };
    let body = &map[128..128 + n * d * 4];
    let data: Vec<f32> = bytemuck::cast_slice::<u8, f32>(body).to_vec();
    let ids: Vec<u64> = (0..n as u64).collect();
    let mut ix = HnswIndex::new(d, Metric::L2, 16, 200);
    let t = Instant::now();
    match mode.as_str() {
        "owned" => {
            for c in (0..n).step_by(10_000) {
                let e = (c + 10_000).min(n);
                ix.add(&ids[c..e], VectorsRef::Dense(&data[c * d..e * d])).unwrap();
            }
        }
        "heap" | "mapped" => {
            assert!(ix.read_rows_in_place());
            let keep: Arc<dyn std::any::Any + Send + Sync>;
            let base: usize;
            if mode == "heap" {
                let a = Arc::new(data.clone());
                base = a.as_ptr() as usize;
                keep = a;
            } else {
                let m = Arc::new(unsafe { memmap2::Mmap::map(&f).unwrap() });
                base = m.as_ptr() as usize + 128;
                keep = m;
            }
            for c in (0..n).step_by(10_000) {
                let e = (c + 10_000).min(n);
                let addrs: Vec<usize> = (c..e).map(|i| base + i * d * 4).collect();
                unsafe { ix.add_in_place(&ids[c..e], &addrs, keep.clone()).unwrap() };
            }
        }
        _ => panic!(),
    }
    let build = t.elapsed().as_secs_f64();
    let p = SearchParams { ef: Some(64), ..Default::default() };
    let t = Instant::now();
    let mut hits = 0;
    for q in 0..2000 {
        let qi = (q * 7919) % n;
        let r = ix.search(VectorRef::Dense(&data[qi * d..(qi + 1) * d]), 10, &p, None).unwrap();
        hits += (r[0].id == qi as u64) as usize;
    }
    let s = t.elapsed().as_secs_f64();
    println!("{mode}: n {n} build {build:.1}s, search {:.0} q/s, self-hit {hits}/2000", 2000.0 / s);
}
