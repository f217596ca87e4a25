//! The automatic index policy (`Auto` spec): exact while small, a graph built in the background
//! past the threshold and swapped in under concurrent writes and searches, an 8-bit graph with
//! exact re-ranking past the memory budget, the graph saved and loaded at the next open, and a
//! kill -9 during the background build losing nothing.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use vecdb::{CollectionSchema, Database, IndexOrigin, Metric, Query, Record, SearchRequest, Vector};

const DIM: usize = 16;

/// A deterministic vector per id, spread out (no two ids share one).
fn vector_of(id: u64) -> Vec<f32> {
    (0..DIM as u64)
        .map(|j| {
            let x = (id.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (j.wrapping_mul(0xBF58_476D_1CE4_E5B9)))
                .rotate_left((j * 7) as u32);
            (x % 100_003) as f32 / 1_000.0
        })
        .collect()
}

fn record(id: u64) -> Record {
    Record::new(id).with_vector("v", Vector::Dense(vector_of(id))).with_metadata(serde_json::json!({"id": id}))
}

fn top1(c: &vecdb::Collection, id: u64) -> Option<(u64, f32)> {
    let req = SearchRequest::new("v", Query::Vector(Vector::Dense(vector_of(id))), 1);
    c.search(&req).unwrap().first().map(|h| (h.id, h.distance))
}

fn field_stats(c: &vecdb::Collection) -> vecdb::FieldStats {
    c.stats().fields.into_iter().next().unwrap()
}

fn wait_built(c: &vecdb::Collection) {
    let t = Instant::now();
    c.wait_for_index_builds(|_| assert!(t.elapsed() < Duration::from_secs(120), "the background build never ends"));
}

#[test]
fn exact_below_the_threshold_then_a_graph_built_in_the_background_and_saved() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = Database::open(dir.path()).unwrap();
        let c =
            db.create_collection("c", CollectionSchema::single("v", DIM, Metric::L2, "Auto,threshold=1000")).unwrap();
        c.insert((0..999).map(record).collect()).unwrap();
        let s = field_stats(&c);
        assert_eq!(s.index, "Flat");
        assert!(s.policy.as_deref().unwrap().contains("below the graph threshold of 1000"), "{:?}", s.policy);
        assert!(c.index_builds().is_empty());
        c.insert((999..3000).map(record).collect()).unwrap();
        wait_built(&c);
        let s = field_stats(&c);
        assert_eq!(s.index, "HNSW32", "{s:?}");
        assert!(s.policy.as_deref().unwrap().contains("chosen by the Auto policy"), "{:?}", s.policy);
        assert!(s.build.is_none());
        // Writes after the swap go into the graph.
        c.insert((3000..3100).map(record).collect()).unwrap();
        assert_eq!(c.delete(&[5, 6, 7]).unwrap(), 3);
        for id in (0..3100).step_by(37).filter(|id| !(5..8).contains(id)) {
            assert_eq!(top1(&c, id), Some((id, 0.0)), "id {id}");
        }
        assert_ne!(top1(&c, 6).unwrap().0, 6);
    }
    // The writer checkpointed after the swap (and on close): the next open loads the graph.
    let db = Database::open(dir.path()).unwrap();
    let c = db.collection("c").unwrap();
    let s = field_stats(&c);
    assert_eq!(s.index, "HNSW32");
    assert!(matches!(s.origin, IndexOrigin::Snapshot { .. }), "{:?}", s.origin);
    assert!(c.index_builds().is_empty());
    assert_eq!(c.count(), 3097);
    // A read-only follower loads the same graph.
    let ro = Database::open_read_only(dir.path()).unwrap();
    assert_eq!(field_stats(&ro.collection("c").unwrap()).index, "HNSW32");
}

