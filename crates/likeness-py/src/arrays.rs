//! numpy arrays in: vector rows of a field, record ids.
//!
//! A C-contiguous array of the right dtype is read in place (no intermediate copy); a strided
//! one is copied once. The wrong dtype is a `TypeError` and the wrong shape a
//! `likeness.DimensionError` (a `ValueError`), both naming what the field expects.

use numpy::{PyArrayDyn, PyArrayMethods, PyReadonlyArrayDyn, PyUntypedArray, PyUntypedArrayMethods};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyInt};
use vecdb::{Element, VectorField, VectorRef};

use crate::errors::{class_err, type_error, ErrorClass};

/// How to make packed bits, for messages.
const PACK_HINT: &str = "pack bits with numpy.packbits(bits, axis=-1, bitorder='little')";

/// Arrays of at most this many elements are copied rather than borrowed.
const SMALL_ARRAY: usize = 16 * 1024;

/// The elements of an array, borrowed from numpy when contiguous and large, else copied.
pub enum Buf<'py, T: numpy::Element> {
    /// Read in place.
    Borrowed(PyReadonlyArrayDyn<'py, T>),
    /// A copy of a strided array.
    Owned(Vec<T>),
}

impl<'py, T: numpy::Element + Copy> Buf<'py, T> {
    fn from_array(arr: &Bound<'py, PyArrayDyn<T>>) -> PyResult<Self> {
        // A small array (a query) is copied at once: cheaper than registering a borrow.
        if arr.len() <= SMALL_ARRAY {
            if let Ok(v) = arr.to_vec() {
                return Ok(Buf::Owned(v));
            }
        }
        let ro = arr.try_readonly().map_err(|e| type_error(format!("cannot read the array: {e}")))?;
        if ro.as_slice().is_ok() {
            Ok(Buf::Borrowed(ro))
        } else {
            Ok(Buf::Owned(ro.as_array().iter().copied().collect()))
        }
    }

    /// All elements, row-major.
    pub fn slice(&self) -> &[T] {
        match self {
            Buf::Borrowed(ro) => ro.as_slice().expect("checked contiguous when borrowed"),
            Buf::Owned(v) => v,
        }
    }
}

/// The vectors given for one field: `rows` rows of `width` elements.
pub enum RowData<'py> {
    /// `float32` rows (dense fields).
    Dense(Buf<'py, f32>),
    /// Packed `uint8` rows (hamming fields).
    Binary(Buf<'py, u8>),
}

/// Vectors for one field, checked against its dtype and dimension.
pub struct FieldRows<'py> {
    data: RowData<'py>,
    /// Number of rows.
    pub rows: usize,
    width: usize,
    /// True when given as one 1-D vector.
    pub single: bool,
}

impl FieldRows<'_> {
    /// Row `i`.
    pub fn row(&self, i: usize) -> VectorRef<'_> {
        let w = self.width;
        match &self.data {
            RowData::Dense(b) => VectorRef::Dense(&b.slice()[i * w..(i + 1) * w]),
            RowData::Binary(b) => VectorRef::Binary(&b.slice()[i * w..(i + 1) * w]),
        }
    }
}

/// What a field's arrays must look like, for messages: `float32 with shape (n, 128)`.
pub fn expected(field: &VectorField) -> String {
    match field.element() {
        Element::F32 if field.is_multi() => format!(
            "a numpy float32 array of shape (n, {r}, {d}), (n, {w}) or (q * {d},)",
            r = field.vectors_per_record,
            d = field.dim,
            w = field.row_dim()
        ),
        Element::F32 => format!("a numpy float32 array of shape (n, {d}) or ({d},)", d = field.dim),
        Element::Bit => format!(
            "a numpy uint8 array of packed bits of shape (n, {b}) or ({b},) ({d} bits, 8 per byte)",
            b = field.bytes_per_vector(),
            d = field.dim
        ),
    }
}

