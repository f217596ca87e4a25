//! End-to-end tests of the `likeness` command line on real photos.
//!
//! Most tests use the fast `color,phash` features; the CNN tests need the model in
//! `$LIKENESS_MODEL_DIR` (scripts/test.sh fetches it).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use common::*;
use serde_json::Value;

fn results(v: &Value) -> &Vec<Value> {
    v["results"].as_array().expect("results array")
}

/// A temporary directory with the sample photo tree (`photo_tree`) in `photos/`: the directory
/// (deleted when dropped) and the tree's root.
fn temp_photo_tree() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("photos");
    photo_tree(&root);
    (tmp, root)
}

#[test]
fn index_is_incremental_and_prunes_deleted_files() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("photos");
    let files = photo_tree(&root);
    let db = tmp.path().join("db");
    let args = ["index", s(&root), "--db", s(&db), "--features", "color,phash", "--json"];

    let first = run_json(&args);
    assert_eq!(first["found"], files.len());
    assert_eq!(first["added"], files.len());
    assert_eq!(first["failed"].as_array().unwrap().len(), 0, "{first}");

    // Nothing changed: nothing is embedded again.
    let second = run_json(&args);
    assert_eq!(second["added"], 0);
    assert_eq!(second["updated"], 0);
    assert_eq!(second["unchanged"], files.len());

    // A changed file is re-embedded; a deleted one is pruned only with --prune.
    let changed = root.join("animals/horse.png");
    edited_copy(&photo("horse.png"), "bright", &changed);
    std::fs::remove_file(root.join("textures/gravel.png")).unwrap();
    let third = run_json(&args);
    assert_eq!((third["updated"].as_u64(), third["pruned"].as_u64()), (Some(1), Some(0)), "{third}");
    assert_eq!(third["gone"].as_u64(), Some(1), "the deleted file is reported without --prune: {third}");
    let text = run_ok(&args[..args.len() - 1]);
    assert!(
        text.contains("1 indexed file under these folders is gone from disk") && text.contains("--prune"),
        "{text}"
    );
    let mut prune = args.to_vec();
    prune.push("--prune");
    let fourth = run_json(&prune);
    assert_eq!((fourth["updated"].as_u64(), fourth["pruned"].as_u64()), (Some(0), Some(1)), "{fourth}");
    assert_eq!(fourth["gone"].as_u64(), Some(1), "{fourth}");
    let fifth = run_json(&prune);
    assert_eq!((fifth["gone"].as_u64(), fifth["pruned"].as_u64()), (Some(0), Some(0)), "{fifth}");

    let info = run_json(&["db", "info", s(&db), "--json"]);
    let coll = &info["collections"][0];
    assert_eq!(coll["name"], "images");
    assert_eq!(coll["count"], files.len() - 1);
    let fields: Vec<(&str, u64, &str)> = coll["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["name"].as_str().unwrap(), f["dim"].as_u64().unwrap(), f["metric"].as_str().unwrap()))
        .collect();
    assert_eq!(fields.len(), 2);
    assert!(fields.contains(&("phash", 64, "hamming")), "{fields:?}");
    assert!(fields.iter().any(|f| f.0 == "color" && f.2 == "l2"), "{fields:?}");
    assert!(info["disk_bytes"].as_u64().unwrap() > 0);
    let human = run_ok(&["db", "info", s(&db)]);
    assert!(human.contains("collection 'images'") && human.contains("phash"), "{human}");

    // Metadata: path, ImageFolder label, size, dimensions, format.
    let out = run_json(&["search", s(&root.join("animals/chelsea.png")), "--db", s(&db), "-k", "1", "--json"]);
    let hit = &results(&out[0])[0];
    assert_eq!(file_name(result_path(hit)), "chelsea.png");
    assert_eq!(hit["label"], "animals");
}

#[test]
fn search_ranks_the_original_first_for_edited_copies() {
    let (tmp, root) = temp_photo_tree();
    let db = tmp.path().join("db");
    run_json(&["index", s(&root), "--db", s(&db), "--features", "color,phash", "--json"]);
    let queries = tmp.path().join("queries");
    std::fs::create_dir_all(&queries).unwrap();
    let originals = ["chelsea.png", "coffee.png", "astronaut.png", "rocket.jpg"];
    let mut args: Vec<String> = vec!["search".into()];
    let mut expect = Vec::new();
    for (i, name) in originals.iter().enumerate() {
        let edit = EDITS[i % EDITS.len()];
        let q = queries.join(format!("{edit}-{name}.png"));
        edited_copy(&photo(name), edit, &q);
        args.push(q.to_string_lossy().into_owned());
        expect.push((edit, *name));
    }
    for feature in ["phash", "color"] {
        let mut a = args.clone();
        a.extend(["--db", s(&db), "--feature", feature, "-k", "3", "--json"].map(String::from));
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        let out = run_json(&a);
        let out = out.as_array().unwrap();
        assert_eq!(out.len(), originals.len(), "one result list per query image (batch search)");
        for (q, (edit, name)) in out.iter().zip(&expect) {
            let rs = results(q);
            assert_eq!(rs.len(), 3);
            assert_eq!(
                file_name(result_path(&rs[0])),
                *name,
                "{feature}: the {edit} copy of {name} should find its original first: {q}"
            );
            let d: Vec<f64> = rs.iter().map(|r| r["distance"].as_f64().unwrap()).collect();
            assert!(d.windows(2).all(|w| w[0] <= w[1]), "sorted by distance: {d:?}");
        }
    }
    // Human output names the files.
    let text = run_ok(&["search", &args[1], "--db", s(&db), "--feature", "phash", "-k", "2"]);
    assert!(text.contains("chelsea.png"), "{text}");
    assert!(text.contains("lower = closer") && text.contains("distance") && text.contains("  id  "), "{text}");
}

