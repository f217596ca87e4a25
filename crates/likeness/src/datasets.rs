//! Readers and writers for the vector datasets benchmarks and tools use.
//!
//! Everything comes back as a [`Matrix`]: `rows × cols` values stored row-major in
//! one `Vec`, ready to hand to `vecdb` as `VectorsRef::Dense(&m.data)` (after
//! [`Matrix::to_f32`] for byte data).
//!
//! | format | reader | writer | notes |
//! |---|---|---|---|
//! | IDX (MNIST / Fashion-MNIST), plain or `.gz` | [`read_idx_images`], [`read_idx_labels`] | – | images as `u8` rows of `height × width` |
//! | `.fvecs` (float32, TEXMEX) | [`read_fvecs`] | [`write_fvecs`] | every row prefixed by its dimension (`i32`) |
//! | `.bvecs` (uint8, TEXMEX) | [`read_bvecs`] | – | as above, `u8` components |
//! | `.ivecs` (int32, ground truth) | [`read_ivecs`] | – | as above, `i32` components |
//! | `.npy` 2-D (`<f4`, `>f4`, `<f8`; C order) | [`read_npy_f32`] | [`write_npy_f32`] | `f8` is narrowed to `f32` |
//!
//! Convenience: [`load_fashion_mnist`] reads the four official files of a
//! directory, [`random_normal`] makes a reproducible Gaussian matrix, and
//! [`data_dir`] finds the test data (`$LIKENESS_TEST_DATA`, else `<workspace>/data`).
//!
//! Bad input never panics: each function returns a [`DatasetError`] naming the
//! file and what was wrong (bad magic, truncated file, inconsistent dimensions…).
//!
//! ```ignore
//! use crate::datasets::{load_fashion_mnist, read_npy_f32};
//! let fm = load_fashion_mnist(Path::new("data/fashion-mnist"))?;
//! assert_eq!((fm.train.rows, fm.train.cols), (60_000, 784));
//! index.add(&ids, VectorsRef::Dense(&fm.train.data))?; // raw 0–255 values as f32, row-major
//! let q = read_npy_f32(Path::new("queries.npy"))?;      // any 2-D float32 array
//! ```

// Other helpers (ANN bench, app) call into this module; not every function is used by every build.
#![allow(dead_code)]

use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};

/// What can go wrong reading or writing a dataset file.
#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    /// The file could not be opened, read or written.
    #[error("I/O error on {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The content does not follow the format.
    #[error("bad {format} file {path}: {reason}")]
    Format {
        /// The file.
        path: PathBuf,
        /// Which format was expected, e.g. `"IDX"`, `"fvecs"`, `"npy"`.
        format: &'static str,
        /// What was wrong, with the byte offset or row where it helps.
        reason: String,
    },
    /// Two files that belong together disagree (e.g. images vs labels count).
    #[error("dataset mismatch: {0}")]
    Mismatch(String),
    /// The data directory is missing.
    #[error("test data not found at {0}: run scripts/fetch-test-data.sh (or set LIKENESS_TEST_DATA)")]
    MissingData(PathBuf),
}

/// Shorthand for results of this module.
pub type Result<T, E = DatasetError> = std::result::Result<T, E>;

/// A dense matrix stored row-major: row `i` is `data[i * cols .. (i + 1) * cols]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Matrix<T> {
    /// Number of rows (vectors).
    pub rows: usize,
    /// Number of columns (components per vector).
    pub cols: usize,
    /// `rows × cols` values, row-major.
    pub data: Vec<T>,
}

impl<T: Copy> Matrix<T> {
    /// Wrap row-major data; `data.len()` must be `rows * cols`.
    pub fn new(rows: usize, cols: usize, data: Vec<T>) -> Result<Self> {
        if rows.checked_mul(cols) != Some(data.len()) {
            return Err(DatasetError::Mismatch(format!("{} values cannot form a {rows}×{cols} matrix", data.len())));
        }
        Ok(Matrix { rows, cols, data })
    }

    /// Row `i` (panics if `i >= rows`, like slice indexing).
    pub fn row(&self, i: usize) -> &[T] {
        &self.data[i * self.cols..(i + 1) * self.cols]
    }

    /// The first `n` rows (all of them when `n >= rows`).
    pub fn head(&self, n: usize) -> Matrix<T> {
        let n = n.min(self.rows);
        Matrix { rows: n, cols: self.cols, data: self.data[..n * self.cols].to_vec() }
    }
}

impl<T: Copy + Into<f32>> Matrix<T> {
    /// Convert every value to `f32` (e.g. pixels 0–255 → 0.0–255.0).
    pub fn to_f32(&self) -> Matrix<f32> {
        Matrix { rows: self.rows, cols: self.cols, data: self.data.iter().map(|&x| x.into()).collect() }
    }
}

