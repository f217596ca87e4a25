//! Geometric verification (`--verify`, the API's `verify` field): local keypoints of the query
//! matched with the top hits' files, a RANSAC fit, inliers and the matched quadrilateral; from
//! the CLI (`search`, `dedup`) and the HTTP API, on real photos and edited copies.

mod common;

use std::path::{Path, PathBuf};

use common::serve::ServeProcess;
use common::*;
use image::{imageops, DynamicImage, ImageFormat, RgbImage};
use reqwest::StatusCode;
use serde_json::Value;

fn results(v: &Value) -> &Vec<Value> {
    v["results"].as_array().expect("results array")
}

fn save_png(img: &RgbImage, p: &Path) {
    DynamicImage::ImageRgb8(img.clone()).save_with_format(p, ImageFormat::Png).unwrap();
}

/// The sample tree (plus a JPEG q30 copy of chelsea) indexed with cnn; query copies: coffee
/// pasted at 40% of the width into a nature photo that is not indexed, a 30°-turned crop of
/// astronaut, a crop of the stored chelsea (with where it was cut), a noise image.
struct Fixture {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    db: PathBuf,
    pasted: PathBuf,
    turned: PathBuf,
    crop: PathBuf,
    /// The crop's rectangle in the stored chelsea.png: x, y, width, height.
    crop_rect: (f32, f32, f32, f32),
    noise: PathBuf,
}

fn fixture() -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("photos");
    photo_tree(&root);
    let chelsea_path = walk_find(&root, "chelsea.png").expect("chelsea.png in the tree");
    edited_copy(&chelsea_path, "q30", &chelsea_path.with_file_name("chelsea_q30.jpg"));
    let db = tmp.path().join("db");
    run_ok(&["index", s(&root), "--db", s(&db), "--features", "cnn"]);

    let mut nature: Vec<PathBuf> =
        std::fs::read_dir(data_dir().join("photos/mate")).unwrap().map(|e| e.unwrap().path()).collect();
    nature.sort();
    let host = load_rgb(&nature[5]); // photo_tree indexes the first two
    let host = imageops::resize(&host, 800, 800 * host.height() / host.width(), imageops::FilterType::Triangle);
    let coffee = load_rgb(&walk_find(&root, "coffee.png").unwrap());
    let small = imageops::resize(&coffee, 320, 320 * coffee.height() / coffee.width(), imageops::FilterType::Triangle);
    let mut pasted = host.clone();
    imageops::overlay(&mut pasted, &small, 400, 150);
    let pasted_path = tmp.path().join("pasted.png");
    save_png(&pasted, &pasted_path);

    let astronaut = load_rgb(&walk_find(&root, "astronaut.png").unwrap());
    let turned = features::augment::rotate_inscribed(&astronaut, 30.0);
    let turned_path = tmp.path().join("turned.png");
    save_png(&turned, &turned_path);

    let chelsea = load_rgb(&chelsea_path);
    let (w, h) = (chelsea.width() / 2, chelsea.height() / 2);
    let (x, y) = (chelsea.width() / 3, chelsea.height() / 4);
    let crop_path = tmp.path().join("crop.png");
    save_png(&imageops::crop_imm(&chelsea, x, y, w, h).to_image(), &crop_path);

    let mut state = 12345u32;
    let noise = RgbImage::from_fn(300, 240, |_, _| {
        state = state.wrapping_mul(1_103_515_245).wrapping_add(12345);
        let v = (state >> 16) as u8;
        image::Rgb([v, v.wrapping_mul(7), v.wrapping_mul(13)])
    });
    let noise_path = tmp.path().join("noise.png");
    save_png(&noise, &noise_path);
    Fixture {
        _tmp: tmp,
        root,
        db,
        pasted: pasted_path,
        turned: turned_path,
        crop: crop_path,
        crop_rect: (x as f32, y as f32, w as f32, h as f32),
        noise: noise_path,
    }
}

fn walk_find(root: &Path, name: &str) -> Option<PathBuf> {
    walkdir_like(root).into_iter().find(|p| p.file_name().is_some_and(|n| n == name))
}

fn walkdir_like(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walkdir_like(&p));
        } else {
            out.push(p);
        }
    }
    out
}

fn inliers(hit: &Value) -> u64 {
    hit["verification"]["inliers"].as_u64().unwrap_or(0)
}

