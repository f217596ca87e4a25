//! Readers and writers for the vector files `likeness vectors` (and the benchmarks) use.
//!
//! Everything comes back as a [`Matrix`]: `rows × cols` values stored row-major in
//! one `Vec`, ready to hand to `vecdb` as `VectorsRef::Dense(&m.data)` (after
//! [`Matrix::to_f32`] for byte data).
//!
//! | format | reader | writer | notes |
//! |---|---|---|---|
//! | `.fvecs` (float32, TEXMEX) | [`read_fvecs`] | [`write_fvecs`] | every row prefixed by its dimension (`i32`) |
//! | `.bvecs` (uint8, TEXMEX) | [`read_bvecs`] | – | as above, `u8` components |
//! | `.ivecs` (int32, ground truth) | [`read_ivecs`] | – | as above, `i32` components |
//! | `.npy` 2-D (`<f4`, `>f4`, `<f8`; C order) | [`read_npy_f32`] | [`write_npy_f32`] | `f8` is narrowed to `f32` |
//!
//! Every reader also takes the file gzipped (name ending in `.gz`).
//!
//! Bad input never panics: each function returns a [`DatasetError`] naming the
//! file and what was wrong (bad magic, truncated file, inconsistent dimensions…).
//!
//! ```ignore
//! use likeness::vector_files::read_npy_f32;
//! let q = read_npy_f32(Path::new("queries.npy"))?; // any 2-D float32 array
//! index.add(&ids, VectorsRef::Dense(&q.data))?;
//! ```

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

/// Read a whole file, gunzipping it when its name ends in `.gz`.
pub fn read_maybe_gz(path: &Path) -> Result<Vec<u8>> {
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

/// A [`DatasetError::Format`] for `path`.
pub fn format_err(path: &Path, format: &'static str, reason: impl Into<String>) -> DatasetError {
    DatasetError::Format { path: path.to_path_buf(), format, reason: reason.into() }
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

/// What a `.npy` header says: shape, element type and where the data starts.
struct NpyHeader {
    rows: usize,
    cols: usize,
    ty: NpyType,
    /// Offset of the first element.
    body: usize,
}

impl NpyHeader {
    fn elem_bytes(&self) -> usize {
        match self.ty {
            NpyType::F8Le => 8,
            _ => 4,
        }
    }

    /// Parse the header at the start of `raw` (which must hold at least the whole header).
    fn parse(path: &Path, raw: &[u8]) -> Result<NpyHeader> {
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
            return Err(bad(format!(
                "element type {} is not float32/float64",
                descr.split(',').next().unwrap_or(descr)
            )));
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
        Ok(NpyHeader { rows: dims[0], cols: dims[1], ty, body: hstart + hlen })
    }

    /// Check that a body of `len` bytes holds exactly the shape's elements.
    fn check_body(&self, path: &Path, len: u64) -> Result<()> {
        let want = self.rows.checked_mul(self.cols).and_then(|n| n.checked_mul(self.elem_bytes()));
        if want.map(|w| w as u64) != Some(len) {
            return Err(format_err(
                path,
                "npy",
                format!("shape ({}, {}) needs {want:?} bytes of data, file has {len}", self.rows, self.cols),
            ));
        }
        Ok(())
    }

    /// Decode whole elements of `body` into floats.
    fn decode(&self, body: &[u8], out: &mut Vec<f32>) {
        match self.ty {
            NpyType::F4Le => out.extend(body.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))),
            NpyType::F4Be => out.extend(body.chunks_exact(4).map(|b| f32::from_be_bytes([b[0], b[1], b[2], b[3]]))),
            NpyType::F8Le => {
                out.extend(body.chunks_exact(8).map(|b| f64::from_le_bytes(b.try_into().unwrap_or([0; 8])) as f32))
            }
        }
    }
}

/// Read a 2-D `.npy` array of float32 (`<f4` or `>f4`) or float64 (`<f8`, narrowed), C order.
pub fn read_npy_f32(path: &Path) -> Result<Matrix<f32>> {
    let raw = read_maybe_gz(path)?;
    let h = NpyHeader::parse(path, &raw)?;
    let body = &raw[h.body..];
    h.check_body(path, body.len() as u64)?;
    let mut data = Vec::with_capacity(h.rows * h.cols);
    h.decode(body, &mut data);
    Ok(Matrix { rows: h.rows, cols: h.cols, data })
}

/// A `.npy` file read a block of rows at a time (not gzipped): memory stays one block
/// however large the file ([`read_npy_f32`] reads it whole).
pub struct NpyRows {
    path: PathBuf,
    file: std::io::BufReader<File>,
    header: NpyHeader,
    next: usize,
    bytes: Vec<u8>,
}

impl NpyRows {
    /// Open `path` and check its header and size.
    pub fn open(path: &Path) -> Result<NpyRows> {
        let io = |source| DatasetError::Io { path: path.to_path_buf(), source };
        let mut file = File::open(path).map_err(io)?;
        let len = file.metadata().map_err(io)?.len();
        let mut head = vec![0u8; (len.min(1 << 20)) as usize];
        file.read_exact(&mut head).map_err(io)?;
        let header = NpyHeader::parse(path, &head)?;
        header.check_body(path, len - header.body as u64)?;
        use std::io::Seek;
        file.seek(std::io::SeekFrom::Start(header.body as u64)).map_err(io)?;
        Ok(NpyRows {
            path: path.to_path_buf(),
            file: std::io::BufReader::with_capacity(1 << 20, file),
            header,
            next: 0,
            bytes: Vec::new(),
        })
    }

    /// Rows in the file.
    pub fn rows(&self) -> usize {
        self.header.rows
    }

    /// Floats per row.
    pub fn cols(&self) -> usize {
        self.header.cols
    }

    /// The next block of up to `n` rows (empty at the end), replacing `out`'s contents.
    pub fn next_block(&mut self, n: usize, out: &mut Vec<f32>) -> Result<usize> {
        let n = n.min(self.header.rows - self.next);
        self.bytes.resize(n * self.header.cols * self.header.elem_bytes(), 0);
        self.file.read_exact(&mut self.bytes).map_err(|source| DatasetError::Io { path: self.path.clone(), source })?;
        out.clear();
        self.header.decode(&self.bytes, out);
        self.next += n;
        Ok(n)
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn npy_rows_streams_the_same_rows_in_blocks_and_checks_the_size() {
        let dir = tempfile::tempdir().unwrap();
        let m = Matrix::new(7, 3, (0..21).map(|x| x as f32 * 0.25 - 1.0).collect()).unwrap();
        let p = dir.path().join("m.npy");
        write_npy_f32(&p, &m).unwrap();
        let mut r = NpyRows::open(&p).unwrap();
        assert_eq!((r.rows(), r.cols()), (7, 3));
        let (mut all, mut block) = (Vec::new(), Vec::new());
        let mut sizes = Vec::new();
        loop {
            let n = r.next_block(3, &mut block).unwrap();
            if n == 0 {
                break;
            }
            sizes.push(n);
            all.extend_from_slice(&block);
        }
        assert_eq!(sizes, vec![3, 3, 1]);
        assert_eq!(all, m.data);
        // A truncated file is refused at open, naming the file.
        let bytes = std::fs::read(&p).unwrap();
        std::fs::write(&p, &bytes[..bytes.len() - 4]).unwrap();
        let e = NpyRows::open(&p).err().unwrap().to_string();
        assert!(e.contains("m.npy") && e.contains("bytes of data"), "{e}");
    }

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
}