#[test]
fn range_search_filters_and_more_like_this() {
    let (tmp, root) = temp_photo_tree();
    // Two planted copies of the cat.
    edited_copy(&photo("chelsea.png"), "q30", &root.join("animals/chelsea_q30.jpg"));
    edited_copy(&photo("chelsea.png"), "half", &root.join("animals/chelsea_half.png"));
    let db = tmp.path().join("db");
    run_json(&["index", s(&root), "--db", s(&db), "--features", "color,phash", "--json"]);
    let cat = root.join("animals/chelsea.png");

    // Range search: every hit within the threshold, the copies included, sorted.
    let out = run_json(&["search", s(&cat), "--db", s(&db), "--feature", "phash", "--threshold", "10", "--json"]);
    let rs = results(&out[0]);
    let names: BTreeSet<String> = rs.iter().map(|r| file_name(result_path(r))).collect();
    for n in ["chelsea.png", "chelsea_q30.jpg", "chelsea_half.png"] {
        assert!(names.contains(n), "range search should return {n}: {names:?}");
    }
    assert!(rs.iter().all(|r| r["distance"].as_f64().unwrap() <= 10.0));
    assert!(rs.len() < 10, "a tight threshold excludes the unrelated photos: {names:?}");
    // With -k too: at most k within the threshold.
    let out =
        run_json(&["search", s(&cat), "--db", s(&db), "--feature", "phash", "--threshold", "10", "-k", "2", "--json"]);
    assert_eq!(results(&out[0]).len(), 2);

    // Filters are applied during the search: k results even though most records are excluded.
    let out = run_json(&["search", s(&cat), "--db", s(&db), "--filter", "label=textures", "-k", "3", "--json"]);
    let rs = results(&out[0]);
    assert_eq!(rs.len(), 3);
    assert!(rs.iter().all(|r| r["label"] == "textures"), "{rs:?}");
    let out = run_json(&["search", s(&cat), "--db", s(&db), "--filter", "label in space,people", "-k", "10", "--json"]);
    let labels: BTreeSet<&str> = results(&out[0]).iter().map(|r| r["label"].as_str().unwrap()).collect();
    assert_eq!(labels, BTreeSet::from(["people", "space"]));
    let out = run_json(&["search", s(&cat), "--db", s(&db), "--filter", "width>=500 and label=animals", "--json"]);
    for r in results(&out[0]) {
        assert_eq!(r["label"], "animals");
        assert_ne!(file_name(result_path(r)), "chelsea_half.png", "the half-size copy is narrower than 500 px");
    }

    // More like this: by stored id, the record itself excluded.
    // Ids are strings in JSON (64-bit ids do not survive JavaScript's or jq's numbers) and go
    // back into --id as printed, quotes and all; --id also takes the indexed file's path.
    let out = run_json(&["search", s(&cat), "--db", s(&db), "-k", "1", "--json"]);
    let id_json = &results(&out[0])[0]["id"];
    let id = id_json.as_str().expect("ids are JSON strings").to_string();
    let by_id = |arg: &str| {
        let out = run_json(&["search", "--id", arg, "--db", s(&db), "--feature", "phash", "-k", "2", "--json"]);
        results(&out[0]).to_vec()
    };
    let rs = by_id(&id);
    assert!(rs.iter().all(|r| r["id"].as_str() != Some(id.as_str())));
    assert!(file_name(result_path(&rs[0])).starts_with("chelsea_"), "{rs:?}");
    assert_eq!(by_id(&id_json.to_string()), rs, "the id as JSON prints it, quoted");
    let stored_path = results(&out[0])[0]["path"].as_str().unwrap().to_string();
    assert_eq!(by_id(&stored_path), rs, "the indexed file's path");
    let e = run_err(&["search", "--id", s(&tmp.path().join("never-indexed.png")), "--db", s(&db)]);
    assert!(e.contains("no record of collection 'images'") && e.contains("never-indexed.png"), "{e}");

    // Clear errors.
    let e = run_err(&["search", s(&cat), "--db", s(&db), "--filter", "=cat"]);
    assert!(e.contains("filter"), "{e}");
    // Filters never fail silently: a field no record has, a value that runs on, an 'or'.
    let e = run_err(&["search", s(&cat), "--db", s(&db), "--filter", "colour=red"]);
    assert!(e.contains("'colour'"), "{e}");
    let e = run_err(&["search", s(&cat), "--db", s(&db), "--filter", "label=textures,width>=2000"]);
    assert!(e.contains("'and' / 'or'") && e.contains('^'), "{e}");
    let out = run_json(&["search", s(&cat), "--db", s(&db), "--filter", "label=space or label=people", "--json"]);
    assert!(!results(&out[0]).is_empty(), "{out}");
    let e = run_err(&["search", s(&cat), "--db", s(&db), "--collection", "nope"]);
    assert!(e.contains("nope") && e.contains("images"), "{e}");
    let e = run_err(&["search", s(&cat), "--db", s(&db), "--feature", "texture"]);
    assert!(e.contains("texture"), "{e}");
    let e = run_err(&["search", s(&root.join("missing.png")), "--db", s(&db)]);
    assert!(e.contains("missing.png"), "{e}");
}

