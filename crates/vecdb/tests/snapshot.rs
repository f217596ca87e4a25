//! Index snapshots: an open loads the snapshot saved at the last clean close or checkpoint and
//! adds only what was written since, even across later checkpoints (which an unclean stop
//! leaves behind); a compaction since the snapshot makes the open rebuild instead.

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;

use vecdb::{
    CollectionSchema, Database, IndexOrigin, Metric, Query, Record, SearchParams, SearchRequest, Vector, VectorField,
};

mod common;
use common::rng::XorShift64;

const DIM: usize = 32;

/// A deterministic vector per (id, version): upserts change the version.
fn vec_of(id: u64, version: u64) -> Vec<f32> {
    let mut r = XorShift64(id.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ version.wrapping_mul(0xD1B5_4A32_D192_ED03) | 1);
    (0..DIM).map(|_| r.centered()).collect()
}

fn records(ids: impl Iterator<Item = u64>, version: u64) -> Vec<Record> {
    ids.map(|id| Record::new(id).with_vector("v", Vector::Dense(vec_of(id, version)))).collect()
}

fn schema() -> CollectionSchema {
    CollectionSchema { fields: vec![VectorField::new("v", DIM, Metric::L2, "HNSW16")] }
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for e in fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &to.join(e.file_name()));
        } else {
            fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

/// Keep a copy of the field's snapshot (directory and marker), or put one back.
fn save_snapshot_copy(coll: &Path, keep: &Path) {
    copy_dir(&coll.join("index-v"), &keep.join("index-v"));
    fs::copy(coll.join("index-v.json"), keep.join("index-v.json")).unwrap();
}
fn restore_snapshot_copy(keep: &Path, coll: &Path) {
    fs::remove_dir_all(coll.join("index-v")).unwrap();
    copy_dir(&keep.join("index-v"), &coll.join("index-v"));
    fs::copy(keep.join("index-v.json"), coll.join("index-v.json")).unwrap();
}

fn origin(db: &Database) -> IndexOrigin {
    db.collection("c").unwrap().stats().fields[0].origin
}

/// Every live record is found by its own (current) vector; deleted ids and old versions never.
fn check_index(db: &Database, live: &BTreeSet<u64>, deleted: &BTreeSet<u64>, upserted: &BTreeSet<u64>) {
    let c = db.collection("c").unwrap();
    assert_eq!(c.ids().into_iter().collect::<BTreeSet<_>>(), *live);
    // A wide candidate list: HNSW is approximate, and at the default `ef` a self-query misses
    // about one stored vector in 50,000 on this uniform data; a record missing from the
    // index is never found.
    let params = SearchParams { ef: Some(256), ..Default::default() };
    let search = |v: Vec<f32>, k| {
        c.search(&SearchRequest::new("v", Query::Vector(Vector::Dense(v)), k).with_params(params.clone())).unwrap()
    };
    for &id in live.iter().step_by(3) {
        let version = if upserted.contains(&id) { 2 } else { 1 };
        let hits = search(vec_of(id, version), 1);
        assert_eq!((hits[0].id, hits[0].distance), (id, 0.0), "live id {id} not found by its vector");
    }
    for &id in deleted {
        assert!(search(vec_of(id, 1), 10).iter().all(|h| h.id != id), "deleted id {id} returned");
    }
    for &id in upserted {
        let hits = search(vec_of(id, 1), 1);
        assert!(!(hits[0].id == id && hits[0].distance == 0.0), "old version of {id} still indexed");
    }
}

#[test]
fn snapshot_catches_up_across_checkpoints_and_compaction_forces_a_rebuild() {
    let tmp = tempfile::tempdir().unwrap();
    let (dbdir, keep) = (tmp.path().join("db"), tmp.path().join("keep"));
    fs::create_dir_all(&keep).unwrap();
    let coll = dbdir.join("collections/c");

    // 1. 3,000 records and a clean close: the snapshot covers segment 1.
    {
        let db = Database::open(&dbdir).unwrap();
        let c = db.create_collection("c", schema()).unwrap();
        for a in (0..3000).step_by(500) {
            c.insert(records(a..a + 500, 1)).unwrap();
        }
        assert_eq!(c.stats().fields[0].origin, IndexOrigin::Built);
    }
    save_snapshot_copy(&coll, &keep);
    {
        let db = Database::open(&dbdir).unwrap();
        assert_eq!(origin(&db), IndexOrigin::Snapshot { caught_up: 0 });
    }

    // 2. Writes in two checkpointed rounds: inserts, deletes of old and new ids, upserts.
    let mut live: BTreeSet<u64> = (0..3000).collect();
    let (mut deleted, mut upserted) = (BTreeSet::new(), BTreeSet::new());
    {
        let db = Database::open(&dbdir).unwrap();
        let c = db.collection("c").unwrap();
        c.insert(records(3000..3600, 1)).unwrap();
        let gone: Vec<u64> = (0..200).map(|i| i * 7).collect();
        assert_eq!(c.delete(&gone).unwrap(), gone.len());
        c.upsert(records(1500..1600, 2)).unwrap();
        c.checkpoint().unwrap();
        c.insert(records(3600..4000, 1)).unwrap();
        let gone_new: Vec<u64> = (3900..3950).collect();
        c.delete(&gone_new).unwrap();
        live.extend(3000..4000);
        for id in gone.into_iter().chain(gone_new) {
            live.remove(&id);
            deleted.insert(id);
        }
        upserted.extend((1500..1600).filter(|id| live.contains(id)));
    }
    // An unclean stop after step 1 would leave step 1's snapshot beside the newer segments:
    // put it back.
    restore_snapshot_copy(&keep, &coll);
    {
        let db = Database::open(&dbdir).unwrap();
        // Added since the snapshot: the live new ids (3000..4000 less 50) and the upserts.
        let expected = (3000..4000).filter(|id| live.contains(id)).count() + upserted.len();
        assert_eq!(origin(&db), IndexOrigin::Snapshot { caught_up: expected });
        check_index(&db, &live, &deleted, &upserted);
    }

    // 3. A compaction rewrites every segment: step 1's snapshot no longer fits and is rebuilt.
    {
        let db = Database::open(&dbdir).unwrap();
        db.collection("c").unwrap().compact().unwrap();
    }
    restore_snapshot_copy(&keep, &coll);
    {
        let db = Database::open(&dbdir).unwrap();
        assert_eq!(origin(&db), IndexOrigin::Built);
        check_index(&db, &live, &deleted, &upserted);
    }
}

/// A checkpoint taken while another thread keeps writing still saves a snapshot (writers only
/// wait while the index is copied), and that snapshot holds exactly the checkpointed records:
/// an open from it catches up on everything written after it and finds every record.
#[test]
fn checkpoints_under_concurrent_writes_save_consistent_snapshots() {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::sync::Arc;

    let tmp = tempfile::tempdir().unwrap();
    let (dbdir, keep) = (tmp.path().join("db"), tmp.path().join("keep"));
    fs::create_dir_all(&keep).unwrap();
    let coll = dbdir.join("collections/c");
    let written = Arc::new(AtomicU64::new(0));
    {
        let db = Database::open(&dbdir).unwrap();
        let c = db.create_collection("c", schema()).unwrap();
        c.insert(records(0..2000, 1)).unwrap();
        written.store(2000, Ordering::SeqCst);
        let stop = Arc::new(AtomicBool::new(false));
        let writer = {
            let (c, stop, written) = (c.clone(), stop.clone(), written.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    let a = written.load(Ordering::SeqCst);
                    c.insert(records(a..a + 20, 1)).unwrap();
                    written.store(a + 20, Ordering::SeqCst);
                }
            })
        };
        for _ in 0..3 {
            while written.load(Ordering::SeqCst) < 2200 {
                std::thread::yield_now();
            }
            fs::remove_file(coll.join("index-v.json")).ok();
            c.checkpoint().unwrap();
            assert!(coll.join("index-v.json").exists(), "a checkpoint under writes saved no snapshot");
        }
        // Keep the last snapshot as an unclean stop would leave it; writes go on after it.
        save_snapshot_copy(&coll, &keep);
        let at_copy = written.load(Ordering::SeqCst);
        while written.load(Ordering::SeqCst) < at_copy + 200 {
            std::thread::yield_now();
        }
        stop.store(true, Ordering::SeqCst);
        writer.join().unwrap();
    }
    restore_snapshot_copy(&keep, &coll);
    let db = Database::open(&dbdir).unwrap();
    let n = written.load(Ordering::SeqCst);
    match origin(&db) {
        IndexOrigin::Snapshot { caught_up } => assert!(caught_up >= 200, "caught up only {caught_up}"),
        other => panic!("the snapshot was not used: {other:?}"),
    }
    check_index(&db, &(0..n).collect(), &BTreeSet::new(), &BTreeSet::new());
}
