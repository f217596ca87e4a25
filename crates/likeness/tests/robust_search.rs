//! Robust search (query views), hybrid search (rank fusion) and explained hits, from the CLI
//! and the HTTP API, on real photos and copies edited the way copy detection meets them:
//! turned by 90°, pasted small into another photo, re-encoded.

mod common;

use std::path::{Path, PathBuf};

use common::serve::ServeProcess;
use common::*;
use image::{imageops, DynamicImage, ImageFormat, Rgb, RgbImage};
use reqwest::StatusCode;
use serde_json::{json, Value};

fn results(v: &Value) -> &Vec<Value> {
    v["results"].as_array().expect("results array")
}

fn first_name(v: &Value) -> String {
    file_name(result_path(&results(v)[0]))
}

/// The sample tree indexed with cnn,color,phash, plus query copies: chelsea turned by 90°,
/// coffee pasted at 40% of the width into a nature photo that is not indexed, chelsea at JPEG
/// quality 30, and a noise image.
struct Fixture {
    _tmp: tempfile::TempDir,
    db: PathBuf,
    turned: PathBuf,
    pasted: PathBuf,
    q30: PathBuf,
    noise: PathBuf,
}

fn save_png(img: &RgbImage, p: &Path) {
    DynamicImage::ImageRgb8(img.clone()).save_with_format(p, ImageFormat::Png).unwrap();
}

fn fixture() -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("photos");
    photo_tree(&root);
    let db = tmp.path().join("db");
    run_ok(&["index", s(&root), "--db", s(&db), "--features", "cnn,color,phash"]);

    let turned = tmp.path().join("turned.png");
    save_png(&imageops::rotate90(&load_rgb(&photo("chelsea.png"))), &turned);

    let mut nature: Vec<PathBuf> =
        std::fs::read_dir(data_dir().join("photos/mate")).unwrap().map(|e| e.unwrap().path()).collect();
    nature.sort();
    let host = load_rgb(&nature[5]); // photo_tree indexes the first two
    let host = imageops::resize(&host, 800, 800 * host.height() / host.width(), imageops::FilterType::Triangle);
    let coffee = load_rgb(&photo("coffee.png"));
    let small = imageops::resize(&coffee, 320, 320 * coffee.height() / coffee.width(), imageops::FilterType::Triangle);
    let mut pasted = host.clone();
    imageops::overlay(&mut pasted, &small, 400, 150);
    let pasted_path = tmp.path().join("pasted.png");
    save_png(&pasted, &pasted_path);

    let q30 = tmp.path().join("q30.jpg");
    edited_copy(&photo("chelsea.png"), "q30", &q30);
    let mut state = 12345u32;
    let noise = RgbImage::from_fn(256, 256, |_, _| {
        state = state.wrapping_mul(1_103_515_245).wrapping_add(12345);
        let v = (state >> 16) as u8;
        Rgb([v, v.wrapping_mul(7), v.wrapping_mul(13)])
    });
    let noise_path = tmp.path().join("noise.png");
    save_png(&noise, &noise_path);
    Fixture { _tmp: tmp, db, turned, pasted: pasted_path, q30, noise: noise_path }
}

