//! Writes the seed corpora of the fuzz targets into `fuzz/corpus/<target>/` from the real
//! code: a database made through vecdb's API (its MANIFEST, WAL, segment and the whole
//! directory), a saved index of every kind, filters, search bodies, and small images of every
//! decoded format. Run by `scripts/fuzz.sh seeds` (then commit the corpus):
//!
//! ```text
//! cargo run --manifest-path fuzz/Cargo.toml --example make_seeds
//! ```
//!
//! Inputs of the file targets start with the flags byte of `vecdb::fuzzing` (bit 0: ignore
//! checksums); file seeds are written twice, with checksums checked (`-crc`) and ignored (all
//! but the index snapshots, which have one checked seed).

use std::fs;
use std::io::Cursor;
use std::path::{Path, PathBuf};

use vecdb::index::build_index;
use vecdb::{CollectionSchema, Database, Metric, Record, Vector, VectorField, VectorsRef};

fn main() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("corpus");
    database_seeds(&root);
    index_seeds(&root);
    text_seeds(&root);
    image_seeds(&root);
    println!("seeds written under {}", root.display());
}

/// Write `bytes` as seed `name` of `target`.
fn seed(root: &Path, target: &str, name: &str, bytes: &[u8]) {
    let dir = root.join(target);
    fs::create_dir_all(&dir).expect("create corpus dir");
    fs::write(dir.join(name), bytes).expect("write seed");
}

/// A file seed twice: flags 0 (checksums checked) and 1 (ignored).
fn file_seed(root: &Path, target: &str, name: &str, body: &[u8]) {
    for (flags, suffix) in [(0u8, "-crc"), (1u8, "")] {
        let mut b = vec![flags];
        b.extend_from_slice(body);
        seed(root, target, &format!("{name}{suffix}"), &b);
    }
}

/// Deterministic pseudo-random floats.
fn floats(n: usize, seed: u64) -> Vec<f32> {
    let mut x = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % 2000) as f32 / 1000.0 - 1.0
        })
        .collect()
}

fn database_seeds(root: &Path) {
    let tmp = tempdir("db");
    let db = Database::open(&tmp).expect("open db");
    let schema = CollectionSchema {
        fields: vec![
            VectorField::new("dense", 8, Metric::L2, "HNSW8"),
            VectorField::new("bits", 64, Metric::Hamming, "Flat"),
        ],
    };
    let c = db.create_collection("photos", schema).expect("create collection");
    let record = |id: u64| {
        let v = floats(8, id);
        Record::new(id)
            .with_vector("dense", Vector::Dense(v))
            .with_vector("bits", Vector::Binary(id.to_le_bytes().to_vec()))
            .with_metadata(
                serde_json::json!({"label": if id % 2 == 0 { "cat" } else { "dog" }, "size": id, "tags": ["a"]}),
            )
    };
    c.insert((1..=12).map(record).collect()).expect("insert");
    c.delete(&[3]).expect("delete");
    c.checkpoint().expect("checkpoint");
    c.insert((13..=16).map(record).collect()).expect("insert");
    c.delete(&[5, 14]).expect("delete");
    let cdir = tmp.join("collections/photos");
    for e in fs::read_dir(&cdir).expect("read collection dir") {
        let p = e.expect("entry").path();
        let name = p.file_name().expect("name").to_string_lossy().into_owned();
        if p.is_dir() {
            continue;
        }
        let body = fs::read(&p).expect("read file");
        if name == "MANIFEST" {
            file_seed(root, "manifest_open", "manifest", &body);
        } else if name.starts_with("wal-") {
            file_seed(root, "wal_replay", "wal", &body);
        } else if name.starts_with("seg-") {
            file_seed(root, "segment_open", "segment", &body);
        }
    }
    // A WAL written before any checkpoint (puts and deletes only), and an empty one.
    let c2 = db
        .create_collection("small", CollectionSchema::single("v", 2, Metric::Cosine, "Flat"))
        .expect("create collection");
    c2.insert(vec![Record::new(7).with_vector("v", Vector::Dense(vec![1.0, 0.5]))]).expect("insert");
    c2.delete(&[7]).expect("delete");
    let wal = fs::read(tmp.join("collections/small/wal-00000001.log")).expect("read wal");
    file_seed(root, "wal_replay", "wal-small", &wal);
    drop((c, c2));
    drop(db);
    file_seed(root, "database_open", "db", &vecdb::fuzzing::pack_dir(&tmp).expect("pack db"));
    let _ = fs::remove_dir_all(&tmp);
}

fn index_seeds(root: &Path) {
    let dense = [
        "Flat",
        "HNSW4",
        "HNSW4,SQ8",
        "KDForest2",
        "KDTree",
        "LSH64",
        "IVF2,Flat",
        "IVF2,PQ2",
        "IVF2,SQ8",
        "SQ8",
        "PQ2",
        "PCA2,Flat",
        "PCAW2,HNSW4",
        "IVF2,PQ2,Refine",
    ];
    for (spec, metric, dim) in dense.iter().map(|s| (*s, Metric::L2, 4)).chain([
        ("Flat", Metric::Hamming, 64),
        ("HNSW4", Metric::Hamming, 64),
        ("Flat", Metric::Cosine, 4),
    ]) {
        let mut index = build_index(spec, dim, metric).expect("build index");
        let n = 300;
        let ids: Vec<u64> = (1..=n as u64).collect();
        let (floats_buf, bits_buf);
        let rows = if metric == Metric::Hamming {
            bits_buf = (0..n * dim / 8).map(|i| (i * 37 % 251) as u8).collect::<Vec<u8>>();
            VectorsRef::Binary(&bits_buf)
        } else {
            floats_buf = floats(n * dim, 42);
            VectorsRef::Dense(&floats_buf)
        };
        if !index.is_trained() {
            index.train(rows).expect("train");
        }
        index.add(&ids, rows).expect("add");
        index.remove(&[2, 3]).expect("remove");
        let dir = tempdir("index");
        index.save(&dir).expect("save index");
        let name = format!("{}-{}", spec.replace(',', "_").to_lowercase(), metric.to_string().to_lowercase());
        let packed = vecdb::fuzzing::pack_dir(&dir).expect("pack index");
        // Checksums ignored (flags 1) for every kind; checked for one (the corpus stays small).
        if spec == "Flat" && metric == Metric::L2 {
            file_seed(root, "index_snapshot", &name, &packed);
        } else {
            seed(root, "index_snapshot", &name, &[&[1u8][..], &packed].concat());
        }
        let _ = fs::remove_dir_all(&dir);
    }
}

