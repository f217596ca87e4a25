//! EfficientNet-Lite on real photos: classification sanity, agreement with an independent
//! PyTorch implementation (live when torch is installed, else a committed reference), invariance
//! to JPEG / resize / crop, batch == single, and typed errors for bad model files.
//!
//! The model is fetched into `$LIKENESS_MODEL_DIR` (default `models` in the test data directory) on
//! first use; photos come from `$LIKENESS_TEST_DATA` (default `<workspace>/data`).

use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;

use features::cnn::{model_paths, CnnExtractor, CnnVariant, ComputeDevice};
use features::{Embedding, FeatureError, FeatureExtractor};
use image::RgbImage;
use testdata::{data_dir, model_dir, workspace_root};

fn model(variant: CnnVariant) -> &'static CnnExtractor {
    static LITE0: OnceLock<CnnExtractor> = OnceLock::new();
    static LITE2: OnceLock<CnnExtractor> = OnceLock::new();
    let cell = match variant {
        CnnVariant::Lite0 => &LITE0,
        CnnVariant::Lite2 => &LITE2,
    };
    cell.get_or_init(|| {
        CnnExtractor::load(variant, Some(&model_dir()))
            .unwrap_or_else(|e| panic!("cannot load {variant:?} from {}: {e}", model_dir().display()))
    })
}

fn photo(name: &str) -> RgbImage {
    let path = data_dir().join("photos").join(name);
    image::open(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).to_rgb8()
}

fn dense(e: &Embedding) -> &[f32] {
    match e {
        Embedding::Dense(v) => v,
        Embedding::Binary(_) => panic!("the CNN gives dense vectors"),
    }
}

fn cosine_distance(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    let nb: f32 = b.iter().map(|x| x * x).sum::<f32>().sqrt();
    1.0 - dot / (na * nb)
}

/// The central `size` square of an image, without resizing.
fn raw_center_crop(img: &RgbImage, size: u32) -> RgbImage {
    let (x0, y0) = ((img.width() - size) / 2, (img.height() - size) / 2);
    image::imageops::crop_imm(img, x0, y0, size, size).to_image()
}

#[test]
fn lite0_classifies_chelsea_as_a_cat() {
    let tags = model(CnnVariant::Lite0).classify(&photo("chelsea.png")).unwrap();
    assert_eq!(tags.len(), 5);
    for t in &tags[..3] {
        assert!((281..=285).contains(&t.class), "top-3 should all be cats: {tags:?}");
    }
    let cats: f32 = tags.iter().filter(|t| (281..=285).contains(&t.class)).map(|t| t.prob).sum();
    assert!(cats > 0.8, "cat probability {cats}: {tags:?}");
    assert!(tags.windows(2).all(|w| w[0].prob >= w[1].prob), "{tags:?}");
}

#[test]
fn lite0_classifies_coffee_as_espresso() {
    let tags = model(CnnVariant::Lite0).classify(&photo("coffee.png")).unwrap();
    assert_eq!(tags[0].class, 967, "{tags:?}");
    assert_eq!(tags[0].label, "espresso");
    assert!(tags[0].prob > 0.9, "{tags:?}");
}

#[test]
fn lite2_classifies_chelsea_and_coffee() {
    let m = model(CnnVariant::Lite2);
    assert_eq!(m.name(), "cnn-lite2");
    assert_eq!(m.dim(), 1280);
    let tags = m.classify(&photo("chelsea.png")).unwrap();
    for t in &tags[..3] {
        assert!((281..=285).contains(&t.class), "top-3 should all be cats: {tags:?}");
    }
    let tags = m.classify(&photo("coffee.png")).unwrap();
    assert_eq!(tags[0].class, 967, "{tags:?}");
    assert!(tags[0].prob > 0.9, "{tags:?}");
}

