//! A lost or damaged MANIFEST never loses records: the collection is refused (not opened empty,
//! not re-created, not overwritten), `check` reports it, and `repair` rebuilds it from the files
//! that verify. Also: `check` verifies every checksum and writes nothing.

use std::fs;
use std::path::{Path, PathBuf};

use serde_json::json;
use vecdb::check::{check_database, Status};
use vecdb::repair::{repair_database, RepairOptions, QUARANTINE_DIR};
use vecdb::{CollectionSchema, Database, Error, Metric, Record, Vector};

mod common;
use common::{snapshot_files, wal_file};

fn rec(id: u64) -> Record {
    Record::new(id)
        .with_vector("v", Vector::Dense(vec![id as f32, 1.0, (id % 7) as f32, 0.5]))
        .with_metadata(json!({"id": id}))
}

fn schema(index: &str) -> CollectionSchema {
    CollectionSchema::single("v", 4, Metric::L2, index)
}

fn coll_dir(db: &Path) -> PathBuf {
    db.join("collections").join("c")
}

fn ids(db: &Path) -> Vec<u64> {
    let db = Database::open(db).unwrap();
    db.collection("c").unwrap().ids()
}

const CHILD_DIR: &str = "VECDB_REPAIR_TEST_CHILD_DIR";
const CHILD_INDEX: &str = "VECDB_REPAIR_TEST_CHILD_INDEX";

/// A database whose collection has two segments (ids 0..20, then 20..30 with id 5 deleted) and a
/// WAL of three frames (ids 30..35) left by a process that died without closing anything.
///
/// The database is written by a child process: this test binary started again with `--exact
/// <test>` and [`CHILD_DIR`] set, so that the child runs the same test up to this call, builds
/// the files, and exits without running destructors (no checkpoint on close).
fn three_generation_db(test: &str, index: &str) -> tempfile::TempDir {
    if let Ok(d) = std::env::var(CHILD_DIR) {
        let index = std::env::var(CHILD_INDEX).unwrap();
        let db = Database::open(&d).unwrap();
        let c = db.create_collection("c", schema(&index)).unwrap();
        c.insert((0..20).map(rec).collect()).unwrap();
        c.checkpoint().unwrap();
        c.insert((20..30).map(rec).collect()).unwrap();
        c.delete(&[5]).unwrap();
        c.checkpoint().unwrap();
        c.insert(vec![rec(30), rec(31)]).unwrap();
        c.insert(vec![rec(32), rec(33)]).unwrap();
        c.insert(vec![rec(34)]).unwrap();
        std::process::exit(0);
    }
    let dir = tempfile::tempdir().unwrap();
    let st = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", test, "--test-threads=1"])
        .env(CHILD_DIR, dir.path())
        .env(CHILD_INDEX, index)
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(st.success());
    let mut files: Vec<String> = fs::read_dir(coll_dir(dir.path()))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with("index-"))
        .collect();
    files.sort();
    assert_eq!(files, ["MANIFEST", "seg-00000001.seg", "seg-00000002.seg", "wal-00000003.log"]);
    dir
}

fn expected() -> Vec<u64> {
    (0..35).filter(|&i| i != 5).collect()
}

#[test]
fn missing_manifest_is_refused_and_nothing_changes() {
    let dir = three_generation_db("missing_manifest_is_refused_and_nothing_changes", "Flat");
    let m = coll_dir(dir.path()).join("MANIFEST");
    fs::remove_file(&m).unwrap();
    let before = snapshot_files(dir.path());
    for _ in 0..2 {
        match Database::open(dir.path()) {
            Err(Error::MissingManifest { dir: d, files }) => {
                assert_eq!(d, coll_dir(dir.path()));
                assert!(files.contains("seg-00000001.seg") && files.contains("wal-"), "{files}");
            }
            other => panic!("expected MissingManifest, got {other:?}"),
        }
    }
    let msg = Database::open(dir.path()).unwrap_err().to_string();
    assert!(msg.contains("no MANIFEST") && msg.contains("repair"), "{msg}");
    // the failed opens removed, created and overwrote nothing (the LOCK file aside)
    let after = snapshot_files(dir.path());
    assert_eq!(before, after);
}

