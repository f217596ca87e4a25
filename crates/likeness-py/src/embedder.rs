//! `likeness.Embedder`: images (paths, bytes, numpy arrays, PIL images) to feature vectors with
//! the same extractors, preprocessing and parallel pipeline as the CLI.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use features::decode::DecodeLimits;
use features::pipeline::{extract_inputs, ImageInput, ImageRecord};
use features::{DistanceKind, Embedding, ExtractorOptions, FeatureError, FeatureExtractor};
use image::RgbImage;
use numpy::ndarray::Array2;
use numpy::{IntoPyArray, PyArrayDyn, PyArrayMethods, PyUntypedArray, PyUntypedArrayMethods};
use pyo3::prelude::*;
use pyo3::types::{PyByteArray, PyBytes, PyDict, PyList, PyMemoryView, PyString, PyTuple};

use crate::database::PyVectorField;
use crate::errors::{class_err, type_error, without_gil, BindError, ErrorClass};
use crate::metadata::type_name;

/// Read item `index` (before the GIL is released): a path (str / os.PathLike), bytes, an
/// HxWx3 uint8 array or a PIL image. In-memory items are named `<bytes item N>` /
/// `<array item N>` in errors.
fn read_input(item: &Bound<'_, PyAny>, index: usize) -> PyResult<ImageInput> {
    if item.is_instance_of::<PyString>() || item.hasattr("__fspath__")? {
        return Ok(ImageInput::Path(item.extract::<PathBuf>()?));
    }
    let pixels = |image: RgbImage| ImageInput::Pixels { image, name: PathBuf::from(format!("<array item {index}>")) };
    if item.is_instance_of::<PyBytes>() || item.is_instance_of::<PyByteArray>() || item.is_instance_of::<PyMemoryView>()
    {
        let bytes = match item.cast::<PyBytes>() {
            Ok(b) => b.as_bytes().to_vec(),
            // bytearray / memoryview: one copy through bytes(item)
            Err(_) => item.py().get_type::<PyBytes>().call1((item,))?.cast_into::<PyBytes>()?.as_bytes().to_vec(),
        };
        return Ok(ImageInput::Bytes { bytes, name: PathBuf::from(format!("<bytes item {index}>")) });
    }
    if item.cast::<PyUntypedArray>().is_ok() {
        return pixels_from_array(item).map(pixels);
    }
    if is_pil_image(item) {
        // PIL: convert to RGB, then read its pixels through numpy's array interface.
        let rgb = item.call_method1("convert", ("RGB",))?;
        let arr = item.py().import("numpy")?.call_method1("asarray", (rgb,))?;
        return pixels_from_array(&arr).map(pixels);
    }
    Err(type_error(format!(
        "an image is a path (str or os.PathLike), bytes, a numpy uint8 array of shape (height, width, 3) \
         or a PIL image; got {}",
        type_name(item)
    )))
}

fn is_pil_image(item: &Bound<'_, PyAny>) -> bool {
    let module: Option<String> = item.get_type().getattr("__module__").ok().and_then(|m| m.extract().ok());
    module.is_some_and(|m| m.starts_with("PIL.")) && item.hasattr("convert").unwrap_or(false)
}

/// Copy an HxWx3 uint8 array into an RGB image.
fn pixels_from_array(obj: &Bound<'_, PyAny>) -> PyResult<RgbImage> {
    let arr = obj.cast::<PyUntypedArray>()?;
    let shape = arr.shape().to_vec();
    let Ok(typed) = obj.cast::<PyArrayDyn<u8>>() else {
        return Err(type_error(format!(
            "an image array must be uint8 of shape (height, width, 3), got dtype {}",
            arr.dtype()
        )));
    };
    let [h, w, 3] = shape[..] else {
        return Err(class_err(
            ErrorClass::Dimension,
            format!("an image array must have shape (height, width, 3) (RGB), got {shape:?}"),
        ));
    };
    let ro = typed.try_readonly().map_err(|e| type_error(format!("cannot read the array: {e}")))?;
    let data: Vec<u8> = match ro.as_slice() {
        Ok(s) => s.to_vec(),
        Err(_) => ro.as_array().iter().copied().collect(),
    };
    let (w32, h32) = (u32::try_from(w), u32::try_from(h));
    match (w32, h32) {
        (Ok(w), Ok(h)) => RgbImage::from_raw(w, h, data)
            .ok_or_else(|| class_err(ErrorClass::Dimension, "image array size does not match its shape")),
        _ => Err(class_err(ErrorClass::Dimension, format!("image of {w}x{h} pixels is too large"))),
    }
}

