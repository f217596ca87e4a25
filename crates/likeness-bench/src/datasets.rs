//! The benchmark datasets: Fashion-MNIST (IDX files, plain or `.gz`) and reproducible
//! Gaussian matrices. File formats shared with the product (`.npy`, `.fvecs`, …) are in
//! [`likeness::vector_files`].
//!
//! | what | function | notes |
//! |---|---|---|
//! | IDX (MNIST / Fashion-MNIST), plain or `.gz` | [`read_idx_images`], [`read_idx_labels`] | images as `u8` rows of `height × width` |
//! | Fashion-MNIST's four official files | [`load_fashion_mnist`] | pixels as raw 0–255 `f32` |
//! | a Gaussian `rows × cols` matrix | [`random_normal`] | the same for a seed on every platform |
//!
//! [`data_dir`] finds the test data (`$LIKENESS_TEST_DATA`, else `<workspace>/data`).
//!
//! ```ignore
//! let fm = load_fashion_mnist(&data_dir()?.join("fashion-mnist"))?;
//! assert_eq!((fm.train.rows, fm.train.cols), (60_000, 784));
//! index.add(&ids, VectorsRef::Dense(&fm.train.data))?; // raw 0–255 values as f32, row-major
//! ```

use std::path::{Path, PathBuf};

use anyhow::bail;
use likeness::vector_files::{format_err, read_maybe_gz, DatasetError, Matrix, Result};

/// The four official Fashion-MNIST files, pixels as raw 0–255 `f32` values. The benchmarks use
/// the images only; the labels are checked against them on loading (and by the tests).
#[derive(Debug, Clone)]
#[allow(dead_code)]
pub struct FashionMnist {
    /// 60,000 × 784 training images.
    pub train: Matrix<f32>,
    /// 60,000 training labels (0–9).
    pub train_labels: Vec<u8>,
    /// 10,000 × 784 test images.
    pub test: Matrix<f32>,
    /// 10,000 test labels (0–9).
    pub test_labels: Vec<u8>,
}

/// The test-data directory: `$LIKENESS_TEST_DATA` if set, else `<workspace>/data`.
///
/// An error naming `scripts/fetch-test-data.sh` when it does not exist.
pub fn data_dir() -> anyhow::Result<PathBuf> {
    let dir = match std::env::var_os("LIKENESS_TEST_DATA") {
        Some(d) => PathBuf::from(d),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data"),
    };
    if dir.is_dir() {
        Ok(dir)
    } else {
        Err(missing_data(&dir))
    }
}

/// Read Fashion-MNIST (or MNIST) from `dir`, which holds `train-images-idx3-ubyte[.gz]`,
/// `train-labels-idx1-ubyte[.gz]`, `t10k-images-idx3-ubyte[.gz]`, `t10k-labels-idx1-ubyte[.gz]`.
pub fn load_fashion_mnist(dir: &Path) -> anyhow::Result<FashionMnist> {
    if !dir.is_dir() {
        return Err(missing_data(dir));
    }
    let find = |stem: &str| {
        let gz = dir.join(format!("{stem}.gz"));
        if gz.exists() {
            gz
        } else {
            dir.join(stem)
        }
    };
    let train = read_idx_images(&find("train-images-idx3-ubyte"))?.to_f32();
    let train_labels = read_idx_labels(&find("train-labels-idx1-ubyte"))?;
    let test = read_idx_images(&find("t10k-images-idx3-ubyte"))?.to_f32();
    let test_labels = read_idx_labels(&find("t10k-labels-idx1-ubyte"))?;
    if train.rows != train_labels.len() || test.rows != test_labels.len() {
        bail!(DatasetError::Mismatch(format!(
            "{}: {} train images but {} labels, {} test images but {} labels",
            dir.display(),
            train.rows,
            train_labels.len(),
            test.rows,
            test_labels.len()
        )));
    }
    Ok(FashionMnist { train, train_labels, test, test_labels })
}

/// The error for test data that is not there.
fn missing_data(dir: &Path) -> anyhow::Error {
    anyhow::anyhow!(
        "test data not found at {}: run scripts/fetch-test-data.sh (or set LIKENESS_TEST_DATA)",
        dir.display()
    )
}

