//! `GET /api/collections/{name}/records`: browse a collection without a query, a page at a
//! time, in a stable order (by path), optionally narrowed to one label and to tags containing
//! a text. Also the record "card" (what the page shows of an image) the duplicates view shares.

use std::path::Path as FsPath;
use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use vecdb::Collection;

use super::error::{ApiError, ApiResult};
use super::files;
use super::state::AppState;
use crate::image_meta::ImageMeta;

/// Most records one page may ask for.
pub const MAX_LIMIT: usize = 1000;

/// Query string of `GET /api/collections/{name}/records`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BrowseQuery {
    /// Records to skip (default 0).
    #[serde(default)]
    offset: usize,
    /// Records to return (1..=1000, default 48).
    limit: Option<usize>,
    /// Only records with exactly this label.
    label: Option<String>,
    /// Only records with a tag containing this text (case-insensitive).
    tag: Option<String>,
}

/// What the page shows of one record: its file facts, tags, thumbnail and, when the server may
/// serve the file (under a `--root` folder, or an upload), the URL of the original.
pub fn card(st: &AppState, collection: &str, id: u64, meta: &ImageMeta) -> Value {
    let path = meta.path_buf();
    let original = path
        .as_deref()
        .filter(|p| files::original_allowed(st, p))
        .map(|_| format!("/api/collections/{}/records/{id}/original", url_segment(collection)));
    let name = meta
        .original_name
        .clone()
        .or_else(|| path.as_deref().and_then(FsPath::file_name).map(|n| n.to_string_lossy().into_owned()));
    json!({
        "id": id.to_string(),
        "path": meta.path,
        "name": name,
        "label": meta.label,
        "tags": meta.tags,
        "size": meta.size,
        "width": meta.width,
        "height": meta.height,
        "format": meta.format,
        "mtime": meta.mtime,
        "thumb": format!("/thumb/{id}"),
        "original": original,
    })
}

/// `name` percent-encoded for one URL path segment.
pub fn url_segment(name: &str) -> String {
    name.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The records of `c` that pass the label and tag filters, sorted by path (then id).
pub fn listing(c: &Collection, label: Option<&str>, tag: Option<&str>) -> Vec<(u64, ImageMeta)> {
    let tag = tag.map(str::to_lowercase);
    let mut rows: Vec<(u64, ImageMeta)> = c
        .ids()
        .into_iter()
        .filter_map(|id| Some((id, ImageMeta::from_metadata(c.get_metadata(id)?))))
        .filter(|(_, m)| label.is_none_or(|l| m.label.as_deref() == Some(l)))
        .filter(|(_, m)| tag.as_deref().is_none_or(|t| m.tags.iter().any(|x| x.to_lowercase().contains(t))))
        .collect();
    rows.sort_by(|a, b| a.1.path.cmp(&b.1.path).then(a.0.cmp(&b.0)));
    rows
}

/// `GET /api/collections/{name}/records?offset=&limit=&label=&tag=`: `{total, offset, limit,
/// records}` where `total` counts every record that passes the filters.
pub async fn handler(
    State(st): State<Arc<AppState>>,
    Path(name): Path<String>,
    q: Result<Query<BrowseQuery>, QueryRejection>,
) -> ApiResult<Json<Value>> {
    let Query(q) = q.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let limit = q.limit.unwrap_or(48);
    if limit == 0 || limit > MAX_LIMIT {
        return Err(ApiError::bad_request(format!("limit must be between 1 and {MAX_LIMIT}, got {limit}")));
    }
    let label = q.label.filter(|l| !l.is_empty());
    let tag = q.tag.map(|t| t.trim().to_string()).filter(|t| !t.is_empty());
    let c = st.collection(&name)?;
    let st2 = st.clone();
    let (total, records) = tokio::task::spawn_blocking(move || {
        let rows = listing(&c, label.as_deref(), tag.as_deref());
        let page: Vec<Value> =
            rows.iter().skip(q.offset).take(limit).map(|(id, m)| card(&st2, c.name(), *id, m)).collect();
        (rows.len(), page)
    })
    .await?;
    Ok(Json(json!({"total": total, "offset": q.offset, "limit": limit, "records": records})))
}

#[cfg(test)]
mod tests {
    use super::url_segment;

    #[test]
    fn collection_names_are_escaped_for_urls() {
        assert_eq!(url_segment("images"), "images");
        assert_eq!(url_segment("my photos/2024"), "my%20photos%2F2024");
    }
}
