//! Damaged files: a torn WAL tail is cut and the database opens with every earlier
//! record; damage in the middle of the WAL, in a segment or in the manifest is an
//! `Error::Corrupt` naming the file. Never a panic, never wrong data.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use rand::{RngExt, SeedableRng};
use serde_json::json;
use vecdb::check::Status;
use vecdb::{CollectionSchema, Database, Error, Metric, Record, Vector};

const CHILD_ENV: &str = "VECDB_CORRUPTION_CHILD_DIR";
const BATCHES: u64 = 5;
const PER_BATCH: u64 = 10;

fn vec_of(id: u64) -> Vec<f32> {
    (0..8).map(|j| (id * 8 + j) as f32 * 0.25).collect()
}
fn record_of(id: u64) -> Record {
    Record::new(id)
        .with_vector("v", Vector::Dense(vec_of(id)))
        .with_metadata(json!({"id": id, "s": "x".repeat(id as usize % 13)}))
}
fn batch(b: u64) -> Vec<Record> {
    (b * PER_BATCH..(b + 1) * PER_BATCH).map(record_of).collect()
}

/// A database whose records are all still in the WAL (never checkpointed), made by a child process
/// that writes BATCHES insert batches and exits without running destructors (a clean close would
/// checkpoint).
///
/// The child is this test binary re-run on the calling test, `test_name`, with `CHILD_ENV` set: in
/// the child, this function writes the batches into that directory and exits at once, so the rest of
/// the test never runs there. `test_name` must be the name of the test that calls this function.
fn wal_only_db(test_name: &str) -> tempfile::TempDir {
    if let Some(dir) = std::env::var_os(CHILD_ENV) {
        write_batches_and_exit(Path::new(&dir));
    }
    let dir = tempfile::tempdir().unwrap();
    let st = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", test_name, "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, dir.path())
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(st.success());
    assert!(wal_path(dir.path()).exists(), "the child run of {test_name} wrote no WAL (wrong test name?)");
    dir
}

/// The child's work (see [`wal_only_db`]).
fn write_batches_and_exit(dir: &Path) -> ! {
    let db = Database::open(dir).unwrap();
    let c = db.create_collection("c", CollectionSchema::single("v", 8, Metric::L2, "Flat")).unwrap();
    for b in 0..BATCHES {
        c.insert(batch(b)).unwrap();
    }
    std::process::exit(0);
}

fn coll_dir(db: &Path) -> PathBuf {
    db.join("collections").join("c")
}
fn wal_path(db: &Path) -> PathBuf {
    coll_dir(db).join("wal-00000001.log")
}
fn only_file(db: &Path, ext: &str) -> PathBuf {
    fs::read_dir(coll_dir(db))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == ext))
        .unwrap_or_else(|| panic!("no .{ext} file"))
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for e in fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            fs::copy(e.path(), target).unwrap();
        }
    }
}

/// Offsets of the WAL frames (format in `wal.rs`: a "VDBWAL02" header of 24 bytes plus the
/// schema JSON, then frames with 20-byte headers).
fn frame_offsets(wal: &[u8]) -> Vec<usize> {
    assert_eq!(&wal[..8], b"VDBWAL02");
    let mut pos = 24 + u32::from_le_bytes(wal[16..20].try_into().unwrap()) as usize;
    let mut out = vec![];
    while pos + 20 <= wal.len() {
        out.push(pos);
        pos += 20 + u32::from_le_bytes(wal[pos..pos + 4].try_into().unwrap()) as usize;
    }
    out
}

/// Open and check that the stored records are exactly whole batches 0..n with the right data; return n.
fn open_and_verify(db: &Path) -> vecdb::Result<u64> {
    let d = Database::open(db)?;
    let c = d.collection("c")?;
    let n = c.count() as u64;
    assert_eq!(n % PER_BATCH, 0, "partial batch visible: {n} records");
    assert_eq!(c.ids(), (0..n).collect::<Vec<_>>(), "stored ids are not a prefix of the batches");
    c.for_each(|r| {
        assert_eq!(r.vectors["v"], Vector::Dense(vec_of(r.id)));
        assert_eq!(r.metadata, record_of(r.id).metadata);
    })?;
    Ok(n / PER_BATCH)
}

/// Open a database whose segment `check` reported damaged: either the open reports it, or the
/// damage is in a part read lazily (a vector, metadata), and reading every record either
/// reports it or returns without panicking.
fn open_and_verify_lazy(db: &Path) -> vecdb::Result<()> {
    let d = Database::open(db)?;
    let c = d.collection("c")?;
    c.for_each(|_| {})?;
    Ok(())
}