#[test]
fn repair_rebuilds_a_deleted_manifest_with_every_record() {
    for index in ["Flat", "HNSW8"] {
        let dir = three_generation_db("repair_rebuilds_a_deleted_manifest_with_every_record", index);
        fs::remove_file(coll_dir(dir.path()).join("MANIFEST")).unwrap();
        let report = check_database(dir.path()).unwrap();
        assert!(!report.is_healthy());
        assert_eq!(report.collections[0].files[0].status, Status::Damaged);
        let r = repair_database(dir.path(), &RepairOptions::default()).unwrap();
        let c = &r.collections[0];
        assert_eq!(c.outcome, "rebuilt");
        assert_eq!(c.segments, vec![1, 2]);
        assert_eq!(c.wal_frames, 3);
        assert_eq!(ids(dir.path()), expected(), "{index}");
        // the schema (index spec included) came back from the files
        let db = Database::open(dir.path()).unwrap();
        assert_eq!(db.collection("c").unwrap().schema(), &schema(index));
        drop(db);
        assert!(check_database(dir.path()).unwrap().is_healthy());
    }
}

#[test]
fn a_damaged_manifest_is_reported_and_repaired_and_kept_aside() {
    let dir = three_generation_db("a_damaged_manifest_is_reported_and_repaired_and_kept_aside", "Flat");
    let m = coll_dir(dir.path()).join("MANIFEST");
    let mut b = fs::read(&m).unwrap();
    let n = b.len();
    b[n - 3] ^= 0x20;
    fs::write(&m, &b).unwrap();
    match Database::open(dir.path()) {
        Err(Error::Corrupt { path, .. }) => assert_eq!(path, m),
        other => panic!("expected Corrupt naming the MANIFEST, got {other:?}"),
    }
    let report = check_database(dir.path()).unwrap();
    let f = &report.collections[0].files[0];
    assert_eq!((f.file.as_str(), f.status), ("MANIFEST", Status::Damaged));
    let r = repair_database(dir.path(), &RepairOptions::default()).unwrap();
    assert!(r.collections[0].quarantined.iter().any(|(f, _)| f == "MANIFEST"));
    assert_eq!(fs::read(coll_dir(dir.path()).join(QUARANTINE_DIR).join("MANIFEST")).unwrap(), b);
    assert_eq!(ids(dir.path()), expected());
}

#[test]
fn repair_after_an_interrupted_compaction_does_not_resurrect_deleted_records() {
    let dir = three_generation_db("repair_after_an_interrupted_compaction_does_not_resurrect_deleted_records", "Flat");
    let cdir = coll_dir(dir.path());
    let old: Vec<(PathBuf, Vec<u8>)> = ["seg-00000001.seg", "seg-00000002.seg"]
        .iter()
        .map(|n| (cdir.join(n), fs::read(cdir.join(n)).unwrap()))
        .collect();
    {
        let db = Database::open(dir.path()).unwrap();
        let c = db.collection("c").unwrap();
        c.delete(&[7]).unwrap();
        c.compact().unwrap();
    }
    // a crash after the compaction's MANIFEST but before the old segments were removed
    for (p, b) in &old {
        fs::write(p, b).unwrap();
    }
    fs::remove_file(cdir.join("MANIFEST")).unwrap();
    let r = repair_database(dir.path(), &RepairOptions::default()).unwrap();
    let c = &r.collections[0];
    assert_eq!(c.segments, vec![3]);
    assert_eq!(c.quarantined.len(), 2, "{:?}", c.quarantined);
    let want: Vec<u64> = expected().into_iter().filter(|&i| i != 7).collect();
    assert_eq!(ids(dir.path()), want);
}

