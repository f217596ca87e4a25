//! Memory of a process that opens and searches a Flat collection: sealed vectors are read from
//! the mapped segment columns (page cache, `RssFile`), so the heap (`RssAnon`) holds only
//! per-record bookkeeping (the id → row map, about 25 bytes per record) — not a decoded copy of
//! the vectors (512 bytes per 128-d record, which the Flat index kept before it read the mapping).
//!
//! A child process (this test binary, re-run with `VECDB_MEMORY_CHILD` set) opens a 100,000 ×
//! 128 collection read-only, runs single, filtered and batched searches and `get`s, and reports
//! `RssAnon` from `/proc/self/status` before the open and after the searches. The test fails when
//! the growth exceeds [`MAX_HEAP_BYTES_PER_VECTOR`]: 128 bytes per vector, a quarter of the raw
//! vector bytes — about 4× what the bookkeeping takes today, and a quarter of what any decoded
//! copy of the vectors would add (so a copy coming back fails it by a wide margin).

use std::path::Path;
use std::process::Command;

use rand::{RngExt, SeedableRng};
use serde_json::json;
use vecdb::{CollectionSchema, Database, Filter, Metric, Query, Record, SearchRequest, Vector};

const N: u64 = 100_000;
const DIM: usize = 128;
const MAX_HEAP_BYTES_PER_VECTOR: f64 = 128.0;
const CHILD_ENV: &str = "VECDB_MEMORY_CHILD";

fn rss_anon_kib() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("RssAnon:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn query(seed: u64) -> Vec<f32> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    (0..DIM).map(|_| rng.random_range(-1.0f32..1.0)).collect()
}

/// The child: open, search, report.
fn child(dir: &Path) {
    let before = rss_anon_kib().expect("RssAnon");
    let db = Database::open_read_only(dir).unwrap();
    let c = db.collection("c").unwrap();
    assert_eq!(c.count() as u64, N);
    for s in 0..5 {
        let hits = c.search(&SearchRequest::new("v", Query::Vector(Vector::Dense(query(s))), 10)).unwrap();
        assert_eq!(hits.len(), 10);
    }
    let reqs: Vec<SearchRequest> =
        (0..32).map(|s| SearchRequest::new("v", Query::Vector(Vector::Dense(query(100 + s))), 10)).collect();
    assert_eq!(c.search_batch(&reqs).unwrap().len(), 32);
    for id in (0..N).step_by(10_007) {
        assert!(c.get(id).unwrap().is_some());
    }
    let after_search = rss_anon_kib().expect("RssAnon");
    // a filter parses the metadata of the rows it tests from the mapping (no decoded copy)
    let f =
        SearchRequest::new("v", Query::Vector(Vector::Dense(query(7))), 10).with_filter(Filter::parse("g=1").unwrap());
    assert_eq!(c.search(&f).unwrap().len(), 10);
    let after_filter = rss_anon_kib().expect("RssAnon");
    println!("MEMORY before={before} after_search={after_search} after_filter={after_filter}");
}

#[test]
fn a_searching_process_holds_no_copy_of_the_vectors_on_the_heap() {
    if let Ok(dir) = std::env::var(CHILD_ENV) {
        child(Path::new(&dir));
        return;
    }
    if rss_anon_kib().is_none() {
        eprintln!("no RssAnon in /proc/self/status on this system: skipped");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    {
        let db = Database::open(dir.path()).unwrap();
        let c = db.create_collection("c", CollectionSchema::single("v", DIM, Metric::L2, "Flat")).unwrap();
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        for b in 0..(N / 10_000) {
            let recs: Vec<Record> = (b * 10_000..(b + 1) * 10_000)
                .map(|id| {
                    let v: Vec<f32> = (0..DIM).map(|_| rng.random_range(-1.0f32..1.0)).collect();
                    Record::new(id).with_vector("v", Vector::Dense(v)).with_metadata(json!({"g": id % 3}))
                })
                .collect();
            c.insert(recs).unwrap();
        }
        c.checkpoint().unwrap();
    }
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["a_searching_process_holds_no_copy_of_the_vectors_on_the_heap", "--exact", "--nocapture"])
        .env(CHILD_ENV, dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "child failed: {stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let line = stdout.lines().find(|l| l.starts_with("MEMORY ")).unwrap_or_else(|| panic!("no report: {stdout}"));
    let num = |key: &str| -> f64 {
        line.split_whitespace()
            .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('=')?.parse().ok())
            .unwrap_or_else(|| panic!("{key} missing in {line}"))
    };
    let before = num("before");
    for key in ["after_search", "after_filter"] {
        let per_vector = (num(key) - before).max(0.0) * 1024.0 / N as f64;
        eprintln!("{line}: {per_vector:.1} heap bytes per vector at {key}");
        assert!(
            per_vector <= MAX_HEAP_BYTES_PER_VECTOR,
            "heap grew {per_vector:.1} bytes per vector by {key} (limit {MAX_HEAP_BYTES_PER_VECTOR}; raw vectors are {} \
             bytes): {line}",
            DIM * 4
        );
    }
}
