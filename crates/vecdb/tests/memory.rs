//! Memory of a process that opens and searches a Flat collection: sealed vectors are read from
//! the mapped segment columns (page cache, `RssFile`), so the heap (`RssAnon`) holds only
//! per-record bookkeeping (the id → row map, about 25 bytes per record) — not a decoded copy of
//! the vectors (512 bytes per 128-d record, which the Flat index kept before it read the mapping).
//!
//! A child process (this test binary, re-run with `VECDB_MEMORY_CHILD` set) opens a 100,000 ×
//! 128 collection read-only, runs single, filtered and batched searches and `get`s, then opens
//! it as the writer and inserts a record, and reports `RssAnon` from `/proc/self/status` before
//! the open and after each step. The test fails when
//! the growth exceeds [`MAX_HEAP_BYTES_PER_VECTOR`]: 128 bytes per vector, a quarter of the raw
//! vector bytes — about 4× what the bookkeeping takes today, and a quarter of what any decoded
//! copy of the vectors would add (so a copy coming back fails it by a wide margin).
//!
//! The same for an `HNSW16` collection: the graph reads the vectors from the mapped columns
//! too (`collection/in_place.rs`), so a writer's heap holds its links and bookkeeping (about 194
//! bytes per vector at M = 16, less at the M = 8 tested) but no copy of the vectors (the limit is
//! [`MAX_GRAPH_HEAP_BYTES_PER_VECTOR`]), and a reader maps the links from the snapshot too: its
//! heap holds the row addresses ([`MAX_GRAPH_READER_HEAP_BYTES_PER_VECTOR`]).

use std::path::Path;
use std::process::Command;

use rand::{RngExt, SeedableRng};
use serde_json::json;
use vecdb::{CollectionSchema, Database, Filter, Metric, Query, Record, SearchRequest, Vector};

const N: u64 = 100_000;
const DIM: usize = 128;
const MAX_HEAP_BYTES_PER_VECTOR: f64 = 128.0;
/// The graph's links and bookkeeping fit (144 bytes per vector at M = 8 after the writer reopened
/// and inserted: its first insert copies the mapped links into memory), a copy of the vectors
/// (512 bytes more per vector: 702 measured with the copy) does not.
const MAX_GRAPH_HEAP_BYTES_PER_VECTOR: f64 = 320.0;
/// A reader of the graph maps its links and ids from the snapshot (`HnswIndex::open`): its heap
/// holds the row addresses (8 bytes per vector; 15.8 measured in all), not the links (about 70
/// bytes per vector at M = 8, 130 measured when they were read into memory).
const MAX_GRAPH_READER_HEAP_BYTES_PER_VECTOR: f64 = 48.0;
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
    // A writer's first insert: an index that memory-mapped a saved copy of the vectors would
    // copy them all onto the heap here.
    drop(c);
    drop(db);
    let db = Database::open(dir).unwrap();
    let c = db.collection("c").unwrap();
    c.insert(vec![Record::new(N).with_vector("v", Vector::Dense(query(9))).with_metadata(json!({"g": 1}))]).unwrap();
    assert_eq!(c.search(&SearchRequest::new("v", Query::Vector(Vector::Dense(query(9))), 1)).unwrap()[0].id, N);
    let after_write = rss_anon_kib().expect("RssAnon");
    println!(
        "MEMORY before={before} after_search={after_search} after_filter={after_filter} after_write={after_write}"
    );
}

#[test]
fn a_searching_process_holds_no_copy_of_the_vectors_on_the_heap() {
    measure(
        "a_searching_process_holds_no_copy_of_the_vectors_on_the_heap",
        "Flat",
        MAX_HEAP_BYTES_PER_VECTOR,
        MAX_HEAP_BYTES_PER_VECTOR,
    );
}

#[test]
fn a_searching_process_holds_no_copy_of_the_vectors_in_its_graph() {
    // M = 8 and a short build list keep the build quick; the graph reads the mapped rows all the same.
    measure(
        "a_searching_process_holds_no_copy_of_the_vectors_in_its_graph",
        "HNSW8,efC40",
        MAX_GRAPH_READER_HEAP_BYTES_PER_VECTOR,
        MAX_GRAPH_HEAP_BYTES_PER_VECTOR,
    );
}

/// Build a collection with index `spec`, re-run test `name` as the child on it, and check the
/// child's heap growth per vector against `reader_limit` while it only reads, `limit` after it
/// wrote as well.
fn measure(name: &str, spec: &str, reader_limit: f64, limit: f64) {
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
        let c = db.create_collection("c", CollectionSchema::single("v", DIM, Metric::L2, spec)).unwrap();
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
        .args([name, "--exact", "--nocapture", "--test-threads", "1"])
        .env(CHILD_ENV, dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "child failed: {stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    // The report may share its line with the test harness's "test ... " prefix.
    let line = stdout
        .lines()
        .find_map(|l| l.find("MEMORY ").map(|i| &l[i..]))
        .unwrap_or_else(|| panic!("no report: {stdout}"));
    let num = |key: &str| -> f64 {
        line.split_whitespace()
            .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('=')?.parse().ok())
            .unwrap_or_else(|| panic!("{key} missing in {line}"))
    };
    let before = num("before");
    for key in ["after_search", "after_filter", "after_write"] {
        let limit = if key == "after_write" { limit } else { reader_limit };
        let per_vector = (num(key) - before).max(0.0) * 1024.0 / N as f64;
        eprintln!("{spec}: {line}: {per_vector:.1} heap bytes per vector at {key}");
        assert!(
            per_vector <= limit,
            "{spec}: heap grew {per_vector:.1} bytes per vector by {key} (limit {limit}; raw vectors are {} bytes): {line}",
            DIM * 4
        );
    }
}
