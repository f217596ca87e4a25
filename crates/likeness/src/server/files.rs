//! The image files behind records: serving an original, and the two writes on disk the
//! duplicates view offers — moving a file into another folder and deleting it.
//!
//! Only files whose canonical path (`..` and symbolic links resolved) lies under a `--root`
//! folder are ever moved or deleted, and only into folders under a `--root`; an original is
//! served from those folders and from the server's own uploads. The folders a database
//! merely indexed are not enough: thumbnails are made from them, but the files themselves stay
//! out of reach. Writes need the API key when one is set.
//!
//! A record's id is the hash of its file's path, so a move re-keys the record: the file is
//! renamed first, then every collection holding the old id gets the record under the new path
//! (same vectors; `path`, `root` and `label` updated) and loses the old one. Should the
//! database write fail, the file is renamed back. A move across file systems is refused (409)
//! rather than copied.

use std::path::{Component, Path as FsPath, PathBuf};
use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use vecdb::Record;

use super::api::json_rejection;
use super::error::{ApiError, ApiResult};
use super::state::AppState;
use super::uploads;
use crate::catalog::record_id;
use crate::image_meta::ImageMeta;

/// True when the server may serve the file at `path` as an original: its canonical path lies
/// under a `--root` folder or is one of the server's uploads.
pub fn original_allowed(st: &AppState, path: &FsPath) -> bool {
    path.canonicalize().is_ok_and(|c| st.path_root_of(&c).is_some() || c.parent() == Some(st.upload_dir.as_path()))
}

fn parse_id(id: &str) -> ApiResult<u64> {
    id.trim().parse().map_err(|_| ApiError::bad_request(format!("bad id '{id}'")))
}

/// The stored path of record `id` of collection `name`, or 404.
fn record_path(st: &AppState, name: &str, id: u64) -> ApiResult<PathBuf> {
    let c = st.collection(name)?;
    let meta = c
        .get_metadata(id)
        .ok_or_else(|| ApiError::not_found(format!("no record with id {id} in collection '{name}'")))?;
    ImageMeta::from_metadata(meta)
        .path_buf()
        .ok_or_else(|| ApiError::not_found(format!("record {id} has no file path")))
}

/// The canonical path of the file of record `id`, required to lie under a `--root` folder.
fn file_under_root(st: &AppState, name: &str, id: u64) -> ApiResult<(PathBuf, PathBuf)> {
    if st.path_roots.is_empty() {
        return Err(ApiError::forbidden(
            "moving and deleting files is disabled: start the server with --root DIR to allow it under DIR",
        ));
    }
    let path = record_path(st, name, id)?;
    let canon = path.canonicalize().map_err(|_| {
        ApiError::not_found(format!("the file of record {id} is no longer on disk: {}", path.display()))
    })?;
    let root = st.path_root_of(&canon).map(FsPath::to_path_buf).ok_or_else(|| {
        ApiError::forbidden(format!("{} is outside the --root folders of this server", path.display()))
    })?;
    Ok((canon, root))
}

/// The MIME type of an image file, from its extension.
fn content_type(path: &FsPath) -> &'static str {
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
    match ext.as_str() {
        "jpg" | "jpeg" => "image/jpeg",
        "png" => "image/png",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "bmp" => "image/bmp",
        "tif" | "tiff" => "image/tiff",
        _ => "application/octet-stream",
    }
}

/// `GET /api/collections/{name}/records/{id}/original`: the image file itself, when it lies
/// under a `--root` folder or is an upload (403 otherwise).
pub async fn original(
    State(st): State<Arc<AppState>>,
    Path((name, id)): Path<(String, String)>,
) -> ApiResult<Response> {
    let id = parse_id(&id)?;
    let path = record_path(&st, &name, id)?;
    let canon = path
        .canonicalize()
        .map_err(|_| ApiError::not_found(format!("the file of record {id} is no longer on disk")))?;
    if !original_allowed(&st, &canon) {
        return Err(ApiError::forbidden(format!(
            "the file of record {id} is outside the folders this server serves (its --root folders and uploads)"
        )));
    }
    let bytes = tokio::fs::read(&canon).await.map_err(|e| ApiError::not_found(format!("cannot read the file: {e}")))?;
    let ctype = content_type(&canon);
    Ok(([(header::CONTENT_TYPE, ctype), (header::CACHE_CONTROL, "private, max-age=60")], bytes).into_response())
}

/// Body of `POST …/records/{id}/move`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MoveBody {
    /// Absolute folder under a `--root` to move the file into (created when missing).
    to: PathBuf,
    /// Also remove the record from every collection (the file leaves the collection's view).
    #[serde(default)]
    forget: bool,
}

