//! Images per second of decoding plus the cheap extractors (color, texture, pHash, dHash), alone and
//! together, over the image files of one directory (default: the 12 wallpapers of the test data,
//! `photos/mate`). A measurement tool, not a test:
//!
//! `cargo run -p features --release --example extract_throughput [DIR]`

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use features::decode::{is_image_path, DecodeLimits};
use features::extract_many;
use features::registry::{build_extractors, ExtractorOptions};

fn main() -> ExitCode {
    let dir = std::env::args_os().nth(1).map(PathBuf::from).unwrap_or_else(|| testdata::data_dir().join("photos/mate"));
    let mut paths: Vec<PathBuf> = match std::fs::read_dir(&dir) {
        Ok(entries) => entries.filter_map(|e| e.ok()).map(|e| e.path()).filter(|p| is_image_path(p)).collect(),
        Err(e) => {
            eprintln!("cannot read {}: {e}", dir.display());
            return ExitCode::FAILURE;
        }
    };
    paths.sort();
    if paths.is_empty() {
        eprintln!("no image files in {}", dir.display());
        return ExitCode::FAILURE;
    }
    for names in [&["color"][..], &[], &["texture"], &["phash"], &["dhash"], &["color", "texture", "phash", "dhash"]] {
        let extractors = match build_extractors(names, &ExtractorOptions::default()) {
            Ok(x) => x,
            Err(e) => {
                eprintln!("{names:?}: {e}");
                return ExitCode::FAILURE;
            }
        };
        let started = Instant::now();
        let results = extract_many(&paths, &extractors, &DecodeLimits::default(), &|_| {});
        let secs = started.elapsed().as_secs_f64();
        let failed = results.iter().filter(|r| r.is_err()).count();
        println!(
            "{names:?}: {} images in {secs:.2} s = {:.1} images/s ({} threads){}",
            paths.len(),
            paths.len() as f64 / secs,
            rayon::current_num_threads(),
            if failed > 0 { format!(", {failed} failed") } else { String::new() }
        );
    }
    ExitCode::SUCCESS
}