/// The embedding of one input: the pipeline's record (features, size, format).
type Embedded = Result<ImageRecord, FeatureError>;

/// The metric name of an extractor's distance.
fn metric_name(kind: DistanceKind) -> &'static str {
    match kind {
        DistanceKind::L2 => "l2",
        DistanceKind::Cosine => "cosine",
        DistanceKind::Hamming => "hamming",
    }
}

/// Turns images into feature vectors, exactly as ``likeness index`` / ``likeness search`` do.
///
/// Args:
///     features: extractor names: ``"cnn"`` (EfficientNet-Lite0, 1280-d cosine),
///         ``"cnn-lite2"``, ``"color"`` (HSV histogram, l2), ``"texture"`` (l2), ``"phash"``
///         / ``"dhash"`` (64-bit hashes, hamming), or a trained head ``"cnn+head:PATH"``.
///     model_dir: where the CNN model lives (default ``$LIKENESS_MODEL_DIR`` or the user cache;
///         fetched there on first use).
///     device: ``"cpu"``, ``"cuda"`` / ``"cuda:N"`` (builds with the ``cuda`` feature) or ``"cpu-ref"``.
///
/// Example:
///     >>> emb = likeness.Embedder(["color", "phash"])
///     >>> v = emb.embed("photos/cat.jpg")        # {"color": float32 (128,), "phash": uint8 (8,)}
///     >>> batch = emb.embed(["a.jpg", "b.png", b"...jpeg bytes...", pil_image])
///     >>> batch["color"].shape, batch.errors     # ((4, 128), [(2, "...cannot decode...")])
#[pyclass(name = "Embedder", module = "likeness", frozen)]
pub struct PyEmbedder {
    extractors: Arc<Vec<Box<dyn FeatureExtractor>>>,
    limits: DecodeLimits,
    device: String,
}

#[pymethods]
impl PyEmbedder {
    #[new]
    #[pyo3(signature = (features = None, model_dir = None, device = "cpu"))]
    fn new(py: Python<'_>, features: Option<Vec<String>>, model_dir: Option<PathBuf>, device: &str) -> PyResult<Self> {
        let names: Vec<String> =
            features.unwrap_or_else(|| features::DEFAULT_FEATURES.iter().map(|s| s.to_string()).collect());
        if names.is_empty() {
            return Err(class_err(ErrorClass::InvalidArgument, "give at least one feature"));
        }
        let device_kind: features::cnn::ComputeDevice = device.parse().map_err(BindError::from)?;
        let opts = ExtractorOptions { model_dir, device: device_kind, ..Default::default() };
        let extractors = without_gil(py, move || Ok(features::build_extractors(&names, &opts)?))?;
        Ok(PyEmbedder { extractors: Arc::new(extractors), limits: DecodeLimits::default(), device: device.into() })
    }

    /// Names of the features (the vector field names), in order.
    #[getter]
    fn features(&self) -> Vec<String> {
        self.extractors.iter().map(|e| e.name().to_string()).collect()
    }

    /// Vector length per feature (floats, or bits for hashes).
    #[getter]
    fn dims(&self) -> BTreeMap<String, usize> {
        self.extractors.iter().map(|e| (e.name().to_string(), e.dim())).collect()
    }

