//! The `likeness-bench` binary: every benchmark has `--help`, and the two that need no peer
//! library (`cnn` without PyTorch, `http`) print their `--json` reports.

use std::path::Path;

use serde_json::Value;
use testdata::{data_dir, model_dir};

/// Run `likeness-bench` with `args`, require success, and return stdout.
fn run_ok(args: &[&str]) -> String {
    let out = assert_cmd::Command::new(env!("CARGO_BIN_EXE_likeness-bench")).args(args).output().expect("run");
    testdata::success_stdout(&format!("likeness-bench {args:?}"), &out)
}

/// Run `likeness-bench` with `args`, require success, and parse stdout as JSON.
fn run_json(args: &[&str]) -> Value {
    let out = run_ok(args);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("likeness-bench {args:?}: stdout is not JSON ({e}):\n{out}"))
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

#[test]
fn help_is_available_for_every_benchmark() {
    for cmd in ["exact", "ann", "cnn", "http", "copy", "scale"] {
        let out = run_ok(&[cmd, "--help"]);
        assert!(out.contains("Usage: likeness-bench"), "{cmd}: {out}");
        assert!(out.contains("--json"), "{cmd}: {out}");
    }
}

#[test]
fn bench_cnn_json_without_torch() {
    let st = "efficientnet-lite0.safetensors";
    assert!(
        model_dir().join(st).is_file(),
        "CNN model missing in {}: run `likeness model fetch`",
        model_dir().display()
    );
    // Two photos, and a model dir holding only the converted weights: without the .pth
    // checkpoint PyTorch is always skipped, whatever Python is installed.
    let tmp = tempfile::tempdir().expect("tempdir");
    let photos = tmp.path().join("photos");
    std::fs::create_dir_all(&photos).expect("mkdir");
    for p in ["chelsea.png", "coffee.png"] {
        std::fs::copy(data_dir().join("photos").join(p), photos.join(p)).expect("copy photo");
    }
    let models = tmp.path().join("models");
    std::fs::create_dir_all(&models).expect("mkdir");
    std::fs::copy(model_dir().join(st), models.join(st)).expect("copy the converted model");
    let v = run_json(&[
        "cnn",
        "--images",
        "2",
        "--passes",
        "1",
        "--batch",
        "2",
        "--threads",
        "1",
        "--photos",
        s(&photos),
        "--model-dir",
        s(&models),
        "--python",
        "/nonexistent",
        "--json",
    ]);
    assert_eq!(v["variant"], "lite0");
    assert_eq!(v["images"], 2);
    assert!(v["device"].is_string(), "{v:#}");
    assert!(v["ours_images_per_s"].as_f64().unwrap() > 0.0, "{v:#}");
    assert!(v["ours_e2e_images_per_s"].as_f64().unwrap() > 0.0, "{v:#}");
    assert!(v["torch_images_per_s"].is_null(), "{v:#}");
    assert!(v["torch_skipped"].is_string(), "{v:#}");
    assert!(v["speedup"].is_null());
}

#[test]
fn bench_http_json_on_a_small_synthetic_collection() {
    let v = run_json(&["http", "--records", "500", "--dim", "16", "--requests", "40", "--concurrency", "2", "--json"]);
    assert_eq!(v["records"], 500);
    assert_eq!(v["dim"], 16);
    assert_eq!(v["requests"], 40, "{v:#}");
    let (p50, p99) = (v["p50_ms"].as_f64().unwrap(), v["p99_ms"].as_f64().unwrap());
    assert!(p50 > 0.0 && p50 <= p99, "{v:#}");
    assert!(v["requests_per_second"].as_f64().unwrap() > 0.0, "{v:#}");
}