fn text_seeds(root: &Path) {
    let filters = [
        r#"label = "cat""#,
        r#"size > 3 and label != "dog""#,
        r#"(size >= 1 or ratio < 0.5) and not ok"#,
        r#"label not in cat, dog or tags=tiger cat and path^=/photos/"#,
        r#"{"label": "cat"}"#,
        r#"{"and": [{"size": {"gt": 3, "lte": 9}}, {"not": {"label": {"in": ["dog"]}}}]}"#,
        r#"{"path": {"prefix": "/photos/"}, "label": ["cat", "dog"], "ratio": {"ne": 0.5}}"#,
        r#"{"or": [{"ok": true}, {"nested.x": 1}]}"#,
    ];
    for (i, f) in filters.iter().enumerate() {
        seed(root, "filter_parse", &format!("filter-{i}"), f.as_bytes());
    }
    let bodies = [
        r#"{"vector": [0.1, 0.2, 0.3, 0.4], "k": 3}"#,
        r#"{"id": "2", "feature": "dense", "k": 2, "filter": {"label": "cat"}}"#,
        r#"{"id": 3, "feature": "bits", "threshold": 20}"#,
        r#"{"vector": [1, 2, 3, 4, 5, 6, 7, 8], "feature": "bits", "k": 5, "include_vectors": true}"#,
        r#"{"vector": [0, 0, 0, 1], "threshold": 2.5, "ef": 16, "nprobe": 2, "checks": 8, "rerank": 4}"#,
        r#"{"vector": [0, 0, 0, 1], "filter": {"and": [{"size": {"gt": 1}}, {"label": {"in": ["dog"]}}]}}"#,
        r#"{"vector": [0, 0, 0, 1], "filter": {"nope": 1}}"#,
    ];
    for (i, b) in bodies.iter().enumerate() {
        seed(root, "search_request", &format!("body-{i}"), b.as_bytes());
    }
}

fn image_seeds(root: &Path) {
    use image::{ImageFormat, Rgb, RgbImage, Rgba, RgbaImage};
    let rgb = RgbImage::from_fn(9, 7, |x, y| Rgb([(x * 28) as u8, (y * 36) as u8, 128]));
    let rgba = RgbaImage::from_fn(6, 5, |x, y| Rgba([(x * 40) as u8, (y * 50) as u8, 7, (x * y * 10) as u8]));
    let encode = |img: &image::DynamicImage, f: ImageFormat| {
        let mut out = Cursor::new(Vec::new());
        img.write_to(&mut out, f).expect("encode image");
        out.into_inner()
    };
    let rgb = image::DynamicImage::ImageRgb8(rgb);
    let rgba = image::DynamicImage::ImageRgba8(rgba);
    for (name, f) in [
        ("png", ImageFormat::Png),
        ("jpg", ImageFormat::Jpeg),
        ("gif", ImageFormat::Gif),
        ("bmp", ImageFormat::Bmp),
        ("tiff", ImageFormat::Tiff),
        ("webp", ImageFormat::WebP),
    ] {
        seed(root, "image_decode", &format!("img.{name}"), &encode(&rgb, f));
    }
    seed(root, "image_decode", "alpha.png", &encode(&rgba, ImageFormat::Png));
    seed(root, "image_decode", "gray.png", &encode(&image::DynamicImage::ImageLuma8(rgb.to_luma8()), ImageFormat::Png));
    // A JPEG with an EXIF APP1 segment saying orientation 6 (rotate 90° clockwise).
    let jpeg = encode(&rgb, ImageFormat::Jpeg);
    let mut tiff = b"II*\0\x08\0\0\0".to_vec();
    tiff.extend_from_slice(&[1, 0]); // one IFD entry
    tiff.extend_from_slice(&[0x12, 0x01, 3, 0, 1, 0, 0, 0, 6, 0, 0, 0]); // Orientation, SHORT, 1, value 6
    tiff.extend_from_slice(&[0, 0, 0, 0]); // no next IFD
    let mut app1 = b"Exif\0\0".to_vec();
    app1.extend_from_slice(&tiff);
    let mut exif_jpeg = jpeg[..2].to_vec();
    exif_jpeg.extend_from_slice(&[0xFF, 0xE1]);
    exif_jpeg.extend_from_slice(&((app1.len() + 2) as u16).to_be_bytes());
    exif_jpeg.extend_from_slice(&app1);
    exif_jpeg.extend_from_slice(&jpeg[2..]);
    seed(root, "image_decode", "exif-orientation-6.jpg", &exif_jpeg);
}

/// A fresh scratch directory (removed by the caller).
fn tempdir(what: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("fuzz-seeds-{what}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).expect("create scratch dir");
    dir
}
