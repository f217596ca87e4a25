//! `Collection.search`: queries in (a vector, a batch, a record id or ids), numpy results out.

use numpy::ndarray::Array2;
use numpy::{IntoPyArray, PyArrayDyn, PyUntypedArray, PyUntypedArrayMethods};
use pyo3::prelude::*;
use pyo3::types::{PyList, PyTuple};
use vecdb::{Collection, Filter, Hit, Query, SearchParams, SearchRequest, VectorField};

use crate::arrays::{field_rows, is_int, read_ids, Ids};
use crate::database::check_field;
use crate::errors::{class_err, type_error, without_gil, BindError, ErrorClass};
use crate::metadata;

/// The id that pads batch results where a query has fewer hits than columns (`2**64 - 1`).
pub const NO_ID: u64 = u64::MAX;

/// Knobs and options of one `search` call.
pub struct SearchOptions<'py> {
    /// Hits per query (`None`: 10, or unlimited with a threshold).
    pub k: Option<usize>,
    /// Field to search (`None`: the first).
    pub field: Option<String>,
    /// Range search radius.
    pub threshold: Option<f32>,
    /// Filter: CLI string form or JSON (dict) form.
    pub filter: Option<Bound<'py, PyAny>>,
    /// Index knobs.
    pub params: SearchParams,
    /// Return each hit's metadata.
    pub include_metadata: bool,
}

/// The queries of one call and whether they were one query (1-D results) or a batch.
struct Queries {
    queries: Vec<Query>,
    single: bool,
}

fn read_queries(query: &Bound<'_, PyAny>, field: &VectorField) -> PyResult<Queries> {
    if is_int(query) {
        let id = query.extract::<u64>().map_err(|_| type_error("a record id is a non-negative int"))?;
        return Ok(Queries { queries: vec![Query::Id(id)], single: true });
    }
    if query.is_instance_of::<PyList>() || query.is_instance_of::<PyTuple>() {
        return match read_ids(query) {
            Ok(Ids::Many(ids)) => Ok(Queries { queries: ids.into_iter().map(Query::Id).collect(), single: false }),
            _ => Err(type_error(format!(
                "a query is a numpy array ({}), a record id (int) or a list of record ids; \
                 got a list that is not all ints (use numpy.asarray(q, dtype=numpy.float32) for vectors)",
                crate::arrays::expected(field)
            ))),
        };
    }
    if let Ok(arr) = query.cast::<PyUntypedArray>() {
        let is_id_array =
            arr.ndim() == 1 && (query.cast::<PyArrayDyn<u64>>().is_ok() || query.cast::<PyArrayDyn<i64>>().is_ok());
        if is_id_array {
            if let Ids::Many(ids) = read_ids(query)? {
                return Ok(Queries { queries: ids.into_iter().map(Query::Id).collect(), single: false });
            }
        }
    }
    let rows = field_rows(query, field)?;
    let queries = (0..rows.rows).map(|i| Query::Vector(rows.row(i).to_owned())).collect();
    Ok(Queries { queries, single: rows.single })
}

fn read_filter(obj: &Bound<'_, PyAny>) -> PyResult<Filter> {
    let parsed = if let Ok(s) = obj.extract::<String>() {
        Filter::parse(&s)
    } else if obj.is_instance_of::<pyo3::types::PyDict>() {
        Filter::from_json(&metadata::value_from_py(obj, "filter")?)
    } else {
        return Err(type_error(format!(
            "filter must be a str (\"label=cat and width>=640\") or a dict ({{\"label\": \"cat\"}}), got {}",
            metadata::type_name(obj)
        )));
    };
    Ok(parsed.map_err(BindError::from)?)
}

/// Run `Collection.search`.
pub fn search(
    py: Python<'_>,
    coll: std::sync::Arc<Collection>,
    query: &Bound<'_, PyAny>,
    opts: SearchOptions<'_>,
) -> PyResult<SearchResults> {
    let field = match &opts.field {
        Some(f) => check_field(&coll, f)?.clone(),
        None => coll.schema().fields[0].clone(),
    };
    let k = match (opts.k, opts.threshold) {
        (Some(0), _) => return Err(class_err(ErrorClass::InvalidArgument, "k must be at least 1")),
        (k, Some(_)) => k,
        (k, None) => Some(k.unwrap_or(10)),
    };
    let filter = opts.filter.as_ref().map(read_filter).transpose()?;
    let Queries { queries, single } = read_queries(query, &field)?;
    let reqs: Vec<SearchRequest> = queries
        .into_iter()
        .map(|q| SearchRequest {
            field: field.name.clone(),
            query: q,
            k,
            threshold: opts.threshold,
            filter: filter.clone(),
            params: opts.params.clone(),
            include_vectors: false,
            include_metadata: opts.include_metadata,
        })
        .collect();
    let hits = without_gil(py, move || {
        if reqs.len() == 1 {
            Ok(vec![coll.search(&reqs[0])?])
        } else {
            Ok(coll.search_batch(&reqs)?)
        }
    })?;
    SearchResults::build(py, hits, k, single, &field, opts.include_metadata)
}