fn flip(path: &Path, at: usize) {
    let mut b = fs::read(path).unwrap();
    b[at] ^= 0x20;
    fs::write(path, b).unwrap();
}

fn assert_corrupt_names(r: vecdb::Result<u64>, file: &Path, what: &str) {
    match r {
        Err(Error::Corrupt { path, reason }) => {
            assert_eq!(path.file_name(), file.file_name(), "{what}: wrong file named ({reason})")
        }
        other => panic!("{what}: expected Corrupt naming {}, got {other:?}", file.display()),
    }
}

#[test]
fn torn_wal_tail_is_cut_and_the_rest_survives() {
    const NAME: &str = "torn_wal_tail_is_cut_and_the_rest_survives";
    let pristine = wal_only_db(NAME);
    assert_eq!(open_and_verify(pristine.path()).unwrap(), BATCHES);
    // opening checkpointed it on close; rebuild a WAL-only copy for the damage cases
    let pristine = wal_only_db(NAME);
    let wal = fs::read(wal_path(pristine.path())).unwrap();
    let frames = frame_offsets(&wal);
    assert_eq!(frames.len(), BATCHES as usize);
    let last = *frames.last().unwrap();
    type Damage = Box<dyn Fn(&Path)>;
    let cases: Vec<(&str, Damage)> = vec![
        ("cut 1 byte", Box::new(|p: &Path| trunc(p, 1))),
        ("cut 30 bytes", Box::new(|p: &Path| trunc(p, 30))),
        ("cut into the frame header", Box::new(move |p: &Path| set_len(p, last + 7))),
        ("cut after the frame header", Box::new(move |p: &Path| set_len(p, last + 20))),
        ("flip in the last payload", Box::new(move |p: &Path| flip(p, last + 40))),
        ("flip in the last header", Box::new(move |p: &Path| flip(p, last + 2))),
    ];
    for (what, damage) in cases {
        let tmp = tempfile::tempdir().unwrap();
        copy_dir(pristine.path(), tmp.path());
        damage(&wal_path(tmp.path()));
        assert_eq!(open_and_verify(tmp.path()).unwrap_or_else(|e| panic!("{what}: {e}")), BATCHES - 1, "{what}");
        // the cut is permanent and new writes land after it
        {
            let d = Database::open(tmp.path()).unwrap();
            d.collection("c").unwrap().insert(batch(BATCHES - 1)).unwrap();
        }
        assert_eq!(open_and_verify(tmp.path()).unwrap(), BATCHES, "{what}: after rewrite");
    }
    // zeros or garbage after the last frame (a preallocated or half-written tail)
    for (what, tail) in
        [("zero tail", vec![0u8; 4096]), ("garbage tail", (0..999).map(|i| (i * 7 + 3) as u8).collect())]
    {
        let tmp = tempfile::tempdir().unwrap();
        copy_dir(pristine.path(), tmp.path());
        let p = wal_path(tmp.path());
        let mut b = fs::read(&p).unwrap();
        b.extend_from_slice(&tail);
        fs::write(&p, b).unwrap();
        assert_eq!(open_and_verify(tmp.path()).unwrap(), BATCHES, "{what}");
    }
}

fn trunc(p: &Path, by: u64) {
    let f = fs::OpenOptions::new().write(true).open(p).unwrap();
    let len = f.metadata().unwrap().len();
    f.set_len(len - by).unwrap();
}
fn set_len(p: &Path, len: usize) {
    fs::OpenOptions::new().write(true).open(p).unwrap().set_len(len as u64).unwrap();
}

#[test]
fn damage_in_the_middle_of_the_wal_is_reported() {
    let pristine = wal_only_db("damage_in_the_middle_of_the_wal_is_reported");
    let wal = fs::read(wal_path(pristine.path())).unwrap();
    let frames = frame_offsets(&wal);
    for (what, at) in [
        ("file header", 3),
        ("first frame header", frames[0] + 1),
        ("first frame payload", frames[0] + 30),
        ("third frame payload", frames[2] + 50),
    ] {
        let tmp = tempfile::tempdir().unwrap();
        copy_dir(pristine.path(), tmp.path());
        flip(&wal_path(tmp.path()), at);
        assert_corrupt_names(open_and_verify(tmp.path()), &wal_path(tmp.path()), what);
    }
    // random single-byte damage anywhere: a clean prefix of batches, or a Corrupt error
    let mut rng = rand::rngs::StdRng::seed_from_u64(5);
    for _ in 0..40 {
        let tmp = tempfile::tempdir().unwrap();
        copy_dir(pristine.path(), tmp.path());
        let at = rng.random_range(0..wal.len());
        flip(&wal_path(tmp.path()), at);
        match open_and_verify(tmp.path()) {
            Ok(n) => assert!(at >= *frames.last().unwrap() && n == BATCHES - 1, "flip at {at}: {n} batches"),
            Err(Error::Corrupt { path, .. }) => {
                assert_eq!(path.file_name(), wal_path(tmp.path()).file_name())
            }
            Err(e) => panic!("flip at {at}: unexpected error {e}"),
        }
    }
}

