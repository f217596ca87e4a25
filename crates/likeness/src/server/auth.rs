//! Who may read and who may write. `--api-key` guards writes; `--read-key` (optional) guards
//! every read too, except `/health`, `/openapi.json` and the page's own files (the page asks for
//! the key and keeps it in a same-site cookie, so thumbnails load as plain `<img>`s).
//!
//! A key is presented as `x-api-key: KEY`, `Authorization: Bearer KEY` or the cookie
//! `likeness_key=KEY`. The write key also grants reads.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::ApiError;
use super::state::AppState;

/// Name of the cookie the page stores the key in.
pub const KEY_COOKIE: &str = "likeness_key";

/// Routes open without a read key.
const OPEN_PATHS: &[&str] = &["/health", "/openapi.json", "/", "/app.js", "/app.css", "/favicon.svg", "/favicon.ico"];

/// The key a request presents, if any.
pub fn presented_key(headers: &HeaderMap) -> Option<std::borrow::Cow<'_, str>> {
    if let Some(k) = headers.get("x-api-key").and_then(|v| v.to_str().ok()) {
        return Some(k.trim().into());
    }
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")));
    if let Some(k) = bearer {
        return Some(k.trim().into());
    }
    headers.get_all(header::COOKIE).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(';')).find_map(|c| {
        let (name, value) = c.trim().split_once('=')?;
        (name == KEY_COOKIE).then(|| percent_decode(value.trim()))
    })
}

/// `%XX` escapes decoded (the page stores the key with `encodeURIComponent`); anything
/// malformed is kept as it is.
fn percent_decode(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.contains('%') {
        return s.into();
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = (b[i] == b'%').then(|| s.get(i + 1..i + 3)).flatten().and_then(|h| u8::from_str_radix(h, 16).ok());
        match hex {
            Some(v) => {
                out.push(v);
                i += 3;
            }
            None => {
                out.push(b[i]);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_or_else(|_| s.into(), Into::into)
}

/// True when `given` equals `key`, compared in constant time.
pub fn key_matches(given: &str, key: &str) -> bool {
    let (a, b) = (given.as_bytes(), key.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Middleware: with `--read-key`, 401 for a request without the read or the write key.
pub async fn reads(State(st): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let Some(read_key) = &st.read_key else { return next.run(req).await };
    if OPEN_PATHS.contains(&req.uri().path()) {
        return next.run(req).await;
    }
    let ok = presented_key(req.headers())
        .is_some_and(|k| key_matches(&k, read_key) || st.api_key.as_deref().is_some_and(|w| key_matches(&k, w)));
    if ok {
        return next.run(req).await;
    }
    let mut res = ApiError::new(
        StatusCode::UNAUTHORIZED,
        "this server needs a key for reads: send header 'x-api-key: KEY' or 'Authorization: Bearer KEY'",
    )
    .into_response();
    res.headers_mut().insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer"));
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_come_from_the_header_bearer_or_cookie() {
        let mut h = HeaderMap::new();
        assert_eq!(presented_key(&h), None);
        h.insert(header::COOKIE, "theme=dark; likeness_key=s3%20cr%C3%A9t%".parse().unwrap());
        assert_eq!(presented_key(&h).as_deref(), Some("s3 cr\u{e9}t%"));
        h.insert(header::AUTHORIZATION, "Bearer tok".parse().unwrap());
        assert_eq!(presented_key(&h).as_deref(), Some("tok"));
        h.insert("x-api-key", " k ".parse().unwrap());
        assert_eq!(presented_key(&h).as_deref(), Some("k"));
        assert!(key_matches("abc", "abc") && !key_matches("abd", "abc") && !key_matches("ab", "abc"));
    }
}
