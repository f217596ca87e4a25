//! Metadata filters, applied during search.
//!
//! A filter is evaluated against a record's metadata document. On an array field
//! (e.g. `tags`), `Eq`/`In`/`Prefix` match when any element matches.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Error, Result};

/// A record's metadata document.
pub type Metadata = serde_json::Map<String, Value>;

/// A condition on metadata.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Filter {
    /// `field == value`.
    Eq(String, Value),
    /// `field` equals one of the values.
    In(String, Vec<Value>),
    /// Numeric range; each bound optional, inclusive unless `*_exclusive`.
    Range {
        /// The field.
        field: String,
        /// Lower bound.
        min: Option<f64>,
        /// Upper bound.
        max: Option<f64>,
        /// Lower bound excluded.
        min_exclusive: bool,
        /// Upper bound excluded.
        max_exclusive: bool,
    },
    /// String field starts with the prefix.
    Prefix(String, String),
    /// All must match.
    And(Vec<Filter>),
    /// Any must match.
    Or(Vec<Filter>),
    /// Must not match.
    Not(Box<Filter>),
}

impl Filter {
    /// True when `meta` satisfies the filter. A missing field matches nothing (so
    /// `Not` of it matches); on an array field any element may match.
    pub fn matches(&self, meta: &Metadata) -> bool {
        match self {
            Filter::Eq(field, want) => lookup(meta, field).is_some_and(|v| any_elem(v, |x| values_equal(x, want))),
            Filter::In(field, wants) => {
                lookup(meta, field).is_some_and(|v| any_elem(v, |x| wants.iter().any(|w| values_equal(x, w))))
            }
            Filter::Range { field, min, max, min_exclusive, max_exclusive } => lookup(meta, field).is_some_and(|v| {
                any_elem(v, |x| {
                    let Some(n) = as_number(x) else { return false };
                    let lo = min.is_none_or(|m| if *min_exclusive { n > m } else { n >= m });
                    let hi = max.is_none_or(|m| if *max_exclusive { n < m } else { n <= m });
                    lo && hi
                })
            }),
            Filter::Prefix(field, prefix) => lookup(meta, field)
                .is_some_and(|v| any_elem(v, |x| x.as_str().is_some_and(|s| s.starts_with(prefix.as_str())))),
            Filter::And(fs) => fs.iter().all(|f| f.matches(meta)),
            Filter::Or(fs) => fs.iter().any(|f| f.matches(meta)),
            Filter::Not(f) => !f.matches(meta),
        }
    }

    /// The metadata fields the filter tests, each once, in order of appearance.
    pub fn fields(&self) -> Vec<&str> {
        fn walk<'a>(f: &'a Filter, out: &mut Vec<&'a str>) {
            match f {
                Filter::Eq(x, _) | Filter::In(x, _) | Filter::Prefix(x, _) | Filter::Range { field: x, .. } => {
                    if !out.contains(&x.as_str()) {
                        out.push(x);
                    }
                }
                Filter::And(fs) | Filter::Or(fs) => fs.iter().for_each(|f| walk(f, out)),
                Filter::Not(f) => walk(f, out),
            }
        }
        let mut out = Vec::new();
        walk(self, &mut out);
        out
    }

    /// True when `meta` has `field` (a top-level key, or a dotted path into nested objects), as
    /// the filter looks fields up.
    pub fn has_field(meta: &Metadata, field: &str) -> bool {
        lookup(meta, field).is_some()
    }

    /// The fields this filter tests that none of `metas` has: a typo or the wrong collection,
    /// worth an error rather than an empty result. Stops reading `metas` once every field was
    /// seen; with no metadata at all, nothing is reported.
    pub fn missing_fields(&self, metas: impl IntoIterator<Item = Metadata>) -> Vec<&str> {
        let mut missing = self.fields();
        let mut any = false;
        for meta in metas {
            any = true;
            missing.retain(|f| !Filter::has_field(&meta, f));
            if missing.is_empty() {
                break;
            }
        }
        if any {
            missing
        } else {
            Vec::new()
        }
    }

    /// Parse the JSON form used by the HTTP API, e.g.
    /// `{"label": "cat"}`, `{"label": {"in": ["cat","dog"]}}`, `{"width": {"gte": 100, "lt": 500}}`,
    /// `{"path": {"prefix": "/photos/"}}`, `{"and": [...]}`, `{"or": [...]}`, `{"not": {...}}`.
    /// Several keys in one object are ANDed. Per field the operators are `eq`, `ne`, `in`,
    /// `nin`, `gt`, `gte`, `lt`, `lte` and `prefix`; a bare array means `in`.
    pub fn from_json(v: &Value) -> Result<Filter> {
        let obj = v.as_object().ok_or_else(|| bad(format!("a filter must be a JSON object, got {v}")))?;
        let mut parts = Vec::with_capacity(obj.len());
        for (key, val) in obj {
            parts.push(match key.as_str() {
                "and" | "or" => {
                    let arr = val.as_array().ok_or_else(|| bad(format!("'{key}' takes an array of filters")))?;
                    let subs = arr.iter().map(Filter::from_json).collect::<Result<Vec<_>>>()?;
                    if key == "and" {
                        Filter::And(subs)
                    } else {
                        Filter::Or(subs)
                    }
                }
                "not" => Filter::Not(Box::new(Filter::from_json(val)?)),
                field => field_from_json(field, val)?,
            });
        }
        Ok(if parts.len() == 1 { parts.pop().expect("one part") } else { Filter::And(parts) })
    }

    /// Parse the CLI form: conditions `label=cat` (or `==`), `label!=cat`, `label in cat,dog`,
    /// `label not in cat`, `width>=100`, `width<500`, `path^=/photos/`, combined with `and`,
    /// `or`, `not` and parentheses (`and` binds tighter than `or`). Values that look like numbers
    /// or `true`/`false` are typed as such (`"…"` quotes force a string and allow spaces);
    /// numbers and numeric strings compare equal when their values are equal. A syntax error
    /// is [`Error::InvalidFilter`] with the expression and a caret under the spot.
    pub fn parse(expr: &str) -> Result<Filter> {
        crate::filter_parse::parse(expr)
    }
}

