//! The files beside the records: an uploaded image goes when the last record made from it is
//! deleted (with the cached thumbnails), what a crash leaves behind is swept on the next start,
//! and files whose names are not UTF-8 are stored, shown and recognised exactly.

mod common;

use std::path::{Path, PathBuf};

use common::serve::ServeProcess;
use common::*;
use reqwest::StatusCode;

fn files_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|d| d.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    v.sort();
    v
}

#[test]
fn deleting_a_record_removes_its_upload_once_no_record_uses_it() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("db");
    let uploads = db.join("likeness-files/uploads");
    let thumbs = db.join("likeness-files/thumbs");
    let server = ServeProcess::start(&db, &["--features", "color,phash"]);
    let coffee = std::fs::read(photo("coffee.png")).unwrap();

    // The same bytes uploaded to two collections are stored once.
    let (status, a) = server.upload("images", coffee.clone(), "coffee.png");
    assert_eq!(status, StatusCode::CREATED, "{a}");
    let (status, b) = server.upload("other", coffee.clone(), "coffee-again.png");
    assert_eq!(status, StatusCode::CREATED, "{b}");
    let id = a["id"].as_str().unwrap().to_string();
    assert_eq!(b["id"], id.as_str(), "one file, one path, one id");
    assert_eq!(files_in(&uploads).len(), 1, "{:?}", files_in(&uploads));
    let (status, _) = server.get_bytes(&format!("/thumb/{id}"));
    assert_eq!(status, StatusCode::OK);
    assert_eq!(files_in(&thumbs).len(), 1, "thumbnail cached");

    // Deleting one record keeps the file the other still uses; its thumbnails go at once.
    assert_eq!(server.delete("images", &id).0, StatusCode::OK);
    assert_eq!(files_in(&uploads).len(), 1);
    assert!(files_in(&thumbs).is_empty(), "{:?}", files_in(&thumbs));
    // Deleting the last one removes the image.
    assert_eq!(server.delete("other", &id).0, StatusCode::OK);
    assert!(files_in(&uploads).is_empty(), "{:?}", files_in(&uploads));
    // Uploading it again works as the first time.
    let (status, _) = server.upload("images", coffee, "coffee.png");
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(files_in(&uploads).len(), 1);
    let (status, stderr) = server.terminate();
    assert!(status.success(), "{stderr}");
}

#[test]
fn a_restart_sweeps_what_a_crash_left_in_the_uploads_folder() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("db");
    let uploads = db.join("likeness-files/uploads");
    let server = ServeProcess::start(&db, &["--features", "color,phash"]);
    let (status, kept) = server.upload("images", std::fs::read(photo("coffee.png")).unwrap(), "coffee.png");
    assert_eq!(status, StatusCode::CREATED, "{kept}");
    drop(server); // SIGKILL
    let stored = files_in(&uploads);
    assert_eq!(stored.len(), 1);
    // What a crash leaves: an upload whose record was deleted before the file was removed, and a
    // half-written upload. A file this server did not name is never touched.
    std::fs::write(uploads.join("0123456789abcdef.png"), b"orphan").unwrap();
    std::fs::write(uploads.join("fedcba9876543210.tmp"), b"partial").unwrap();
    std::fs::write(uploads.join("notes.txt"), b"mine").unwrap();

    let server = ServeProcess::start(&db, &["--features", "color,phash"]);
    let mut want = vec![stored[0].clone(), "notes.txt".to_string()];
    want.sort();
    assert_eq!(files_in(&uploads), want);
    let (status, rec) = server.get(&format!("/api/collections/images/records/{}", kept["id"].as_str().unwrap()));
    assert_eq!(status, StatusCode::OK, "{rec}");
    // A replica sweeps nothing.
    std::fs::write(uploads.join("0123456789abcdef.png"), b"orphan").unwrap();
    let replica = ServeProcess::start(&db, &["--read-only"]);
    assert!(uploads.join("0123456789abcdef.png").exists());
    drop(replica);
}

#[cfg(unix)]
#[test]
fn file_names_that_are_not_utf8_round_trip() {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;

    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("photos");
    let plain = add_photo(&root, "cats", TREE[0].1, 300);
    // Latin-1 "café.png" and a byte that is never UTF-8, as old cameras and archives write them.
    let odd: PathBuf = root.join("cats").join(OsStr::from_bytes(b"caf\xe9 \xff.png"));
    std::fs::copy(&plain, &odd).unwrap();
    let db = tmp.path().join("db");
    let index = |prune: bool| {
        let mut a = vec!["index", s(&root), "--db", s(&db), "--features", "color,phash", "--json"];
        if prune {
            a.push("--prune");
        }
        run_json(&a)
    };
    let first = index(false);
    assert_eq!((first["added"].as_u64(), first["failed"].as_array().map(Vec::len)), (Some(2), Some(0)), "{first}");
    // Recognised as unchanged, never pruned or embedded again.
    let again = index(true);
    assert_eq!((again["unchanged"].as_u64(), again["pruned"].as_u64()), (Some(2), Some(0)), "{again}");

    // The record keeps the exact name (and a readable one); search and thumbnails find the file.
    let id = likeness::catalog::record_id(&odd.canonicalize().unwrap());
    let hits = likeness()
        .args(["search", "--db", s(&db), "--feature", "color", "-k", "2", "--json"])
        .arg(&odd)
        .output()
        .unwrap();
    assert!(hits.status.success(), "{}", String::from_utf8_lossy(&hits.stderr));
    let hits: serde_json::Value = serde_json::from_slice(&hits.stdout).unwrap();
    let ids: Vec<u64> =
        hits[0]["results"].as_array().unwrap().iter().map(|h| h["id"].as_str().unwrap().parse().unwrap()).collect();
    assert!(ids.contains(&id), "{hits}");
    let server = ServeProcess::start(&db, &[]);
    let (status, rec) = server.get(&format!("/api/collections/images/records/{id}"));
    assert_eq!(status, StatusCode::OK, "{rec}");
    assert_eq!(rec["metadata"]["path_raw"].as_str().map(|h| h.ends_with("636166e920ff2e706e67")), Some(true), "{rec}");
    assert!(rec["metadata"]["path"].as_str().unwrap().ends_with("caf\u{fffd} \u{fffd}.png"), "{rec}");
    let (status, jpeg) = server.get_bytes(&format!("/thumb/{id}"));
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&jpeg));

    // Once the file is gone, --prune removes exactly that record.
    std::fs::remove_file(&odd).unwrap();
    drop(server);
    let pruned = index(true);
    assert_eq!((pruned["pruned"].as_u64(), pruned["unchanged"].as_u64()), (Some(1), Some(1)), "{pruned}");
}