    /// Metric per feature: ``"cosine"``, ``"l2"`` or ``"hamming"``.
    #[getter]
    fn metrics(&self) -> BTreeMap<String, &'static str> {
        self.extractors.iter().map(|e| (e.name().to_string(), metric_name(e.distance()))).collect()
    }

    /// The device the CNN runs on.
    #[getter]
    fn device(&self) -> &str {
        &self.device
    }

    /// One ``VectorField`` per feature, to create a collection for these vectors; dense
    /// features get ``index``, hashes (hamming) get ``binary_index``.
    #[pyo3(signature = (index = "Auto", binary_index = "Flat"))]
    fn fields(&self, index: &str, binary_index: &str) -> Vec<PyVectorField> {
        self.extractors
            .iter()
            .map(|e| {
                let metric = metric_name(e.distance());
                let spec = if metric == "hamming" { binary_index } else { index };
                PyVectorField {
                    name: e.name().into(),
                    dim: e.dim(),
                    metric: metric.into(),
                    index: spec.into(),
                    vectors_per_record: e.vectors_per_image(),
                }
            })
            .collect()
    }

    /// Embed one image or a batch.
    ///
    /// Args:
    ///     images: one image, or a list/tuple of them. An image is a path (``str`` or
    ///         ``os.PathLike``), the bytes of an encoded file, a numpy uint8 array of shape
    ///         ``(height, width, 3)`` (RGB) or a PIL image.
    ///
    /// Returns:
    ///     For one image: ``{feature: array}`` (float32 1-D, uint8 packed bits for hashes);
    ///     a bad image raises ``ImageError``. For a batch: :class:`Embeddings`, one row per
    ///     item (zeros where an item failed) and the failures as ``errors`` — one bad image
    ///     does not fail the batch.
    ///
    /// Runs without the GIL, on all cores: every kind of item goes through the CLI's pipeline
    /// (decoded in parallel, the CNN in batches, the other extractors image-parallel).
    fn embed<'py>(&self, py: Python<'py>, images: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        let batch = images.is_instance_of::<PyList>() || images.is_instance_of::<PyTuple>();
        let inputs: Vec<ImageInput> = if batch {
            images.try_iter()?.enumerate().map(|(i, item)| read_input(&item?, i)).collect::<PyResult<_>>()?
        } else {
            vec![read_input(images, 0)?]
        };
        let extractors = self.extractors.clone();
        let limits = self.limits.clone();
        // Every kind of input through the CLI's pipeline: decoding in parallel, the CNN in
        // batches, the other extractors on every core.
        let results = without_gil(py, move || Ok(extract_inputs(inputs, &extractors, &limits, &|_| {})))?;
        if batch {
            Ok(Bound::new(py, Embeddings::build(py, &self.extractors, results)?)?.into_any())
        } else {
            let rec = results.into_iter().next().expect("one input, one result").map_err(BindError::from)?;
            let out = PyDict::new(py);
            for ex in self.extractors.iter() {
                if let Some(f) = rec.features.get(ex.name()) {
                    out.set_item(ex.name(), embedding_to_py(py, &f.vector))?;
                }
            }
            Ok(out.into_any())
        }
    }

    fn __repr__(&self) -> String {
        format!("Embedder(features={:?}, device={:?})", self.features(), self.device)
    }
}

/// The vector of feature `name` in one result, when it succeeded.
fn vector_of<'r>(r: &'r Embedded, name: &str) -> Option<&'r Embedding> {
    r.as_ref().ok().and_then(|rec| rec.features.get(name)).map(|f| &f.vector)
}

fn embedding_to_py<'py>(py: Python<'py>, e: &Embedding) -> Bound<'py, PyAny> {
    match e {
        Embedding::Dense(v) => v.clone().into_pyarray(py).into_any(),
        Embedding::Binary(v) => v.clone().into_pyarray(py).into_any(),
    }
}