/// Reference computed once by `bench/cnn_torch.py embed` (independent PyTorch implementation
/// of the same architecture, same .pth) on the raw 224×224 center crop of chelsea.png: the first
/// 64 dimensions of the L2-normalized embedding, the pooled norm and the top-5 logits.
#[test]
fn lite0_embedding_matches_committed_torch_reference() {
    let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/cnn_torch_chelsea.json"))
        .unwrap();
    let r: serde_json::Value = serde_json::from_str(&text).unwrap();
    let crop = raw_center_crop(&photo("chelsea.png"), 224);
    let out = model(CnnVariant::Lite0).run_crops(&[crop]).unwrap().remove(0);
    let head: Vec<f32> = r["embedding_head"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap() as f32).collect();
    assert_eq!(head.len(), 64);
    let max_diff = head.iter().zip(&out.embedding).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
    println!("max |ours - torch| over 64 dims: {max_diff}");
    assert!(max_diff < 2e-4, "embedding differs from torch by up to {max_diff}");
    // Cosine on the stored slice (normalized within it) too.
    let d = cosine_distance(&head, &out.embedding[..64]);
    assert!(d < 1e-4, "cosine distance to torch on 64 dims: {d}");
    let norm = r["norm"].as_f64().unwrap() as f32;
    assert!((out.norm - norm).abs() / norm < 1e-3, "norm {} vs torch {norm}", out.norm);
    for pair in r["top5_logits"].as_array().unwrap() {
        let (class, logit) = (pair[0].as_u64().unwrap() as usize, pair[1].as_f64().unwrap() as f32);
        assert!((out.logits[class] - logit).abs() < 0.02, "logit {class}: {} vs torch {logit}", out.logits[class]);
    }
}

/// A Python interpreter with torch, or why there is none.
fn python_with_torch() -> Result<String, String> {
    let mut tried = Vec::new();
    let mut candidates: Vec<String> = std::env::var("LIKENESS_PYTHON").into_iter().collect();
    candidates.extend(["python3".into(), "/usr/bin/python3".into()]);
    for py in candidates {
        match Command::new(&py).args(["-c", "import torch"]).output() {
            Ok(o) if o.status.success() => return Ok(py),
            Ok(_) => tried.push(format!("{py}: no torch")),
            Err(e) => tried.push(format!("{py}: {e}")),
        }
    }
    Err(tried.join(", "))
}

/// Live comparison with the PyTorch implementation on our own preprocessed crops (full 1280-d).
#[test]
fn embeddings_match_live_torch_when_available() {
    let py = match python_with_torch() {
        Ok(py) => py,
        Err(why) => {
            println!("SKIPPED embeddings_match_live_torch_when_available: no PyTorch ({why})");
            return;
        }
    };
    for variant in [CnnVariant::Lite0, CnnVariant::Lite2] {
        let m = model(variant);
        let (pth, _) = model_paths(variant, Some(&model_dir()));
        let crops: Vec<RgbImage> =
            ["chelsea.png", "coffee.png", "astronaut.png"].iter().map(|n| m.prepare(&photo(n)).unwrap()).collect();
        let ours = m.run_crops(&crops).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let raw = dir.path().join("crops.raw");
        let bytes: Vec<u8> = crops.iter().flat_map(|c| c.as_raw().iter().copied()).collect();
        std::fs::write(&raw, bytes).unwrap();
        let out = Command::new(&py)
            .arg(workspace_root().join("bench/cnn_torch.py"))
            .args(["embed", "--variant", variant.as_str(), "--n", "3", "--size"])
            .arg(variant.input_size().to_string())
            .arg("--weights")
            .arg(&pth)
            .arg("--raw")
            .arg(&raw)
            .output()
            .unwrap();
        assert!(out.status.success(), "cnn_torch.py failed: {}", String::from_utf8_lossy(&out.stderr));
        let lines: Vec<serde_json::Value> =
            String::from_utf8(out.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(lines.len(), 3);
        for (o, t) in ours.iter().zip(&lines) {
            let te: Vec<f32> = t["embedding"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap() as f32).collect();
            let d = cosine_distance(&o.embedding, &te);
            println!("{variant:?}: cosine similarity to torch {}", 1.0 - d);
            assert!(1.0 - d >= 0.999, "{variant:?}: cosine similarity to torch {}", 1.0 - d);
        }
    }
}

fn jpeg_q30(img: &RgbImage) -> RgbImage {
    let mut buf = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut buf, 30).encode_image(img).unwrap();
    image::load_from_memory(&buf).unwrap().to_rgb8()
}

