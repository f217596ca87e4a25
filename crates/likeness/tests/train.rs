//! `likeness train` end to end: clear errors for trees that cannot be trained on, and on an emoji
//! ImageFolder tree (labels = Unicode categories) a trained head that `likeness eval` then compares
//! with the raw CNN on a held-out tree, plus a second run served from the embedding cache that
//! reproduces the same head byte for byte.
//!
//! Images come from `$LIKENESS_TEST_DATA` (default `<workspace>/data`), the model from
//! `$LIKENESS_MODEL_DIR` (default `models` in the test data directory).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use testdata::model_dir;

fn data_dir() -> PathBuf {
    testdata::data_dir_with("emoji/emoji.json")
}

fn likeness(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_likeness"))
        .args(args)
        .env("LIKENESS_MODEL_DIR", model_dir())
        .output()
        .expect("run likeness")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Copy emoji `name`s into `root/<label>/`.
fn put(root: &Path, label: &str, names: &[&str]) {
    let dir = root.join(label);
    std::fs::create_dir_all(&dir).unwrap();
    for n in names {
        std::fs::copy(data_dir().join("emoji/64").join(n), dir.join(n)).unwrap();
    }
}

#[test]
fn trees_that_cannot_be_trained_on_are_clear_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("head");
    let out = out.to_str().unwrap();

    let one = tmp.path().join("one");
    put(&one, "faces", &["1f600.png", "1f601.png", "1f602.png"]);
    let o = likeness(&["train", one.to_str().unwrap(), "--out", out]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("found 1 label folder(s) with images (faces); training needs at least two"),
        "{}",
        stderr(&o)
    );

    let tiny = tmp.path().join("tiny");
    put(&tiny, "faces", &["1f600.png", "1f601.png", "1f602.png"]);
    put(&tiny, "cats", &["1f408.png"]);
    let o = likeness(&["train", tiny.to_str().unwrap(), "--out", out]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("every label needs at least 2 images, but these have fewer: cats (1)"),
        "{}",
        stderr(&o)
    );

    let empty = tmp.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let o = likeness(&["train", empty.to_str().unwrap(), "--out", out]);
    assert!(stderr(&o).contains("found 0 label folder(s)"), "{}", stderr(&o));

    let o = likeness(&["train", tiny.to_str().unwrap(), "--out", out, "--val-fraction", "1.5"]);
    assert!(stderr(&o).contains("--val-fraction must be between 0 and 1"), "{}", stderr(&o));

    let o = likeness(&["train", "--out", out]);
    assert!(!o.status.success(), "no data at all is refused by the argument parser");
    assert!(!Path::new(out).with_extension("safetensors").exists(), "nothing is written on errors");
}

/// Emoji of a few categories, split by base emoji (first code point) into train / val / test trees.
fn emoji_trees(root: &Path) -> [PathBuf; 3] {
    const CATEGORIES: &[&str] =
        &["Smileys & Emotion", "Animals & Nature", "Food & Drink", "Travel & Places", "Flags", "Symbols"];
    const PER_CATEGORY: usize = 36;
    let dir = data_dir().join("emoji");
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("emoji.json")).unwrap()).unwrap();
    let mut groups: BTreeMap<(usize, String), Vec<String>> = BTreeMap::new();
    for e in json.as_array().unwrap() {
        let (Some(cat), Some(image), Some(unified)) =
            (e["category"].as_str(), e["image"].as_str(), e["unified"].as_str())
        else {
            continue;
        };
        if let Some(c) = CATEGORIES.iter().position(|x| *x == cat) {
            if dir.join("64").join(image).is_file() {
                let base = unified.split('-').next().unwrap().to_string();
                groups.entry((c, base)).or_default().push(image.to_string());
            }
        }
    }
    let trees = [root.join("train"), root.join("val"), root.join("test")];
    let mut taken = vec![0usize; CATEGORIES.len()];
    let mut dealt = vec![[0usize; 3]; CATEGORIES.len()];
    for ((c, _), files) in groups {
        if taken[c] + files.len() > PER_CATEGORY {
            continue;
        }
        taken[c] += files.len();
        // Deal whole groups 3 : 1 : 2 to train / val / test, to the split furthest below its share.
        let shares = [0.5, 1.0 / 6.0, 1.0 / 3.0];
        let k = (0..3)
            .max_by(|&a, &b| {
                let d = |i: usize| shares[i] * taken[c] as f64 - dealt[c][i] as f64;
                d(a).total_cmp(&d(b)).then(b.cmp(&a))
            })
            .unwrap();
        dealt[c][k] += files.len();
        let names: Vec<&str> = files.iter().map(String::as_str).collect();
        put(&trees[k], CATEGORIES[c], &names);
    }
    trees
}

