//! Readers beside the writer: `Database::open_read_only` takes no lock and writes nothing,
//! sees a consistent state, and catches up with checkpoints, compactions, index changes,
//! new and dropped collections; several reader processes follow one ingesting writer process
//! and never see a torn batch or miss an acknowledged record after a refresh.

use std::fs;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;
use vecdb::{CollectionSchema, Database, Error, Metric, Query, Record, SearchRequest, Vector};

mod common;
use common::{snapshot_files, wal_file};

const BATCH: u64 = 50;

fn vec_of(id: u64) -> Vec<f32> {
    (0..8).map(|j| ((id * 31 + j * 7) % 97) as f32 / 97.0 + (id as f32) * 1e-3).collect()
}
fn rec(id: u64) -> Record {
    Record::new(id).with_vector("v", Vector::Dense(vec_of(id))).with_metadata(json!({"batch": id / BATCH}))
}
fn batch(b: u64) -> Vec<Record> {
    (b * BATCH..(b + 1) * BATCH).map(rec).collect()
}
fn schema(index: &str) -> CollectionSchema {
    CollectionSchema::single("v", 8, Metric::L2, index)
}

fn nearest(c: &vecdb::Collection, id: u64) -> u64 {
    let hits = c.search(&SearchRequest::new("v", Query::Vector(Vector::Dense(vec_of(id))), 1)).unwrap();
    hits[0].id
}

#[test]
fn a_read_only_open_writes_nothing_even_with_a_torn_tail_and_strays() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = Database::open(dir.path()).unwrap();
        let c = db.create_collection("c", schema("HNSW8")).unwrap();
        c.insert(batch(0)).unwrap();
        c.checkpoint().unwrap();
        c.insert(batch(1)).unwrap();
    }
    let cdir = dir.path().join("collections/c");
    // a stray temporary, and a torn tail after the last frame
    fs::write(cdir.join("seg-00000009.seg.tmp"), b"half a segment").unwrap();
    let wal = wal_file(&cdir);
    {
        let db = Database::open(dir.path()).unwrap();
        db.collection("c").unwrap().insert(batch(2)).unwrap();
        std::mem::forget(db); // keep the frame in the WAL (the lock leaks with it: readers take none)
    }
    let mut f = fs::OpenOptions::new().append(true).open(&wal).unwrap();
    f.write_all(&[7u8; 33]).unwrap();
    drop(f);
    let before = snapshot_files(dir.path());
    {
        let db = Database::open_read_only(dir.path()).unwrap();
        assert!(db.is_read_only());
        let c = db.collection("c").unwrap();
        assert_eq!(c.count(), 3 * BATCH as usize);
        assert_eq!(nearest(&c, 120), 120);
        assert!(matches!(c.insert(batch(5)), Err(Error::ReadOnly(_))));
        assert!(matches!(c.delete(&[1]), Err(Error::ReadOnly(_))));
        assert!(matches!(c.compact(), Err(Error::ReadOnly(_))));
        assert!(matches!(c.checkpoint(), Err(Error::ReadOnly(_))));
        assert!(matches!(c.set_index("v", "Flat"), Err(Error::ReadOnly(_))));
        assert!(matches!(db.drop_collection("c"), Err(Error::ReadOnly(_))));
        assert!(db.create_collection("d", schema("Flat")).is_err());
        c.refresh().unwrap();
        assert_eq!(c.count(), 3 * BATCH as usize);
    }
    assert_eq!(before, snapshot_files(dir.path()), "a read-only open changed files");
}

#[test]
fn a_follower_catches_up_with_checkpoints_compaction_index_changes_and_collections() {
    let dir = tempfile::tempdir().unwrap();
    let w = Database::open(dir.path()).unwrap();
    let c = w.create_collection("c", schema("HNSW8")).unwrap();
    c.insert(batch(0)).unwrap();
    let r = Database::open_read_only(dir.path()).unwrap();
    let rc = r.collection("c").unwrap();
    assert_eq!(rc.count(), BATCH as usize);

    // WAL frames
    c.insert(batch(1)).unwrap();
    c.delete(&[3, 4]).unwrap();
    let rep = rc.refresh().unwrap();
    assert_eq!((rep.frames, rep.segments, rep.reloaded), (2, 0, false));
    assert_eq!(rc.ids(), c.ids());
    // a checkpoint, then more frames, seen in one refresh
    c.insert(batch(2)).unwrap();
    c.checkpoint().unwrap();
    c.upsert(vec![rec(60).with_metadata(json!({"batch": 99}))]).unwrap();
    c.insert(batch(3)).unwrap();
    let rep = rc.refresh().unwrap();
    assert_eq!((rep.segments, rep.frames, rep.reloaded), (1, 2, false), "{rep:?}");
    assert_eq!(rc.ids(), c.ids());
    assert_eq!(rc.get_metadata(60).unwrap()["batch"], 99);
    for id in [0, 60, 120, 199] {
        assert_eq!(nearest(&rc, id), id);
    }
    assert!(rc.get(3).unwrap().is_none());
    // nothing new: nothing applied
    assert!(!rc.refresh().unwrap().changed());
    // compaction: reloaded
    c.delete(&[10]).unwrap();
    c.compact().unwrap();
    assert!(rc.refresh().unwrap().reloaded);
    assert_eq!(rc.ids(), c.ids());
    // an index change by the writer: the follower's schema follows
    c.set_index("v", "Flat").unwrap();
    rc.refresh().unwrap();
    assert_eq!(rc.schema().fields[0].index, "Flat");
    assert_eq!(nearest(&rc, 77), 77);
    // a new collection appears, a dropped one goes
    let d = w.create_collection("d", schema("Flat")).unwrap();
    d.insert(batch(7)).unwrap();
    assert!(r.refresh().unwrap() >= 1);
    assert_eq!(r.collection("d").unwrap().count(), BATCH as usize);
    w.drop_collection("c").unwrap();
    r.refresh().unwrap();
    assert!(matches!(r.collection("c"), Err(Error::UnknownCollection(_))));
    assert!(matches!(rc.search(&SearchRequest::new("v", Query::Id(0), 1)), Err(Error::UnknownCollection(_))));
}

