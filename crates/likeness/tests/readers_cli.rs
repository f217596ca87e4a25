//! Reading commands beside a running writer: `likeness search`, `db info`, `dedup` and
//! `vectors export` open the database read-only, so they work while `likeness serve` holds it
//! (they used to fail with "locked by another process") and see what it has acknowledged; a
//! second writer is still refused.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use common::*;
use reqwest::blocking::multipart::{Form, Part};

struct Serve(Child);
impl Drop for Serve {
    fn drop(&mut self) {
        self.0.kill().ok();
        self.0.wait().ok();
    }
}

#[test]
fn reading_commands_work_while_serve_writes() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("photos");
    let files: Vec<_> = TREE[..6].iter().map(|(l, n)| add_photo(&root, l, n, 400)).collect();
    let db = tmp.path().join("db");
    run_json(&["index", s(&root), "--db", s(&db), "--features", "color,phash", "--json"]);

    let mut child = Command::new(env!("CARGO_BIN_EXE_likeness"))
        .args(["serve", "--db", s(&db), "--addr", "127.0.0.1:0", "--features", "color,phash"])
        .env("LIKENESS_MODEL_DIR", model_dir())
        .env_remove("LIKENESS_API_KEY")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let server = Serve(child);
    let base = line.split("http://").nth(1).map(|r| format!("http://{}", r.trim().trim_end_matches('/'))).unwrap();

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
    let form = Form::new().part("image", Part::bytes(bytes).file_name("coffee-upload.png")).text("label", "uploads");
    let res = reqwest::blocking::Client::new()
        .post(format!("{base}/api/collections/images/images"))
        .multipart(form)
        .send()
        .unwrap();
    assert!(res.status().is_success(), "{}", res.text().unwrap());
    let info = run_json(&["db", "info", s(&db), "--json"]);
    assert_eq!(info["collections"][0]["count"], 7);
    let hits =
        run_json(&["search", s(&photo("coffee.png")), "--db", s(&db), "--feature", "color", "-k", "2", "--json"]);
    let labels: Vec<&str> = hits[0]["results"].as_array().unwrap().iter().filter_map(|h| h["label"].as_str()).collect();
    assert!(labels.contains(&"uploads"), "{hits}");
    drop(server);
}