#[test]
fn trained_head_is_compared_with_the_raw_cnn_by_eval() {
    let tmp = tempfile::tempdir().unwrap();
    let [train, val, test] = emoji_trees(tmp.path());
    let out = tmp.path().join("heads/emoji");
    let run = |extra: &[&str]| {
        let mut args = vec!["train", "--train", train.to_str().unwrap(), "--val", val.to_str().unwrap()];
        args.extend_from_slice(&["--out", out.to_str().unwrap(), "--epochs", "30", "--patience", "6", "--json"]);
        args.extend_from_slice(extra);
        let o = likeness(&args);
        assert!(o.status.success(), "likeness train failed: {}", stderr(&o));
        serde_json::from_slice::<serde_json::Value>(&o.stdout).expect("JSON report")
    };
    let first = run(&[]);
    let st = out.with_extension("safetensors");
    assert_eq!(first["safetensors"].as_str().unwrap(), st.to_str().unwrap());
    assert!(out.with_extension("json").is_file());
    let images = first["data"]["train_images"].as_u64().unwrap() + first["data"]["val_images"].as_u64().unwrap();
    assert_eq!(first["data"]["computed"].as_u64().unwrap(), images);
    assert!(first["best_epoch"].as_u64().unwrap() >= 1);
    let history = first["history"].as_array().unwrap();
    assert!(!history.is_empty() && history.len() <= 30);
    let weights = std::fs::read(&st).unwrap();

    // Second run: every embedding comes from the cache, and the same seed gives the same head.
    let second = run(&[]);
    assert_eq!(second["data"]["cached"].as_u64().unwrap(), images);
    assert_eq!(second["data"]["computed"].as_u64().unwrap(), 0);
    assert_eq!(std::fs::read(&st).unwrap(), weights, "same data and seed, same head");
    let losses = |r: &serde_json::Value| {
        r["history"].as_array().unwrap().iter().map(|e| (e["train_loss"].clone(), e["val"].clone())).collect::<Vec<_>>()
    };
    assert_eq!(losses(&second), losses(&first));

    // eval compares the raw CNN and the head on the held-out tree.
    let feature = format!("cnn,cnn+head:{}", out.display());
    let o = likeness(&["eval", test.to_str().unwrap(), "--features", &feature, "--json"]);
    assert!(o.status.success(), "likeness eval failed: {}", stderr(&o));
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let map = |name: &str| {
        report["features"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["feature"] == name)
            .unwrap_or_else(|| panic!("{name} in {report}"))["map"]
            .as_f64()
            .unwrap()
    };
    let (raw, head) = (map("cnn"), map("cnn-head.emoji"));
    eprintln!(
        "held-out emoji tree ({} images): eval mAP raw cnn {raw:.4}, cnn+head {head:.4}; validation mAP raw {:.4}, head {:.4}",
        report["images"], first["baseline_val"]["map"], first["best_val"]["map"]
    );
    assert!(head > raw, "held-out mAP: head {head:.4} does not beat the raw CNN {raw:.4}");

    // A collection indexed with the head keeps working after the head file is gone: the head is
    // copied into the database, the field is `cnn-head.emoji`, and re-indexing and searching by
    // image rebuild the extractor from the copy.
    let db = tmp.path().join("db");
    let (db_s, test_s) = (db.to_str().unwrap(), test.to_str().unwrap());
    let spec = format!("cnn+head:{},phash", out.display());
    let index = |extra: &[&str]| {
        let mut args = vec!["index", test_s, "--db", db_s, "--json"];
        args.extend_from_slice(extra);
        let o = likeness(&args);
        assert!(o.status.success(), "likeness index failed: {}", stderr(&o));
        serde_json::from_slice::<serde_json::Value>(&o.stdout).expect("JSON report")
    };
    let first_index = index(&["--features", &spec]);
    let found = first_index["found"].as_u64().unwrap();
    assert!(found > 0 && first_index["added"].as_u64() == Some(found), "{first_index}");
    assert!(db.join("heads/emoji.safetensors").is_file() && db.join("heads/emoji.json").is_file());
    std::fs::rename(&st, tmp.path().join("moved.safetensors")).unwrap();
    std::fs::rename(out.with_extension("json"), tmp.path().join("moved.json")).unwrap();
    let again = index(&[]);
    assert_eq!(again["failed"].as_array().map(Vec::len), Some(0), "{again}");
    assert_eq!(again["unchanged"].as_u64(), Some(found), "{again}");
    let query = std::fs::read_dir(std::fs::read_dir(&test).unwrap().next().unwrap().unwrap().path())
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let o = likeness(&["search", query.to_str().unwrap(), "--db", db_s, "-k", "3", "--json"]);
    assert!(o.status.success(), "likeness search failed: {}", stderr(&o));
    let hits: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(hits[0]["feature"], "cnn-head.emoji", "{hits}");
    let name = query.file_name().unwrap().to_str().unwrap();
    let rs = hits[0]["results"].as_array().unwrap();
    assert!(rs[0]["distance"].as_f64().unwrap() < 1e-4, "{hits}");
    assert!(rs.iter().any(|r| r["path"].as_str().unwrap().ends_with(name) && r["distance"].as_f64().unwrap() < 1e-4));
    // A different head under the same file name is refused, not silently mixed in.
    std::fs::write(&st, b"not the installed head").unwrap();
    std::fs::copy(tmp.path().join("moved.json"), out.with_extension("json")).unwrap();
    let o = likeness(&["index", test_s, "--db", db_s, "--features", &spec]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("different head named 'emoji'"), "{}", stderr(&o));
}
