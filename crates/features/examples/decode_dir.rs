//! Decode every image file under a directory (recursively) with the default limits and list the ones
//! that fail, with the reason. A manual check of the decoder against a large real-world corpus:
//!
//! `cargo run -p features --release --example decode_dir -- /usr/share`
//!
//! Exits with status 1 when any file failed.

use std::path::PathBuf;
use std::process::ExitCode;

use features::decode::{is_image_path, load_image, DecodeLimits};

fn main() -> ExitCode {
    let Some(root) = std::env::args_os().nth(1).map(PathBuf::from) else {
        eprintln!("usage: decode_dir DIR");
        return ExitCode::from(2);
    };
    let limits = DecodeLimits::default();
    let mut stack = vec![root];
    let (mut ok, mut failed) = (0usize, Vec::new());
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if is_image_path(&p) {
                match load_image(&p, &limits) {
                    Ok(_) => ok += 1,
                    Err(err) => failed.push(err.to_string()),
                }
            }
        }
    }
    println!("{ok} decoded, {} failed", failed.len());
    for f in &failed {
        println!("  {f}");
    }
    if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
