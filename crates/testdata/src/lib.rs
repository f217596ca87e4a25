//! # testdata
//!
//! Where the workspace's tests find their data: the sample photos and emoji fetched by
//! `scripts/fetch-test-data.sh`, and the CNN model. A dev-dependency only.
//!
//! - `$LIKENESS_TEST_DATA` names the data directory; without it, `<workspace>/data`.
//! - `$LIKENESS_MODEL_DIR` names the model directory; without it, `models` in the data directory.
//!
//! Missing data is a test failure, not a skip: [`data_dir`] and [`data_dir_with`] panic with a
//! message that says how to fetch it.

#![warn(missing_docs)]

use std::path::{Path, PathBuf};

/// The workspace root (the directory holding the top `Cargo.toml`).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The test data directory, not checked: `$LIKENESS_TEST_DATA`, else `<workspace>/data`.
pub fn data_root() -> PathBuf {
    std::env::var_os("LIKENESS_TEST_DATA").map(PathBuf::from).unwrap_or_else(|| workspace_root().join("data"))
}

/// The test data directory, checked to hold the sample photos (`photos/chelsea.png`).
///
/// # Panics
/// When the photos are missing, naming the directory and the script that fetches them.
#[track_caller]
pub fn data_dir() -> PathBuf {
    data_dir_with("photos/chelsea.png")
}

/// The test data directory, checked to hold `marker` (a file or directory relative to it), for tests
/// that need more than the sample photos (e.g. `emoji/emoji.json`).
///
/// # Panics
/// When `marker` is missing, naming the directory and the script that fetches it.
#[track_caller]
pub fn data_dir_with(marker: &str) -> PathBuf {
    let dir = data_root();
    assert!(
        dir.join(marker).exists(),
        "test data missing in {} (no {marker}): run scripts/fetch-test-data.sh (or set LIKENESS_TEST_DATA)",
        dir.display()
    );
    dir
}

/// The directory holding the CNN model for tests: `$LIKENESS_MODEL_DIR`, else `models` in
/// [`data_root`]. Not checked: loading the model there fetches it when missing.
pub fn model_dir() -> PathBuf {
    std::env::var_os("LIKENESS_MODEL_DIR").map(PathBuf::from).unwrap_or_else(|| data_root().join("models"))
}

/// Whether a converted CNN model (a `.safetensors` file) is in [`model_dir`].
pub fn cnn_model_present() -> bool {
    std::fs::read_dir(model_dir())
        .map(|rd| rd.filter_map(|e| e.ok()).any(|e| e.path().extension().is_some_and(|x| x == "safetensors")))
        .unwrap_or(false)
}

/// What a finished command wrote to stdout, when it succeeded (the tests' `run_ok`).
///
/// # Panics
/// When it failed, naming `what` (e.g. the command line) with the exit status, stdout and stderr;
/// or when stdout is not UTF-8.
#[track_caller]
pub fn success_stdout(what: &str, out: &std::process::Output) -> String {
    assert!(
        out.status.success(),
        "{what} failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).expect("utf-8 stdout")
}

/// What a finished command wrote to stderr, when it failed (the tests' `run_err`).
///
/// # Panics
/// When it succeeded, naming `what` with its stdout.
#[track_caller]
pub fn failure_stderr(what: &str, out: &std::process::Output) -> String {
    assert!(!out.status.success(), "{what} should fail but succeeded:\n{}", String::from_utf8_lossy(&out.stdout));
    String::from_utf8_lossy(&out.stderr).into_owned()
}
