//! Reading 2-D little-endian float32 `.npy` files (what numpy and `likeness-bench ann` write),
//! for the benchmarks and examples that time indexes on real data.

use std::path::Path;

/// `(rows, columns, values)` of a 2-D little-endian float32 `.npy` file in C order; panics with
/// the path on anything else.
pub fn read_npy(path: impl AsRef<Path>) -> (usize, usize, Vec<f32>) {
    let path = path.as_ref();
    let raw = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(&raw[..6], b"\x93NUMPY", "{}: not an npy file", path.display());
    let hlen = u16::from_le_bytes([raw[8], raw[9]]) as usize;
    let header = std::str::from_utf8(&raw[10..10 + hlen]).expect("npy header");
    assert!(header.contains("'<f4'"), "{}: not float32: {header}", path.display());
    assert!(header.contains("'fortran_order': False"), "{}: not C order: {header}", path.display());
    let shape = header.split("'shape': (").nth(1).and_then(|s| s.split(')').next()).expect("shape");
    let dims: Vec<usize> = shape.split(',').filter_map(|s| s.trim().parse().ok()).collect();
    assert_eq!(dims.len(), 2, "{}: not 2-D: {header}", path.display());
    let data = raw[10 + hlen..].chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
    (dims[0], dims[1], data)
}
