//! Reading commands beside a running writer: `likeness search`, `db info`, `dedup` and
//! `vectors export` open the database read-only, so they work while `likeness serve` holds it
//! (they used to fail with "locked by another process") and see what it has acknowledged; a
//! second writer is still refused.

mod common;

use common::serve::ServeProcess;
use common::*;

#[test]
fn reading_commands_work_while_serve_writes() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("photos");
    let files: Vec<_> = TREE[..6].iter().map(|(l, n)| add_photo(&root, l, n, 400)).collect();
    let db = tmp.path().join("db");
    run_json(&["index", s(&root), "--db", s(&db), "--features", "color,phash", "--json"]);

    let server = ServeProcess::start(&db, &["--features", "color,phash"]);

    let info = run_json(&["db", "info", s(&db), "--json"]);
    assert_eq!(info["collections"][0]["count"], 6);
    let hits = run_json(&["search", s(&files[0]), "--db", s(&db), "--feature", "color", "--json"]);
    assert_eq!(result_path(&hits[0]["results"][0]), s(&files[0]));
    run_json(&["dedup", "--db", s(&db), "--feature", "phash", "--json"]);
    let npy = tmp.path().join("color.npy");
    run_ok(&["vectors", "export", "--db", s(&db), "--field", "color", "--out", s(&npy)]);
    assert!(std::fs::metadata(&npy).unwrap().len() > 6 * 4);
    // a second writer is still refused
    let err = run_err(&["index", s(&root), "--db", s(&db), "--features", "color,phash"]);
    assert!(err.contains("locked"), "{err}");

    // the server acknowledges an upload; a reading command started afterwards sees it
    let bytes = std::fs::read(photo("coffee.png")).unwrap();
    let (status, v) = server.upload_labelled("images", bytes, "coffee-upload.png", Some("uploads"));
    assert!(status.is_success(), "{v}");
    let info = run_json(&["db", "info", s(&db), "--json"]);
    assert_eq!(info["collections"][0]["count"], 7);
    let hits =
        run_json(&["search", s(&photo("coffee.png")), "--db", s(&db), "--feature", "color", "-k", "2", "--json"]);
    let labels: Vec<&str> = hits[0]["results"].as_array().unwrap().iter().filter_map(|h| h["label"].as_str()).collect();
    assert!(labels.contains(&"uploads"), "{hits}");
    drop(server);
}

#[test]
fn sigterm_stops_serve_cleanly_after_saving() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("photos");
    for (l, n) in &TREE[..4] {
        add_photo(&root, l, n, 300);
    }
    let db = tmp.path().join("db");
    run_json(&["index", s(&root), "--db", s(&db), "--features", "color,phash", "--json"]);
    assert_eq!(run_json(&["db", "info", s(&db), "--json"])["collections"][0]["segments"], 1);
    let server = ServeProcess::start(&db, &["--features", "color,phash"]);
    let (status, v) = server.upload("images", std::fs::read(photo("coffee.png")).unwrap(), "c.png");
    assert!(status.is_success(), "{v}");
    let (status, stderr) = server.terminate();
    assert!(status.success(), "serve exited with {status} after SIGTERM: {stderr}");
    assert!(stderr.contains("SIGTERM"), "{stderr}");
    // the upload was checkpointed into a segment on the way out, and nothing is damaged
    let info = run_json(&["db", "info", s(&db), "--json"]);
    assert_eq!(info["collections"][0]["count"], 5);
    assert_eq!(info["collections"][0]["segments"], 2, "{info}");
    run_ok(&["db", "check", s(&db)]);
}