#[test]
fn past_the_memory_budget_an_8_bit_graph_with_exact_distances() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path()).unwrap();
    let c = db
        .create_collection("c", CollectionSchema::single("v", DIM, Metric::L2, "Auto,threshold=500,budget=64K"))
        .unwrap();
    c.insert((0..2000).map(record).collect()).unwrap();
    wait_built(&c);
    let s = field_stats(&c);
    assert_eq!(s.index, "HNSW32,SQ8", "{s:?}");
    assert!(s.policy.as_deref().unwrap().contains("exact re-rank"), "{:?}", s.policy);
    // Exact re-ranking: the distances are the exact ones and the true nearest neighbours come back.
    let (mut found, mut total) = (0, 0);
    for q in (0..2000u64).step_by(97) {
        let qv = vector_of(q + 50_000);
        let hits = c.search(&SearchRequest::new("v", Query::Vector(Vector::Dense(qv.clone())), 10)).unwrap();
        for h in &hits {
            let exact = Metric::L2.distance(vecdb::VectorRef::Dense(&qv), vecdb::VectorRef::Dense(&vector_of(h.id)));
            assert!((exact.unwrap() - h.distance).abs() < 1e-3, "re-ranked distances are exact");
        }
        let mut all: Vec<(f32, u64)> = (0..2000u64)
            .map(|id| (qv.iter().zip(vector_of(id)).map(|(a, b)| (a - b) * (a - b)).sum::<f32>(), id))
            .collect();
        all.sort_by(|a, b| a.0.total_cmp(&b.0));
        let truth: BTreeSet<u64> = all[..10].iter().map(|x| x.1).collect();
        found += hits.iter().filter(|h| truth.contains(&h.id)).count();
        total += 10;
    }
    assert!(found as f64 >= 0.95 * total as f64, "recall@10 {found}/{total}");
    // Range search through the 8-bit graph keeps only exact distances within the radius.
    let mut req = SearchRequest::new("v", Query::Id(3), 5);
    req.threshold = Some(0.0);
    assert!(c.search(&req).unwrap().is_empty());
}

#[test]
fn the_switch_under_concurrent_writes_and_searches_never_gives_a_wrong_answer() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path()).unwrap();
    let c = db.create_collection("c", CollectionSchema::single("v", DIM, Metric::L2, "Auto,threshold=4000")).unwrap();
    // Stable records 0..3000 are never touched; writers add 100_000.., delete and rewrite others.
    c.insert((0..3990).map(record).collect()).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (c, stop) = (c.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut next = 100_000u64;
            let mut deleted = BTreeSet::new();
            let mut round = 0u64;
            while !stop.load(Ordering::SeqCst) || round < 40 {
                c.insert((next..next + 50).map(record).collect()).unwrap();
                next += 50;
                let victim = 3000 + (round * 13) % 990;
                if c.delete(&[victim]).unwrap() == 1 {
                    deleted.insert(victim);
                }
                // Rewrite a record with its own vector (an upsert the build must not lose; it
                // brings a deleted one back).
                let again = 3000 + (round * 7) % 990;
                c.upsert(vec![record(again)]).unwrap();
                deleted.remove(&again);
                round += 1;
            }
            (next, deleted)
        })
    };
    let readers: Vec<_> = (0..2)
        .map(|t| {
            let (c, stop) = (c.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut i = t as u64;
                let mut checked = 0;
                while !stop.load(Ordering::SeqCst) {
                    let id = (i * 101) % 3000;
                    assert_eq!(top1(&c, id), Some((id, 0.0)), "stable record {id}");
                    i += 1;
                    checked += 1;
                }
                checked
            })
        })
        .collect();
    let t = Instant::now();
    loop {
        if field_stats(&c).index == "HNSW32" && c.index_builds().is_empty() {
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(120), "no swap");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(200));
    stop.store(true, Ordering::SeqCst);
    let (next, deleted) = writer.join().unwrap();
    for r in readers {
        assert!(r.join().unwrap() > 0);
    }
    wait_built(&c);
    assert_eq!(field_stats(&c).index, "HNSW32");
    // Every live record is found by its own vector; no deleted one is.
    assert_eq!(c.count(), 3990 + (next - 100_000) as usize - deleted.len());
    for id in (0..3990).chain((100_000..next).step_by(7)) {
        if deleted.contains(&id) {
            assert!(c.get(id).unwrap().is_none());
            assert_ne!(top1(&c, id).unwrap().0, id);
        } else {
            assert_eq!(top1(&c, id), Some((id, 0.0)), "record {id}");
        }
    }
}