#[test]
fn damaged_segments_and_manifest_are_reported() {
    let pristine = tempfile::tempdir().unwrap();
    {
        let d = Database::open(pristine.path()).unwrap();
        let c = d.create_collection("c", CollectionSchema::single("v", 8, Metric::L2, "Flat")).unwrap();
        for b in 0..BATCHES {
            c.insert(batch(b)).unwrap();
        }
        c.checkpoint().unwrap();
    }
    assert_eq!(open_and_verify(pristine.path()).unwrap(), BATCHES);
    let seg = only_file(pristine.path(), "seg");
    let seg_len = fs::metadata(&seg).unwrap().len() as usize;
    // the vector column starts at the first page boundary after the 64-byte header and the ids
    // section (50 × 8 bytes): segments ("VDBSEG03") align their columns to pages
    let vectors_at = (64 + (BATCHES * PER_BATCH * 8) as usize).div_ceil(4096) * 4096;
    let fixed = [
        ("header magic", 2),
        ("first id", 64),
        ("a vector", vectors_at + 100),
        ("footer", seg_len - 30),
        ("end marker", seg_len - 3),
    ];
    let mut rng = rand::rngs::StdRng::seed_from_u64(11);
    let random: Vec<(&str, usize)> = (0..40).map(|_| ("random byte", rng.random_range(0..seg_len))).collect();
    for (what, at) in fixed.iter().copied().chain(random) {
        let tmp = tempfile::tempdir().unwrap();
        copy_dir(pristine.path(), tmp.path());
        let p = only_file(tmp.path(), "seg");
        flip(&p, at);
        // Opening verifies a segment's footer, ids, tombstones and info; its vector columns and
        // metadata are read in place and verified block by block by `check` (format
        // "VDBSEG03"), so damage anywhere must be reported by one or the other.
        let report = vecdb::check::check_database(tmp.path()).unwrap();
        let seg_name = p.file_name().unwrap().to_string_lossy().into_owned();
        let flagged = report.collections[0].files.iter().any(|f| f.file == seg_name && f.status == Status::Damaged);
        if flagged {
            match open_and_verify_lazy(tmp.path()) {
                Ok(()) => {}
                Err(Error::Corrupt { path, .. }) => assert_eq!(path.file_name(), p.file_name(), "{what}"),
                Err(e) => panic!("{what} at {at}: unexpected error {e}"),
            }
            continue;
        }
        // only alignment padding is outside every checksum; then the data must be intact
        match open_and_verify(tmp.path()) {
            Ok(n) => assert!(n == BATCHES && !fixed.iter().any(|f| f.1 == at), "{what} at {at}: opened"),
            Err(e) => panic!("{what} at {at}: check found nothing, but {e}"),
        }
    }
    // truncated segment
    let tmp = tempfile::tempdir().unwrap();
    copy_dir(pristine.path(), tmp.path());
    let p = only_file(tmp.path(), "seg");
    trunc(&p, 100);
    assert_corrupt_names(open_and_verify(tmp.path()), &p, "truncated segment");
    // missing segment: an I/O error naming it
    let tmp = tempfile::tempdir().unwrap();
    copy_dir(pristine.path(), tmp.path());
    let p = only_file(tmp.path(), "seg");
    fs::remove_file(&p).unwrap();
    match open_and_verify(tmp.path()) {
        Err(Error::Io { path, .. }) => assert_eq!(path, p),
        other => panic!("missing segment: {other:?}"),
    }
    // damaged manifest
    let tmp = tempfile::tempdir().unwrap();
    copy_dir(pristine.path(), tmp.path());
    let m = coll_dir(tmp.path()).join("MANIFEST");
    let len = fs::metadata(&m).unwrap().len() as usize;
    flip(&m, len / 2);
    assert_corrupt_names(open_and_verify(tmp.path()), &m, "manifest");
}