#[test]
fn cli_robust_hybrid_and_explanations() {
    let f = fixture();
    let db = s(&f.db);

    // Turned by 90°: the turned-back view finds the cat, and says which view did.
    let v = run_json(&["search", s(&f.turned), "--db", db, "-k", "3", "--robust", "turns", "--json"]);
    let q = &v[0];
    assert_eq!(first_name(q), "chelsea.png", "{q}");
    assert_eq!(results(q)[0]["view"], "turn270", "{q}");
    // --robust alone = every view.
    let all = run_json(&["search", s(&f.turned), "--db", db, "-k", "3", "--robust", "--json"]);
    assert_eq!(first_name(&all[0]), "chelsea.png", "{all}");

    // Pasted small into another photo: the frame found around it (or a region) finds it.
    let v = run_json(&["search", s(&f.pasted), "--db", db, "-k", "3", "--robust", "regions", "--json"]);
    assert_eq!(first_name(&v[0]), "coffee.png", "{v}");
    let view = results(&v[0])[0]["view"].as_str().unwrap().to_string();
    assert!(view.starts_with("frame 1/"), "the pasted photo is the first frame: {v}");
    // Its place in the query, in pixels: pasted at 400,150 (320 wide).
    assert!(view.contains(" at 399,") || view.contains(" at 400,") || view.contains(" at 401,"), "{view}");

    // Every hit is explained: distances per feature, a similarity, a verdict.
    let v = run_json(&["search", s(&f.q30), "--db", db, "-k", "5", "--json"]);
    let r0 = &results(&v[0])[0];
    assert_eq!(file_name(result_path(r0)), "chelsea.png");
    assert_eq!(r0["verdict"], "near duplicate", "{r0}");
    assert_eq!(r0["verdict_by"], "cnn");
    let sim = r0["similarity"].as_f64().unwrap();
    assert!((0.9..=1.0).contains(&sim), "{r0}");
    assert_eq!(r0["distances"]["cnn"].as_f64(), r0["distance"].as_f64());
    assert!(r0.get("view").is_none(), "a plain search has no view: {r0}");
    assert_eq!(v[0]["no_close_match"], false);

    // Hybrid: three features fused; the exact copy is first on all three.
    let v = run_json(&["search", s(&f.q30), "--db", db, "-k", "5", "--feature", "cnn+color+phash", "--json"]);
    let q = &v[0];
    assert_eq!(q["feature"], "cnn+color+phash");
    let r0 = &results(q)[0];
    assert_eq!(file_name(result_path(r0)), "chelsea.png", "{q}");
    let ds = r0["distances"].as_object().unwrap();
    assert_eq!(ds.keys().map(String::as_str).collect::<Vec<_>>(), ["cnn", "color", "phash"]);
    assert!(ds["phash"].as_f64().unwrap() <= 12.0, "{r0}");
    assert!(r0["fused_score"].as_f64().unwrap() > 0.95, "{r0}");
    for r in results(q) {
        assert_eq!(r["distances"].as_object().unwrap().len(), 3, "every hit has every distance: {r}");
    }
    // Max fusion: ordered by the best calibrated similarity, which is the fused score.
    let v = run_json(&[
        "search",
        s(&f.q30),
        "--db",
        db,
        "-k",
        "5",
        "--feature",
        "cnn+color+phash",
        "--fusion",
        "max",
        "--json",
    ]);
    let hits = results(&v[0]);
    assert_eq!(file_name(result_path(&hits[0])), "chelsea.png", "{v}");
    for h in hits {
        let (fused, sim) = (h["fused_score"].as_f64().unwrap(), h["similarity"].as_f64().unwrap());
        assert!((fused - sim).abs() < 1e-6, "{h}");
    }
    let sims: Vec<f64> = hits.iter().map(|h| h["similarity"].as_f64().unwrap()).collect();
    assert!(sims.windows(2).all(|w| w[0] >= w[1]), "{sims:?}");
    let e = run_err(&["search", s(&f.q30), "--db", db, "--feature", "cnn+color", "--fusion", "sum"]);
    assert!(e.contains("unknown fusion 'sum'"), "{e}");
    let text = run_ok(&["search", s(&f.q30), "--db", db, "-k", "2", "--feature", "cnn+color+phash"]);
    assert!(text.contains("near duplicate") && text.contains("phash "), "{text}");

    // Noise: nothing close, and the CLI says so.
    let v = run_json(&["search", s(&f.noise), "--db", db, "-k", "3", "--json"]);
    assert_eq!(v[0]["no_close_match"], true, "{v}");
    assert_eq!(results(&v[0])[0]["verdict"], "unrelated");
    let text = run_ok(&["search", s(&f.noise), "--db", db, "-k", "3"]);
    assert!(text.contains("no close match"), "{text}");

    // Mistakes are named.
    let e = run_err(&["search", s(&f.q30), "--db", db, "--robust", "turns,sideways"]);
    assert!(e.contains("unknown view 'sideways'"), "{e}");
    let e = run_err(&["search", s(&f.q30), "--db", db, "--feature", "cnn+nope"]);
    assert!(e.contains("no feature 'nope'"), "{e}");
    let e = run_err(&["search", s(&f.q30), "--db", db, "--feature", "cnn+color", "--threshold", "0.3"]);
    assert!(e.contains("threshold") && e.contains("hybrid"), "{e}");
    let e = run_err(&["search", "--id", &photo_id(&f), "--db", db, "--robust"]);
    assert!(e.contains("--robust") && e.contains("image"), "{e}");
}

/// The id of an indexed record (chelsea), as `search --json` prints it.
fn photo_id(f: &Fixture) -> String {
    let v = run_json(&["search", s(&f.q30), "--db", s(&f.db), "-k", "1", "--json"]);
    results(&v[0])[0]["id"].as_str().unwrap().to_string()
}

