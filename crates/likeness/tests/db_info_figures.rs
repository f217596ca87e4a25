//! `likeness db info` reports, per vector field, the bytes of its vectors on disk, resident in
//! the page cache and on the heap (issue 21): a checkpointed Flat field holds nothing on the heap.

mod common;

use common::*;

/// A little-endian float32 `.npy` file of `rows` × `dim`.
fn write_npy(path: &std::path::Path, rows: usize, dim: usize) {
    let header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({rows}, {dim}), }}");
    let pad = 64 - (10 + header.len() + 1) % 64;
    let header = format!("{header}{}\n", " ".repeat(pad));
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
    bytes.extend_from_slice(header.as_bytes());
    for i in 0..rows * dim {
        bytes.extend_from_slice(&((i % 97) as f32 * 0.5).to_le_bytes());
    }
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn db_info_reports_disk_resident_and_heap_bytes_per_field() {
    let tmp = tempfile::tempdir().unwrap();
    let npy = tmp.path().join("v.npy");
    let db = tmp.path().join("db");
    write_npy(&npy, 3000, 32);
    run_ok(&["vectors", "import", "--db", s(&db), "--collection", "c", "--index", "Flat", s(&npy)]);

    let info = run_json(&["db", "info", s(&db), "--json"]);
    let c = &info["collections"][0];
    let f = &c["fields"][0];
    assert_eq!(c["count"], 3000, "{info}");
    // the import closed the collection: every vector is in a segment column (3000 × 32 × 4 bytes)
    assert_eq!(f["disk_bytes"], 3000 * 32 * 4, "{info}");
    assert_eq!(f["heap_bytes"], 0, "{info}");
    assert!(f["resident_bytes"].as_u64().unwrap() <= 3000 * 32 * 4, "{info}");
    assert_eq!(f["per_vector"]["disk_bytes"].as_f64(), Some(128.0), "{info}");
    assert_eq!(f["per_vector"]["heap_bytes"].as_f64(), Some(0.0), "{info}");
    // No id map on the heap: ids are looked up in the mapped, sorted id column, and dead rows
    // take at most one bit each (none here).
    assert!(c["records_heap_bytes"].as_u64().unwrap() <= 3000 / 8 + 64, "{info}");

    let human = run_ok(&["db", "info", s(&db)]);
    assert!(human.contains("scans the mapped segments in place"), "{human}");
    assert!(human.contains("per vector 128.0 /"), "{human}");
}

/// The index is automatic by default: `vectors import` past the threshold waits for the graph
/// built in the background, `db info` says what serves and why, `--memory-budget` below the
/// float graph's size gives the 8-bit graph with exact re-ranking.
#[test]
fn auto_index_policy_from_the_cli() {
    let tmp = tempfile::tempdir().unwrap();
    let npy = tmp.path().join("v.npy");
    write_npy(&npy, 3000, 32);
    let db = tmp.path().join("db");
    let small = tmp.path().join("small.db");
    // Default (Auto, threshold 10,000): 3,000 vectors are scanned exactly.
    let out = run_json(&["vectors", "import", "--db", s(&small), "--collection", "c", s(&npy), "--json"]);
    assert_eq!(out["index"], "Flat", "{out}");
    let info = run_json(&["db", "info", s(&small), "--json"]);
    let policy = info["collections"][0]["fields"][0]["policy"].as_str().unwrap().to_string();
    assert!(policy.contains("below the graph threshold of 10000"), "{policy}");

    let out = run_json(&[
        "vectors",
        "import",
        "--db",
        s(&db),
        "--collection",
        "c",
        "--index",
        "Auto,threshold=1000",
        s(&npy),
        "--json",
    ]);
    assert_eq!(out["index"], "HNSW32", "{out}");
    let human = run_ok(&["db", "info", s(&db)]);
    assert!(human.contains("Auto policy: HNSW32"), "{human}");
    assert!(human.contains("loaded from snapshot"), "the import saved the graph: {human}");

    let lean = tmp.path().join("lean.db");
    let out = run_json(&[
        "vectors",
        "import",
        "--db",
        s(&lean),
        "--collection",
        "c",
        "--index",
        "Auto,threshold=1000",
        "--memory-budget",
        "64K",
        s(&npy),
        "--json",
    ]);
    assert_eq!(out["index"], "HNSW32,SQ8", "{out}");
    let err = run_err(&[
        "vectors",
        "import",
        "--db",
        s(&tmp.path().join("x.db")),
        "--collection",
        "c",
        "--index",
        "HNSW32",
        "--memory-budget",
        "1G",
        s(&npy),
    ]);
    assert!(err.contains("--memory-budget applies to the Auto index policy"), "{err}");
}