fn half_size(img: &RgbImage) -> RgbImage {
    image::imageops::resize(img, img.width() / 2, img.height() / 2, image::imageops::FilterType::Triangle)
}

fn crop_80(img: &RgbImage) -> RgbImage {
    let (w, h) = (img.width() * 4 / 5, img.height() * 4 / 5);
    image::imageops::crop_imm(img, (img.width() - w) / 2, (img.height() - h) / 2, w, h).to_image()
}

#[test]
fn lite0_embedding_is_invariant_to_jpeg_resize_and_crop() {
    let m = model(CnnVariant::Lite0);
    let names = [
        "chelsea.png",
        "coffee.png",
        "astronaut.png",
        "rocket.jpg",
        "horse.png",
        "motorcycle_left.png",
        "camera.png",
        "coins.png",
        "mate/LadyBird.jpg",
        "mate/Storm.jpg",
    ];
    let originals: Vec<RgbImage> = names.iter().map(|n| photo(n)).collect();
    let emb: Vec<Vec<f32>> = m.extract_batch(&originals).unwrap().iter().map(|f| dense(&f.vector).to_vec()).collect();
    let mut worst_ratio = 0f32;
    for (i, img) in originals.iter().enumerate() {
        let copies = [("jpeg q30", jpeg_q30(img)), ("half size", half_size(img)), ("80% crop", crop_80(img))];
        for (what, copy) in copies {
            let e = m.extract(&copy).unwrap();
            let e = dense(&e.vector);
            let own = cosine_distance(e, &emb[i]);
            let other =
                (0..names.len()).filter(|&j| j != i).map(|j| cosine_distance(e, &emb[j])).fold(f32::INFINITY, f32::min);
            worst_ratio = worst_ratio.max(own / other);
            assert!(
                own * 3.0 < other,
                "{} ({what}): distance to its original {own}, to the nearest other photo {other}",
                names[i]
            );
        }
    }
    println!("worst own/other distance ratio: {worst_ratio}");
}

/// The device the device-generic graph is checked on: `$LIKENESS_TEST_DEVICE` (e.g. `cuda` on a
/// machine with a GPU and a `--features cuda` build), else the CPU running that graph.
fn test_device() -> ComputeDevice {
    match std::env::var("LIKENESS_TEST_DEVICE") {
        Ok(s) if !s.is_empty() => s.parse().unwrap_or_else(|e| panic!("LIKENESS_TEST_DEVICE: {e}")),
        _ => ComputeDevice::CpuReference,
    }
}

/// The graph GPUs run (candle tensor ops only) gives the fused CPU kernels' embeddings and
/// classes, for Lite0 and Lite2, on a batch of real photos.
#[test]
fn device_generic_graph_matches_fused_cpu_kernels() {
    let device = test_device();
    println!("checking the device-generic graph on {device}");
    for variant in [CnnVariant::Lite0, CnnVariant::Lite2] {
        let fused = model(variant);
        let generic = CnnExtractor::load(variant, Some(&model_dir())).unwrap().with_device(device).unwrap();
        assert_eq!(generic.device(), device);
        assert_eq!(fused.device(), ComputeDevice::Cpu);
        let crops: Vec<RgbImage> = ["chelsea.png", "coffee.png", "rocket.jpg", "astronaut.png"]
            .iter()
            .map(|n| fused.prepare(&photo(n)).unwrap())
            .collect();
        let a = fused.run_crops(&crops).unwrap();
        let b = generic.run_crops(&crops).unwrap();
        assert_eq!(a.len(), b.len());
        for (x, y) in a.iter().zip(&b) {
            let diff = x.embedding.iter().zip(&y.embedding).map(|(p, q)| (p - q).abs()).fold(0f32, f32::max);
            assert!(diff < 1e-4, "{variant:?}: embeddings differ by up to {diff}");
            assert!((x.norm - y.norm).abs() / x.norm < 1e-4, "{variant:?}: norm {} vs {}", x.norm, y.norm);
            let top = |l: &[f32]| features::cnn::top_k_tags(l, 3).iter().map(|t| t.class).collect::<Vec<_>>();
            assert_eq!(top(&x.logits), top(&y.logits), "{variant:?}");
        }
    }
}

