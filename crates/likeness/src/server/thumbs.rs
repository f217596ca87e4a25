//! `GET /thumb/{id}`: a JPEG thumbnail (at most 256 px a side) of a stored image, generated on
//! first request and cached on disk. Only files under the allowed folders are ever read:
//! the stored path is canonicalized (resolving `..` and symbolic links) and checked first.

use std::io::Cursor;
use std::path::PathBuf;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use image::codecs::jpeg::JpegEncoder;

use super::error::{ApiError, ApiResult};
use super::state::AppState;
use crate::image_meta::ImageMeta;

/// Longest side of a thumbnail, in pixels.
pub const THUMB_SIZE: u32 = 256;

/// `GET /thumb/{id}`. A cached thumbnail is answered at once; making one decodes the image and
/// goes through the thumbnail gate (503 with `Retry-After` when busy).
pub async fn handler(State(st): State<Arc<AppState>>, Path(id): Path<String>) -> ApiResult<Response> {
    let id: u64 = id.trim().parse().map_err(|_| ApiError::bad_request(format!("bad id '{id}'")))?;
    let st2 = st.clone();
    let jpeg = match tokio::task::spawn_blocking(move || lookup(&st2, id)).await?? {
        Lookup::Cached(bytes) => bytes,
        Lookup::Make { source, cached } => {
            let permit = st.thumb_admission.enter()?.work().await?;
            tokio::task::spawn_blocking(move || {
                let _permit = permit;
                make(&st, &source, &cached)
            })
            .await??
        }
    };
    Ok(([(header::CONTENT_TYPE, "image/jpeg"), (header::CACHE_CONTROL, "public, max-age=3600")], jpeg).into_response())
}

/// The stored path of record `id`, looked up in the default collection first, then the others.
fn find_path(st: &AppState, id: u64) -> Option<(PathBuf, u64)> {
    let mut names = st.db.collection_names();
    names.sort_by_key(|n| *n != st.default_collection);
    names.iter().find_map(|n| {
        let c = st.db.collection(n).ok()?;
        let m = ImageMeta::from_metadata(c.get_metadata(id)?);
        Some((m.path_buf()?, m.mtime_ns.unwrap_or(0)))
    })
}

enum Lookup {
    Cached(Vec<u8>),
    Make { source: PathBuf, cached: PathBuf },
}

/// The cached thumbnail of record `id`, or the (allowed, canonical) file to make it from.
fn lookup(st: &AppState, id: u64) -> ApiResult<Lookup> {
    let (path, mtime) = find_path(st, id).ok_or_else(|| ApiError::not_found(format!("no record with id {id}")))?;
    let canon = path
        .canonicalize()
        .map_err(|_| ApiError::not_found(format!("the image of record {id} is no longer on disk")))?;
    if !st.thumb_allowed(&canon) {
        return Err(ApiError::forbidden(format!("the image of record {id} is outside the indexed folders")));
    }
    let cached: PathBuf = st.thumb_dir.join(format!("{id:016x}-{mtime:x}.jpg"));
    match std::fs::read(&cached) {
        Ok(bytes) => Ok(Lookup::Cached(bytes)),
        Err(_) => Ok(Lookup::Make { source: canon, cached }),
    }
}

/// Decode `source`, shrink it, encode a JPEG and cache it (best effort) as `cached`.
fn make(st: &AppState, source: &std::path::Path, cached: &std::path::Path) -> ApiResult<Vec<u8>> {
    // Decoded reduced (JPEG, DCT domain) as long as both sides stay at least the thumbnail's.
    let img = features::decode::load_image_sized(source, &st.limits, features::DecodeSize::AtLeast(THUMB_SIZE))?;
    let (w, h) = fit(img.width, img.height);
    let small = image::imageops::thumbnail(&img.image, w, h);
    drop(img);
    let mut out = Cursor::new(Vec::new());
    small
        .write_with_encoder(JpegEncoder::new_with_quality(&mut out, 82))
        .map_err(|e| ApiError::internal(format!("cannot encode thumbnail: {e}")))?;
    let bytes = out.into_inner();
    let tmp = cached.with_extension(format!("tmp{}", std::process::id()));
    if std::fs::write(&tmp, &bytes).is_ok() {
        std::fs::rename(&tmp, cached).ok();
    }
    Ok(bytes)
}

/// Thumbnail size keeping the aspect ratio, longest side at most [`THUMB_SIZE`], never upscaled.
pub fn fit(w: u32, h: u32) -> (u32, u32) {
    let long = w.max(h).max(1);
    if long <= THUMB_SIZE {
        return (w.max(1), h.max(1));
    }
    let scale = THUMB_SIZE as f64 / long as f64;
    (((w as f64 * scale).round() as u32).max(1), ((h as f64 * scale).round() as u32).max(1))
}

#[cfg(test)]
mod tests {
    use super::fit;

    #[test]
    fn thumbnails_keep_aspect_and_never_upscale() {
        assert_eq!(fit(512, 256), (256, 128));
        assert_eq!(fit(300, 451), (170, 256));
        assert_eq!(fit(100, 50), (100, 50));
        assert_eq!(fit(10000, 1), (256, 1));
    }
}
