//! The routes behind the web page's views (browse, duplicates, originals, moving and deleting
//! files, favicon, server facts, distance bands) over real photos, and the browser test that
//! drives every view of the page in Chromium.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::serve::ServeProcess;
use common::*;
use likeness::image_meta::ImageMeta;
use reqwest::blocking::Client;
use reqwest::StatusCode;
use serde_json::{json, Value};

/// The standard photo tree (13 labelled photos) plus three planted copies, indexed with
/// color+phash; the copies make three duplicate groups by phash: chelsea (+ JPEG q30),
/// camera (+ half size), astronaut (+ JPEG q30). Returns (root, db).
fn planted_tree(tmp: &Path) -> (PathBuf, PathBuf) {
    let root = tmp.join("photos");
    for (l, n) in TREE {
        add_photo(&root, l, n, 512);
    }
    edited_copy(&root.join("animals/chelsea.png"), "q30", &root.join("animals/chelsea_q30.jpg"));
    edited_copy(&root.join("objects/camera.png"), "half", &root.join("objects/camera_half.png"));
    edited_copy(&root.join("people/astronaut.png"), "q30", &root.join("people/astronaut_q30.jpg"));
    let db = tmp.join("db");
    run_json(&["index", s(&root), "--db", s(&db), "--features", "color,phash", "--json"]);
    (root.canonicalize().unwrap(), db)
}

/// Give records tags as the CNN classifier would (the tests run without the model).
fn add_tags(db: &Path, tags: &[(&str, &[&str])]) {
    let d = vecdb::Database::open(db).unwrap();
    let c = d.collection("images").unwrap();
    for id in c.ids() {
        let mut rec = c.get(id).unwrap().unwrap();
        let mut meta = ImageMeta::from_metadata(rec.metadata.clone());
        let name = file_name(meta.path.as_deref().unwrap());
        if let Some((_, t)) = tags.iter().find(|(n, _)| *n == name) {
            meta.tags = t.iter().map(|s| s.to_string()).collect();
            rec.metadata = meta.to_metadata();
            c.upsert(vec![rec]).unwrap();
        }
    }
    c.checkpoint().unwrap();
}

/// Every record of the collection, through the browse route.
fn all_records(srv: &ServeProcess) -> Vec<Value> {
    let (st, v) = srv.get("/api/collections/images/records?limit=1000");
    assert_eq!(st, StatusCode::OK, "{v}");
    v["records"].as_array().unwrap().clone()
}

fn id_of(srv: &ServeProcess, name: &str) -> String {
    let recs = all_records(srv);
    let r = recs.iter().find(|r| r["name"] == name).unwrap_or_else(|| panic!("no record {name}"));
    r["id"].as_str().unwrap().to_string()
}