#[test]
fn lite0_batch_equals_single() {
    let m = model(CnnVariant::Lite0);
    let imgs = [photo("chelsea.png"), photo("coffee.png"), photo("rocket.jpg")];
    let batch = m.extract_batch(&imgs).unwrap();
    assert_eq!(batch.len(), 3);
    for (img, b) in imgs.iter().zip(&batch) {
        let s = m.extract(img).unwrap();
        let (a, b2) = (dense(&s.vector), dense(&b.vector));
        assert_eq!(a.len(), 1280);
        let norm: f32 = a.iter().map(|v| v * v).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-4, "not L2-normalized: {norm}");
        let diff = a.iter().zip(b2).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max);
        assert!(diff < 1e-4, "batch and single differ by {diff}");
        assert_eq!(
            s.tags.iter().map(|t| t.class).collect::<Vec<_>>(),
            b.tags.iter().map(|t| t.class).collect::<Vec<_>>()
        );
    }
    assert!(m.extract_batch(&[]).unwrap().is_empty());
}

#[test]
fn bad_model_files_give_typed_errors() {
    let dir = tempfile::tempdir().unwrap();
    // Missing, fetching disabled: says how to fetch.
    let err = CnnExtractor::load_with(CnnVariant::Lite0, Some(dir.path()), false).err().unwrap();
    assert!(matches!(&err, FeatureError::ModelMissing(m) if m.contains("likeness model fetch")), "{err}");
    // Garbage safetensors.
    let (pth, st) = model_paths(CnnVariant::Lite0, Some(dir.path()));
    std::fs::write(&st, b"definitely not safetensors").unwrap();
    let err = CnnExtractor::load_with(CnnVariant::Lite0, Some(dir.path()), false).err().unwrap();
    assert!(matches!(err, FeatureError::ModelFormat(_)), "{err}");
    // A valid safetensors file without the network's tensors.
    let t = safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![2], &[0u8; 8]).unwrap();
    safetensors::serialize_to_file([("x", t)], None, &st).unwrap();
    let err = CnnExtractor::load_with(CnnVariant::Lite0, Some(dir.path()), false).err().unwrap();
    assert!(matches!(&err, FeatureError::ModelFormat(m) if m.contains("_conv_stem")), "{err}");
    // A corrupted checkpoint fails the sha256 check (no download is attempted: the file is there).
    std::fs::remove_file(&st).unwrap();
    std::fs::write(&pth, b"corrupted checkpoint").unwrap();
    let err = features::cnn::fetch_model(CnnVariant::Lite0, Some(dir.path())).err().unwrap();
    assert!(matches!(&err, FeatureError::ModelFetch(m) if m.contains("sha256")), "{err}");
    // Wrong-size crops are rejected.
    let err = model(CnnVariant::Lite0).run_crops(&[RgbImage::new(100, 100)]).err().unwrap();
    assert!(matches!(err, FeatureError::InvalidArgument(_)), "{err}");
    // Degenerate images still embed.
    let f = model(CnnVariant::Lite0).extract(&RgbImage::new(1, 3)).unwrap();
    assert_eq!(dense(&f.vector).len(), 1280);
}