/// `dir` made to exist, canonical and under a `--root` folder: its nearest existing ancestor
/// must lie under a root and the rest be plain names (no `..`).
fn destination_dir(st: &AppState, dir: &FsPath) -> ApiResult<PathBuf> {
    if !dir.is_absolute() {
        return Err(ApiError::bad_request(format!("'to' must be an absolute folder, got {}", dir.display())));
    }
    if dir.components().any(|c| matches!(c, Component::ParentDir)) {
        return Err(ApiError::bad_request(format!("'to' must not contain '..': {}", dir.display())));
    }
    let mut existing = dir;
    let mut rest = Vec::new();
    while !existing.exists() {
        let (Some(parent), Some(last)) = (existing.parent(), existing.file_name()) else { break };
        rest.push(last.to_os_string());
        existing = parent;
    }
    let base =
        existing.canonicalize().map_err(|e| ApiError::bad_request(format!("cannot open {}: {e}", dir.display())))?;
    if st.path_root_of(&base).is_none() {
        return Err(ApiError::forbidden(format!("{} is outside the --root folders of this server", dir.display())));
    }
    if !base.is_dir() {
        return Err(ApiError::bad_request(format!("{} is not a folder", existing.display())));
    }
    let target = rest.iter().rev().fold(base, |p, n| p.join(n));
    std::fs::create_dir_all(&target)
        .map_err(|e| ApiError::bad_request(format!("cannot create {}: {e}", target.display())))?;
    Ok(target)
}

/// Rename `src` to `dest`, failing with `AlreadyExists` rather than replacing a file there (on
/// Linux atomically, with `RENAME_NOREPLACE`; elsewhere checked just before).
fn rename_no_replace(src: &FsPath, dest: &FsPath) -> std::io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::ffi::OsStrExt;
        let c = |p: &FsPath| std::ffi::CString::new(p.as_os_str().as_bytes()).map_err(std::io::Error::other);
        let (from, to) = (c(src)?, c(dest)?);
        // SAFETY: both are valid NUL-terminated paths that outlive the call.
        let rc = unsafe {
            libc::renameat2(libc::AT_FDCWD, from.as_ptr(), libc::AT_FDCWD, to.as_ptr(), libc::RENAME_NOREPLACE)
        };
        if rc == 0 {
            return Ok(());
        }
        let err = std::io::Error::last_os_error();
        // File systems without RENAME_NOREPLACE answer EINVAL: check, then rename.
        if err.raw_os_error() != Some(libc::EINVAL) {
            return Err(err);
        }
    }
    if dest.exists() {
        return Err(std::io::Error::from(std::io::ErrorKind::AlreadyExists));
    }
    std::fs::rename(src, dest)
}

/// The record `rec` (of the file now at `new`, under `root`) re-keyed and re-described.
fn moved_record(rec: Record, new: &FsPath, root: &FsPath) -> Record {
    let mut meta = ImageMeta::from_metadata(rec.metadata);
    meta.set_path(new);
    meta.set_root(root);
    meta.label = crate::walk::label_for(root, new);
    Record { id: record_id(new), vectors: rec.vectors, metadata: meta.to_metadata() }
}

/// `POST /api/collections/{name}/records/{id}/move` with `{"to": "/abs/folder", "forget": false}`:
/// move the record's file into the folder (both under a `--root`); the record follows, under the
/// new path's id (in every collection that holds it), or is removed with `forget`.
pub async fn move_file(
    State(st): State<Arc<AppState>>,
    Path((name, id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Result<Json<MoveBody>, JsonRejection>,
) -> ApiResult<Json<Value>> {
    st.check_write(&headers)?;
    let Json(body) = body.map_err(json_rejection)?;
    let id = parse_id(&id)?;
    let st2 = st.clone();
    let out = tokio::task::spawn_blocking(move || -> ApiResult<Value> {
        let (src, _) = file_under_root(&st2, &name, id)?;
        let dir = destination_dir(&st2, &body.to)?;
        let root = st2.path_root_of(&dir).map(FsPath::to_path_buf).expect("checked by destination_dir");
        let file_name = src.file_name().ok_or_else(|| ApiError::bad_request("the record's path has no file name"))?;
        let dest = dir.join(file_name);
        if dest == src {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                format!("{} is already in {}", src.display(), dir.display()),
            ));
        }
        rename_no_replace(&src, &dest).map_err(|e| {
            let why = match e.kind() {
                std::io::ErrorKind::AlreadyExists => format!("{} already exists", dest.display()),
                std::io::ErrorKind::CrossesDevices => {
                    format!(
                        "{} is on another file system than {} (files are moved, never copied)",
                        dest.display(),
                        src.display()
                    )
                }
                _ => format!("cannot move {} to {}: {e}", src.display(), dest.display()),
            };
            ApiError::new(StatusCode::CONFLICT, why)
        })?;
        let rekey = || -> ApiResult<Vec<String>> {
            let mut touched = Vec::new();
            for cname in st2.db.collection_names() {
                let c = st2.collection(&cname)?;
                let Some(rec) = c.get(id)? else { continue };
                if !body.forget {
                    c.upsert(vec![moved_record(rec, &dest, &root)])?;
                }
                c.delete(&[id])?;
                touched.push(cname);
            }
            Ok(touched)
        };
        let touched = st2.uploads.with(rekey).inspect_err(|_| {
            if let Err(e) = std::fs::rename(&dest, &src) {
                tracing::error!(from = %dest.display(), to = %src.display(), error = %e, "cannot move a file back");
            }
        })?;
        uploads::release(&st2.db, &st2.upload_dir, &st2.thumb_dir, id, None);
        let new_id = (!body.forget).then(|| record_id(&dest).to_string());
        Ok(json!({"id": id.to_string(), "new_id": new_id, "path": dest.to_string_lossy(), "collections": touched}))
    })
    .await??;
    Ok(Json(out))
}

