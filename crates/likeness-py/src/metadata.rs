//! Metadata documents (JSON objects) to and from Python dicts.

use pyo3::prelude::*;
use pythonize::{depythonize, pythonize};
use serde_json::Value;
use vecdb::Metadata;

use crate::errors::type_error;

/// A metadata document as a Python `dict`.
pub fn to_py<'py>(py: Python<'py>, meta: &Metadata) -> PyResult<Bound<'py, PyAny>> {
    pythonize(py, meta).map_err(|e| type_error(format!("metadata cannot be converted to Python: {e}")))
}

/// A Python `dict` (or `None`: empty) as a metadata document; `what` names it in errors.
pub fn from_py(obj: &Bound<'_, PyAny>, what: &str) -> PyResult<Metadata> {
    if obj.is_none() {
        return Ok(Metadata::new());
    }
    if !obj.is_instance_of::<pyo3::types::PyDict>() {
        return Err(type_error(format!("{what} must be a dict (or None), got {}", type_name(obj))));
    }
    match depythonize::<Value>(obj) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(type_error(format!("{what} must be a dict"))),
        Err(e) => Err(type_error(format!(
            "{what} is not JSON-like (dicts with str keys, lists, str, int, float, bool, None): {e}"
        ))),
    }
}

/// A JSON value (a filter in its JSON form) from a Python object.
pub fn value_from_py(obj: &Bound<'_, PyAny>, what: &str) -> PyResult<Value> {
    depythonize::<Value>(obj).map_err(|e| type_error(format!("{what} is not JSON-like: {e}")))
}

/// The name of `obj`'s type, for messages.
pub fn type_name(obj: &Bound<'_, PyAny>) -> String {
    obj.get_type().name().map(|n| n.to_string()).unwrap_or_else(|_| "?".into())
}