/// Read the vectors of `field` from `obj` (a 1-D vector or a 2-D batch).
pub fn field_rows<'py>(obj: &Bound<'py, PyAny>, field: &VectorField) -> PyResult<FieldRows<'py>> {
    let Ok(arr) = obj.cast::<PyUntypedArray>() else {
        return Err(type_error(format!(
            "field '{}' takes {}, got {}",
            field.name,
            expected(field),
            crate::metadata::type_name(obj)
        )));
    };
    let mut width = match field.element() {
        Element::F32 => field.row_dim(),
        Element::Bit => field.bytes_per_vector(),
    };
    let shape = arr.shape().to_vec();
    let multi = field.is_multi();
    let (rows, single) = match shape.as_slice() {
        [w] if *w == width => (1, true),
        // A multi-vector field's query may hold any number of vectors.
        [w] if multi && *w > 0 && w % field.dim == 0 => {
            width = *w;
            (1, true)
        }
        [n, w] if *w == width => (*n, false),
        [n, r, d] if multi && *r == field.vectors_per_record && *d == field.dim => (*n, false),
        _ => {
            return Err(class_err(
                ErrorClass::Dimension,
                format!("field '{}' takes {}, got shape {:?}", field.name, expected(field), shape),
            ))
        }
    };
    let data = match field.element() {
        Element::F32 => match obj.cast::<PyArrayDyn<f32>>() {
            Ok(a) => RowData::Dense(Buf::from_array(a)?),
            Err(_) => {
                return Err(type_error(format!(
                    "field '{}' takes {}, got dtype {} (convert with .astype(numpy.float32))",
                    field.name,
                    expected(field),
                    arr.dtype()
                )))
            }
        },
        Element::Bit => match obj.cast::<PyArrayDyn<u8>>() {
            Ok(a) => RowData::Binary(Buf::from_array(a)?),
            Err(_) => {
                let msg = format!(
                    "field '{}' takes {}, got dtype {} ({PACK_HINT})",
                    field.name,
                    expected(field),
                    arr.dtype()
                );
                return Err(type_error(msg));
            }
        },
    };
    Ok(FieldRows { data, rows, width, single })
}

/// Record ids: one `int`, or a sequence / integer array of them.
pub enum Ids {
    /// One id given as an `int`.
    One(u64),
    /// Several.
    Many(Vec<u64>),
}

impl Ids {
    /// The ids as a slice.
    pub fn as_slice(&self) -> &[u64] {
        match self {
            Ids::One(id) => std::slice::from_ref(id),
            Ids::Many(v) => v,
        }
    }
}

/// True for a Python `int` (not a `bool`).
pub fn is_int(obj: &Bound<'_, PyAny>) -> bool {
    obj.is_instance_of::<PyInt>() && !obj.is_instance_of::<PyBool>()
}

/// Read ids: an `int`, a sequence of ints, or a 1-D integer numpy array (no negative values).
pub fn read_ids(obj: &Bound<'_, PyAny>) -> PyResult<Ids> {
    let bad = || type_error("ids must be an int, a sequence of ints or a 1-D integer numpy array (uint64)");
    if is_int(obj) {
        return obj.extract::<u64>().map(Ids::One).map_err(|_| bad());
    }
    if let Ok(a) = obj.cast::<PyArrayDyn<u64>>() {
        if a.ndim() != 1 {
            return Err(class_err(ErrorClass::Dimension, format!("ids must be 1-D, got shape {:?}", a.shape())));
        }
        return Ok(Ids::Many(Buf::from_array(a)?.slice().to_vec()));
    }
    if let Ok(a) = obj.cast::<PyArrayDyn<i64>>() {
        if a.ndim() != 1 {
            return Err(class_err(ErrorClass::Dimension, format!("ids must be 1-D, got shape {:?}", a.shape())));
        }
        let buf = Buf::from_array(a)?;
        return buf
            .slice()
            .iter()
            .map(|&x| {
                u64::try_from(x)
                    .map_err(|_| class_err(ErrorClass::InvalidArgument, format!("ids are unsigned; got {x}")))
            })
            .collect::<PyResult<Vec<u64>>>()
            .map(Ids::Many);
    }
    if obj.cast::<PyUntypedArray>().is_ok() || obj.is_instance_of::<pyo3::types::PyString>() {
        return Err(bad());
    }
    obj.extract::<Vec<u64>>().map(Ids::Many).map_err(|_| bad())
}