/// Results of :meth:`Collection.search`.
///
/// For one query (a 1-D vector or one id): ``ids`` (uint64) and ``distances`` (float32) are
/// 1-D, one entry per hit, closest first. For a batch of ``n`` queries they are ``n × k``
/// (``k`` = the ``k`` asked for, or the most hits of any query for a range search), padded
/// where a query has fewer hits: ids with ``likeness.NO_ID`` (``2**64 - 1``), distances with
/// ``inf``; ``valid`` is ``True`` where there is a hit and ``counts`` holds the hits per query.
/// ``metadata`` (with ``include_metadata=True``) is a list of dicts per query (for one
/// query: a list of dicts), hits only.
#[pyclass(name = "SearchResults", module = "likeness", frozen)]
pub struct SearchResults {
    /// Hit ids, uint64.
    #[pyo3(get)]
    ids: Py<PyAny>,
    /// Hit distances, float32 (smaller is closer).
    #[pyo3(get)]
    distances: Py<PyAny>,
    /// True where there is a hit (same shape as ``ids``).
    #[pyo3(get)]
    valid: Py<PyAny>,
    /// Hits per query, int64, one entry per query.
    #[pyo3(get)]
    counts: Py<PyAny>,
    /// Metadata of the hits, when asked for (else ``None``).
    #[pyo3(get)]
    metadata: Py<PyAny>,
    /// The field searched.
    #[pyo3(get)]
    field: String,
    /// The metric of that field.
    #[pyo3(get)]
    metric: String,
    single: bool,
}

impl SearchResults {
    fn build(
        py: Python<'_>,
        hits: Vec<Vec<Hit>>,
        k: Option<usize>,
        single: bool,
        field: &VectorField,
        with_meta: bool,
    ) -> PyResult<Self> {
        let counts: Vec<i64> = hits.iter().map(|h| h.len() as i64).collect();
        let metadata = if with_meta {
            let per_query = hits
                .iter()
                .map(|h| {
                    let dicts = h
                        .iter()
                        .map(|hit| match &hit.metadata {
                            Some(m) => metadata::to_py(py, m),
                            None => Ok(pyo3::types::PyDict::new(py).into_any()),
                        })
                        .collect::<PyResult<Vec<_>>>()?;
                    PyList::new(py, dicts)
                })
                .collect::<PyResult<Vec<_>>>()?;
            if single {
                per_query.into_iter().next().map(|l| l.into_any().unbind()).unwrap_or_else(|| py.None())
            } else {
                PyList::new(py, per_query)?.into_any().unbind()
            }
        } else {
            py.None()
        };
        let (ids, distances, valid) = if single {
            let h = hits.first().map(Vec::as_slice).unwrap_or(&[]);
            let ids: Vec<u64> = h.iter().map(|x| x.id).collect();
            let d: Vec<f32> = h.iter().map(|x| x.distance).collect();
            (
                ids.into_pyarray(py).into_any().unbind(),
                d.into_pyarray(py).into_any().unbind(),
                vec![true; h.len()].into_pyarray(py).into_any().unbind(),
            )
        } else {
            let width = k.unwrap_or_else(|| hits.iter().map(Vec::len).max().unwrap_or(0));
            let n = hits.len();
            let mut ids = Array2::<u64>::from_elem((n, width), NO_ID);
            let mut d = Array2::<f32>::from_elem((n, width), f32::INFINITY);
            let mut valid = Array2::<bool>::from_elem((n, width), false);
            for (i, h) in hits.iter().enumerate() {
                for (j, hit) in h.iter().take(width).enumerate() {
                    ids[[i, j]] = hit.id;
                    d[[i, j]] = hit.distance;
                    valid[[i, j]] = true;
                }
            }
            (
                ids.into_pyarray(py).into_any().unbind(),
                d.into_pyarray(py).into_any().unbind(),
                valid.into_pyarray(py).into_any().unbind(),
            )
        };
        Ok(SearchResults {
            ids,
            distances,
            valid,
            counts: counts.into_pyarray(py).into_any().unbind(),
            metadata,
            field: field.name.clone(),
            metric: field.metric.to_string(),
            single,
        })
    }
}

#[pymethods]
impl SearchResults {
    /// True when the search was a batch (2-D arrays).
    #[getter]
    fn batch(&self) -> bool {
        !self.single
    }

    /// The hits as plain Python: for one query a list of ``{"id", "distance"[, "metadata"]}``
    /// dicts, for a batch a list of such lists.
    fn to_list<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let counts: Vec<i64> = self.counts.bind(py).extract()?;
        let ids = self.ids.bind(py);
        let dists = self.distances.bind(py);
        let meta = self.metadata.bind(py);
        let row = |q: usize| -> PyResult<Bound<'py, PyList>> {
            let (qi, qd): (Bound<'py, PyAny>, Bound<'py, PyAny>) =
                if self.single { (ids.clone(), dists.clone()) } else { (ids.get_item(q)?, dists.get_item(q)?) };
            let qm = if meta.is_none() {
                None
            } else if self.single {
                Some(meta.clone())
            } else {
                Some(meta.get_item(q)?)
            };
            let mut out = Vec::new();
            for j in 0..counts[q] as usize {
                let d = pyo3::types::PyDict::new(py);
                d.set_item("id", qi.get_item(j)?.extract::<u64>()?)?;
                d.set_item("distance", qd.get_item(j)?.extract::<f32>()?)?;
                if let Some(m) = &qm {
                    d.set_item("metadata", m.get_item(j)?)?;
                }
                out.push(d);
            }
            PyList::new(py, out)
        };
        if self.single {
            row(0)
        } else {
            PyList::new(py, (0..counts.len()).map(row).collect::<PyResult<Vec<_>>>()?)
        }
    }

    /// Number of queries (1 for a single query).
    fn __len__(&self, py: Python<'_>) -> PyResult<usize> {
        self.counts.bind(py).len()
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        Ok(format!(
            "SearchResults(field={:?}, ids={}, distances={})",
            self.field,
            self.ids.bind(py).repr()?,
            self.distances.bind(py).repr()?
        ))
    }
}