#[test]
fn cli_verify_ranks_copies_first_with_many_inliers_and_their_quad() {
    let f = fixture();
    let db = s(&f.db);

    // Picture in picture, a 30° turn: verified, first, with many inliers; the other hits few.
    for (query, want) in [(&f.pasted, "coffee.png"), (&f.turned, "astronaut.png")] {
        let v = run_json(&["search", s(query), "--db", db, "-k", "5", "--verify", "--json"]);
        let hits = results(&v[0]);
        let r0 = &hits[0];
        assert_eq!(file_name(result_path(r0)), want, "{v}");
        assert_eq!(r0["verification"]["verified"], true, "{r0}");
        assert!(inliers(r0) >= 25, "{r0}");
        for other in &hits[1..] {
            assert!(inliers(other) * 3 < inliers(r0), "an unrelated image has few inliers: {other}");
            assert_ne!(other["verification"]["verified"], true, "{other}");
        }
    }

    // A crop: its corners land where it was cut from the stored image.
    let v = run_json(&["search", s(&f.crop), "--db", db, "-k", "3", "--verify", "10", "--json"]);
    let r0 = &results(&v[0])[0];
    assert!(file_name(result_path(r0)).starts_with("chelsea"), "{v}");
    let quad: Vec<(f64, f64)> = r0["verification"]["quad"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p[0].as_f64().unwrap(), p[1].as_f64().unwrap()))
        .collect();
    let (x, y, w, h) = f.crop_rect;
    let want = [(x, y), (x + w, y), (x + w, y + h), (x, y + h)];
    for (got, want) in quad.iter().zip(want) {
        assert!((got.0 - want.0 as f64).abs() < 12.0 && (got.1 - want.1 as f64).abs() < 12.0, "{quad:?} vs {want:?}");
    }

    // By a stored record: its own file gives the keypoints; its copy comes first, verified.
    let id = r0["id"].as_str().unwrap().to_string();
    let first = file_name(result_path(r0));
    let v = run_json(&["search", "--id", &id, "--db", db, "-k", "3", "--verify", "--json"]);
    let h0 = &results(&v[0])[0];
    let name = file_name(result_path(h0));
    assert!(name.starts_with("chelsea") && name != first, "the other chelsea comes first: {v}");
    assert_eq!(h0["verification"]["verified"], true, "{h0}");

    // Noise: nothing is verified. The text output names the inliers.
    let v = run_json(&["search", s(&f.noise), "--db", db, "-k", "3", "--verify", "--json"]);
    assert!(results(&v[0]).iter().all(|h| h["verification"]["verified"] == false), "{v}");
    let text = run_ok(&["search", s(&f.pasted), "--db", db, "-k", "2", "--verify"]);
    assert!(text.contains("verified:") && text.contains("inliers"), "{text}");

    // Bad values are named; --verify needs a query image.
    let e = run_err(&["search", s(&f.pasted), "--db", db, "--verify", "lots"]);
    assert!(e.contains("bad verify value 'lots'"), "{e}");
    let e = run_err(&["search", s(&f.pasted), "--db", db, "--verify", "0"]);
    assert!(e.contains("bad verify value '0'"), "{e}");

    // Dedup: the q30 copy and chelsea are grouped; --verify checks the pair.
    let v = run_json(&["dedup", "--db", db, "--verify", "--json"]);
    let group = v["groups"].as_array().unwrap().iter().find(|g| g["paths"][0].as_str().unwrap().contains("chelsea"));
    let pair = &group.expect("chelsea's group")["pairs"][0];
    assert_eq!(pair["verification"]["verified"], true, "{v}");
    assert!(pair["verification"]["inliers"].as_u64().unwrap() >= 25, "{pair}");

    // A candidate whose file is gone is reported and keeps its place; no crash.
    std::fs::remove_file(walk_find(&f.root, "coffee.png").unwrap()).unwrap();
    let v = run_json(&["search", s(&f.pasted), "--db", db, "-k", "3", "--verify", "--json"]);
    let gone = results(&v[0]).iter().find(|h| file_name(result_path(h)) == "coffee.png").expect("coffee still found");
    assert!(gone["verification"]["error"].as_str().unwrap().contains("coffee.png"), "{gone}");
    assert_eq!(gone["verification"]["verified"], false);
}

#[test]
fn api_verify_option_and_bad_values() {
    let f = fixture();
    let srv = ServeProcess::start(&f.db, &[]);
    let pasted = std::fs::read(&f.pasted).unwrap();

    let (st, v) = srv.search_image_with("images", pasted.clone(), &[("k", "4"), ("verify", "true")]);
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["verified"], true, "{v}");
    let r0 = &results(&v)[0];
    assert_eq!(file_name(result_path(r0)), "coffee.png", "{v}");
    assert_eq!(r0["verification"]["verified"], true, "{r0}");
    assert!(inliers(r0) >= 25, "{r0}");
    let quad = r0["verification"]["quad"].as_array().unwrap();
    assert_eq!(quad.len(), 4);
    assert!(quad.iter().all(|p| p.as_array().unwrap().len() == 2), "{r0}");
    assert_eq!(results(&v).len(), 4, "k is kept");

    let (st, v) = srv.search_image_with("images", pasted.clone(), &[("k", "2"), ("verify", "5")]);
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(results(&v).len(), 2);

    let (st, v) = srv.search_image_with("images", pasted.clone(), &[("k", "2"), ("verify", "false")]);
    assert_eq!(st, StatusCode::OK, "{v}");
    assert!(results(&v)[0].get("verification").is_none() && v.get("verified").is_none(), "{v}");

    for bad in ["many", "-3", "100000"] {
        let (st, v) = srv.search_image_with("images", pasted.clone(), &[("verify", bad)]);
        assert_eq!(st, StatusCode::BAD_REQUEST, "verify={bad}: {v}");
        assert!(v["error"].as_str().unwrap().contains("bad verify value"), "{v}");
    }
}