#[test]
fn browse_lists_pages_and_filters() {
    let tmp = tempfile::tempdir().unwrap();
    let (root, db) = planted_tree(tmp.path());
    add_tags(&db, &[("chelsea.png", &["tabby", "Egyptian cat"]), ("horse.png", &["sorrel"])]);
    let srv = ServeProcess::start(&db, &["--root", s(&root)]);

    let (st, p1) = srv.get("/api/collections/images/records?limit=5");
    assert_eq!(st, StatusCode::OK, "{p1}");
    assert_eq!(p1["total"], 16, "{p1}");
    assert_eq!((p1["offset"].as_u64(), p1["limit"].as_u64()), (Some(0), Some(5)));
    let recs = p1["records"].as_array().unwrap();
    assert_eq!(recs.len(), 5);
    let paths: Vec<&str> = recs.iter().map(|r| r["path"].as_str().unwrap()).collect();
    let mut sorted = paths.clone();
    sorted.sort();
    assert_eq!(paths, sorted, "sorted by path");
    let first = &recs[0];
    assert!(first["width"].as_u64().unwrap() > 0 && first["size"].as_u64().unwrap() > 0, "{first}");
    assert!(first["format"].is_string() && first["mtime"].as_u64().is_some() && first["label"].is_string(), "{first}");
    assert!(first["thumb"].as_str().unwrap().starts_with("/thumb/"));
    assert!(first["original"].as_str().unwrap().ends_with("/original"), "under --root: {first}");

    // The next page continues where the first stopped; past the end is empty.
    let (_, p2) = srv.get("/api/collections/images/records?offset=5&limit=5");
    let p2: Vec<&str> = p2["records"].as_array().unwrap().iter().map(|r| r["path"].as_str().unwrap()).collect();
    assert!(p2.iter().all(|p| *p > paths[4]), "{p2:?}");
    let (_, end) = srv.get("/api/collections/images/records?offset=100");
    assert_eq!((end["total"].as_u64(), end["records"].as_array().unwrap().len()), (Some(16), 0));

    // Label and tag filters; the total counts what passes them.
    let (_, animals) = srv.get("/api/collections/images/records?label=animals");
    assert_eq!(animals["total"], 3, "{animals}");
    assert!(animals["records"].as_array().unwrap().iter().all(|r| r["label"] == "animals"));
    let (_, cats) = srv.get("/api/collections/images/records?tag=CAT");
    assert_eq!(cats["total"], 1, "tag text matches case-insensitively inside a tag: {cats}");
    assert_eq!(cats["records"][0]["tags"], json!(["tabby", "Egyptian cat"]));
    let (_, none) = srv.get("/api/collections/images/records?tag=zebra&label=animals");
    assert_eq!(none["total"], 0);

    // Bad input is a 400, an unknown collection a 404.
    for bad in ["limit=0", "limit=1001", "limit=abc", "offset=-1", "colour=red"] {
        let (st, v) = srv.get(&format!("/api/collections/images/records?{bad}"));
        assert_eq!(st, StatusCode::BAD_REQUEST, "{bad}: {v}");
        assert!(v["error"].is_string());
    }
    let (st, _) = srv.get("/api/collections/nope/records");
    assert_eq!(st, StatusCode::NOT_FOUND);
}

#[test]
fn duplicates_come_in_groups_with_a_suggested_keep() {
    let tmp = tempfile::tempdir().unwrap();
    let (root, db) = planted_tree(tmp.path());
    let srv = ServeProcess::start(&db, &["--root", s(&root)]);

    let (st, v) = srv.get("/api/collections/images/duplicates");
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(
        (v["feature"].as_str(), v["threshold"].as_f64(), v["records"].as_u64()),
        (Some("phash"), Some(12.0), Some(16))
    );
    let groups = v["groups"].as_array().unwrap();
    let names = |g: &Value| -> Vec<String> {
        g["members"].as_array().unwrap().iter().map(|m| m["name"].as_str().unwrap().to_string()).collect()
    };
    let sets: Vec<Vec<String>> = groups.iter().map(names).collect();
    for want in
        [["chelsea.png", "chelsea_q30.jpg"], ["camera.png", "camera_half.png"], ["astronaut.png", "astronaut_q30.jpg"]]
    {
        assert!(sets.iter().any(|s| s == &want), "group {want:?} in {sets:?}");
    }
    assert_eq!(groups.len(), 3, "only the planted groups: {sets:?}");
    for g in groups {
        let members = g["members"].as_array().unwrap();
        for m in members {
            for k in ["size", "width", "height", "format", "mtime"] {
                assert!(!m[k].is_null(), "{k} of {m}");
            }
        }
        let name_of =
            |id: &Value| members.iter().find(|m| m["id"] == *id).unwrap()["name"].as_str().unwrap().to_string();
        let orig = names(g).into_iter().find(|n| n.ends_with(".png") && !n.contains('_')).unwrap();
        // The original beats its copies on quality (more pixels, or as many and lossless) and size.
        assert_eq!(name_of(&g["keep"]["quality"]), orig, "{g}");
        assert_eq!(name_of(&g["keep"]["largest"]), orig, "{g}");
        assert!(g["keep"]["oldest"].is_string());
        assert!(g["max_distance"].as_f64().unwrap() <= 12.0);
    }

    // An explicit threshold: 0 bits keeps only identical hashes.
    let (_, tight) = srv.get("/api/collections/images/duplicates?feature=phash&threshold=0");
    assert_eq!(tight["threshold"], 0.0);
    assert!(tight["groups"].as_array().unwrap().iter().all(|g| g["max_distance"] == 0.0), "{tight}");
    // color has no calibrated threshold: it must be given.
    let (st, v) = srv.get("/api/collections/images/duplicates?feature=color");
    assert_eq!(st, StatusCode::BAD_REQUEST, "{v}");
    assert!(v["error"].as_str().unwrap().contains("threshold"), "{v}");
    let (st, _) = srv.get("/api/collections/images/duplicates?feature=color&threshold=0.01");
    assert_eq!(st, StatusCode::OK);
    for bad in ["feature=nope", "threshold=-1", "threshold=-1e-300", "threshold=inf", "threshold=abc", "k=3"] {
        let (st, v) = srv.get(&format!("/api/collections/images/duplicates?{bad}"));
        assert_eq!(st, StatusCode::BAD_REQUEST, "{bad}: {v}");
    }
    let (st, _) = srv.get("/api/collections/nope/duplicates");
    assert_eq!(st, StatusCode::NOT_FOUND);
}