/// `DELETE /api/collections/{name}/records/{id}/file`: delete the record's file from disk (it
/// must lie under a `--root`) and its record from every collection that holds it.
pub async fn delete_file(
    State(st): State<Arc<AppState>>,
    Path((name, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> ApiResult<Json<Value>> {
    st.check_write(&headers)?;
    let id = parse_id(&id)?;
    let st2 = st.clone();
    let out = tokio::task::spawn_blocking(move || -> ApiResult<Value> {
        let (path, _) = file_under_root(&st2, &name, id)?;
        // The records go first (durably): a crash then leaves a file no record shows, which the
        // next `index` adds back, never a record of a deleted file.
        let touched = st2.uploads.with(|| -> ApiResult<Vec<String>> {
            let mut touched = Vec::new();
            for cname in st2.db.collection_names() {
                let c = st2.collection(&cname)?;
                if c.delete(&[id])? > 0 {
                    touched.push(cname);
                }
            }
            Ok(touched)
        })?;
        uploads::release(&st2.db, &st2.upload_dir, &st2.thumb_dir, id, None);
        std::fs::remove_file(&path)
            .map_err(|e| ApiError::internal(format!("record deleted, but cannot delete {}: {e}", path.display())))?;
        Ok(json!({"id": id.to_string(), "deleted_file": path.to_string_lossy(), "collections": touched}))
    })
    .await??;
    Ok(Json(out))
}

/// `GET /api/server`: what the page needs to know of this server: whether it is a read-only
/// replica, whether writes need the API key, and the `--root` folders (where files may be
/// moved).
pub async fn server_info(State(st): State<Arc<AppState>>) -> Json<Value> {
    let roots: Vec<String> = st.path_roots.iter().map(|r| r.to_string_lossy().into_owned()).collect();
    Json(json!({"read_only": st.read_only, "writes_need_key": st.api_key.is_some(), "roots": roots}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_move_never_replaces_a_file() {
        let tmp = tempfile::tempdir().unwrap();
        let (a, b, c) = (tmp.path().join("a"), tmp.path().join("b"), tmp.path().join("c"));
        std::fs::write(&a, "a").unwrap();
        std::fs::write(&b, "b").unwrap();
        let e = rename_no_replace(&a, &b).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::AlreadyExists);
        assert_eq!(std::fs::read_to_string(&b).unwrap(), "b");
        rename_no_replace(&a, &c).unwrap();
        assert!(!a.exists() && std::fs::read_to_string(&c).unwrap() == "a");
    }

    #[test]
    fn content_types_follow_the_extension() {
        assert_eq!(content_type(FsPath::new("/a/b.JPG")), "image/jpeg");
        assert_eq!(content_type(FsPath::new("/a/b.png")), "image/png");
        assert_eq!(content_type(FsPath::new("/a/b")), "application/octet-stream");
    }

    #[test]
    fn a_moved_record_gets_the_new_path_id_root_and_label() {
        let meta = ImageMeta {
            path: Some("/p/cats/a.jpg".into()),
            root: Some("/p".into()),
            label: Some("cats".into()),
            width: Some(4),
            ..Default::default()
        };
        let rec = Record {
            id: record_id(FsPath::new("/p/cats/a.jpg")),
            vectors: Default::default(),
            metadata: meta.to_metadata(),
        };
        let moved = moved_record(rec, FsPath::new("/p/dupes/a.jpg"), FsPath::new("/p"));
        assert_eq!(moved.id, record_id(FsPath::new("/p/dupes/a.jpg")));
        let m = ImageMeta::from_metadata(moved.metadata);
        assert_eq!(m.path.as_deref(), Some("/p/dupes/a.jpg"));
        assert_eq!(m.label.as_deref(), Some("dupes"));
        assert_eq!(m.width, Some(4));
    }
}