/// The CNN embedding of a JPEG decoded reduced in the DCT domain (what the pipeline does: both
/// sides at least 256 px) against the embedding of its full decode, on the wallpapers (1280–2560
/// px, decoded at 1/4 or 1/2) and an 8× enlarged photo (decoded at 1/4): the cosine distances stay
/// far below the near-duplicate band (0.16).
#[test]
fn reduced_decodes_embed_like_full_decodes() {
    use features::decode::{load_image, DecodeLimits};
    use features::pipeline::{extract_image, extract_path};
    let cnn: Vec<Box<dyn FeatureExtractor>> =
        vec![Box::new(CnnExtractor::load(CnnVariant::Lite0, Some(&model_dir())).unwrap())];
    let lim = DecodeLimits::default();
    let dir = tempfile::tempdir().unwrap();
    let c = photo("chelsea.png");
    let big = features::preprocess::resize_exact(
        &c,
        c.width() * 8,
        c.height() * 8,
        features::preprocess::ResizeFilter::CatmullRom,
    );
    let big_path = dir.path().join("chelsea8x.jpg");
    big.save(&big_path).unwrap();
    let mut files: Vec<std::path::PathBuf> =
        std::fs::read_dir(data_dir().join("photos/mate")).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    files.push(big_path);
    let mut dists = Vec::new();
    for f in &files {
        let reduced = extract_path(f, &cnn, &lim).unwrap();
        let full = extract_image(load_image(f, &lim).unwrap().image, f, &cnn).unwrap();
        let d = cosine_distance(dense(&reduced.features["cnn"].vector), dense(&full["cnn"].vector));
        eprintln!("{}: cosine distance reduced vs full decode {d:.5}", f.display());
        dists.push(d);
    }
    dists.sort_by(f32::total_cmp);
    let mean = dists.iter().sum::<f32>() / dists.len() as f32;
    eprintln!(
        "cosine distance reduced vs full: min {:.5} median {:.5} mean {mean:.5} max {:.5}",
        dists[0],
        dists[dists.len() / 2],
        dists[dists.len() - 1]
    );
    assert!(dists[dists.len() - 1] < 0.05, "max cosine distance {}", dists[dists.len() - 1]);
}

/// The `regions` feature stores the whole image and its four corners at 2/3: a copy cut to one
/// corner meets its original through that region, closer than the global embeddings of the two
/// are, and farther from any other photo.
#[test]
fn regions_meet_a_corner_crop_closer_than_the_global_embedding() {
    use features::cnn::regions::{RegionsExtractor, STORED_REGIONS};
    let regions = RegionsExtractor::new(CnnExtractor::load(CnnVariant::Lite0, Some(&model_dir())).unwrap());
    assert_eq!((regions.name(), regions.dim(), regions.vectors_per_image()), ("regions", 1280, STORED_REGIONS));
    let best_pair = |a: &[f32], b: &[f32]| {
        a.chunks(1280).flat_map(|x| b.chunks(1280).map(move |y| cosine_distance(x, y))).fold(f32::INFINITY, f32::min)
    };
    let img = photo("coffee.png");
    let (w, h) = (img.width() * 2 / 3, img.height() * 2 / 3);
    let corner = image::imageops::crop_imm(&img, img.width() - w, img.height() - h, w, h).to_image();
    let r_img = regions.extract(&img).unwrap().vector;
    let r_corner = regions.extract(&corner).unwrap().vector;
    assert_eq!(dense(&r_img).len(), STORED_REGIONS * 1280);
    let cnn = model(CnnVariant::Lite0);
    let global =
        cosine_distance(dense(&cnn.extract(&img).unwrap().vector), dense(&cnn.extract(&corner).unwrap().vector));
    let through_regions = best_pair(dense(&r_img), dense(&r_corner));
    assert!(through_regions < 0.7 * global, "regions {through_regions} vs global {global}");
    let other = regions.extract(&photo("astronaut.png")).unwrap().vector;
    assert!(best_pair(dense(&other), dense(&r_corner)) > 3.0 * through_regions);
}