fn bad(msg: String) -> Error {
    Error::InvalidFilter(msg)
}

/// The field's value: a top-level key, or a dotted path into nested objects.
fn lookup<'a>(meta: &'a Metadata, field: &str) -> Option<&'a Value> {
    if let Some(v) = meta.get(field) {
        return Some(v);
    }
    let mut parts = field.split('.');
    let mut cur = meta.get(parts.next()?)?;
    for p in parts {
        cur = cur.as_object()?.get(p)?;
    }
    Some(cur)
}

fn any_elem(v: &Value, mut f: impl FnMut(&Value) -> bool) -> bool {
    match v {
        Value::Array(a) => a.iter().any(f),
        other => f(other),
    }
}

fn as_number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        _ => None,
    }
}

fn values_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Number(x), Value::String(s)) | (Value::String(s), Value::Number(x)) => {
            s.trim().parse::<f64>().ok().is_some_and(|n| Some(n) == x.as_f64())
        }
        _ => a == b,
    }
}

fn check_scalar(field: &str, v: &Value) -> Result<()> {
    match v {
        Value::String(_) | Value::Number(_) | Value::Bool(_) => Ok(()),
        other => Err(bad(format!("field '{field}': expected a string, number or bool, got {other}"))),
    }
}

fn number(field: &str, op: &str, v: &Value) -> Result<f64> {
    as_number(v).ok_or_else(|| bad(format!("field '{field}': '{op}' needs a number, got {v}")))
}

fn field_from_json(field: &str, val: &Value) -> Result<Filter> {
    if field.is_empty() {
        return Err(bad("empty field name".into()));
    }
    match val {
        Value::Object(ops) => {
            if ops.is_empty() {
                return Err(bad(format!("field '{field}': empty operator object")));
            }
            let mut parts = Vec::new();
            let (mut min, mut max, mut min_ex, mut max_ex, mut range) = (None, None, false, false, false);
            for (op, arg) in ops {
                match op.as_str() {
                    "eq" | "ne" => {
                        check_scalar(field, arg)?;
                        let f = Filter::Eq(field.to_string(), arg.clone());
                        parts.push(if op == "eq" { f } else { Filter::Not(Box::new(f)) });
                    }
                    "in" | "nin" => {
                        let arr =
                            arg.as_array().ok_or_else(|| bad(format!("field '{field}': '{op}' takes an array")))?;
                        arr.iter().try_for_each(|v| check_scalar(field, v))?;
                        let f = Filter::In(field.to_string(), arr.clone());
                        parts.push(if op == "in" { f } else { Filter::Not(Box::new(f)) });
                    }
                    "gt" | "gte" => {
                        range = true;
                        min = Some(number(field, op, arg)?);
                        min_ex = op == "gt";
                    }
                    "lt" | "lte" => {
                        range = true;
                        max = Some(number(field, op, arg)?);
                        max_ex = op == "lt";
                    }
                    "prefix" => {
                        let p = arg.as_str().ok_or_else(|| bad(format!("field '{field}': 'prefix' takes a string")))?;
                        parts.push(Filter::Prefix(field.to_string(), p.to_string()));
                    }
                    other => {
                        return Err(bad(format!(
                        "field '{field}': unknown operator '{other}' (use eq, ne, in, nin, gt, gte, lt, lte, prefix)"
                    )))
                    }
                }
            }
            if range {
                parts.push(Filter::Range {
                    field: field.to_string(),
                    min,
                    max,
                    min_exclusive: min_ex,
                    max_exclusive: max_ex,
                });
            }
            Ok(if parts.len() == 1 { parts.pop().expect("one part") } else { Filter::And(parts) })
        }
        Value::Array(arr) => {
            arr.iter().try_for_each(|v| check_scalar(field, v))?;
            Ok(Filter::In(field.to_string(), arr.clone()))
        }
        Value::Null => Err(bad(format!("field '{field}': null is not a filter value"))),
        scalar => Ok(Filter::Eq(field.to_string(), scalar.clone())),
    }
}