#[test]
fn originals_moves_and_deletes_stay_under_the_roots() {
    let tmp = tempfile::tempdir().unwrap();
    let (root, db) = planted_tree(tmp.path());
    let http = Client::new();
    const KEY: &str = "page-key";

    // Without --root: no originals of indexed files, no moves, no deletes on disk; uploads are served.
    {
        let srv = ServeProcess::start(&db, &[]);
        let id = id_of(&srv, "horse.png");
        assert!(all_records(&srv).iter().all(|r| r["original"].is_null()));
        let (st, v) = srv.get(&format!("/api/collections/images/records/{id}/original"));
        assert_eq!(st, StatusCode::FORBIDDEN, "{v}");
        let (st, v) = srv.post_json(&format!("/api/collections/images/records/{id}/move"), &json!({"to": s(&root)}));
        assert_eq!(st, StatusCode::FORBIDDEN, "{v}");
        let res = http.delete(format!("{}/api/collections/images/records/{id}/file", srv.base)).send().unwrap();
        assert_eq!(res.status(), StatusCode::FORBIDDEN);
        let bytes = std::fs::read(photo("coins.png")).unwrap();
        let (st, up) = srv.upload("images", bytes.clone(), "coins.png");
        assert_eq!(st, StatusCode::CREATED, "{up}");
        let (st, got) =
            srv.get_bytes(&format!("/api/collections/images/records/{}/original", up["id"].as_str().unwrap()));
        assert_eq!((st, got == bytes), (StatusCode::OK, true), "an upload is served");
        let (st, _) = srv.delete("images", up["id"].as_str().unwrap());
        assert_eq!(st, StatusCode::OK);
    }

    let srv = ServeProcess::start(&db, &["--root", s(&root), "--api-key", KEY]);
    let horse = id_of(&srv, "horse.png");
    let (st, got) = srv.get_bytes(&format!("/api/collections/images/records/{horse}/original"));
    assert_eq!(st, StatusCode::OK);
    assert_eq!(got, std::fs::read(root.join("animals/horse.png")).unwrap());
    for (path, want) in [("x/original", StatusCode::BAD_REQUEST), ("123/original", StatusCode::NOT_FOUND)] {
        let (st, _) = srv.get(&format!("/api/collections/images/records/{path}"));
        assert_eq!(st, want, "{path}");
    }

    // Moves: the key is needed; the folder must be absolute, without '..', under a root.
    let mv = |id: &str, body: Value, key: Option<&str>| {
        let mut req = http.post(format!("{}/api/collections/images/records/{id}/move", srv.base)).json(&body);
        if let Some(k) = key {
            req = req.header("x-api-key", k);
        }
        let res = req.send().unwrap();
        (res.status(), res.json::<Value>().unwrap_or(Value::Null))
    };
    let dest = root.join("set-aside");
    assert_eq!(mv(&horse, json!({"to": s(&dest)}), None).0, StatusCode::UNAUTHORIZED);
    assert_eq!(mv(&horse, json!({"to": "relative/dir"}), Some(KEY)).0, StatusCode::BAD_REQUEST);
    assert_eq!(mv(&horse, json!({"to": format!("{}/../x", s(&root))}), Some(KEY)).0, StatusCode::BAD_REQUEST);
    assert_eq!(mv(&horse, json!({"to": s(tmp.path())}), Some(KEY)).0, StatusCode::FORBIDDEN);
    assert_eq!(mv(&horse, json!({"to": s(&root.join("animals"))}), Some(KEY)).0, StatusCode::CONFLICT, "already there");
    assert_eq!(mv(&horse, json!({"dest": s(&dest)}), Some(KEY)).0, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(mv("999", json!({"to": s(&dest)}), Some(KEY)).0, StatusCode::NOT_FOUND);
    assert!(root.join("animals/horse.png").is_file(), "refused moves leave the file");

    // A move: the file goes, the record follows under its new path's id and label.
    let (st, v) = mv(&horse, json!({"to": s(&dest)}), Some(KEY));
    assert_eq!(st, StatusCode::OK, "{v}");
    assert!(!root.join("animals/horse.png").exists() && dest.join("horse.png").is_file());
    let new_id = v["new_id"].as_str().unwrap();
    assert_ne!(new_id, horse);
    let (st, _) = srv.get(&format!("/api/collections/images/records/{horse}"));
    assert_eq!(st, StatusCode::NOT_FOUND);
    let (st, rec) = srv.get(&format!("/api/collections/images/records/{new_id}"));
    assert_eq!(st, StatusCode::OK, "{rec}");
    assert_eq!(rec["metadata"]["path"], s(&dest.join("horse.png")));
    assert_eq!(rec["metadata"]["label"], "set-aside");
    assert_eq!(all_records(&srv).len(), 16, "same number of records");
    // A name already taken in the folder is a conflict, and nothing moves.
    std::fs::copy(root.join("objects/coins.png"), dest.join("coins.png")).unwrap();
    let coins = id_of(&srv, "coins.png");
    assert_eq!(mv(&coins, json!({"to": s(&dest)}), Some(KEY)).0, StatusCode::CONFLICT);
    assert!(root.join("objects/coins.png").is_file());
    // `forget`: moved and removed from the collection.
    let (st, v) = mv(&coins, json!({"to": s(&root.join("elsewhere")), "forget": true}), Some(KEY));
    assert_eq!(st, StatusCode::OK, "{v}");
    assert!(v["new_id"].is_null() && root.join("elsewhere/coins.png").is_file());
    assert_eq!(all_records(&srv).len(), 15);

    // Deleting a file: with the key; file and record go.
    let del = |id: &str, key: Option<&str>| {
        let mut req = http.delete(format!("{}/api/collections/images/records/{id}/file", srv.base));
        if let Some(k) = key {
            req = req.header("x-api-key", k);
        }
        let res = req.send().unwrap();
        (res.status(), res.json::<Value>().unwrap_or(Value::Null))
    };
    let copy = id_of(&srv, "chelsea_q30.jpg");
    assert_eq!(del(&copy, None).0, StatusCode::UNAUTHORIZED);
    assert_eq!(del("abc", Some(KEY)).0, StatusCode::BAD_REQUEST);
    assert_eq!(del("42", Some(KEY)).0, StatusCode::NOT_FOUND);
    assert!(root.join("animals/chelsea_q30.jpg").is_file());
    let (st, v) = del(&copy, Some(KEY));
    assert_eq!(st, StatusCode::OK, "{v}");
    assert!(!root.join("animals/chelsea_q30.jpg").exists());
    let (st, _) = srv.get(&format!("/api/collections/images/records/{copy}"));
    assert_eq!(st, StatusCode::NOT_FOUND);
    assert_eq!(del(&copy, Some(KEY)).0, StatusCode::NOT_FOUND, "gone");
}

#[test]
fn favicon_server_facts_and_distance_bands() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("photos");
    add_photo(&root, "animals", "chelsea.png", 256);
    add_photo(&root, "animals", "horse.png", 256);
    let db = tmp.path().join("db");
    run_json(&["index", s(&root), "--db", s(&db), "--features", "color,phash", "--json"]);
    let srv = ServeProcess::start(&db, &["--root", s(&root), "--read-key", "r"]);

    // The icon and the page are open without the read key; the page links the icon.
    let (st, svg) = srv.get_bytes("/favicon.svg");
    assert_eq!(st, StatusCode::OK);
    assert!(String::from_utf8(svg).unwrap().starts_with("<svg"));
    assert_eq!(srv.get_bytes("/favicon.ico").0, StatusCode::OK);
    let (_, page) = srv.get_bytes("/");
    assert!(String::from_utf8(page).unwrap().contains(r#"rel="icon" href="/favicon.svg""#));
    assert_eq!(srv.get("/api/server").0, StatusCode::UNAUTHORIZED, "server facts need the read key");

    let http = Client::new();
    let get = |path: &str| -> Value {
        let res = http.get(format!("{}{path}", srv.base)).header("x-api-key", "r").send().unwrap();
        assert_eq!(res.status(), StatusCode::OK, "{path}");
        res.json().unwrap()
    };
    let info = get("/api/server");
    assert_eq!(
        info,
        json!({"read_only": false, "writes_need_key": false, "roots": [s(&root.canonicalize().unwrap())]})
    );
    let coll = get("/api/collections/images");
    let field = |n: &str| coll["fields"].as_array().unwrap().iter().find(|f| f["name"] == n).unwrap().clone();
    assert_eq!(field("phash")["bands"], json!({"near_duplicate": 12.0, "similar": 16.0, "related": 20.0}));
    assert!(field("color")["bands"].is_null(), "uncalibrated features have no bands");
}

/// The web page in a real browser (Debian's chromium driven by playwright-core): every view —
/// search (upload, drop, feature, label, threshold, Results box, no close match), the lightbox,
/// browse (paging, label, tags), duplicates (keep rules, confirmation, remove, move, delete).
/// Screenshots of each step go to `target/browser-artifacts/` (git-ignored).
/// Skips, saying why, when chromium or tests/browser/node_modules is missing, unless
/// `LIKENESS_REQUIRE_BROWSER=1` (set by scripts/test.sh, which installs both): then it fails.
#[test]
fn browser_drives_every_view_of_the_page() {
    let browser_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/browser");
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    let required = std::env::var("LIKENESS_REQUIRE_BROWSER").is_ok_and(|v| v == "1");
    let missing = if !Path::new(&chromium).exists() {
        Some(format!("{chromium} not found (apt-get install chromium)"))
    } else if !browser_dir.join("node_modules/playwright-core").is_dir() {
        Some(format!("run `npm install` in {}", browser_dir.display()))
    } else {
        None
    };
    if let Some(why) = missing {
        assert!(!required, "browser test required (LIKENESS_REQUIRE_BROWSER=1) but {why}");
        eprintln!("SKIPPED browser test: {why}");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (root, db) = planted_tree(tmp.path());
    let cat: &[&str] = &["tabby", "tiger cat", "Egyptian cat"];
    add_tags(&db, &[("chelsea.png", cat), ("chelsea_q30.jpg", cat), ("coffee.jpg", &["espresso", "cup"])]);
    let srv = ServeProcess::start(&db, &["--root", s(&root)]);
    let q = tmp.path().join("cat_half.png");
    edited_copy(&photo("chelsea.png"), "half", &q);
    let noise = tmp.path().join("noise.png");
    noise_image(&noise);
    let artifacts = Path::new(env!("CARGO_TARGET_TMPDIR")).parent().unwrap().join("browser-artifacts");
    std::fs::remove_dir_all(&artifacts).ok();
    let out = Command::new("node")
        .arg(browser_dir.join("search.mjs"))
        .args([&srv.base, s(&q), s(&artifacts), "chelsea.png", s(&noise)])
        .env("CHROMIUM", &chromium)
        .output()
        .expect("run node");
    let log = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "browser test failed (screenshots in {}):\n{log}", artifacts.display());
    // What the page moved and deleted happened on disk.
    let moved: Vec<&str> = log.lines().filter_map(|l| l.strip_prefix("MOVED ")).collect();
    let deleted: Vec<&str> = log.lines().filter_map(|l| l.strip_prefix("DELETED ")).collect();
    assert!(!moved.is_empty() && !deleted.is_empty(), "{log}");
    assert!(moved.iter().all(|p| Path::new(p).is_file()), "moved files are in their new folder: {moved:?}");
    assert!(deleted.iter().all(|p| !Path::new(p).exists()), "deleted files are gone: {deleted:?}");
    assert!(artifacts.join("06-duplicates.png").is_file(), "no screenshots in {}", artifacts.display());
    eprintln!("{log}screenshots in {}", artifacts.display());
}

/// A 256×256 image of seeded noise: like none of the photos.
fn noise_image(dest: &Path) {
    let mut x: u32 = 12345;
    let img = image::RgbImage::from_fn(256, 256, |_, _| {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        image::Rgb([x as u8, (x >> 8) as u8, (x >> 16) as u8])
    });
    img.save(dest).unwrap();
}
