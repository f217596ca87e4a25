//! The parallel pipeline: input order, per-file errors, batching, progress, and agreement
//! with the single-file path used for queries.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use features::decode::DecodeLimits;
use features::pipeline::{extract_path, ImageInput, Progress};
use features::registry::{build_extractors, ExtractorOptions};
use features::{
    extract_inputs, extract_many, DistanceKind, Embedding, FeatureError, FeatureExtractor, Features, Result,
};
use image::RgbImage;
use testdata::{data_dir, model_dir};

#[test]
fn keeps_order_and_reports_bad_files() {
    let data = data_dir();
    let tmp = tempfile::tempdir().unwrap();
    let empty = tmp.path().join("empty.png");
    std::fs::write(&empty, b"").unwrap();
    let text = tmp.path().join("notes.jpg");
    std::fs::write(&text, b"hello").unwrap();
    let missing = tmp.path().join("missing.webp");
    let paths: Vec<PathBuf> = vec![
        data.join("photos/chelsea.png"),
        empty.clone(),
        data.join("photos/coffee.png"),
        data.join("photos/mate/Storm.jpg"),
        text.clone(),
        data.join("photos/rocket.jpg"),
        missing.clone(),
        data.join("photos/camera.png"),
    ];
    let extractors = build_extractors(&["color", "texture", "phash", "dhash"], &ExtractorOptions::default()).unwrap();
    let seen = Mutex::new(Vec::new());
    let results = extract_many(&paths, &extractors, &DecodeLimits::default(), &|p| seen.lock().unwrap().push(p));
    assert_eq!(results.len(), paths.len());
    for (path, r) in paths.iter().zip(&results) {
        let bad = [&empty, &text, &missing].contains(&path);
        match r {
            Ok(rec) => {
                assert!(!bad, "{} should have failed", path.display());
                assert_eq!(&rec.path, path);
                assert_eq!(
                    rec.features.keys().map(String::as_str).collect::<Vec<_>>(),
                    ["color", "dhash", "phash", "texture"]
                );
                // The batch path gives exactly what the single-file (query) path gives.
                let single = extract_path(path, &extractors, &DecodeLimits::default()).unwrap();
                assert_eq!(&single, rec);
            }
            Err(e) => {
                assert!(bad, "{}: {e}", path.display());
                assert_eq!(e.path(), Some(path.as_path()));
            }
        }
    }
    assert!(matches!(results[1], Err(FeatureError::Empty { .. })));
    assert!(matches!(results[4], Err(FeatureError::UnsupportedFormat { .. })));
    assert!(matches!(results[6], Err(FeatureError::Io { .. })));
    let rec = results[3].as_ref().unwrap();
    let storm = image::image_dimensions(data.join("photos/mate/Storm.jpg")).unwrap();
    assert_eq!((rec.width, rec.height, rec.format.as_str()), (storm.0, storm.1, "jpeg"));
    let seen = seen.into_inner().unwrap();
    assert_eq!(seen.last(), Some(&Progress { done: 8, total: 8, failed: 3 }));
}

/// Mean color, batched by 3; fails on images narrower than 2 px, panics on 3 px wide ones.
struct MeanColor {
    batches: Arc<Mutex<Vec<usize>>>,
}

impl FeatureExtractor for MeanColor {
    fn name(&self) -> &str {
        "mean"
    }
    fn dim(&self) -> usize {
        3
    }
    fn distance(&self) -> DistanceKind {
        DistanceKind::L2
    }
    fn extract(&self, image: &RgbImage) -> Result<Features> {
        match image.width() {
            1 => return Err(FeatureError::InvalidArgument("too narrow".into())),
            3 => panic!("three pixels wide"),
            _ => {}
        }
        let n = (image.width() * image.height()) as f32;
        let mut sum = [0f32; 3];
        for p in image.pixels() {
            for (s, &c) in sum.iter_mut().zip(&p.0) {
                *s += f32::from(c);
            }
        }
        Ok(Features { vector: Embedding::Dense(sum.iter().map(|s| s / n).collect()), tags: vec![] })
    }
    fn extract_batch(&self, images: &[RgbImage]) -> Result<Vec<Features>> {
        self.batches.lock().unwrap().push(images.len());
        images.iter().map(|im| self.extract(im)).collect()
    }
    fn batch_size(&self) -> usize {
        3
    }
}