/// The groups of a `dedup --json` report, as sets of file names.
fn dedup_groups(report: &Value) -> Vec<BTreeSet<String>> {
    let groups = report["groups"].as_array().expect("groups array");
    groups
        .iter()
        .map(|g| g["paths"].as_array().unwrap().iter().map(|p| file_name(p.as_str().unwrap())).collect())
        .collect()
}

#[test]
fn dedup_finds_planted_duplicates() {
    let (tmp, root) = temp_photo_tree();
    let planted =
        [("chelsea.png", "animals"), ("coffee.png", "objects"), ("astronaut.png", "people"), ("rocket.jpg", "objects")];
    let mut expected: Vec<BTreeSet<String>> = Vec::new();
    for (i, (name, label)) in planted.iter().enumerate() {
        let stem = Path::new(name).file_stem().unwrap().to_string_lossy().into_owned();
        // pHash is not crop-robust (see docs/app.md): crops are left to the CNN test.
        let edits = ["q30", "half", "bright"];
        let e1 = edits[i % edits.len()];
        let e2 = edits[(i + 1) % edits.len()];
        let c1 = format!("{stem}_{e1}.{}", if e1 == "q30" { "jpg" } else { "png" });
        let c2 = format!("{stem}_{e2}.{}", if e2 == "q30" { "jpg" } else { "png" });
        edited_copy(&photo(name), e1, &root.join(label).join(&c1));
        edited_copy(&photo(name), e2, &root.join(label).join(&c2));
        expected.push([name.to_string(), c1, c2].into_iter().collect());
    }
    let db = tmp.path().join("db");
    run_json(&["index", s(&root), "--db", s(&db), "--features", "color,phash", "--json"]);
    let out = run_json(&["dedup", "--db", s(&db), "--feature", "phash", "--json"]);
    let groups = dedup_groups(&out);
    for e in &expected {
        assert!(groups.contains(e), "expected group {e:?} in {groups:?}");
    }
    assert_eq!(groups.len(), expected.len(), "no false groups at the default threshold: {groups:?}");
    assert_eq!(out["feature"], "phash");
    let text = run_ok(&["dedup", "--db", s(&db), "--feature", "phash"]);
    assert!(text.contains("4 groups"), "{text}");
}

#[test]
fn bad_files_are_reported_while_the_rest_is_indexed() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("photos");
    add_photo(&root, "good", "chelsea.png", 640);
    add_photo(&root, "good", "coffee.png", 640);
    let bad = root.join("bad");
    std::fs::create_dir_all(&bad).unwrap();
    std::fs::write(bad.join("notes.jpg"), b"this is a text file, not a JPEG\n").unwrap();
    std::fs::write(bad.join("empty.png"), b"").unwrap();
    let jpg = std::fs::read(photo("rocket.jpg")).unwrap();
    std::fs::write(bad.join("truncated.jpg"), &jpg[..jpg.len() / 3]).unwrap();
    std::fs::write(root.join("README.txt"), b"not an image extension: ignored").unwrap();
    let db = tmp.path().join("db");

    let out = run_ok(&["index", s(&root), "--db", s(&db), "--features", "color,phash"]);
    assert!(out.contains("2 new"), "{out}");
    for name in ["notes.jpg", "empty.png"] {
        assert!(out.contains(name), "{name} should be listed as failed:\n{out}");
    }
    let report = run_json(&["index", s(&root), "--db", s(&db), "--features", "color,phash", "--json"]);
    assert_eq!(report["unchanged"], 2, "{report}");
    let failed: Vec<String> = report["failed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| format!("{} {}", file_name(f["path"].as_str().unwrap()), f["reason"].as_str().unwrap()))
        .collect();
    assert!(failed.iter().any(|f| f.starts_with("notes.jpg")), "{failed:?}");
    assert!(failed.iter().any(|f| f.starts_with("empty.png") && f.contains("empty")), "{failed:?}");
    // A truncated JPEG may decode partially (grey fill) or fail; either way the run goes on.
    assert!(failed.len() >= 2 && failed.len() <= 3, "{failed:?}");
    assert!(!failed.iter().any(|f| f.contains("README")));
}

