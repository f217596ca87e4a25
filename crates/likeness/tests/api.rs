//! Tests of the HTTP API (`likeness serve`) over real photos: every endpoint, bad uploads,
//! the body limit, the API key, path confinement. (The page's routes and its browser test: page_api.rs.)

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use reqwest::blocking::multipart::{Form, Part};
use reqwest::blocking::{Client, Response};
use reqwest::StatusCode;
use serde_json::{json, Value};

const KEY: &str = "sekret-key";

/// A `likeness serve` child process on a free port, killed on drop.
struct Server {
    child: Child,
    base: String,
    http: Client,
}

impl Server {
    fn start(db: &Path, extra: &[&str]) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_likeness"))
            .args(["serve", "--db", s(db), "--addr", "127.0.0.1:0", "--features", "color,phash"])
            .args(extra)
            .env("LIKENESS_MODEL_DIR", model_dir())
            .env_remove("LIKENESS_API_KEY")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start likeness serve");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut line).expect("read address");
        let base = line
            .split("http://")
            .nth(1)
            .map(|r| format!("http://{}", r.trim().trim_end_matches('/')))
            .unwrap_or_else(|| panic!("server did not print its address: {line:?}"));
        let http = Client::builder().timeout(Duration::from_secs(60)).build().unwrap();
        Server { child, base, http }
    }
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
    fn get(&self, path: &str) -> Response {
        self.http.get(self.url(path)).send().unwrap()
    }
    fn post_json(&self, path: &str, body: &Value) -> Response {
        self.http.post(self.url(path)).json(body).send().unwrap()
    }
    fn search(&self, body: Value) -> Response {
        self.post_json("/api/collections/images/search", &body)
    }
    fn search_image(&self, bytes: Vec<u8>, name: &str, fields: &[(&str, &str)]) -> Response {
        let mut form = Form::new().part("image", Part::bytes(bytes).file_name(name.to_string()));
        for (k, v) in fields {
            form = form.text(k.to_string(), v.to_string());
        }
        self.http.post(self.url("/api/collections/images/search/image")).multipart(form).send().unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.child.kill().ok();
        self.child.wait().ok();
    }
}

/// The JSON body of a response with the expected status; error bodies must be `{"error": "..."}`.
fn expect(res: Response, status: StatusCode) -> Value {
    let got = res.status();
    let ctype = res.headers().get("content-type").map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
    let text = res.text().unwrap();
    assert_eq!(got, status, "body: {text}");
    assert!(ctype.starts_with("application/json"), "content-type {ctype} for {text}");
    let v: Value = serde_json::from_str(&text).unwrap();
    if !status.is_success() {
        assert!(v["error"].as_str().is_some_and(|e| !e.is_empty()), "error body: {v}");
    }
    v
}

fn names(v: &Value) -> Vec<String> {
    v["results"].as_array().unwrap().iter().map(|r| file_name(r["path"].as_str().unwrap())).collect()
}

/// A small indexed tree: 8 labelled photos, indexed with color+phash.
fn indexed_tree(tmp: &Path) -> (PathBuf, PathBuf) {
    let root = tmp.join("photos");
    for (l, n) in &TREE[..8] {
        add_photo(&root, l, n, 512);
    }
    let db = tmp.join("db");
    run_json(&["index", s(&root), "--db", s(&db), "--features", "color,phash", "--json"]);
    (root, db)
}

fn record_id(server: &Server, root: &Path, rel: &str) -> String {
    // The id is the FNV-1a hash of the absolute path; find it through a search to stay black-box.
    let bytes = std::fs::read(root.join(rel)).unwrap();
    let v = expect(server.search_image(bytes, rel, &[("k", "1"), ("feature", "phash")]), StatusCode::OK);
    let r = &v["results"][0];
    assert!(r["path"].as_str().unwrap().ends_with(rel));
    r["id"].as_str().unwrap().to_string()
}

