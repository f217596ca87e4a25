//! The operator's view of a lost MANIFEST (issue: "a missing MANIFEST wipes the collection"):
//! every command refuses the damaged database with an error that names the file and the way
//! out, nothing is overwritten, `db check` reports it, and `db repair` brings every record back.

mod common;

use std::fs;
use std::io::Write;

use common::*;

#[test]
fn a_deleted_manifest_is_refused_checked_and_repaired() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("photos");
    let files = photo_tree(&root);
    let db = tmp.path().join("db");
    run_json(&["index", s(&root), "--db", s(&db), "--features", "color,phash", "--json"]);
    let check = run_json(&["db", "check", s(&db), "--json"]);
    assert_eq!(check["collections"][0]["name"], "images");
    let human = run_ok(&["db", "check", s(&db)]);
    assert!(human.contains("ok"), "{human}");

    let coll = db.join("collections/images");
    let seg = coll.join("seg-00000001.seg");
    let seg_bytes = fs::read(&seg).unwrap();
    fs::remove_file(coll.join("MANIFEST")).unwrap();

    // db info refuses (never "0 collections"), naming the MANIFEST and the repair
    let err = run_err(&["db", "info", s(&db)]);
    assert!(err.contains("MANIFEST") && err.contains("likeness db repair"), "{err}");
    // indexing another folder refuses too and overwrites nothing
    let other = tmp.path().join("other");
    add_photo(&other, "x", "coffee.png", 200);
    let err = run_err(&["index", s(&other), "--db", s(&db), "--features", "color,phash"]);
    assert!(err.contains("MANIFEST"), "{err}");
    assert_eq!(fs::read(&seg).unwrap(), seg_bytes);
    // search and dedup refuse as well
    run_err(&["search", s(&files[0]), "--db", s(&db), "--feature", "color"]);

    // db check: non-zero exit, the report names the missing MANIFEST and what can be recovered
    let out = likeness().args(["db", "check", s(&db)]).output().unwrap();
    assert!(!out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("DAMAGED") && stdout.contains("MANIFEST"), "{stdout}");
    assert!(stdout.contains("usable by a repair"), "{stdout}");

    // db repair rebuilds it; every record is back
    let rep = run_json(&["db", "repair", s(&db), "--json"]);
    assert_eq!(rep["collections"][0]["outcome"], "rebuilt", "{rep}");
    let info = run_json(&["db", "info", s(&db), "--json"]);
    assert_eq!(info["collections"][0]["count"], files.len());
    run_ok(&["db", "check", s(&db)]);
    // and the database takes new work again
    let second = run_json(&["index", s(&other), "--db", s(&db), "--features", "color,phash", "--json"]);
    assert_eq!(second["added"], 1);
    let info = run_json(&["db", "info", s(&db), "--json"]);
    assert_eq!(info["collections"][0]["count"], files.len() + 1);
    // compact: one segment, nothing lost
    let compacted = run_json(&["db", "compact", s(&db), "--json"]);
    assert_eq!(compacted[0]["segments_after"], 1, "{compacted}");
    assert_eq!(compacted[0]["records"], files.len() + 1);
    // repairing a healthy database changes nothing
    let rep = run_json(&["db", "repair", s(&db), "--json"]);
    assert_eq!(rep["collections"][0]["outcome"], "not needed");
}

#[test]
fn a_torn_wal_tail_cut_on_open_is_reported_with_file_offset_and_size() {
    use vecdb::{CollectionSchema, Database, Metric, Record, Vector};
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("db");
    {
        let d = Database::open(&db).unwrap();
        let c = d.create_collection("c", CollectionSchema::single("v", 2, Metric::L2, "Flat")).unwrap();
        for i in 0..3 {
            c.insert(vec![Record::new(i).with_vector("v", Vector::Dense(vec![i as f32, 1.0]))]).unwrap();
        }
    }
    // A crash in the middle of appending a frame leaves its first bytes at the end of the log.
    let coll = db.join("collections/c");
    let wal = fs::read_dir(&coll)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "log"))
        .expect("a WAL file");
    let len = fs::metadata(&wal).unwrap().len();
    fs::OpenOptions::new().append(true).open(&wal).unwrap().write_all(&[0x2a; 11]).unwrap();

    // Reading commands leave it alone (it may be a frame being written right now) ...
    let info = run_json(&["db", "info", s(&db), "--json"]);
    assert_eq!(info["collections"][0]["count"], 3);
    assert_eq!(fs::metadata(&wal).unwrap().len(), len + 11);
    // ... the next writer cuts it and says where and how much, on stderr, by default.
    let out = likeness().args(["db", "compact", s(&db)]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let name = wal.file_name().unwrap().to_str().unwrap();
    assert!(
        stderr.contains("torn WAL tail")
            && stderr.contains(name)
            && stderr.contains(&format!("offset {len}"))
            && stderr.contains("11 bytes"),
        "{stderr}"
    );
    assert_eq!(run_json(&["db", "info", s(&db), "--json"])["collections"][0]["count"], 3);
    run_ok(&["db", "check", s(&db)]);
}

#[test]
fn db_commands_take_db_either_way_and_end_quietly_on_a_closed_pipe() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("photos");
    for (l, n) in &TREE[..3] {
        add_photo(&root, l, n, 200);
    }
    let db = tmp.path().join("db");
    run_json(&["index", s(&root), "--db", s(&db), "--features", "color", "--json"]);
    let a = run_json(&["db", "info", s(&db), "--json"]);
    let b = run_json(&["db", "info", "--db", s(&db), "--json"]);
    assert_eq!(a["collections"][0]["count"], 3);
    assert_eq!(b["collections"][0]["count"], 3);
    run_ok(&["db", "check", "--db", s(&db)]);
    let human = run_ok(&["db", "info", "--db", s(&db)]);
    assert!(human.contains("1 collection)"), "{human}");
    let e = run_err(&["db", "info"]);
    assert!(e.contains("DB"), "{e}");
    run_err(&["db", "info", s(&db), "--db", s(&db)]);
    // An index that cannot be trained on 3 records says so instead of "built".
    let set = run_json(&["db", "set-index", s(&db), "--field", "color", "--index", "IVF256,SQ8", "--json"]);
    assert_eq!(set["trained"], false, "{set}");
    let text = run_ok(&["db", "set-index", "--db", s(&db), "--field", "color", "--index", "IVF256,SQ8"]);
    assert!(text.contains("not trained yet"), "{text}");

    // `likeness db info DB | head -0`: the reader is gone before the first line is written.
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_likeness"))
        .args(["db", "info", s(&db)])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
}