/// A labelled tree of emoji from 3 categories of data/emoji/emoji.json.
fn emoji_tree(root: &Path, per_category: usize) -> usize {
    let data = data_dir().join("emoji");
    let list: Value = serde_json::from_slice(&std::fs::read(data.join("emoji.json")).unwrap()).unwrap();
    let cats = ["Flags", "Smileys & Emotion", "Food & Drink"];
    let mut n = 0;
    for cat in cats {
        let dir = root.join(cat.replace([' ', '&'], "_"));
        std::fs::create_dir_all(&dir).unwrap();
        let mut taken = 0;
        for e in list.as_array().unwrap() {
            if e["category"] != cat || taken == per_category {
                continue;
            }
            let src = data.join("64").join(e["image"].as_str().unwrap());
            if src.is_file() {
                std::fs::copy(&src, dir.join(src.file_name().unwrap())).unwrap();
                taken += 1;
            }
        }
        assert_eq!(taken, per_category, "emoji category {cat}");
        n += taken;
    }
    n
}

#[test]
fn eval_reports_sane_retrieval_metrics() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("emoji");
    let n = emoji_tree(&root, 20);
    let out = run_json(&["eval", s(&root), "--features", "color,phash", "--json"]);
    assert_eq!(out["images"], n);
    assert_eq!(out["labels"], 3);
    let chance = out["chance_precision"].as_f64().unwrap();
    assert!((chance - 19.0 / 59.0).abs() < 1e-9, "chance precision {chance}");
    let feats = out["features"].as_array().unwrap();
    assert_eq!(feats.len(), 2);
    for f in feats {
        assert_eq!(f["queries"], n);
        for k in ["map", "p_at_1", "p_at_5", "p_at_10", "recall_at_10"] {
            let v = f[k].as_f64().unwrap();
            assert!((0.0..=1.0).contains(&v), "{k} = {v}");
        }
    }
    let color = feats.iter().find(|f| f["feature"] == "color").unwrap();
    // Flags, yellow smileys and food differ in colour: the histogram must beat chance clearly.
    assert!(color["p_at_1"].as_f64().unwrap() > chance + 0.2, "{color}");
    assert!(color["map"].as_f64().unwrap() > chance, "{color}");
    let table = run_ok(&["eval", s(&root), "--features", "color"]);
    assert!(table.contains("mAP") && table.contains("P@10") && table.contains("color"), "{table}");
}

/// Write vectors as `.fvecs`.
fn write_fvecs(path: &Path, rows: &[Vec<f32>]) {
    let mut buf = Vec::new();
    for r in rows {
        buf.extend_from_slice(&(r.len() as i32).to_le_bytes());
        for x in r {
            buf.extend_from_slice(&x.to_le_bytes());
        }
    }
    std::fs::write(path, buf).unwrap();
}