/// `scale` end to end on a small generated set without peers: the data generator, the ground
/// truth from a `Flat` collection, the import, `db info`, the first query and the `ef` sweep up
/// to the recall target, measured in child processes.
#[test]
fn bench_scale_json_on_a_small_generated_set() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let likeness = Path::new(env!("CARGO_BIN_EXE_likeness-bench")).with_file_name("likeness");
    assert!(likeness.exists(), "{} missing: build the workspace (cargo build --workspace)", likeness.display());
    let args = ["scale", "--n", "3000", "--dim", "8", "--peers", "none", "--recall", "0.9", "--json"];
    let mut all: Vec<&str> = args.to_vec();
    all.extend(["--work", s(tmp.path()), "--likeness", s(&likeness)]);
    let v = run_json(&all);
    assert_eq!((v["n"].as_u64(), v["dim"].as_u64()), (Some(3000), Some(8)), "{v:#}");
    let l = &v["likeness"];
    assert_eq!(l["index"], "HNSW16");
    for key in ["import_s", "db_info_s", "open_first_query_s", "import_peak_rss_mib"] {
        assert!(l[key].as_f64().unwrap() > 0.0, "{key}: {v:#}");
    }
    // 3,000 × 8 floats: 32 B per vector in the segments.
    let per = &l["bytes_per_vector"];
    assert!(per["disk"].as_f64().unwrap() >= 32.0 && per["heap"].as_f64().unwrap() >= 0.0, "{v:#}");
    let at = &l["at_target"];
    assert!(at["recall"].as_f64().unwrap() >= 0.9 && at["qps"].as_f64().unwrap() > 0.0, "{v:#}");
    let sweep = l["sweep"].as_array().unwrap();
    assert!(sweep.last().unwrap()["ef"] == at["ef"], "the sweep stops at the target: {v:#}");
    assert!(tmp.path().join("base_3000_8.npy").exists() && tmp.path().join("base_3000_8.gt10.ivecs").exists());
    assert_eq!(v["peers"].as_array().unwrap().len(), 0);
}

#[test]
fn bench_copy_reports_recall_per_edit_kind_and_mode() {
    // Four photos: 2 originals, 2 hosts (one receives the pasted copies, one gives 3 crops), 5 emoji.
    let tmp = tempfile::tempdir().expect("tempdir");
    let photos = tmp.path().join("photos");
    std::fs::create_dir_all(&photos).expect("mkdir");
    for p in ["chelsea.png", "coffee.png", "astronaut.png", "rocket.jpg"] {
        std::fs::copy(data_dir().join("photos").join(p), photos.join(p)).expect("copy photo");
    }
    let v = run_json(&[
        "copy",
        "--photos",
        s(&photos),
        "--originals",
        "2",
        "--crops-per-host",
        "3",
        "--emoji-count",
        "5",
        "--edits",
        "mirror,rotate-45,pip",
        "--max-side",
        "320",
        "--model-dir",
        s(&model_dir()),
        "--json",
    ]);
    assert_eq!(
        (v["originals"].as_u64(), v["distractors"].as_u64(), v["queries"].as_u64()),
        (Some(2), Some(8), Some(6)),
        "{v}"
    );
    assert_eq!(v["bytes_per_image"]["cnn"], 5120);
    let modes = v["modes"].as_array().unwrap();
    let names: Vec<&str> = modes.iter().map(|m| m["mode"].as_str().unwrap()).collect();
    assert!(names.contains(&"cnn") && names.contains(&"robust(all)") && names.contains(&"hybrid-rrf"), "{names:?}");
    for m in modes {
        let r = m["recall_at_1"].as_object().unwrap();
        assert_eq!(r.keys().map(String::as_str).collect::<Vec<_>>(), ["mirror", "pip", "rotate-45"], "{m}");
        assert!(r.values().all(|x| (0.0..=1.0).contains(&x.as_f64().unwrap())), "{m}");
        assert!(m["ms_per_query"].as_f64().unwrap() > 0.0);
    }
    // A mirrored copy among 8 distractors is found by the plain CNN; the robust mode embeds ~27 views.
    assert_eq!(modes[0]["recall_at_1"]["mirror"], 1.0, "{}", modes[0]);
    let all = modes.iter().find(|m| m["mode"] == "robust(all)").unwrap();
    assert!(all["views_per_query"].as_f64().unwrap() > 10.0, "{all}");
    let out = assert_cmd::Command::new(env!("CARGO_BIN_EXE_likeness-bench"))
        .args(["copy", "--photos", s(&photos), "--edits", "sideways"])
        .output()
        .expect("run");
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown edit kind 'sideways'"), "{out:?}");
}