impl Matrix<f32> {
    /// Scale every row to unit L2 norm (zero rows stay zero), as cosine search expects.
    pub fn normalize_rows(&mut self) {
        if self.cols == 0 {
            return;
        }
        self.data.chunks_exact_mut(self.cols).for_each(vecdb::distance::normalize);
    }
}

/// The four official Fashion-MNIST files, pixels as raw 0–255 `f32` values.
#[derive(Debug, Clone)]
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

/// Fashion-MNIST class names, indexed by label.
pub const FASHION_MNIST_CLASSES: [&str; 10] =
    ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"];

/// The test-data directory: `$LIKENESS_TEST_DATA` if set, else `<workspace>/data`.
///
/// Returns [`DatasetError::MissingData`] (naming `scripts/fetch-test-data.sh`) when it does not exist.
pub fn data_dir() -> Result<PathBuf> {
    let dir = match std::env::var_os("LIKENESS_TEST_DATA") {
        Some(d) => PathBuf::from(d),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data"),
    };
    if dir.is_dir() {
        Ok(dir)
    } else {
        Err(DatasetError::MissingData(dir))
    }
}

/// Read Fashion-MNIST (or MNIST) from `dir`, which holds `train-images-idx3-ubyte[.gz]`,
/// `train-labels-idx1-ubyte[.gz]`, `t10k-images-idx3-ubyte[.gz]`, `t10k-labels-idx1-ubyte[.gz]`.
pub fn load_fashion_mnist(dir: &Path) -> Result<FashionMnist> {
    if !dir.is_dir() {
        return Err(DatasetError::MissingData(dir.to_path_buf()));
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
        return Err(DatasetError::Mismatch(format!(
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

/// Read a whole file, gunzipping it when its name ends in `.gz`.
fn read_maybe_gz(path: &Path) -> Result<Vec<u8>> {
    let io = |source| DatasetError::Io { path: path.to_path_buf(), source };
    let file = File::open(path).map_err(io)?;
    let mut buf = Vec::new();
    if path.extension().is_some_and(|e| e.eq_ignore_ascii_case("gz")) {
        flate2::read::GzDecoder::new(std::io::BufReader::new(file)).read_to_end(&mut buf).map_err(io)?;
    } else {
        std::io::BufReader::new(file).read_to_end(&mut buf).map_err(io)?;
    }
    Ok(buf)
}

fn format_err(path: &Path, format: &'static str, reason: impl Into<String>) -> DatasetError {
    DatasetError::Format { path: path.to_path_buf(), format, reason: reason.into() }
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

/// Read a TEXMEX `*vecs` file: rows of `[dim: i32 LE][dim × elem bytes]`, all rows the same `dim`.
fn read_vecs<T>(path: &Path, format: &'static str, elem: usize, decode: impl Fn(&[u8]) -> T) -> Result<Matrix<T>> {
    let raw = read_maybe_gz(path)?;
    if raw.is_empty() {
        return Ok(Matrix { rows: 0, cols: 0, data: Vec::new() });
    }
    if raw.len() < 4 {
        return Err(format_err(path, format, "file shorter than one dimension header"));
    }
    let dim = i32::from_le_bytes([raw[0], raw[1], raw[2], raw[3]]);
    if dim <= 0 {
        return Err(format_err(path, format, format!("first row declares dimension {dim}")));
    }
    let dim = dim as usize;
    let stride = 4 + dim * elem;
    if raw.len() % stride != 0 {
        return Err(format_err(
            path,
            format,
            format!(
                "{} bytes is not a whole number of rows of {stride} bytes (dimension {dim}); truncated?",
                raw.len()
            ),
        ));
    }
    let rows = raw.len() / stride;
    let mut data = Vec::with_capacity(rows * dim);
    for (r, chunk) in raw.chunks_exact(stride).enumerate() {
        let d = i32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        if d as i64 != dim as i64 {
            return Err(format_err(path, format, format!("row {r} declares dimension {d}, first row {dim}")));
        }
        data.extend(chunk[4..].chunks_exact(elem).map(&decode));
    }
    Ok(Matrix { rows, cols: dim, data })
}

/// Read a `.fvecs` file (float32 rows, each prefixed by its dimension).
pub fn read_fvecs(path: &Path) -> Result<Matrix<f32>> {
    read_vecs(path, "fvecs", 4, |b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

/// Read a `.bvecs` file (uint8 rows, each prefixed by its dimension).
pub fn read_bvecs(path: &Path) -> Result<Matrix<u8>> {
    read_vecs(path, "bvecs", 1, |b| b[0])
}

/// Read an `.ivecs` file (int32 rows, e.g. ground-truth neighbour ids).
pub fn read_ivecs(path: &Path) -> Result<Matrix<i32>> {
    read_vecs(path, "ivecs", 4, |b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

/// Write a `.fvecs` file.
pub fn write_fvecs(path: &Path, m: &Matrix<f32>) -> Result<()> {
    let io = |source| DatasetError::Io { path: path.to_path_buf(), source };
    let mut w = BufWriter::new(File::create(path).map_err(io)?);
    let dim =
        i32::try_from(m.cols).map_err(|_| DatasetError::Mismatch(format!("{} columns exceed fvecs' i32", m.cols)))?;
    for r in 0..m.rows {
        w.write_all(&dim.to_le_bytes()).map_err(io)?;
        for x in m.row(r) {
            w.write_all(&x.to_le_bytes()).map_err(io)?;
        }
    }
    w.flush().map_err(io)
}

/// Element types `.npy` files may hold that [`read_npy_f32`] accepts.
#[derive(Clone, Copy)]
enum NpyType {
    F4Le,
    F4Be,
    F8Le,
}

/// Pull the quoted value of `'key':` out of a `.npy` header dict.
fn npy_field<'a>(header: &'a str, key: &str) -> Option<&'a str> {
    let i = header.find(&format!("'{key}'"))?;
    let rest = header[i + key.len() + 2..].trim_start().strip_prefix(':')?.trim_start();
    Some(rest)
}

/// Read a 2-D `.npy` array of float32 (`<f4` or `>f4`) or float64 (`<f8`, narrowed), C order.
pub fn read_npy_f32(path: &Path) -> Result<Matrix<f32>> {
    let raw = read_maybe_gz(path)?;
    let bad = |reason: String| format_err(path, "npy", reason);
    if raw.len() < 10 || &raw[..6] != b"\x93NUMPY" {
        return Err(bad("missing \\x93NUMPY magic".into()));
    }
    let (hlen, hstart) = match raw[6] {
        1 => (u16::from_le_bytes([raw[8], raw[9]]) as usize, 10),
        2 | 3 if raw.len() >= 12 => (u32::from_le_bytes([raw[8], raw[9], raw[10], raw[11]]) as usize, 12),
        v => return Err(bad(format!("unsupported format version {v}"))),
    };
    let header = raw
        .get(hstart..hstart + hlen)
        .ok_or_else(|| bad(format!("header of {hlen} bytes runs past the end of the file")))?;
    let header = std::str::from_utf8(header).map_err(|_| bad("header is not text".into()))?;
    let descr = npy_field(header, "descr").ok_or_else(|| bad(format!("no 'descr' in header {header:?}")))?;
    let ty = if descr.starts_with("'<f4'") {
        NpyType::F4Le
    } else if descr.starts_with("'>f4'") {
        NpyType::F4Be
    } else if descr.starts_with("'<f8'") {
        NpyType::F8Le
    } else {
        return Err(bad(format!("element type {} is not float32/float64", descr.split(',').next().unwrap_or(descr))));
    };
    let fortran = npy_field(header, "fortran_order").ok_or_else(|| bad("no 'fortran_order' in header".into()))?;
    if fortran.starts_with("True") {
        return Err(bad("Fortran-order arrays are not supported; save with np.ascontiguousarray".into()));
    }
    let shape = npy_field(header, "shape").ok_or_else(|| bad("no 'shape' in header".into()))?;
    let inner = shape
        .strip_prefix('(')
        .and_then(|s| s.split(')').next())
        .ok_or_else(|| bad(format!("cannot parse shape {shape:?}")))?;
    let dims: Vec<usize> = inner
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<usize>().map_err(|_| bad(format!("bad shape entry {s:?}"))))
        .collect::<Result<_>>()?;
    if dims.len() != 2 {
        return Err(bad(format!("array has shape {dims:?}; a 2-D (rows, dim) array is required")));
    }
    let (rows, cols) = (dims[0], dims[1]);
    let elem = match ty {
        NpyType::F8Le => 8,
        _ => 4,
    };
    let body = &raw[hstart + hlen..];
    let want = rows.checked_mul(cols).and_then(|n| n.checked_mul(elem));
    if want != Some(body.len()) {
        return Err(bad(format!("shape ({rows}, {cols}) needs {want:?} bytes of data, file has {}", body.len())));
    }
    let data: Vec<f32> = match ty {
        NpyType::F4Le => body.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect(),
        NpyType::F4Be => body.chunks_exact(4).map(|b| f32::from_be_bytes([b[0], b[1], b[2], b[3]])).collect(),
        NpyType::F8Le => {
            body.chunks_exact(8).map(|b| f64::from_le_bytes(b.try_into().unwrap_or([0; 8])) as f32).collect()
        }
    };
    Ok(Matrix { rows, cols, data })
}

/// Write a 2-D little-endian float32 `.npy` file (format version 1.0), readable by `numpy.load`.
pub fn write_npy_f32(path: &Path, m: &Matrix<f32>) -> Result<()> {
    let io = |source| DatasetError::Io { path: path.to_path_buf(), source };
    let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({}, {}), }}", m.rows, m.cols);
    // Pad so that magic (6) + version (2) + length (2) + header + '\n' is a multiple of 64.
    let total = 10 + header.len() + 1;
    header.push_str(&" ".repeat(total.next_multiple_of(64) - total));
    header.push('\n');
    let hlen = u16::try_from(header.len()).map_err(|_| DatasetError::Mismatch("npy header too long".into()))?;
    let mut w = BufWriter::new(File::create(path).map_err(io)?);
    w.write_all(b"\x93NUMPY\x01\x00").map_err(io)?;
    w.write_all(&hlen.to_le_bytes()).map_err(io)?;
    w.write_all(header.as_bytes()).map_err(io)?;
    for x in &m.data {
        w.write_all(&x.to_le_bytes()).map_err(io)?;
    }
    w.flush().map_err(io)
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
    fn npy_round_trip_and_errors() {
        let dir = tempfile::tempdir().unwrap();
        let m = Matrix::new(3, 5, (0..15).map(|x| x as f32 * 0.5 - 2.0).collect()).unwrap();
        let p = dir.path().join("m.npy");
        write_npy_f32(&p, &m).unwrap();
        let raw = std::fs::read(&p).unwrap();
        assert_eq!((raw.len() - 15 * 4) % 64, 0, "header padded to 64 bytes");
        assert_eq!(read_npy_f32(&p).unwrap(), m);
        // Truncated body.
        std::fs::write(&p, &raw[..raw.len() - 3]).unwrap();
        assert!(matches!(read_npy_f32(&p), Err(DatasetError::Format { format: "npy", .. })));
        // Not an npy file.
        std::fs::write(&p, b"hello world, not numpy").unwrap();
        assert!(matches!(read_npy_f32(&p), Err(DatasetError::Format { .. })));
        assert!(matches!(read_npy_f32(&dir.path().join("missing.npy")), Err(DatasetError::Io { .. })));
    }

    #[test]
    fn npy_rejects_one_dimensional_and_reads_f8() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, descr: &str, shape: &str, body: &[u8]| {
            let mut h = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
            while (10 + h.len() + 1) % 64 != 0 {
                h.push(' ');
            }
            h.push('\n');
            let mut f = b"\x93NUMPY\x01\x00".to_vec();
            f.extend((h.len() as u16).to_le_bytes());
            f.extend(h.as_bytes());
            f.extend(body);
            let p = dir.path().join(name);
            std::fs::write(&p, f).unwrap();
            p
        };
        let p = write("a.npy", "<f4", "(4,)", &[0u8; 16]);
        let e = read_npy_f32(&p).unwrap_err().to_string();
        assert!(e.contains("2-D"), "{e}");
        let body: Vec<u8> = [1.5f64, -2.0, 3.25, 4.0].iter().flat_map(|x| x.to_le_bytes()).collect();
        let p = write("b.npy", "<f8", "(2, 2)", &body);
        assert_eq!(read_npy_f32(&p).unwrap().data, vec![1.5, -2.0, 3.25, 4.0]);
        let p = write("c.npy", "<i4", "(2, 2)", &[0u8; 16]);
        assert!(read_npy_f32(&p).is_err());
    }

    #[test]
    fn fvecs_round_trip_and_bad_rows() {
        let dir = tempfile::tempdir().unwrap();
        let m = Matrix::new(4, 3, (0..12).map(|x| x as f32).collect()).unwrap();
        let p = dir.path().join("m.fvecs");
        write_fvecs(&p, &m).unwrap();
        assert_eq!(read_fvecs(&p).unwrap(), m);
        let mut raw = std::fs::read(&p).unwrap();
        raw[16] = 7; // second row's dimension header
        std::fs::write(&p, &raw).unwrap();
        let e = read_fvecs(&p).unwrap_err().to_string();
        assert!(e.contains("row 1"), "{e}");
        std::fs::write(&p, &raw[..raw.len() - 1]).unwrap();
        assert!(read_fvecs(&p).is_err());
        // bvecs: two rows of dimension 2.
        let pb = dir.path().join("m.bvecs");
        std::fs::write(&pb, [2, 0, 0, 0, 9, 8, 2, 0, 0, 0, 7, 6]).unwrap();
        let b = read_bvecs(&pb).unwrap();
        assert_eq!((b.rows, b.cols, b.data), (2, 2, vec![9, 8, 7, 6]));
    }

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