#[test]
fn vectors_import_and_search_raw_vectors() {
    let tmp = tempfile::tempdir().unwrap();
    let mut state = 12345u64;
    let mut next = || {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((state >> 33) as f32 / (1u64 << 31) as f32) - 0.5
    };
    let rows: Vec<Vec<f32>> = (0..500).map(|_| (0..16).map(|_| next()).collect()).collect();
    let file = tmp.path().join("base.fvecs");
    write_fvecs(&file, &rows);
    let queries = tmp.path().join("q.fvecs");
    write_fvecs(&queries, &rows[..5]);
    let db = tmp.path().join("db");
    let out =
        run_json(&["vectors", "import", s(&file), "--db", s(&db), "--collection", "raw", "--metric", "l2", "--json"]);
    assert_eq!(out["imported"], 500);
    assert_eq!(out["count"], 500);
    let out = run_json(&["vectors", "search", s(&queries), "--db", s(&db), "--collection", "raw", "-k", "3", "--json"]);
    let res = out["results"].as_array().unwrap();
    assert_eq!(res.len(), 5);
    for (i, r) in res.iter().enumerate() {
        assert_eq!(r[0][0].as_u64(), Some(i as u64), "query {i} finds itself first");
        assert!(r[0][1].as_f64().unwrap().abs() < 1e-5);
    }
    let e = run_err(&["vectors", "import", s(&tmp.path().join("x.csv")), "--db", s(&db), "--collection", "raw"]);
    assert!(e.contains("x.csv"), "{e}");

    // Export: the rows come back bit for bit, in id order, with an id list beside them.
    let npy = tmp.path().join("out.npy");
    let ids = tmp.path().join("ids.tsv");
    let out = run_json(&[
        "vectors",
        "export",
        "--db",
        s(&db),
        "--collection",
        "raw",
        "--out",
        s(&npy),
        "--ids",
        s(&ids),
        "--json",
    ]);
    assert_eq!(
        (out["rows"].as_u64(), out["dim"].as_u64(), out["field"].as_str()),
        (Some(500), Some(16), Some("vector"))
    );
    let bytes = std::fs::read(&npy).unwrap();
    assert!(bytes.starts_with(b"\x93NUMPY"));
    let body = &bytes[bytes.len() - 500 * 16 * 4..];
    for (i, row) in rows.iter().enumerate().step_by(97) {
        let got: Vec<f32> =
            body[i * 64..(i + 1) * 64].chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect();
        assert_eq!(&got, row, "row {i}");
    }
    let lines: Vec<String> = std::fs::read_to_string(&ids).unwrap().lines().map(String::from).collect();
    assert_eq!(lines.len(), 500);
    assert_eq!((lines[0].as_str(), lines[499].as_str()), ("0\t", "499\t"));
    let e = run_err(&["vectors", "export", "--db", s(&db), "--collection", "raw", "--field", "nope", "--out", s(&npy)]);
    assert!(e.contains("nope"), "{e}");
    let e = run_err(&["vectors", "export", "--db", s(&db), "--collection", "missing", "--out", s(&npy)]);
    assert!(e.contains("missing") && e.contains("raw"), "{e}");
}

#[test]
fn cnn_search_tags_and_dedup() {
    if !cnn_model_present() {
        // The model is fetched by scripts/test.sh (`likeness model fetch`); without it the
        // product would download it on first use, which a test should not do silently.
        panic!("CNN model missing in {}: run `likeness model fetch` (scripts/test.sh does)", model_dir().display());
    }
    let (tmp, root) = temp_photo_tree();
    edited_copy(&photo("coffee.png"), "crop90", &root.join("objects/coffee_crop90.png"));
    let db = tmp.path().join("db");
    let report = run_json(&["index", s(&root), "--db", s(&db), "--features", "cnn,phash", "--json"]);
    assert_eq!(report["failed"].as_array().unwrap().len(), 0, "{report}");

    let q = tmp.path().join("cat_q30.jpg");
    edited_copy(&photo("chelsea.png"), "q30", &q);
    // The classifier as a command: top ImageNet classes, as JSON.
    let cls = run_json(&["model", "classify", s(&photo("chelsea.png")), "--top", "3", "--json"]);
    let classes = cls[0]["classes"].as_array().unwrap();
    assert_eq!(classes.len(), 3, "{cls}");
    assert!(classes.iter().all(|c| (281..=285).contains(&c["class"].as_u64().unwrap())), "cat classes: {cls}");
    let out = run_json(&["search", s(&q), "--db", s(&db), "-k", "3", "--json"]);
    assert_eq!(out[0]["feature"], "cnn");
    let rs = results(&out[0]);
    assert_eq!(file_name(result_path(&rs[0])), "chelsea.png", "{rs:?}");
    assert!(rs[0]["distance"].as_f64().unwrap() < 0.1, "{rs:?}");

    // The query embedded by the device-generic graph (the one `--device cuda` runs) finds the
    // same images at the same distances as the fused CPU kernels that indexed them.
    let generic = run_json(&["search", s(&q), "--db", s(&db), "-k", "3", "--json", "--device", "cpu-ref"]);
    let rg = results(&generic[0]);
    assert_eq!(rg.len(), rs.len());
    for (a, b) in rs.iter().zip(rg) {
        assert_eq!(result_path(a), result_path(b), "{rs:?} vs {rg:?}");
        let (da, db_) = (a["distance"].as_f64().unwrap(), b["distance"].as_f64().unwrap());
        assert!((da - db_).abs() < 1e-4, "distance {da} (cpu) vs {db_} (cpu-ref)");
    }
    #[cfg(not(feature = "cuda"))]
    {
        let e = run_err(&["search", s(&q), "--db", s(&db), "--device", "cuda"]);
        assert!(e.contains("no CUDA support") && e.contains("--features cuda"), "{e}");
    }

    // The CNN's ImageNet tags are stored and filterable.
    let out = run_json(&[
        "search",
        s(&q),
        "--db",
        s(&db),
        "-k",
        "5",
        "--filter",
        "tags in tabby,tiger cat,Persian cat,Siamese cat,Egyptian cat",
        "--json",
    ]);
    let rs = results(&out[0]);
    assert!(!rs.is_empty() && file_name(result_path(&rs[0])) == "chelsea.png", "{rs:?}");

    let out = run_json(&["dedup", "--db", s(&db), "--json"]);
    assert_eq!(out["feature"], "cnn");
    let groups = dedup_groups(&out);
    let want: BTreeSet<String> = ["coffee.png", "coffee_crop90.png"].map(String::from).into();
    assert_eq!(groups, vec![want]);
}