const ROLE: &str = "VECDB_READERS_TEST_ROLE";
const DB_DIR: &str = "VECDB_READERS_TEST_DB";
const WRITER_BATCHES: u64 = 60;

/// Child: ingest `WRITER_BATCHES` batches, checkpointing every 7 and compacting once; after
/// each acknowledged batch, append its number to `acked` (fsynced), so readers know what
/// they must see.
fn writer_role(db: &Path) {
    let d = Database::open(db).unwrap();
    let c = d.collection("c").unwrap();
    let mut acked = fs::OpenOptions::new().append(true).create(true).open(db.join("acked")).unwrap();
    for b in 1..WRITER_BATCHES {
        c.insert(batch(b)).unwrap();
        writeln!(acked, "{b}").unwrap();
        acked.sync_data().unwrap();
        if b % 7 == 0 {
            c.checkpoint().unwrap();
        }
        if b == 30 {
            c.compact().unwrap();
        }
        std::thread::sleep(Duration::from_millis(15));
    }
}

/// Child: follow the writer until it has acknowledged every batch; after each refresh, every
/// batch acknowledged before it is visible, batches are whole, and searches find them.
fn reader_role(db: &Path) {
    let d = Database::open_read_only(db).unwrap();
    let c = d.collection("c").unwrap();
    let start = Instant::now();
    let mut refreshes = 0;
    loop {
        let acked = fs::read_to_string(db.join("acked")).unwrap_or_default().lines().count() as u64;
        d.refresh().unwrap();
        refreshes += 1;
        let ids = c.ids();
        let n = ids.len() as u64;
        assert_eq!(n % BATCH, 0, "a torn batch is visible: {n} records");
        assert!(
            n >= (acked + 1) * BATCH,
            "acknowledged batches missing after a refresh: {n} < {}",
            (acked + 1) * BATCH
        );
        assert_eq!(ids, (0..n).collect::<Vec<_>>());
        let probe = (refreshes * 37) % n;
        assert_eq!(nearest(&c, probe), probe, "search misses a visible record");
        assert_eq!(c.get_metadata(probe).unwrap()["batch"], probe / BATCH);
        if acked == WRITER_BATCHES - 1 {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(120), "the writer did not finish");
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(refreshes > 5);
}

#[test]
fn four_reader_processes_follow_an_ingesting_writer_process() {
    match std::env::var(ROLE).as_deref() {
        Ok("writer") => return writer_role(Path::new(&std::env::var(DB_DIR).unwrap())),
        Ok("reader") => return reader_role(Path::new(&std::env::var(DB_DIR).unwrap())),
        _ => {}
    }
    let dir = tempfile::tempdir().unwrap();
    {
        let db = Database::open(dir.path()).unwrap();
        db.create_collection("c", schema("HNSW8")).unwrap().insert(batch(0)).unwrap();
    }
    let spawn = |role: &str| {
        Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "four_reader_processes_follow_an_ingesting_writer_process", "--test-threads=1"])
            .env(ROLE, role)
            .env(DB_DIR, dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let readers: Vec<_> = (0..4).map(|_| spawn("reader")).collect();
    let writer = spawn("writer");
    for (who, child) in std::iter::once(("writer", writer)).chain(readers.into_iter().map(|c| ("reader", c))) {
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{who} failed:\n{}", String::from_utf8_lossy(&out.stderr));
    }
    let db = Database::open(dir.path()).unwrap();
    assert_eq!(db.collection("c").unwrap().count() as u64, WRITER_BATCHES * BATCH);
}