#[test]
fn set_index_moves_between_auto_and_a_pinned_spec() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path()).unwrap();
    let c = db.create_collection("c", CollectionSchema::single("v", DIM, Metric::L2, "Flat")).unwrap();
    c.insert((0..1500).map(record).collect()).unwrap();
    c.set_index("v", "Auto,threshold=1000").unwrap();
    wait_built(&c);
    assert_eq!(field_stats(&c).index, "HNSW32");
    c.set_index("v", "Flat").unwrap();
    assert_eq!(field_stats(&c).index, "Flat");
    assert!(field_stats(&c).policy.is_none());
    assert!(c.set_index("v", "Auto,threshold=many").unwrap_err().to_string().contains("threshold"));
    assert!(db
        .create_collection("d", CollectionSchema::single("v", DIM, Metric::L2, "Auto,budget=lots"))
        .unwrap_err()
        .to_string()
        .contains("budget"));
    // Bit vectors are always scanned exactly.
    let h = db.create_collection("h", CollectionSchema::single("h", 64, Metric::Hamming, "Auto,threshold=10")).unwrap();
    h.insert((0..100u64).map(|i| Record::new(i).with_vector("h", Vector::Binary(i.to_le_bytes().to_vec()))).collect())
        .unwrap();
    assert!(h.index_builds().is_empty());
    assert_eq!(field_stats(&h).index, "Flat");
}

const CHILD_ENV: &str = "VECDB_AUTO_CHILD_DIR";

/// The child of the kill test: create the collection, then insert batches forever, printing
/// `I a b` once ids a..=b are acknowledged and `BUILDING` once a background build runs.
fn child(dir: &str) {
    let db = Database::open(dir).unwrap();
    let c = db.create_collection("c", CollectionSchema::single("v", DIM, Metric::L2, "Auto,threshold=20000")).unwrap();
    let mut next = 0u64;
    let mut said = false;
    loop {
        c.insert((next..next + 500).map(record).collect()).unwrap();
        println!("I {next} {}", next + 499);
        next += 500;
        if !said && !c.index_builds().is_empty() {
            println!("BUILDING");
            said = true;
        }
    }
}

#[test]
fn kill_9_during_the_background_build_loses_nothing_and_the_build_restarts() {
    if let Ok(dir) = std::env::var(CHILD_ENV) {
        child(&dir);
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "kill_9_during_the_background_build_loses_nothing_and_the_build_restarts", "--nocapture"])
        .env(CHILD_ENV, dir.path())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut acked = 0u64;
    let mut building_at = None;
    let t = Instant::now();
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        if line == "BUILDING" {
            building_at = Some(acked);
        } else if let Some(rest) = line.strip_prefix("I ") {
            acked = rest.split(' ').nth(1).unwrap().parse::<u64>().unwrap() + 1;
        }
        // Kill while the build runs and writes go on: a few batches after it started.
        if building_at.is_some_and(|b| acked >= b + 2_000) {
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(120), "child too slow");
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(building_at.is_some(), "the build never started");

    let db = Database::open(dir.path()).unwrap();
    let c = db.collection("c").unwrap();
    assert!(c.count() as u64 >= acked, "{} records, {acked} acknowledged", c.count());
    for id in (0..acked).step_by(101) {
        assert_eq!(c.get(id).unwrap().unwrap().vectors["v"], Vector::Dense(vector_of(id)));
        // Exact search (or the graph if the build already finished again) finds every record.
        assert_eq!(top1(&c, id), Some((id, 0.0)), "record {id}");
    }
    // The build starts again after the open and completes.
    wait_built(&c);
    assert_eq!(field_stats(&c).index, "HNSW32");
    for id in (0..acked).step_by(97) {
        assert_eq!(top1(&c, id), Some((id, 0.0)), "record {id} through the graph");
    }
}

#[test]
fn a_float_graph_that_outgrows_the_budget_moves_to_the_8_bit_graph() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path()).unwrap();
    // 16-d floats: ~360 B per vector in the float graph, so 1 MiB holds about 2,900 of them.
    let c = db
        .create_collection("c", CollectionSchema::single("v", DIM, Metric::L2, "Auto,threshold=500,budget=1M"))
        .unwrap();
    c.insert((0..2000).map(record).collect()).unwrap();
    wait_built(&c);
    assert_eq!(field_stats(&c).index, "HNSW32");
    for chunk in (2000..6000u64).collect::<Vec<_>>().chunks(500) {
        c.insert(chunk.iter().copied().map(record).collect()).unwrap();
    }
    wait_built(&c);
    let s = field_stats(&c);
    assert_eq!(s.index, "HNSW32,SQ8", "{s:?}");
    for id in (0..6000).step_by(59) {
        assert_eq!(top1(&c, id), Some((id, 0.0)), "record {id}");
    }
}