#[test]
fn help_is_available_for_every_command() {
    for cmd in [
        vec!["index"],
        vec!["search"],
        vec!["dedup"],
        vec!["eval"],
        vec!["serve"],
        vec!["demo"],
        vec!["db", "info"],
        vec!["vectors", "import"],
        vec!["vectors", "search"],
        vec!["vectors", "export"],
        vec!["db", "set-index"],
        vec!["train"],
        vec!["model"],
    ] {
        let mut a: Vec<&str> = cmd.clone();
        a.push("--help");
        let out = run_ok(&a);
        assert!(out.contains("Usage:"), "{cmd:?}: {out}");
    }
}

/// 64-bit FNV-1a of a path: the record id `likeness index` gives a file.
fn fnv1a_path(p: &Path) -> u64 {
    use std::os::unix::ffi::OsStrExt;
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in p.as_os_str().as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

fn stats(v: &mut [f64]) -> String {
    if v.is_empty() {
        return "-".into();
    }
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let q = |p: f64| v[((v.len() - 1) as f64 * p).round() as usize];
    format!(
        "min {:.3} p5 {:.3} med {:.3} p95 {:.3} max {:.3} (n={})",
        q(0.0),
        q(0.05),
        q(0.5),
        q(0.95),
        q(1.0),
        v.len()
    )
}

/// How the default `dedup` thresholds were chosen (docs/app.md), and that they still hold:
/// distances from each sample photo to its edited copies vs to the nearest other photo, and
/// between emoji skin-tone variants. Asserts, for every feature with a default threshold, that
/// the copies the docs promise to group (all four edits for `cnn`; all but the 90% crop for the
/// hashes) are within it and that no two distinct photos are, except the stereo pair
/// `motorcycle_left`/`motorcycle_right` (one scene) for `cnn` and `phash`.
/// The distributions for the table in docs/app.md:
/// `cargo test --workspace --profile test --test cli calibrate -- --nocapture`.
#[test]
fn calibrate_dedup_thresholds() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().canonicalize().unwrap().join("cal");
    let mut originals = Vec::new();
    let mut names: Vec<String> = std::fs::read_dir(data_dir().join("photos"))
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let mut mate: Vec<String> = std::fs::read_dir(data_dir().join("photos/mate"))
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| format!("mate/{}", e.file_name().to_string_lossy()))
        .collect();
    mate.sort();
    names.extend(mate);
    for n in &names {
        let orig = add_photo(&root, "photos", n, 1024);
        let stem = orig.file_stem().unwrap().to_string_lossy().into_owned();
        let mut copies = Vec::new();
        for e in EDITS {
            let ext = if *e == "q30" { "jpg" } else { "png" };
            let c = root.join("copies").join(format!("{stem}__{e}.{ext}"));
            std::fs::create_dir_all(c.parent().unwrap()).unwrap();
            edited_copy(&orig, e, &c);
            copies.push((e.to_string(), c));
        }
        originals.push((orig, copies));
    }
    // Emoji with skin-tone variants.
    let edata = data_dir().join("emoji");
    let list: Value = serde_json::from_slice(&std::fs::read(edata.join("emoji.json")).unwrap()).unwrap();
    let mut emoji = Vec::new();
    for e in list.as_array().unwrap() {
        let Some(sv) = e["skin_variations"].as_object() else { continue };
        let base = edata.join("64").join(e["image"].as_str().unwrap());
        if !base.is_file() || emoji.len() == 30 {
            continue;
        }
        let dir = root.join("emoji");
        std::fs::create_dir_all(&dir).unwrap();
        let b = dir.join(base.file_name().unwrap());
        std::fs::copy(&base, &b).unwrap();
        let mut vars = Vec::new();
        for v in sv.values() {
            let src = edata.join("64").join(v["image"].as_str().unwrap());
            if src.is_file() {
                let d = dir.join(src.file_name().unwrap());
                std::fs::copy(&src, &d).unwrap();
                vars.push(d);
            }
        }
        emoji.push((b, vars));
    }
    let db = tmp.path().join("db");
    let rep = run_json(&["index", s(&root), "--db", s(&db), "--features", "cnn,color,phash,dhash", "--json"]);
    eprintln!("indexed {} images at {:.1} images/s", rep["added"], rep["images_per_second"]);

    for feature in ["cnn", "color", "phash", "dhash"] {
        let mut args: Vec<String> =
            vec!["search".into(), "--db".into(), s(&db).into(), "--feature".into(), feature.into()];
        args.extend(["-k".into(), "400".into(), "--json".into()]);
        let queries: Vec<&Path> =
            originals.iter().map(|(o, _)| o.as_path()).chain(emoji.iter().map(|(b, _)| b.as_path())).collect();
        for q in &queries {
            args.push("--id".into());
            args.push(fnv1a_path(q).to_string());
        }
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = run_json(&a);
        let mut per_edit: BTreeMap<String, Vec<f64>> = Default::default();
        let mut distinct = Vec::new();
        let mut nearest_distinct: Vec<(String, String, f64)> = Vec::new();
        let mut skin = Vec::new();
        let mut emoji_distinct = Vec::new();
        for (i, q) in out.as_array().unwrap().iter().enumerate() {
            let dist_to = |p: &Path| -> Option<f64> {
                let id = fnv1a_path(p);
                q["results"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|r| r["id"].as_str() == Some(id.to_string().as_str()))
                    .map(|r| r["distance"].as_f64().unwrap())
            };
            if i < originals.len() {
                let (orig, copies) = &originals[i];
                let stem = orig.file_stem().unwrap().to_string_lossy().into_owned();
                for (e, c) in copies {
                    per_edit.entry(e.clone()).or_default().extend(dist_to(c));
                }
                // Nearest photo not derived from this one (emoji excluded).
                let nearest = q["results"].as_array().unwrap().iter().find(|r| {
                    let p = r["path"].as_str().unwrap();
                    !p.contains("/emoji/") && !file_name(p).starts_with(&format!("{stem}__"))
                });
                if let Some(r) = nearest {
                    let d = r["distance"].as_f64().unwrap();
                    distinct.push(d);
                    nearest_distinct.push((
                        file_name(orig.to_str().unwrap()),
                        file_name(r["path"].as_str().unwrap()),
                        d,
                    ));
                }
            } else {
                let (b, vars) = &emoji[i - originals.len()];
                for v in vars {
                    skin.extend(dist_to(v));
                }
                let stem = b.file_stem().unwrap().to_string_lossy().into_owned();
                let nearest = q["results"].as_array().unwrap().iter().find(|r| {
                    let p = r["path"].as_str().unwrap();
                    p.contains("/emoji/") && !file_name(p).starts_with(&stem)
                });
                emoji_distinct.extend(nearest.map(|r| r["distance"].as_f64().unwrap()));
            }
        }
        eprintln!("== {feature}");
        for (e, v) in per_edit.iter_mut() {
            eprintln!("  copy {e:<7} {}", stats(v));
        }
        eprintln!("  nearest distinct photo {}", stats(&mut distinct));
        eprintln!("  emoji skin-tone variant {}", stats(&mut skin));
        eprintln!("  nearest other emoji     {}", stats(&mut emoji_distinct));

        // The default threshold groups the promised copies and no distinct photos.
        let t = f64::from(likeness::dedup_cmd::default_threshold(feature).unwrap_or(f32::INFINITY));
        if t.is_infinite() {
            continue; // colour: no default, --threshold is required
        }
        let grouped: &[&str] = if feature == "cnn" { EDITS } else { &["q30", "half", "bright"] };
        for e in grouped {
            let v = &per_edit[*e];
            assert_eq!(v.len(), originals.len(), "{feature}: a {e} copy missing from the top 400");
            let worst = v.iter().copied().fold(0.0, f64::max);
            assert!(worst <= t, "{feature}: a {e} copy is {worst} away, over the default {t}");
        }
        assert_eq!(nearest_distinct.len(), originals.len(), "{feature}: every photo has a nearest distinct one");
        // A photo or an edited copy of it (`<stem>__<edit>.<ext>`), by the original's stem.
        let origin = |name: &str| name.split("__").next().unwrap().split('.').next().unwrap().to_string();
        let stereo = ["motorcycle_left", "motorcycle_right"];
        for (a, b, d) in &nearest_distinct {
            let stereo_pair = stereo.contains(&origin(a).as_str()) && stereo.contains(&origin(b).as_str());
            assert!(
                d > &t || (stereo_pair && feature != "dhash"),
                "{feature}: distinct {a} and {b} are {d} apart, within {t}"
            );
        }
    }
}