#[test]
fn search_endpoints_and_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let (root, db) = indexed_tree(tmp.path());
    let srv = Server::start(&db, &["--root", s(&root), "--api-key", KEY, "--max-body", "2000000"]);

    let v = expect(srv.get("/health"), StatusCode::OK);
    assert_eq!(v["status"], "ok");
    assert_eq!(v["collections"], 1);

    // The OpenAPI document describes every route.
    let v = expect(srv.get("/openapi.json"), StatusCode::OK);
    assert!(v["openapi"].as_str().unwrap().starts_with("3."));
    for p in [
        "/health",
        "/openapi.json",
        "/api/collections",
        "/api/collections/{name}",
        "/api/collections/{name}/labels",
        "/api/collections/{name}/search",
        "/api/collections/{name}/search/image",
        "/api/collections/{name}/images",
        "/api/collections/{name}/records/{id}",
        "/api/jobs/{id}",
        "/thumb/{id}",
        "/",
    ] {
        assert!(v["paths"][p].is_object(), "openapi.json lacks {p}");
    }

    let v = expect(srv.get("/api/collections"), StatusCode::OK);
    assert_eq!(v["collections"][0]["name"], "images");
    assert_eq!(v["collections"][0]["count"], 8);
    let v = expect(srv.get("/api/collections/images"), StatusCode::OK);
    let fields: Vec<&str> = v["fields"].as_array().unwrap().iter().map(|f| f["name"].as_str().unwrap()).collect();
    assert_eq!(fields.len(), 2, "{fields:?}");
    assert!(v["fields"].as_array().unwrap().iter().all(|f| f["vectors_per_record"] == 1), "{v}");
    expect(srv.get("/api/collections/nope"), StatusCode::NOT_FOUND);
    let v = expect(srv.get("/api/collections/images/labels"), StatusCode::OK);
    assert!(v["labels"].as_array().unwrap().contains(&json!({"label": "animals", "count": 2})), "{v}");

    // Search by an uploaded edited copy: the original comes first.
    let q = tmp.path().join("cat_q30.jpg");
    edited_copy(&photo("chelsea.png"), "q30", &q);
    let qbytes = std::fs::read(&q).unwrap();
    for feature in ["phash", "color"] {
        let v =
            expect(srv.search_image(qbytes.clone(), "cat.jpg", &[("k", "3"), ("feature", feature)]), StatusCode::OK);
        assert_eq!(v["feature"], feature);
        assert_eq!(names(&v).len(), 3);
        assert_eq!(names(&v)[0], "chelsea.png", "{feature}: {v}");
        let r0 = &v["results"][0];
        assert!(r0["id"].is_string(), "ids travel as strings");
        assert_eq!(r0["label"], "animals");
        assert_eq!(r0["thumb"], format!("/thumb/{}", r0["id"].as_str().unwrap()));
    }
    // Filter (JSON form) and threshold.
    let v = expect(
        srv.search_image(qbytes.clone(), "cat.jpg", &[("filter", r#"{"label": "objects"}"#), ("k", "3")]),
        StatusCode::OK,
    );
    assert_eq!(v["results"].as_array().unwrap().len(), 3);
    assert!(v["results"].as_array().unwrap().iter().all(|r| r["label"] == "objects"), "{v}");
    let v = expect(
        srv.search_image(qbytes.clone(), "cat.jpg", &[("feature", "phash"), ("threshold", "12")]),
        StatusCode::OK,
    );
    let rs = v["results"].as_array().unwrap();
    assert!(!rs.is_empty() && rs.iter().all(|r| r["distance"].as_f64().unwrap() <= 12.0), "{v}");
    assert_eq!(names(&v)[0], "chelsea.png");

    // Search by stored id (itself excluded) and by vector.
    let cat = record_id(&srv, &root, "animals/chelsea.png");
    let v = expect(srv.search(json!({"id": cat, "k": 3})), StatusCode::OK);
    assert!(v["results"].as_array().unwrap().iter().all(|r| r["id"] != cat.as_str()));
    let rec = expect(srv.get(&format!("/api/collections/images/records/{cat}?vectors=true")), StatusCode::OK);
    assert_eq!(rec["metadata"]["label"], "animals");
    assert!(rec["metadata"]["width"].as_u64().unwrap() > 0);
    let color = rec["vectors"]["color"]["dense"].as_array().unwrap().clone();
    let v = expect(srv.search(json!({"vector": color, "feature": "color", "k": 2})), StatusCode::OK);
    assert_eq!(v["results"][0]["id"], cat.as_str());
    assert!(v["results"][0]["distance"].as_f64().unwrap() < 1e-4);
    let phash = rec["vectors"]["phash"]["binary"].as_array().unwrap().clone();
    let v = expect(srv.search(json!({"vector": phash, "feature": "phash", "k": 1})), StatusCode::OK);
    assert_eq!(v["results"][0]["id"], cat.as_str());
    let rec = expect(srv.get(&format!("/api/collections/images/records/{cat}")), StatusCode::OK);
    assert!(rec.get("vectors").is_none());
    // Index knobs travel with the request (Flat ignores them; bounds are still checked).
    let v = expect(
        srv.search(
            json!({"vector": color, "feature": "color", "k": 2, "ef": 128, "nprobe": 4, "checks": 64, "rerank": 50}),
        ),
        StatusCode::OK,
    );
    assert_eq!(v["results"][0]["id"], cat.as_str());
    let v = expect(srv.search_image(qbytes.clone(), "cat.jpg", &[("feature", "color"), ("ef", "64")]), StatusCode::OK);
    assert_eq!(names(&v)[0], "chelsea.png");
    expect(srv.search(json!({"id": cat, "ef": 0})), StatusCode::BAD_REQUEST);
    expect(srv.search(json!({"id": cat, "rerank": 1_000_000})), StatusCode::BAD_REQUEST);
    expect(srv.search_image(qbytes.clone(), "cat.jpg", &[("ef", "many")]), StatusCode::BAD_REQUEST);

    // Bad parameters: clear 4xx JSON errors.
    expect(srv.search(json!({"k": 3})), StatusCode::BAD_REQUEST);
    expect(srv.search(json!({"id": cat, "vector": [1.0]})), StatusCode::BAD_REQUEST);
    expect(srv.search(json!({"id": cat, "k": 0})), StatusCode::BAD_REQUEST);
    expect(srv.search(json!({"id": cat, "kk": 3})), StatusCode::UNPROCESSABLE_ENTITY);
    expect(srv.search(json!({"id": cat, "filter": {"label": {"bogus": 1}}})), StatusCode::BAD_REQUEST);
    // A filter on a field no record has is a mistake, named; one that matches nothing is an empty 200.
    let v =
        expect(srv.search(json!({"id": cat, "filter": {"colour": "red", "label": "cats"}})), StatusCode::BAD_REQUEST);
    assert!(
        v["error"].as_str().unwrap().contains("'colour'") && !v["error"].as_str().unwrap().contains("'label'"),
        "{v}"
    );
    let v = expect(srv.search(json!({"id": cat, "filter": {"label": "no-such-label"}})), StatusCode::OK);
    assert_eq!(v["results"].as_array().map(Vec::len), Some(0), "{v}");
    expect(srv.search(json!({"id": cat, "feature": "cnn"})), StatusCode::BAD_REQUEST);
    expect(srv.search(json!({"vector": [0.5, 0.5], "feature": "color"})), StatusCode::BAD_REQUEST);
    expect(srv.search(json!({"vector": [300], "feature": "phash"})), StatusCode::BAD_REQUEST);
    expect(srv.search(json!({"id": "123"})), StatusCode::NOT_FOUND);
    expect(srv.search(json!({"id": "cat"})), StatusCode::BAD_REQUEST);
    let res = srv
        .http
        .post(srv.url("/api/collections/images/search"))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .unwrap();
    expect(res, StatusCode::BAD_REQUEST);
    expect(srv.post_json("/api/collections/nope/search", &json!({"id": cat})), StatusCode::NOT_FOUND);

    // Bad uploads.
    let v = expect(srv.search_image(b"hello, I am text".to_vec(), "notes.jpg", &[]), StatusCode::BAD_REQUEST);
    assert!(v["error"].as_str().unwrap().contains("notes.jpg"), "{v}");
    let png = std::fs::read(photo("coins.png")).unwrap();
    let v = expect(srv.search_image(png[..png.len() / 2].to_vec(), "cut.png", &[]), StatusCode::BAD_REQUEST);
    assert!(v["error"].as_str().unwrap().contains("cut.png"), "{v}");
    expect(srv.search_image(Vec::new(), "empty.png", &[]), StatusCode::BAD_REQUEST);
    expect(srv.search_image(qbytes.clone(), "cat.jpg", &[("k", "many")]), StatusCode::BAD_REQUEST);
    expect(srv.search_image(qbytes.clone(), "cat.jpg", &[("filter", "label=cat")]), StatusCode::BAD_REQUEST);
    expect(srv.search_image(qbytes.clone(), "cat.jpg", &[("color", "red")]), StatusCode::BAD_REQUEST);
    let form = Form::new().text("k", "3");
    let res = srv.http.post(srv.url("/api/collections/images/search/image")).multipart(form).send().unwrap();
    expect(res, StatusCode::BAD_REQUEST);
    let form = Form::new().part("photo", Part::bytes(qbytes.clone()).file_name("cat.jpg"));
    let res = srv.http.post(srv.url("/api/collections/images/search/image")).multipart(form).send().unwrap();
    let v = expect(res, StatusCode::BAD_REQUEST);
    assert!(v["error"].as_str().unwrap().contains("named 'image'"), "{v}");
    let res = srv.http.post(srv.url("/api/collections/images/search/image")).body("x").send().unwrap();
    assert!(res.status().is_client_error());
    expect(res, StatusCode::BAD_REQUEST);

    // Body limit (2,000,000 bytes here).
    let big = vec![0u8; 2_500_000];
    let v = expect(srv.search_image(big, "big.png", &[]), StatusCode::PAYLOAD_TOO_LARGE);
    assert!(!v["error"].as_str().unwrap().is_empty());

    // Thumbnails.
    let res = srv.get(&format!("/thumb/{cat}"));
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["content-type"], "image/jpeg");
    let img = image::load_from_memory(&res.bytes().unwrap()).unwrap();
    assert!(img.width().max(img.height()) <= 256 && img.width() > 100, "{}x{}", img.width(), img.height());
    let again = srv.get(&format!("/thumb/{cat}"));
    assert_eq!(again.status(), StatusCode::OK, "cached thumbnail");
    expect(srv.get("/thumb/123"), StatusCode::NOT_FOUND);
    expect(srv.get("/thumb/abc"), StatusCode::BAD_REQUEST);

    // Records, routes, methods.
    expect(srv.get("/api/collections/images/records/abc"), StatusCode::BAD_REQUEST);
    expect(srv.get("/api/collections/images/records/42"), StatusCode::NOT_FOUND);
    expect(srv.get("/api/nothing/here"), StatusCode::NOT_FOUND);
    expect(srv.get("/api/collections/images/search"), StatusCode::METHOD_NOT_ALLOWED);
    expect(srv.get("/api/jobs/99"), StatusCode::NOT_FOUND);

    // The web page and its assets.
    let page = srv.get("/");
    assert_eq!(page.status(), StatusCode::OK);
    assert!(page.text().unwrap().contains("id=\"results\""));
    assert!(srv.get("/app.js").text().unwrap().contains("search/image"));
    assert_eq!(srv.get("/app.css").status(), StatusCode::OK);
}

#[test]
fn writes_need_the_key_and_stay_inside_the_roots() {
    let tmp = tempfile::tempdir().unwrap();
    let (root, db) = indexed_tree(tmp.path());
    let outside = tmp.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::copy(photo("moon.png"), outside.join("moon.png")).unwrap();
    // An indexed file replaced by a symbolic link leading out of the roots.
    let cat_id_before = {
        let srv = Server::start(&db, &[]);
        record_id(&srv, &root, "objects/camera.png")
    };
    std::fs::remove_file(root.join("objects/camera.png")).unwrap();
    std::os::unix::fs::symlink(outside.join("moon.png"), root.join("objects/camera.png")).unwrap();

    let srv = Server::start(&db, &["--root", s(&root), "--api-key", KEY]);
    let add = "/api/collections/images/images";
    let upload = |key: Option<(&str, String)>, label: &str| {
        let bytes = std::fs::read(photo("coffee.png")).unwrap();
        let form = Form::new().part("image", Part::bytes(bytes).file_name("mine.png")).text("label", label.to_string());
        let mut req = srv.http.post(srv.url(add)).multipart(form);
        if let Some((h, v)) = key {
            req = req.header(h, v);
        }
        req.send().unwrap()
    };
    expect(upload(None, "mugs"), StatusCode::UNAUTHORIZED);
    expect(upload(Some(("x-api-key", "wrong".into())), "mugs"), StatusCode::UNAUTHORIZED);
    let v = expect(upload(Some(("x-api-key", KEY.into())), "mugs"), StatusCode::CREATED);
    let up_id = v["id"].as_str().unwrap().to_string();
    assert_eq!(v["metadata"]["label"], "mugs");
    let rec = expect(srv.get(&format!("/api/collections/images/records/{up_id}")), StatusCode::OK);
    assert_eq!(rec["metadata"]["original_name"], "mine.png");
    assert_eq!(srv.get(&format!("/thumb/{up_id}")).status(), StatusCode::OK);
    let v = expect(srv.search(json!({"id": up_id, "k": 1, "feature": "phash"})), StatusCode::OK);
    let found = names(&v);
    assert!(
        found.len() == 1 && found[0].starts_with("coffee."),
        "the upload finds the indexed coffee photo: {found:?}"
    );
    // Uploading a non-image is refused, and nothing is stored.
    let form = Form::new().part("image", Part::bytes(b"GIF89a broken".to_vec()).file_name("x.gif"));
    let res = srv.http.post(srv.url(add)).header("x-api-key", KEY).multipart(form).send().unwrap();
    expect(res, StatusCode::BAD_REQUEST);
    assert_eq!(expect(srv.get("/api/collections/images"), StatusCode::OK)["count"], 9);

    // Server-side paths: only under --root, after resolving `..` and links.
    let bearer = format!("Bearer {KEY}");
    let add_path = |p: &Path| {
        srv.http.post(srv.url(add)).header("authorization", bearer.clone()).json(&json!({"path": p})).send().unwrap()
    };
    let newfile = root.join("animals/horse_copy.png");
    std::fs::copy(photo("horse.png"), &newfile).unwrap();
    let v = expect(add_path(&newfile), StatusCode::CREATED);
    assert_eq!(v["metadata"]["label"], "animals");
    let v = expect(add_path(&outside.join("moon.png")), StatusCode::FORBIDDEN);
    assert!(v["error"].as_str().unwrap().contains("--root"), "{v}");
    expect(add_path(&root.join("../outside/moon.png")), StatusCode::FORBIDDEN);
    expect(add_path(&root.join("objects/camera.png")), StatusCode::FORBIDDEN);
    expect(add_path(Path::new("photos/animals/chelsea.png")), StatusCode::BAD_REQUEST);
    expect(add_path(&root.join("animals/none.png")), StatusCode::NOT_FOUND);
    let res = srv.http.post(srv.url(add)).json(&json!({"path": newfile})).send().unwrap();
    expect(res, StatusCode::UNAUTHORIZED);

    // The thumbnail of the record whose file now links outside the roots is refused.
    expect(srv.get(&format!("/thumb/{cat_id_before}")), StatusCode::FORBIDDEN);

    // A folder is indexed by a background job while searches go on.
    let batch = root.join("batch");
    for n in ["coins.png", "moon.png", "text.png"] {
        add_photo(&batch, "x", n, 512);
    }
    let v = expect(add_path(&batch), StatusCode::ACCEPTED);
    let status_url = v["status_url"].as_str().unwrap().to_string();
    let qbytes = std::fs::read(photo("chelsea.png")).unwrap();
    let start = Instant::now();
    let mut searches = 0;
    let job = loop {
        let v = expect(srv.search_image(qbytes.clone(), "cat.png", &[("k", "2")]), StatusCode::OK);
        assert_eq!(names(&v)[0], "chelsea.png");
        searches += 1;
        let j = expect(srv.get(&status_url), StatusCode::OK);
        if j["state"] != "running" {
            break j;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "job did not finish: {j}");
    };
    assert_eq!(job["state"], "done", "{job}");
    assert_eq!(job["report"]["added"], 3, "{job}");
    assert!(searches >= 1);
    assert_eq!(expect(srv.get("/api/collections/images"), StatusCode::OK)["count"], 13);

    // Delete needs the key; a second delete is a 404.
    let del = format!("/api/collections/images/records/{up_id}");
    expect(srv.http.delete(srv.url(&del)).send().unwrap(), StatusCode::UNAUTHORIZED);
    let v = expect(srv.http.delete(srv.url(&del)).header("x-api-key", KEY).send().unwrap(), StatusCode::OK);
    assert_eq!(v["deleted"], 1);
    expect(srv.http.delete(srv.url(&del)).header("x-api-key", KEY).send().unwrap(), StatusCode::NOT_FOUND);
    expect(srv.get(&del), StatusCode::NOT_FOUND);
}

#[test]
fn path_adds_are_disabled_without_roots_and_writes_open_without_key() {
    let tmp = tempfile::tempdir().unwrap();
    let (root, db) = indexed_tree(tmp.path());
    let srv = Server::start(&db, &["--index", "HNSW16,SQ8"]);
    let add = "/api/collections/images/images";
    expect(srv.post_json(add, &json!({"path": root.join("animals/chelsea.png")})), StatusCode::FORBIDDEN);
    expect(srv.post_json(add, &json!({"nope": 1})), StatusCode::UNPROCESSABLE_ENTITY);
    // An image sent as the raw body, or a file in a part not named `image`: told how to send it.
    let raw = std::fs::read(photo("rocket.jpg")).unwrap();
    let res = srv.http.post(srv.url(add)).header("content-type", "image/jpeg").body(raw.clone()).send().unwrap();
    let v = expect(res, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert!(v["error"].as_str().unwrap().contains("part named 'image'"), "{v}");
    let form = Form::new().part("file", Part::bytes(raw).file_name("r.jpg"));
    let v = expect(srv.http.post(srv.url(add)).multipart(form).send().unwrap(), StatusCode::BAD_REQUEST);
    assert!(v["error"].as_str().unwrap().contains("named 'image'"), "{v}");
    assert_eq!(expect(srv.get("/api/collections/images"), StatusCode::OK)["count"], 8, "nothing was added");
    // A new collection is created on the first upload, with the server's features.
    let form = Form::new().part("image", Part::bytes(std::fs::read(photo("rocket.jpg")).unwrap()).file_name("r.jpg"));
    let v = expect(
        srv.http.post(srv.url("/api/collections/fresh/images")).multipart(form).send().unwrap(),
        StatusCode::CREATED,
    );
    assert!(v["id"].is_string());
    let up_id = v["id"].clone();
    let v = expect(srv.get("/api/collections/fresh"), StatusCode::OK);
    assert_eq!(v["count"], 1);
    // ... and the server's --index: the dense feature gets it, the hash stays Flat.
    let index_of = |name: &str| {
        v["fields"].as_array().unwrap().iter().find(|f| f["name"] == name).unwrap()["index"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!((index_of("color"), index_of("phash")), ("HNSW16,SQ8".to_string(), "Flat".to_string()), "{v}");
    // "More like this" on the one record: searched through the HNSW16,SQ8 field, itself excluded.
    let hit = expect(
        srv.post_json("/api/collections/fresh/search", &json!({"id": up_id, "feature": "color", "k": 1, "ef": 32})),
        StatusCode::OK,
    );
    assert_eq!(hit["results"].as_array().map(Vec::len), Some(0), "{hit}");
    // Thumbnails of indexed roots are served even without --root.
    let id = record_id(&srv, &root, "animals/chelsea.png");
    assert_eq!(srv.get(&format!("/thumb/{id}")).status(), StatusCode::OK);
}

/// `--read-key`: every read needs a key (the read key, or the write key), except the health
/// check, the OpenAPI document and the page's own files; the page's cookie works for thumbnails.
#[test]
fn a_read_key_guards_reads() {
    let tmp = tempfile::tempdir().unwrap();
    let (root, db) = indexed_tree(tmp.path());
    let srv = Server::start(&db, &["--read-key", "r3ad", "--api-key", "wr1te"]);
    let res = srv.get("/api/collections");
    assert!(res.headers().contains_key("www-authenticate"));
    let v = expect(res, StatusCode::UNAUTHORIZED);
    assert!(v["error"].as_str().unwrap().contains("key for reads"), "{v}");
    for open in ["/health", "/openapi.json", "/", "/app.js"] {
        assert_eq!(srv.get(open).status(), StatusCode::OK, "{open}");
    }
    let with = |key: &str, path: &str| srv.http.get(srv.url(path)).header("x-api-key", key).send().unwrap();
    expect(with("wrong", "/api/collections"), StatusCode::UNAUTHORIZED);
    expect(with("r3ad", "/api/collections"), StatusCode::OK);
    expect(with("wr1te", "/api/collections"), StatusCode::OK);
    let form = Form::new()
        .part("image", Part::bytes(std::fs::read(root.join("animals/chelsea.png")).unwrap()).file_name("c.png"))
        .text("feature", "phash");
    let url = srv.url("/api/collections/images/search/image");
    let hits = expect(srv.http.post(url).bearer_auth("r3ad").multipart(form).send().unwrap(), StatusCode::OK);
    let id = hits["results"][0]["id"].as_str().unwrap().to_string();
    assert_eq!(srv.get(&format!("/thumb/{id}")).status(), StatusCode::UNAUTHORIZED);
    let thumb = srv.http.get(srv.url(&format!("/thumb/{id}"))).header("cookie", "likeness_key=r3ad").send().unwrap();
    assert_eq!(thumb.status(), StatusCode::OK);
    // The read key does not grant writes.
    let res = srv.http.delete(srv.url(&format!("/api/collections/images/records/{id}"))).header("x-api-key", "r3ad");
    expect(res.send().unwrap(), StatusCode::UNAUTHORIZED);
}

/// `--snapshot-every`: the server checkpoints and saves index snapshots while it runs, so a
/// restart after SIGKILL loads the HNSW graph instead of rebuilding it.
#[test]
fn periodic_snapshots_survive_a_kill() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("db");
    let marker = db.join("collections/fresh/index-color.json");
    {
        let srv = Server::start(&db, &["--index", "HNSW16", "--snapshot-every", "1"]);
        for name in ["rocket.jpg", "coffee.png", "chelsea.png"] {
            let form = Form::new().part("image", Part::bytes(std::fs::read(photo(name)).unwrap()).file_name(name));
            expect(
                srv.http.post(srv.url("/api/collections/fresh/images")).multipart(form).send().unwrap(),
                StatusCode::CREATED,
            );
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while !marker.is_file() {
            assert!(std::time::Instant::now() < deadline, "no snapshot written within 20 s");
            std::thread::sleep(Duration::from_millis(100));
        }
        // Dropping the server SIGKILLs it: no clean shutdown.
    }
    let v = run_json(&["db", "info", s(&db), "--json"]);
    let fields = v["collections"][0]["fields"].as_array().unwrap();
    let color = fields.iter().find(|f| f["name"] == "color").unwrap();
    assert_eq!(v["collections"][0]["count"], 3, "{v}");
    assert_eq!(color["index"], "HNSW16", "{v}");
    assert_eq!(color["origin"]["kind"], "snapshot", "{v}");
}