#[test]
fn repair_sets_a_damaged_segment_aside_and_keeps_the_rest() {
    let dir = three_generation_db("repair_sets_a_damaged_segment_aside_and_keeps_the_rest", "Flat");
    let cdir = coll_dir(dir.path());
    fs::remove_file(cdir.join("MANIFEST")).unwrap();
    let s2 = cdir.join("seg-00000002.seg");
    let mut b = fs::read(&s2).unwrap();
    b[100] ^= 0xff;
    fs::write(&s2, &b).unwrap();
    let r = repair_database(dir.path(), &RepairOptions::default()).unwrap();
    let c = &r.collections[0];
    assert_eq!(c.segments, vec![1]);
    assert!(c.quarantined.iter().any(|(f, why)| f == "seg-00000002.seg" && why.contains("checksum")), "{c:?}");
    assert!(c.notes.iter().any(|n| n.contains("lost")), "{:?}", c.notes);
    // segment 1 and the WAL survive: ids 0..20 (5 is back: its tombstone was in the lost segment) and 30..35
    let want: Vec<u64> = (0..20).chain(30..35).collect();
    assert_eq!(ids(dir.path()), want);
    // the damaged file is kept, and a later checkpoint does not reuse its number
    assert_eq!(fs::read(cdir.join(QUARANTINE_DIR).join("seg-00000002.seg")).unwrap(), b);
    let db = Database::open(dir.path()).unwrap();
    let coll = db.collection("c").unwrap();
    coll.insert(vec![rec(99)]).unwrap();
    coll.checkpoint().unwrap();
    assert!(cdir.join("seg-00000003.seg").exists());
}

#[test]
fn check_verifies_every_file_and_writes_nothing() {
    let dir = three_generation_db("check_verifies_every_file_and_writes_nothing", "HNSW8");
    // a clean close saves the HNSW snapshot and moves the WAL into a segment
    drop(Database::open(dir.path()).unwrap());
    let before = snapshot_files(dir.path());
    let report = check_database(dir.path()).unwrap();
    assert!(report.is_healthy(), "{report:?}");
    let kinds: Vec<&str> = report.collections[0].files.iter().map(|f| f.kind).collect();
    assert_eq!(kinds.iter().filter(|k| **k == "segment").count(), 3, "{kinds:?}");
    assert!(kinds.contains(&"wal") && kinds.contains(&"snapshot") && kinds[0] == "manifest", "{kinds:?}");
    assert_eq!(before, snapshot_files(dir.path()));

    // a flipped bit in a segment: damaged, named
    let cdir = coll_dir(dir.path());
    let s1 = cdir.join("seg-00000001.seg");
    let good = fs::read(&s1).unwrap();
    let mut b = good.clone();
    b[70] ^= 1;
    fs::write(&s1, &b).unwrap();
    let report = check_database(dir.path()).unwrap();
    assert!(!report.is_healthy());
    let f = report.collections[0].files.iter().find(|f| f.file == "seg-00000001.seg").unwrap();
    assert_eq!(f.status, Status::Damaged);
    fs::write(&s1, &good).unwrap();

    // a damaged index snapshot is damage too (derived data: rebuilt at the next open)
    let snap = cdir.join("index-v");
    let victim = fs::read_dir(&snap).unwrap().map(|e| e.unwrap().path()).find(|p| p.is_file()).unwrap();
    let good = fs::read(&victim).unwrap();
    let mut b = good.clone();
    let mid = b.len() / 2;
    b[mid] ^= 0x10;
    fs::write(&victim, &b).unwrap();
    let report = check_database(dir.path()).unwrap();
    let f = report.collections[0].files.iter().find(|f| f.kind == "snapshot").unwrap();
    assert_eq!(f.status, Status::Damaged, "{} changed: {f:?}", victim.display());
    fs::write(&victim, &good).unwrap();
    assert!(check_database(dir.path()).unwrap().is_healthy());
}