#[test]
fn batches_isolate_failures_and_progress_is_chunked() {
    let tmp = tempfile::tempdir().unwrap();
    let mut paths = Vec::new();
    for i in 0..40u32 {
        let w = match i {
            5 => 1,
            17 => 3,
            _ => 4 + i,
        };
        let img = RgbImage::from_pixel(w, 6, image::Rgb([i as u8, 2 * i as u8, 100]));
        let p = tmp.path().join(format!("img{i:02}.png"));
        img.save(&p).unwrap();
        paths.push(p);
    }
    let batches = Arc::new(Mutex::new(Vec::new()));
    let mean = MeanColor { batches: Arc::clone(&batches) };
    let extractors: Vec<Box<dyn FeatureExtractor>> = vec![Box::new(mean)];
    let seen = Mutex::new(Vec::new());
    let results = extract_many(&paths, &extractors, &DecodeLimits::default(), &|p| seen.lock().unwrap().push(p));
    for (i, r) in results.iter().enumerate() {
        match (i, r) {
            (5 | 17, Err(FeatureError::Extract { path, extractor, reason })) => {
                assert_eq!(path, &paths[i]);
                assert_eq!(extractor, "mean");
                assert!(reason.contains(if i == 5 { "too narrow" } else { "panicked" }), "{reason}");
            }
            (5 | 17, other) => panic!("image {i}: expected an extractor error, got {other:?}"),
            (_, Ok(rec)) => {
                let Embedding::Dense(v) = &rec.features["mean"].vector else { panic!() };
                assert_eq!(v, &vec![i as f32, 2.0 * i as f32, 100.0]);
            }
            (_, Err(e)) => panic!("image {i}: {e}"),
        }
    }
    let seen = seen.into_inner().unwrap();
    assert!(seen.len() >= 2, "progress once per chunk of 40 files: {seen:?}");
    assert!(seen.windows(2).all(|w| w[0].done < w[1].done));
    assert_eq!(seen.last(), Some(&Progress { done: 40, total: 40, failed: 2 }));
    // The extractor got batches of at most its batch size, covering every decoded image once
    // (the two batches with a failing image are retried image by image).
    let batches = batches.lock().unwrap();
    assert!(batches.iter().all(|&b| (1..=3).contains(&b)), "{batches:?}");
    assert_eq!(batches.iter().sum::<usize>(), 40);
}

#[test]
fn many_small_files_in_chunks() {
    // 300 emoji through all cheap extractors: bounded chunks, every result present, in order.
    let dir = data_dir().join("emoji/64");
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
    paths.sort();
    paths.truncate(300);
    let extractors = build_extractors(&["color", "phash"], &ExtractorOptions::default()).unwrap();
    let calls = Mutex::new(0usize);
    let results = extract_many(&paths, &extractors, &DecodeLimits::default(), &|_| *calls.lock().unwrap() += 1);
    assert_eq!(results.len(), 300);
    for (p, r) in paths.iter().zip(&results) {
        assert_eq!(&r.as_ref().unwrap().path, p);
    }
    assert!(calls.into_inner().unwrap() > 1);
    // Empty input.
    assert!(extract_many(&[], &extractors, &DecodeLimits::default(), &|_| {}).is_empty());
}