/// Index specs of each field of collection `c` from `db info --json`.
fn field_indexes(db: &Path, c: &str) -> BTreeMap<String, String> {
    let info = run_json(&["db", "info", s(db), "--json"]);
    let coll = info["collections"].as_array().unwrap().iter().find(|x| x["name"] == c).unwrap().clone();
    coll["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["name"].as_str().unwrap().to_string(), f["index"].as_str().unwrap().to_string()))
        .collect()
}

#[test]
fn approximate_indexes_per_feature_set_index_and_search_knobs() {
    let (tmp, root) = temp_photo_tree();
    let q = tmp.path().join("coffee_q30.jpg");
    edited_copy(&photo("coffee.png"), "q30", &q);
    let db = tmp.path().join("db");
    let first = |out: &Value| file_name(result_path(&results(&out[0])[0]));

    // One spec: the dense feature gets it, the 64-bit hash stays an exact popcount scan.
    run_json(&["index", s(&root), "--db", s(&db), "--features", "color,phash", "--index", "HNSW16,SQ8", "--json"]);
    let ix = field_indexes(&db, "images");
    assert_eq!((ix["color"].as_str(), ix["phash"].as_str()), ("HNSW16,SQ8", "Flat"));
    let out = run_json(&["search", s(&q), "--db", s(&db), "--feature", "color", "--ef", "200", "-k", "3", "--json"]);
    assert_eq!(first(&out), "coffee.png", "{out}");

    // Switch an index in place: nothing is re-embedded, the search knob of the new index applies.
    let set = run_json(&["db", "set-index", s(&db), "--field", "color", "--index", "KDForest4", "--json"]);
    assert_eq!((set["index"].as_str(), set["records"].as_u64()), (Some("KDForest4"), Some(15)));
    run_json(&["db", "set-index", s(&db), "--field", "phash", "--index", "HNSW8", "--json"]);
    let ix = field_indexes(&db, "images");
    assert_eq!((ix["color"].as_str(), ix["phash"].as_str()), ("KDForest4", "HNSW8"));
    let out = run_json(&["search", s(&q), "--db", s(&db), "--feature", "color", "--checks", "64", "-k", "3", "--json"]);
    assert_eq!(first(&out), "coffee.png", "{out}");
    let out = run_json(&["search", s(&q), "--db", s(&db), "--feature", "phash", "--ef", "32", "-k", "3", "--json"]);
    assert_eq!(first(&out), "coffee.png", "{out}");

    // Per-feature specs for a new collection; features not named stay Flat.
    let args = ["--features", "color,phash", "--collection", "c2", "--json"];
    let mut a = vec!["index", s(&root), "--db", s(&db), "--index", "color=HNSW8"];
    a.extend_from_slice(&args);
    run_json(&a);
    let ix = field_indexes(&db, "c2");
    assert_eq!((ix["color"].as_str(), ix["phash"].as_str()), ("HNSW8", "Flat"));

    // Mistakes are clear errors that change nothing.
    let mut a = vec!["index", s(&root), "--db", s(&db), "--index", "cnn=HNSW16", "--collection", "c3"];
    a.extend_from_slice(&args[..2]);
    let e = run_err(&a);
    assert!(e.contains("'cnn'") && e.contains("color, phash"), "{e}");
    let e = run_err(&["db", "set-index", s(&db), "--field", "phash", "--index", "HNSW16,SQ8"]);
    assert!(e.contains("SQ8") && e.contains("hamming"), "{e}");
    let e = run_err(&["db", "set-index", s(&db), "--field", "nope", "--index", "Flat"]);
    assert!(e.contains("nope"), "{e}");
    assert_eq!(field_indexes(&db, "images")["phash"], "HNSW8");
}

#[test]
fn sigterm_keeps_what_was_stored_exits_0_and_the_next_run_resumes() {
    // SIGTERM (docker stop, systemd) and Ctrl-C share one handler (`signals::shutdown_requested`).
    let emoji = data_dir().join("emoji/64");
    assert!(emoji.is_dir(), "{} missing: run scripts/fetch-test-data.sh", emoji.display());
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("db");
    let args = ["index", s(&emoji), "--db", s(&db), "--features", "color,texture", "--batch", "32", "--json"];
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_likeness"))
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let kill = std::process::Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(kill.success());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    // The report is printed either way; a cleanly interrupted run says so and exits 0.
    let first: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {stderr}"));
    let (found, stored) = (first["found"].as_u64().unwrap(), first["added"].as_u64().unwrap());
    assert!(found >= 3000, "{first}");
    // Everything reported stored is in the database (a batch is acknowledged only once durable).
    let info = run_json(&["db", "info", s(&db), "--json"]);
    assert_eq!(info["collections"][0]["count"].as_u64(), Some(stored), "{info}");
    if first["interrupted"] == true {
        assert!(out.status.success(), "exit {} after SIGTERM: {stderr}", out.status);
        assert!(stderr.contains("SIGTERM") && stderr.contains("run the same command again to resume"), "{stderr}");
        assert!(stored < found, "{first}");
    } else {
        assert!(out.status.success(), "{stderr}");
        eprintln!("the run finished before the signal ({found} images): resume checked on a complete index");
    }
    // The next run embeds only what is missing.
    let second = run_json(&args);
    assert_eq!(second["unchanged"].as_u64(), Some(stored), "{second}");
    assert_eq!(second["added"].as_u64(), Some(found - stored), "{second}");
    assert_eq!(second["failed"].as_array().map(Vec::len), Some(0));
    assert_eq!(run_json(&["db", "info", s(&db), "--json"])["collections"][0]["count"].as_u64(), Some(found));
}