/// The vectors of a batch: ``emb["cnn"]`` is an ``n × dim`` array (one row per item, zeros where
/// the item failed); ``ok`` marks the rows that hold vectors, ``errors`` lists the failures as
/// ``(index, message)``, ``info`` holds each item's ``{"width", "height", "format"}`` (``None``
/// for failures).
#[pyclass(name = "Embeddings", module = "likeness", frozen, mapping)]
pub struct Embeddings {
    /// ``{feature: array}``.
    #[pyo3(get)]
    vectors: Py<PyDict>,
    /// Bool array, True where the item was embedded.
    #[pyo3(get)]
    ok: Py<PyAny>,
    /// ``[(index, message), ...]`` for the items that failed.
    #[pyo3(get)]
    errors: Vec<(usize, String)>,
    /// Per item: ``{"width", "height", "format"}`` of the decoded image, or ``None``.
    #[pyo3(get)]
    info: Py<PyList>,
}

impl Embeddings {
    fn build(py: Python<'_>, extractors: &[Box<dyn FeatureExtractor>], results: Vec<Embedded>) -> PyResult<Self> {
        let n = results.len();
        let vectors = PyDict::new(py);
        for ex in extractors {
            let name = ex.name();
            let width = match ex.distance() {
                DistanceKind::Hamming => ex.dim().div_ceil(8),
                _ => ex.dim() * ex.vectors_per_image(),
            };
            if ex.distance() == DistanceKind::Hamming {
                let mut m = Array2::<u8>::zeros((n, width));
                for (i, r) in results.iter().enumerate() {
                    if let Some(Embedding::Binary(v)) = vector_of(r, name) {
                        m.row_mut(i).as_slice_mut().expect("rows are contiguous").copy_from_slice(v);
                    }
                }
                vectors.set_item(name, m.into_pyarray(py))?;
            } else {
                let mut m = Array2::<f32>::zeros((n, width));
                for (i, r) in results.iter().enumerate() {
                    if let Some(Embedding::Dense(v)) = vector_of(r, name) {
                        m.row_mut(i).as_slice_mut().expect("rows are contiguous").copy_from_slice(v);
                    }
                }
                vectors.set_item(name, m.into_pyarray(py))?;
            }
        }
        let ok: Vec<bool> = results.iter().map(Result::is_ok).collect();
        let errors =
            results.iter().enumerate().filter_map(|(i, r)| r.as_ref().err().map(|e| (i, e.to_string()))).collect();
        let info = PyList::empty(py);
        for r in &results {
            match r {
                Ok(rec) => {
                    let d = PyDict::new(py);
                    d.set_item("width", rec.width)?;
                    d.set_item("height", rec.height)?;
                    d.set_item("format", &rec.format)?;
                    info.append(d)?;
                }
                Err(_) => info.append(py.None())?,
            }
        }
        Ok(Embeddings {
            vectors: vectors.unbind(),
            ok: ok.into_pyarray(py).into_any().unbind(),
            errors,
            info: info.unbind(),
        })
    }
}

#[pymethods]
impl Embeddings {
    fn __getitem__<'py>(&self, py: Python<'py>, feature: &str) -> PyResult<Bound<'py, PyAny>> {
        self.vectors
            .bind(py)
            .get_item(feature)?
            .ok_or_else(|| class_err(ErrorClass::NotFound, format!("no feature '{feature}' in these embeddings")))
    }

    fn __len__(&self, py: Python<'_>) -> usize {
        self.vectors.bind(py).len()
    }

    fn __contains__(&self, py: Python<'_>, feature: &str) -> PyResult<bool> {
        self.vectors.bind(py).contains(feature)
    }

    fn __iter__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        Ok(self.vectors.bind(py).keys().into_any().try_iter()?.into_any())
    }

    /// The feature names.
    fn keys(&self, py: Python<'_>) -> Vec<String> {
        self.vectors.bind(py).keys().extract().unwrap_or_default()
    }

    /// Number of items in the batch.
    #[getter]
    fn count(&self, py: Python<'_>) -> usize {
        self.info.bind(py).len()
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        format!("Embeddings(items={}, features={:?}, errors={})", self.count(py), self.keys(py), self.errors.len())
    }
}