/// Parse an IDX header of unsigned bytes with `ndim` dimensions; returns the dimensions and the payload.
fn idx_payload<'a>(path: &Path, raw: &'a [u8], ndim: u8) -> Result<(Vec<usize>, &'a [u8])> {
    let head = 4 + 4 * ndim as usize;
    if raw.len() < head {
        return Err(format_err(path, "IDX", format!("file is {} bytes, shorter than its header", raw.len())));
    }
    if raw[0] != 0 || raw[1] != 0 {
        return Err(format_err(path, "IDX", "magic number does not start with two zero bytes"));
    }
    if raw[2] != 0x08 {
        return Err(format_err(path, "IDX", format!("element type 0x{:02x}, expected 0x08 (unsigned byte)", raw[2])));
    }
    if raw[3] != ndim {
        return Err(format_err(path, "IDX", format!("{} dimensions, expected {ndim}", raw[3])));
    }
    let dims: Vec<usize> = (0..ndim as usize)
        .map(|i| u32::from_be_bytes([raw[4 + 4 * i], raw[5 + 4 * i], raw[6 + 4 * i], raw[7 + 4 * i]]) as usize)
        .collect();
    let want = dims.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
    let payload = &raw[head..];
    if want != Some(payload.len()) {
        return Err(format_err(
            path,
            "IDX",
            format!("header dimensions {dims:?} need {want:?} bytes of data, file has {}", payload.len()),
        ));
    }
    Ok((dims, payload))
}

/// Read an IDX3 unsigned-byte image file (plain or `.gz`): one row per image, `height × width` columns.
pub fn read_idx_images(path: &Path) -> Result<Matrix<u8>> {
    let raw = read_maybe_gz(path)?;
    let (dims, payload) = idx_payload(path, &raw, 3)?;
    Matrix::new(dims[0], dims[1] * dims[2], payload.to_vec())
}

/// Read an IDX1 unsigned-byte label file (plain or `.gz`).
pub fn read_idx_labels(path: &Path) -> Result<Vec<u8>> {
    let raw = read_maybe_gz(path)?;
    let (_, payload) = idx_payload(path, &raw, 1)?;
    Ok(payload.to_vec())
}

/// A reproducible `rows × cols` matrix of standard-normal values (SplitMix64 + Box–Muller).
///
/// The same `seed` always gives the same matrix, on every platform.
pub fn random_normal(rows: usize, cols: usize, seed: u64) -> Matrix<f32> {
    let mut state = seed;
    let mut next = move || {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    };
    let n = rows * cols;
    let mut data = Vec::with_capacity(n + 1);
    while data.len() < n {
        // Uniforms in (0, 1]: 53 random bits, never zero (ln(0) would be -inf).
        let u1 = ((next() >> 11) + 1) as f64 / (1u64 << 53) as f64;
        let u2 = (next() >> 11) as f64 / (1u64 << 53) as f64;
        let r = (-2.0 * u1.ln()).sqrt();
        let t = 2.0 * std::f64::consts::PI * u2;
        data.push((r * t.cos()) as f32);
        data.push((r * t.sin()) as f32);
    }
    data.truncate(n);
    Matrix { rows, cols, data }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idx_errors_name_the_problem() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x-idx3-ubyte");
        // 2 images of 2×2 but only 7 bytes of pixels.
        let mut raw = vec![0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0, 2];
        raw.extend([1u8; 7]);
        std::fs::write(&p, &raw).unwrap();
        let e = read_idx_images(&p).unwrap_err().to_string();
        assert!(e.contains("IDX") && e.contains("8"), "{e}");
        raw.push(1);
        std::fs::write(&p, &raw).unwrap();
        let m = read_idx_images(&p).unwrap();
        assert_eq!((m.rows, m.cols), (2, 4));
        raw[2] = 0x0D; // float elements
        std::fs::write(&p, &raw).unwrap();
        assert!(read_idx_images(&p).is_err());
    }

    #[test]
    fn fashion_mnist_reads_real_files() {
        let dir = data_dir().expect("test data (run scripts/fetch-test-data.sh)").join("fashion-mnist");
        let fm = load_fashion_mnist(&dir).unwrap();
        assert_eq!((fm.train.rows, fm.train.cols), (60_000, 784));
        assert_eq!((fm.test.rows, fm.test.cols), (10_000, 784));
        assert!(fm.train_labels.iter().all(|&l| l < 10));
        // Every class appears 6,000 times in the training set.
        let mut counts = [0usize; 10];
        fm.train_labels.iter().for_each(|&l| counts[l as usize] += 1);
        assert_eq!(counts, [6000; 10]);
        let max = fm.train.data.iter().cloned().fold(0.0f32, f32::max);
        assert_eq!(max, 255.0);
    }

    #[test]
    fn random_normal_is_reproducible_and_standard() {
        let a = random_normal(100, 101, 42);
        assert_eq!(a, random_normal(100, 101, 42));
        assert_ne!(a.data, random_normal(100, 101, 43).data);
        let n = a.data.len() as f64;
        let mean = a.data.iter().map(|&x| x as f64).sum::<f64>() / n;
        let var = a.data.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / n;
        assert!(mean.abs() < 0.03, "mean {mean}");
        assert!((var - 1.0).abs() < 0.05, "variance {var}");
    }
}