#[test]
fn api_robust_hybrid_and_explanations() {
    let f = fixture();
    let srv = ServeProcess::start(&f.db, &[]);
    let turned = std::fs::read(&f.turned).unwrap();

    let (st, v) = srv.search_image_with("images", turned.clone(), &[("k", "3"), ("robust", "true")]);
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(first_name(&v), "chelsea.png", "{v}");
    assert_eq!(results(&v)[0]["view"], "turn270", "{v}");
    assert_eq!(v["robust"]["turns"], true, "{v}");
    let r0 = &results(&v)[0];
    assert!(r0["similarity"].as_f64().is_some() && r0["verdict"].is_string() && r0["distances"]["cnn"].is_number());

    let (st, v) = srv.search_image_with("images", turned.clone(), &[("robust", "turns,sideways")]);
    assert_eq!(st, StatusCode::BAD_REQUEST, "{v}");
    assert!(v["error"].as_str().unwrap().contains("unknown view 'sideways'"), "{v}");

    let q30 = std::fs::read(&f.q30).unwrap();
    let (st, v) = srv.search_image_with("images", q30.clone(), &[("k", "4"), ("feature", "cnn+color+phash")]);
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["feature"], "cnn+color+phash");
    assert_eq!(first_name(&v), "chelsea.png", "{v}");
    assert_eq!(results(&v)[0]["distances"].as_object().unwrap().len(), 3, "{v}");
    assert!(results(&v)[0]["fused_score"].as_f64().unwrap() > 0.95, "{v}");
    let (st, v) = srv.search_image_with("images", q30.clone(), &[("feature", "cnn+color"), ("threshold", "0.3")]);
    assert_eq!(st, StatusCode::BAD_REQUEST, "{v}");
    assert!(v["error"].as_str().unwrap().contains("hybrid"), "{v}");
    let (st, v) =
        srv.search_image_with("images", q30.clone(), &[("k", "3"), ("feature", "cnn+color+phash"), ("fusion", "max")]);
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!((v["fusion"].as_str(), first_name(&v).as_str()), (Some("max"), "chelsea.png"), "{v}");
    let (st, v) = srv.search_image_with("images", q30.clone(), &[("feature", "cnn+color"), ("fusion", "sum")]);
    assert_eq!(st, StatusCode::BAD_REQUEST, "{v}");
    assert!(v["error"].as_str().unwrap().contains("unknown fusion 'sum'"), "{v}");
    let (st, v) = srv.search_image_with("images", q30.clone(), &[("feature", "cnn+nope")]);
    assert_eq!(st, StatusCode::BAD_REQUEST, "{v}");
    assert!(v["error"].as_str().unwrap().contains("'nope'"), "{v}");

    // JSON: a hybrid by stored id works; by one raw vector it cannot.
    let id = photo_id(&f);
    let (st, v) = srv.post_json(
        "/api/collections/images/search",
        &json!({"id": id, "feature": "cnn+color+phash", "k": 3, "fusion": "max"}),
    );
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["fusion"], "max", "{v}");
    assert_eq!(results(&v)[0]["distances"].as_object().unwrap().len(), 3, "{v}");
    assert!(results(&v).iter().all(|r| r["id"] != id), "the record itself is excluded: {v}");
    let (st, v) = srv.post_json(
        "/api/collections/images/search",
        &json!({"vector": vec![0.0; 1280], "feature": "cnn+color", "k": 3}),
    );
    assert_eq!(st, StatusCode::BAD_REQUEST, "{v}");
    assert!(v["error"].as_str().unwrap().contains("hybrid"), "{v}");

    // No close match for noise.
    let (st, v) = srv.search_image_with("images", std::fs::read(&f.noise).unwrap(), &[("k", "2")]);
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["no_close_match"], true, "{v}");
}

/// The `regions` feature: five regional descriptors per image in a multi-vector field, searched
/// with the query's own; a copy cut to one corner of a photo finds it, by its best region pair.
#[test]
fn cli_regions_feature_stores_several_vectors_per_image() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("photos");
    photo_tree(&root);
    let db = tmp.path().join("db");
    run_ok(&["index", s(&root), "--db", s(&db), "--features", "cnn,regions"]);
    let info = run_ok(&["db", "info", s(&db)]);
    assert!(info.contains("regions"), "{info}");
    let coffee = load_rgb(&photo("coffee.png"));
    let (w, h) = (coffee.width() * 2 / 3, coffee.height() * 2 / 3);
    let corner = imageops::crop_imm(&coffee, coffee.width() - w, 0, w, h).to_image();
    let q = tmp.path().join("corner.png");
    save_png(&corner, &q);
    let v = run_json(&["search", s(&q), "--db", s(&db), "-k", "3", "--feature", "regions", "--json"]);
    assert_eq!(first_name(&v[0]), "coffee.png", "{v}");
    let hits = results(&v[0]);
    let d0 = hits[0]["distance"].as_f64().unwrap();
    assert!(d0 < hits[1]["distance"].as_f64().unwrap() - 0.1, "the copy stands out: {v}");
    // Each image is one hit, however many of its regions match.
    let mut names: Vec<String> = hits.iter().map(|h| file_name(result_path(h))).collect();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), hits.len(), "{v}");
}
