//! API errors: every failure is answered with a status code and `{"error": "..."}`.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use features::FeatureError;
use serde_json::json;

/// An error answered to an API client.
#[derive(Debug)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// What went wrong, for the client.
    pub message: String,
    /// Seconds to send as `Retry-After` (for 503 and 429).
    pub retry_after: Option<u64>,
}

/// Shorthand for handler results.
pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    /// An error with this status and message.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError { status, message: message.into(), retry_after: None }
    }
    /// The same error, asking the client to retry after `seconds`.
    pub fn with_retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds);
        self
    }
    /// 400 Bad Request.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }
    /// 404 Not Found.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }
    /// 403 Forbidden.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, message)
    }
    /// 500 Internal Server Error.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::error!(status = %self.status, "{}", self.message);
        }
        let mut res = (self.status, Json(json!({ "error": self.message }))).into_response();
        if let Some(s) = self.retry_after {
            res.headers_mut().insert(header::RETRY_AFTER, s.into());
        }
        res
    }
}

impl From<vecdb::Error> for ApiError {
    fn from(e: vecdb::Error) -> Self {
        use vecdb::Error as E;
        let status = match &e {
            E::UnknownCollection(_) | E::NotFound(_) => StatusCode::NOT_FOUND,
            E::DimensionMismatch { .. }
            | E::InvalidVector(_)
            | E::InvalidFilter(_)
            | E::UnknownField(_)
            | E::InvalidArgument(_)
            | E::InvalidIndexSpec { .. }
            | E::DuplicateId(_) => StatusCode::BAD_REQUEST,
            E::CollectionExists(_) => StatusCode::CONFLICT,
            E::ReadOnly(_) => StatusCode::FORBIDDEN,
            E::Locked(_) => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError::new(status, e.to_string())
    }
}

impl From<FeatureError> for ApiError {
    fn from(e: FeatureError) -> Self {
        use FeatureError as F;
        let status = match &e {
            F::Empty { .. }
            | F::UnsupportedFormat { .. }
            | F::Decode { .. }
            | F::TooSmall { .. }
            | F::DecodeTimeout { .. }
            | F::InvalidArgument(_) => StatusCode::BAD_REQUEST,
            F::FileTooLarge { .. } | F::TooManyPixels { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            F::ModelMissing(_) | F::ModelFetch(_) => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError::new(status, e.to_string())
    }
}

impl From<anyhow::Error> for ApiError {
    fn from(e: anyhow::Error) -> Self {
        // Keep typed statuses when the cause is one we know.
        let e = match e.downcast::<vecdb::Error>() {
            Ok(v) => return v.into(),
            Err(e) => e,
        };
        let e = match e.downcast::<FeatureError>() {
            Ok(f) => return f.into(),
            Err(e) => e,
        };
        ApiError::internal(crate::error_chain::error_chain(&e))
    }
}

impl From<tokio::task::JoinError> for ApiError {
    fn from(e: tokio::task::JoinError) -> Self {
        ApiError::internal(format!("worker task failed: {e}"))
    }
}

/// Middleware: rewrite every error response that is not JSON (axum's own rejections,
/// 405s, body-limit errors) into `{"error": "..."}` with the same status.
pub async fn json_errors(res: Response) -> Response {
    let status = res.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return res;
    }
    let is_json =
        res.headers().get(header::CONTENT_TYPE).map(|v| v.as_bytes().starts_with(b"application/json")).unwrap_or(false);
    if is_json {
        return res;
    }
    let (parts, body) = res.into_parts();
    let bytes = axum::body::to_bytes(body, 64 * 1024).await.unwrap_or_default();
    let text = String::from_utf8_lossy(&bytes).trim().to_string();
    let message = if text.is_empty() { status.canonical_reason().unwrap_or("error").to_string() } else { text };
    let mut out = (status, Json(json!({ "error": message }))).into_response();
    // Keep headers such as `Allow` or `WWW-Authenticate`.
    for (k, v) in parts.headers.iter() {
        if k != header::CONTENT_TYPE && k != header::CONTENT_LENGTH {
            out.headers_mut().insert(k.clone(), v.clone());
        }
    }
    out
}

/// Bytes of an over-limit body read and discarded before answering 413, so that a client
/// still sending gets the answer instead of a reset connection. Larger bodies are refused at once.
pub const DRAIN_MAX: u64 = 8 * 1024 * 1024;

/// Middleware: refuse a request whose declared `Content-Length` is over `max_body` with a JSON 413
/// (bodies without a length are cut by the extractors' limit instead).
pub async fn reject_oversized(
    axum::extract::State(max_body): axum::extract::State<usize>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    match declared {
        Some(len) if len > max_body as u64 => {
            if len - max_body as u64 <= DRAIN_MAX {
                let _ = axum::body::to_bytes(req.into_body(), len as usize).await;
            }
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("request body is {len} bytes, over the limit of {max_body} bytes"),
            )
            .into_response()
        }
        _ => next.run(req).await,
    }
}
