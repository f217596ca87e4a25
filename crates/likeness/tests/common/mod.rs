//! Shared helpers of the `likeness` integration tests: locating the test data, building
//! small image trees from the real sample photos, and making edited copies.
#![allow(dead_code)]

pub mod serve;

use std::path::{Path, PathBuf};

use image::{imageops, DynamicImage, ImageFormat, RgbImage};
use serde_json::Value;

/// The test data directory, the CNN model directory, and whether the model is there (shared with
/// the `features` tests through the `testdata` crate).
#[allow(unused_imports)]
pub use testdata::{cnn_model_present, data_dir, model_dir};

/// A sample photo by file name.
pub fn photo(name: &str) -> PathBuf {
    data_dir().join("photos").join(name)
}

/// The `likeness` binary, with the test model directory set.
pub fn likeness() -> assert_cmd::Command {
    let mut c = assert_cmd::Command::new(env!("CARGO_BIN_EXE_likeness"));
    c.env("LIKENESS_MODEL_DIR", model_dir());
    c.env_remove("LIKENESS_API_KEY");
    c
}

/// Run `likeness` with `args`, require success, and return stdout.
pub fn run_ok(args: &[&str]) -> String {
    let out = likeness().args(args).output().expect("run likeness");
    testdata::success_stdout(&format!("likeness {args:?}"), &out)
}

/// Run `likeness` with `args`, require success, and parse stdout as JSON.
pub fn run_json(args: &[&str]) -> Value {
    let out = run_ok(args);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("likeness {args:?}: stdout is not JSON ({e}):\n{out}"))
}

/// Run `likeness` with `args`, require failure, and return stderr.
pub fn run_err(args: &[&str]) -> String {
    let out = likeness().args(args).output().expect("run likeness");
    testdata::failure_stderr(&format!("likeness {args:?}"), &out)
}

/// A path as &str.
pub fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// Load an image as RGB.
pub fn load_rgb(p: &Path) -> RgbImage {
    image::open(p).unwrap_or_else(|e| panic!("{}: {e}", p.display())).to_rgb8()
}

/// Save RGB as JPEG with the given quality.
pub fn save_jpeg(img: &RgbImage, dest: &Path, quality: u8) {
    let f = std::fs::File::create(dest).expect("create jpeg");
    let mut w = std::io::BufWriter::new(f);
    let enc = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut w, quality);
    img.write_with_encoder(enc).expect("encode jpeg");
}

/// The kinds of edited copy [`edited_copy`] makes.
pub const EDITS: &[&str] = &["q30", "half", "crop90", "bright"];

/// Write an edited copy of `src` to `dest`: `q30` = JPEG quality 30, `half` = half size (PNG),
/// `crop90` = centre 90% crop (PNG), `bright` = brightness +30 (PNG).
pub fn edited_copy(src: &Path, edit: &str, dest: &Path) {
    let img = load_rgb(src);
    let (w, h) = img.dimensions();
    let out: RgbImage = match edit {
        "q30" => {
            save_jpeg(&img, dest, 30);
            return;
        }
        "half" => imageops::resize(&img, w / 2, h / 2, imageops::FilterType::Triangle),
        "crop90" => {
            let (cw, ch) = (w * 9 / 10, h * 9 / 10);
            imageops::crop_imm(&img, (w - cw) / 2, (h - ch) / 2, cw, ch).to_image()
        }
        "bright" => imageops::brighten(&img, 30),
        other => panic!("unknown edit {other}"),
    };
    DynamicImage::ImageRgb8(out).save_with_format(dest, ImageFormat::Png).expect("save edit");
}

/// Copy a photo into `dir/label/`, downscaling big ones to at most `max_side` pixels
/// (saved as JPEG q90) to keep tests quick. Returns the new path.
pub fn add_photo(root: &Path, label: &str, name: &str, max_side: u32) -> PathBuf {
    let src = photo(name);
    let dir = root.join(label);
    std::fs::create_dir_all(&dir).expect("mkdir");
    let img = load_rgb(&src);
    let (w, h) = img.dimensions();
    if w.max(h) <= max_side {
        let dest = dir.join(Path::new(name).file_name().expect("name"));
        std::fs::copy(&src, &dest).expect("copy photo");
        dest
    } else {
        let scale = max_side as f64 / w.max(h) as f64;
        let small = imageops::resize(
            &img,
            ((w as f64 * scale) as u32).max(1),
            ((h as f64 * scale) as u32).max(1),
            imageops::FilterType::Triangle,
        );
        let stem = Path::new(name).file_stem().expect("stem").to_string_lossy().into_owned();
        let dest = dir.join(format!("{stem}.jpg"));
        save_jpeg(&small, &dest, 90);
        dest
    }
}

/// Photos (label, file) of the standard test tree.
pub const TREE: &[(&str, &str)] = &[
    ("animals", "chelsea.png"),
    ("animals", "horse.png"),
    ("objects", "coffee.png"),
    ("objects", "rocket.jpg"),
    ("objects", "motorcycle_left.png"),
    ("objects", "camera.png"),
    ("objects", "coins.png"),
    ("textures", "brick.png"),
    ("textures", "grass.png"),
    ("textures", "gravel.png"),
    ("space", "hubble_deep_field.jpg"),
    ("space", "moon.png"),
    ("people", "astronaut.png"),
];

/// Build the standard labelled tree (13 sample photos + 2 nature photos) under `root`.
pub fn photo_tree(root: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = TREE.iter().map(|(l, n)| add_photo(root, l, n, 640)).collect();
    let mate = data_dir().join("photos/mate");
    let mut nature: Vec<PathBuf> =
        std::fs::read_dir(&mate).map(|rd| rd.filter_map(|e| e.ok()).map(|e| e.path()).collect()).unwrap_or_default();
    nature.sort();
    for p in nature.iter().take(2) {
        let name = format!("mate/{}", p.file_name().expect("name").to_string_lossy());
        out.push(add_photo(root, "nature", &name, 640));
    }
    out
}

/// The `path` of a search result row.
pub fn result_path(v: &Value) -> &str {
    v["path"].as_str().expect("result has a path")
}

/// File name of a path string.
pub fn file_name(p: &str) -> String {
    Path::new(p).file_name().expect("file name").to_string_lossy().into_owned()
}