#[test]
fn cnn_batches_through_the_pipeline_match_single_images() {
    // The CNN batches (batch_size > 1): the pipeline's batched vectors must equal what the
    // query path (one image at a time) gives for the same file.
    let opts = ExtractorOptions { model_dir: Some(model_dir()), ..Default::default() };
    let extractors = build_extractors(&["cnn", "phash"], &opts).unwrap_or_else(|e| panic!("{e}"));
    assert!(extractors[0].batch_size() > 1);
    let data = data_dir();
    let mut paths: Vec<PathBuf> = ["chelsea.png", "coffee.png", "astronaut.png", "rocket.jpg", "horse.png"]
        .iter()
        .map(|n| data.join("photos").join(n))
        .collect();
    paths.push(data.join("photos/mate/Storm.jpg"));
    paths.insert(2, data.join("photos/does-not-exist.png"));
    let results = extract_many(&paths, &extractors, &DecodeLimits::default(), &|_| {});
    assert!(matches!(results[2], Err(FeatureError::Io { .. })));
    for (p, r) in paths.iter().zip(&results).filter(|(_, r)| r.is_ok()) {
        let rec = r.as_ref().unwrap();
        let single = extract_path(p, &extractors, &DecodeLimits::default()).unwrap();
        let d = features::metrics::distance(
            &rec.features["cnn"].vector,
            &single.features["cnn"].vector,
            DistanceKind::Cosine,
        );
        assert!(d.abs() < 1e-5, "{}: batched vs single cosine distance {d}", p.display());
        let Embedding::Dense(v) = &rec.features["cnn"].vector else { panic!("dense expected") };
        assert_eq!(v.len(), 1280);
        assert_eq!(rec.features["cnn"].tags.len(), single.features["cnn"].tags.len());
    }
}

#[test]
fn in_memory_inputs_batch_like_files() {
    // Encoded bytes and decoded pixels go through the same chunked pipeline as files: the
    // batching extractor sees batches of its batch size, bad items fail alone, order is kept,
    // and every vector equals the file's.
    let tmp = tempfile::tempdir().unwrap();
    let mut inputs = Vec::new();
    let mut expected = Vec::new();
    for i in 0..30u32 {
        let img = RgbImage::from_pixel(8 + i, 6, image::Rgb([i as u8, 3 * i as u8, 50]));
        let p = tmp.path().join(format!("img{i:02}.png"));
        img.save(&p).unwrap();
        let name = PathBuf::from(format!("<item {i}>"));
        inputs.push(match i % 3 {
            0 => ImageInput::Path(p),
            1 => ImageInput::Bytes { bytes: std::fs::read(&p).unwrap(), name },
            _ => ImageInput::Pixels { image: img, name },
        });
        expected.push(Some(vec![i as f32, 3.0 * i as f32, 50.0]));
    }
    inputs[4] = ImageInput::Bytes { bytes: b"not an image".to_vec(), name: "<bad bytes>".into() };
    inputs[8] = ImageInput::Pixels { image: RgbImage::new(0, 0), name: "<empty pixels>".into() };
    expected[4] = None;
    expected[8] = None;
    let names: Vec<PathBuf> = inputs.iter().map(|i| i.name().to_path_buf()).collect();
    let batches = Arc::new(Mutex::new(Vec::new()));
    let extractors: Vec<Box<dyn FeatureExtractor>> = vec![Box::new(MeanColor { batches: Arc::clone(&batches) })];
    let last = Mutex::new(Progress::default());
    let results = extract_inputs(inputs, &extractors, &DecodeLimits::default(), &|p| *last.lock().unwrap() = p);
    assert_eq!(results.len(), 30);
    for (i, ((r, want), name)) in results.iter().zip(&expected).zip(&names).enumerate() {
        match (r, want) {
            (Ok(rec), Some(want)) => {
                assert_eq!(&rec.path, name);
                assert_eq!(rec.format, if i % 3 == 2 { "array" } else { "png" });
                let Embedding::Dense(v) = &rec.features["mean"].vector else { panic!() };
                assert_eq!(v, want, "item {i}");
            }
            (Err(e), None) => assert_eq!(e.path(), Some(name.as_path()), "item {i}: {e}"),
            (r, _) => panic!("item {i}: {r:?}"),
        }
    }
    assert_eq!(*last.lock().unwrap(), Progress { done: 30, total: 30, failed: 2 });
    let batches = batches.lock().unwrap();
    assert!(batches.iter().all(|&b| (1..=3).contains(&b)), "{batches:?}");
    assert!(batches.iter().filter(|&&b| b == 3).count() >= 8, "in-memory items are batched: {batches:?}");
    assert_eq!(batches.iter().sum::<usize>(), 28);
}