#[test]
fn check_tells_a_torn_tail_from_damage_in_the_middle() {
    let dir = three_generation_db("check_tells_a_torn_tail_from_damage_in_the_middle", "Flat");
    let cdir = coll_dir(dir.path());
    let wal = wal_file(&cdir);
    let good = fs::read(&wal).unwrap();
    // torn tail: the last frame cut short
    fs::write(&wal, &good[..good.len() - 3]).unwrap();
    let report = check_database(dir.path()).unwrap();
    let f = report.collections[0].files.iter().find(|f| f.kind == "wal").unwrap();
    assert_eq!(f.status, Status::Warning, "{f:?}");
    assert!(f.detail.contains("torn tail"), "{}", f.detail);
    assert!(report.is_healthy());
    // damage in the first frame (its id field), intact frames after it
    let mut b = good.clone();
    let slen = u32::from_le_bytes(b[16..20].try_into().unwrap()) as usize;
    let first_payload = 24 + slen + 20;
    b[first_payload + 6] ^= 0x40;
    fs::write(&wal, &b).unwrap();
    let report = check_database(dir.path()).unwrap();
    let f = report.collections[0].files.iter().find(|f| f.kind == "wal").unwrap();
    assert_eq!(f.status, Status::Damaged, "{f:?}");
}

#[test]
fn unfinished_creates_are_cleaned_but_foreign_directories_are_left() {
    let dir = tempfile::tempdir().unwrap();
    drop(Database::open(dir.path()).unwrap());
    let cdir = dir.path().join("collections");
    fs::create_dir(cdir.join(".c.creating")).unwrap();
    fs::write(cdir.join(".c.creating").join("MANIFEST.tmp"), b"x").unwrap();
    fs::create_dir(cdir.join(".git")).unwrap();
    fs::create_dir(cdir.join("empty")).unwrap();
    let db = Database::open(dir.path()).unwrap();
    assert!(db.collection_names().is_empty());
    assert!(!cdir.join(".c.creating").exists() && !cdir.join("empty").exists());
    assert!(cdir.join(".git").exists());
    // a create never reuses a directory of the same name
    let c = db.create_collection("c", schema("Flat")).unwrap();
    c.insert(vec![rec(1)]).unwrap();
    assert!(db.create_collection("c", schema("Flat")).is_err());
}

#[test]
fn a_newer_wal_with_records_is_never_deleted() {
    let dir = three_generation_db("a_newer_wal_with_records_is_never_deleted", "Flat");
    let cdir = coll_dir(dir.path());
    let wal = wal_file(&cdir);
    let name = wal.file_name().unwrap().to_str().unwrap().to_string();
    let gen: u64 = name.trim_start_matches("wal-").trim_end_matches(".log").parse().unwrap();
    // rewrite the header's generation as gen + 5: a log the MANIFEST does not know, with frames
    let data = fs::read(&wal).unwrap();
    let newer = cdir.join(format!("wal-{:08}.log", gen + 5));
    let mut b = data.clone();
    b[8..16].copy_from_slice(&(gen + 5).to_le_bytes());
    let slen = u32::from_le_bytes(b[16..20].try_into().unwrap()) as usize;
    let crc = crc32fast::hash(&b[..20 + slen]);
    b[20 + slen..24 + slen].copy_from_slice(&crc.to_le_bytes());
    fs::write(&newer, &b).unwrap();
    let err = Database::open(dir.path()).unwrap_err().to_string();
    assert!(err.contains(&format!("wal-{:08}.log", gen + 5)), "{err}");
    assert_eq!(fs::read(&newer).unwrap(), b);
}

#[test]
fn logs_and_segments_of_the_previous_format_still_open() {
    let dir = three_generation_db("logs_and_segments_of_the_previous_format_still_open", "Flat");
    let cdir = coll_dir(dir.path());
    let wal = wal_file(&cdir);
    // turn the WAL header into a "VDBWAL01" one (magic | gen | crc), frames unchanged
    let data = fs::read(&wal).unwrap();
    let slen = u32::from_le_bytes(data[16..20].try_into().unwrap()) as usize;
    let mut v1 = b"VDBWAL01".to_vec();
    v1.extend_from_slice(&data[8..16]);
    let crc = crc32fast::hash(&v1);
    v1.extend_from_slice(&crc.to_le_bytes());
    v1.extend_from_slice(&data[24 + slen..]);
    fs::write(&wal, &v1).unwrap();
    assert_eq!(ids(dir.path()), expected());
}
