//! JSON API handlers. Ids travel as decimal strings (64-bit ids do not fit a JavaScript
//! number); numbers are accepted on input too.

use std::path::{Path as FsPath, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Multipart, Path, Query as UrlQuery, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use features::pipeline::{extract_bytes, extract_many};
use serde::Deserialize;
use serde_json::{json, Value};
use vecdb::{Collection, Filter, Hit, Query};

use super::admission::Ticket;
use super::error::{ApiError, ApiResult};
use super::state::{AppState, JobState};
use super::uploads;
use crate::catalog::{build_record, FileFacts};
use crate::fusion::Fusion;
use crate::image_meta::ImageMeta;
use crate::indexer::{index_roots, IndexOptions, IndexProgress};
use crate::multi_search::{self, Base, ExplainedHit, ViewQueries};
use crate::robust::Views;
use crate::verify::{self, HitVerification, QueryKeypoints, VerifySettings};

/// Largest `k` a search may ask for.
pub use vecdb::search_body::MAX_K;

type AppStateRef = State<Arc<AppState>>;

/// `GET /health`. A replica adds `refreshed_ms_ago`: how long since it last caught up with its
/// writer (it tries every `--refresh-ms`; a growing figure means it cannot).
pub async fn health(State(st): AppStateRef) -> Json<Value> {
    let mut v = json!({
        "status": "ok",
        "version": env!("CARGO_PKG_VERSION"),
        "collections": st.db.collection_names().len(),
        "read_only": st.read_only,
    });
    if st.read_only {
        v["refreshed_ms_ago"] = json!(st.refresh_age_ms());
    }
    Json(v)
}

/// JSON 404 for unknown routes.
pub async fn not_found(req: Request) -> ApiError {
    ApiError::not_found(format!("no route for {} {}", req.method(), req.uri().path()))
}

fn collection_json(c: &Collection) -> Value {
    let stats = c.stats();
    let fields: Vec<Value> = c
        .schema()
        .fields
        .iter()
        .map(|f| {
            let bands = crate::closeness::bands(&f.name);
            let fs = stats.fields.iter().find(|s| s.name == f.name);
            json!({"name": f.name, "dim": f.dim, "metric": f.metric.to_string(), "index": f.index,
                   "vectors_per_record": f.vectors_per_record, "serving": fs.map(|s| s.index.clone()), "policy": fs.and_then(|s| s.policy.clone()),
                   "build": fs.and_then(|s| s.build.clone()), "bands": bands})
        })
        .collect();
    json!({"name": c.name(), "count": c.count(), "fields": fields})
}

/// `GET /api/collections`.
pub async fn list_collections(State(st): AppStateRef) -> ApiResult<Json<Value>> {
    let mut out = Vec::new();
    for name in st.db.collection_names() {
        let c = st.collection(&name)?;
        out.push(collection_json(&c));
    }
    Ok(Json(json!({"collections": out, "default": st.default_collection})))
}

/// `GET /api/collections/{name}`.
pub async fn get_collection(State(st): AppStateRef, Path(name): Path<String>) -> ApiResult<Json<Value>> {
    let c = st.collection(&name)?;
    Ok(Json(collection_json(&c)))
}

/// `GET /api/collections/{name}/labels`: distinct labels with counts.
pub async fn labels(State(st): AppStateRef, Path(name): Path<String>) -> ApiResult<Json<Value>> {
    let c = st.collection(&name)?;
    let st2 = st.clone();
    let labels = tokio::task::spawn_blocking(move || st2.labels(&c)).await?;
    let labels: Vec<Value> = labels.into_iter().map(|(l, n)| json!({"label": l, "count": n})).collect();
    Ok(Json(json!({"labels": labels})))
}

/// Parse an id given as a decimal string or a JSON number.
pub fn parse_id(v: &Value) -> ApiResult<u64> {
    search_body::parse_id(v).map_err(body_error)
}

fn parse_id_str(s: &str) -> ApiResult<u64> {
    parse_id(&Value::String(s.to_string()))
}

/// Search knobs shared by the JSON and multipart forms (parsed and checked by vecdb).
pub use vecdb::search_body::SearchBody;
use vecdb::search_body::{self, BodyError, SearchSpec};

/// A refused [`SearchBody`] as an API error: 400, 404 for a missing record, a filter error as
/// every vecdb error.
fn body_error(e: BodyError) -> ApiError {
    match e {
        BodyError::Invalid(msg) => ApiError::bad_request(msg),
        BodyError::Filter(e) => e.into(),
        e @ BodyError::NoSuchRecord { .. } => ApiError::not_found(e.to_string()),
    }
}

/// The features searched (one, or several for a hybrid `cnn+color+phash`) and the checked
/// knobs (for the first feature).
fn search_spec(c: &Collection, b: &SearchBody) -> ApiResult<(Vec<String>, SearchSpec)> {
    let features = multi_search::choose_features(c, b.feature.as_deref())
        .map_err(|e| ApiError::bad_request(crate::error_chain::error_chain(&e)))?;
    let spec = b.spec(features[0].clone()).map_err(body_error)?;
    if features.len() > 1 && b.threshold.is_some() {
        return Err(ApiError::bad_request(format!(
            "threshold applies to one feature's distances: it cannot be combined with the hybrid feature '{}'",
            features.join("+")
        )));
    }
    Ok((features, spec))
}

/// The value of a `robust` form field: a view list (`turns,mirror,tilt,regions`), `all` or
/// `true`, `none` or `false`.
fn parse_robust(v: &str) -> ApiResult<Views> {
    match v.trim() {
        "" | "false" | "none" | "0" => Ok(Views::none()),
        "true" | "1" => Ok(Views::all()),
        spec => Views::parse(spec).map_err(|e| ApiError::bad_request(e.to_string())),
    }
}

/// The value of a `verify` form field: `true` (the top [`verify::DEFAULT_TOP_N`] hits), a
/// number of top hits, or `false`/`0`/empty for none.
fn parse_verify(v: &str) -> ApiResult<Option<VerifySettings>> {
    match v.trim() {
        "" | "false" | "none" | "0" => Ok(None),
        "true" => Ok(Some(VerifySettings::default())),
        spec => VerifySettings::parse(spec).map(Some).map_err(|e| ApiError::bad_request(e.to_string())),
    }
}

/// Hits with their verification: verified ones first (see [`verify::rerank_order`]), cut to `k`.
fn verify_hits(
    hits: Vec<ExplainedHit>,
    query: &QueryKeypoints,
    settings: &VerifySettings,
    k: Option<usize>,
) -> Vec<(ExplainedHit, Option<HitVerification>)> {
    let paths: Vec<Option<String>> =
        hits.iter().map(|h| h.hit.metadata.clone().and_then(|m| ImageMeta::from_metadata(m).path)).collect();
    let refs: Vec<Option<&str>> = paths.iter().map(|p| p.as_deref()).collect();
    let checks = verify::verify_paths(query, &refs, settings);
    let order = verify::rerank_order(hits.len(), &checks);
    let mut hits: Vec<Option<ExplainedHit>> = hits.into_iter().map(Some).collect();
    let mut out: Vec<_> =
        order.into_iter().filter_map(|i| hits[i].take().map(|h| (h, checks.get(i).cloned()))).collect();
    out.truncate(k.unwrap_or(usize::MAX));
    out
}

#[allow(clippy::too_many_arguments)]
async fn run_search(
    c: Arc<Collection>,
    features: Vec<String>,
    spec: SearchSpec,
    query: ViewQueries,
    views: Option<Views>,
    fusion: Fusion,
    verification: Option<(VerifySettings, QueryKeypoints)>,
    started: Instant,
) -> ApiResult<Json<Value>> {
    let feature = features.join("+");
    let name = c.name().to_string();
    let filter = spec.filter.clone();
    let c2 = c.clone();
    let k = spec.k;
    let base = Base {
        // Verification re-ranks the top N: fetch at least that many, cut to k after.
        k: match (&verification, spec.k) {
            (Some((v, _)), Some(k)) => Some(k.max(v.top_n)),
            (_, k) => k,
        },
        threshold: spec.threshold,
        filter: spec.filter,
        params: spec.params,
        include_vectors: spec.include_vectors,
        fusion,
    };
    let verified = verification.is_some();
    let hits = tokio::task::spawn_blocking(move || -> ApiResult<Vec<(ExplainedHit, Option<HitVerification>)>> {
        let hits =
            multi_search::search(&c, &features, &query, &base).map_err(|e| match e.downcast::<vecdb::Error>() {
                Ok(e) => ApiError::from(e),
                Err(e) => ApiError::bad_request(crate::error_chain::error_chain(&e)),
            })?;
        Ok(match &verification {
            Some((settings, kp)) => verify_hits(hits, kp, settings, k),
            None => hits.into_iter().map(|h| (h, None)).collect(),
        })
    })
    .await??;
    if hits.is_empty() {
        if let Some(filter) = filter {
            // Nothing matched: say so when the filter names a field no record has (a typo, or
            // the wrong collection) instead of an empty 200.
            let c = c2.clone();
            let missing = tokio::task::spawn_blocking(move || fields_no_record_has(&c, &filter)).await?;
            if !missing.is_empty() {
                return Err(ApiError::bad_request(format!(
                    "the filter names {} no record of collection '{name}' has: {}",
                    if missing.len() == 1 { "a field" } else { "fields" },
                    missing.iter().map(|f| format!("'{f}'")).collect::<Vec<_>>().join(", ")
                )));
            }
        }
    }
    let results: Vec<Value> = hits
        .iter()
        .map(|(h, v)| {
            let mut j = explained_hit_json(h);
            if let Some(v) = v {
                j["verification"] = serde_json::to_value(v).unwrap_or(Value::Null);
            }
            j
        })
        .collect();
    let hits: Vec<ExplainedHit> = hits.into_iter().map(|(h, _)| h).collect();
    let mut out = json!({
        "collection": name,
        "feature": feature,
        "took_ms": started.elapsed().as_secs_f64() * 1000.0,
        "no_close_match": multi_search::no_close_match(&hits),
        "results": results,
    });
    if let Some(v) = views.filter(|v| !v.is_plain()) {
        out["robust"] = serde_json::to_value(v).unwrap_or(Value::Null);
    }
    if feature.contains('+') {
        out["fusion"] = json!(fusion);
    }
    if verified {
        out["verified"] = json!(true);
    }
    Ok(Json(out))
}

/// A hit with its explanation: `distance` is the first feature's; `distances`, `similarity`,
/// `verdict`, `verdict_by` (and `view`, `fused_score`) from [`multi_search::Explanation`].
fn explained_hit_json(h: &ExplainedHit) -> Value {
    let mut v = hit_json(&h.hit);
    v["distance"] = json!(h.distance());
    if let (Value::Object(o), Ok(Value::Object(e))) = (&mut v, serde_json::to_value(h.explanation())) {
        o.extend(e);
    }
    v
}

/// The fields `filter` tests that no record of `c` has (the scan stops once all are seen).
fn fields_no_record_has(c: &Collection, filter: &Filter) -> Vec<String> {
    filter
        .missing_fields(c.ids().into_iter().filter_map(|id| c.get_metadata(id)))
        .into_iter()
        .map(str::to_string)
        .collect()
}

fn hit_json(h: &Hit) -> Value {
    let meta = h.metadata.as_ref();
    let image = meta.cloned().map(ImageMeta::from_metadata).unwrap_or_default();
    let mut v = json!({
        "id": h.id.to_string(),
        "distance": h.distance,
        "path": image.path,
        "label": image.label,
        "thumb": format!("/thumb/{}", h.id),
        "metadata": meta,
    });
    if let Some(vs) = &h.vectors {
        v["vectors"] = serde_json::to_value(vs).unwrap_or(Value::Null);
    }
    v
}

/// `POST /api/collections/{name}/search` with JSON `{vector | id, feature, k, threshold, filter}`.
pub async fn search_json(
    State(st): AppStateRef,
    Path(name): Path<String>,
    body: Result<Json<Value>, JsonRejection>,
) -> ApiResult<Json<Value>> {
    let started = Instant::now();
    let Json(mut raw) = body.map_err(json_rejection)?;
    // `fusion` is the application's (how a hybrid combines features); the rest is vecdb's body.
    let fusion = match raw.as_object_mut().and_then(|o| o.remove("fusion")) {
        None | Some(Value::Null) => Fusion::default(),
        Some(Value::String(f)) => f.parse().map_err(ApiError::bad_request)?,
        Some(other) => return Err(ApiError::bad_request(format!("fusion must be \"rrf\" or \"max\", got {other}"))),
    };
    let body: SearchBody = serde_json::from_value(raw).map_err(|e| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("Failed to deserialize the JSON body into the target type: {e}"),
        )
    })?;
    let c = st.collection(&name)?;
    let (features, spec) = search_spec(&c, &body)?;
    let query = match body.query(&c, &spec.feature).map_err(body_error)? {
        Query::Id(id) => ViewQueries::record(id, &features),
        Query::Vector(v) if features.len() == 1 => ViewQueries::vectors([(features[0].clone(), v)].into()),
        Query::Vector(_) => {
            return Err(ApiError::bad_request(format!(
                "a hybrid search ('{}') needs a stored record's 'id' or an image (POST it to /search/image): \
                 one 'vector' belongs to one feature",
                features.join("+")
            )))
        }
    };
    run_search(c, features, spec, query, None, fusion, None, started).await
}

/// Map axum's JSON rejections to JSON errors with the same status.
pub fn json_rejection(r: JsonRejection) -> ApiError {
    ApiError::new(r.status(), r.body_text())
}

fn multipart_error(e: axum::extract::multipart::MultipartError) -> ApiError {
    ApiError::new(e.status(), format!("bad multipart upload: {}", e.body_text()))
}

/// An uploaded image and the text fields sent with it.
struct Upload {
    image: Option<(String, Bytes)>,
    fields: Vec<(String, String)>,
}

async fn read_multipart(mut mp: Multipart) -> ApiResult<Upload> {
    let mut up = Upload { image: None, fields: Vec::new() };
    while let Some(field) = mp.next_field().await.map_err(multipart_error)? {
        let name = field.name().unwrap_or("").to_string();
        if name != "image" && field.file_name().is_some() {
            return Err(ApiError::bad_request(format!(
                "the image must be sent in a multipart part named 'image' (got a file in a part named '{name}')"
            )));
        }
        if name == "image" {
            let file = field.file_name().unwrap_or("upload").to_string();
            let bytes = field.bytes().await.map_err(multipart_error)?;
            if up.image.is_some() {
                return Err(ApiError::bad_request("send one image per request"));
            }
            up.image = Some((file, bytes));
        } else {
            let text = field.text().await.map_err(multipart_error)?;
            up.fields.push((name, text));
        }
    }
    Ok(up)
}

fn form_to_search_body(fields: &[(String, String)]) -> ApiResult<SearchBody> {
    let mut b = SearchBody::default();
    for (k, v) in fields {
        let v = v.trim();
        if v.is_empty() {
            continue;
        }
        match k.as_str() {
            "k" => {
                b.k = Some(
                    v.parse().map_err(|_| ApiError::bad_request(format!("k must be a positive integer, got '{v}'")))?,
                )
            }
            "threshold" => {
                b.threshold = Some(
                    v.parse().map_err(|_| ApiError::bad_request(format!("threshold must be a number, got '{v}'")))?,
                )
            }
            "feature" => b.feature = Some(v.to_string()),
            "ef" | "nprobe" | "checks" | "rerank" => {
                let n = Some(
                    v.parse()
                        .map_err(|_| ApiError::bad_request(format!("{k} must be a positive integer, got '{v}'")))?,
                );
                match k.as_str() {
                    "ef" => b.ef = n,
                    "nprobe" => b.nprobe = n,
                    "checks" => b.checks = n,
                    _ => b.rerank = n,
                }
            }
            "filter" => {
                b.filter = Some(
                    serde_json::from_str(v)
                        .map_err(|e| ApiError::bad_request(format!("filter must be a JSON object: {e}")))?,
                )
            }
            other => return Err(ApiError::bad_request(format!("unknown form field '{other}'"))),
        }
    }
    Ok(b)
}

/// `POST /api/collections/{name}/search/image`: multipart `image` plus optional `k`, `threshold`,
/// `feature`, `filter` (JSON) fields. Admitted through the image gate (503 when busy).
pub async fn search_image(State(st): AppStateRef, Path(name): Path<String>, req: Request) -> ApiResult<Json<Value>> {
    let started = Instant::now();
    let ticket = match st.admission.enter() {
        Ok(t) => t,
        Err(e) => return Err(refuse(req, st.max_body, e).await),
    };
    let c = st.collection(&name)?;
    let mp = Multipart::from_request(req, &()).await.map_err(|e| ApiError::new(e.status(), e.body_text()))?;
    let up = read_multipart(mp).await?;
    let (ours, fields): (Vec<_>, Vec<_>) =
        up.fields.iter().cloned().partition(|(k, _)| k == "robust" || k == "fusion" || k == "verify");
    let mut views = Views::none();
    let mut fusion = Fusion::default();
    let mut verify_settings = None;
    for (k, v) in &ours {
        if k == "robust" {
            views = parse_robust(v)?;
        } else if k == "verify" {
            verify_settings = parse_verify(v)?;
        } else if !v.trim().is_empty() {
            fusion = v.parse().map_err(ApiError::bad_request)?;
        }
    }
    let body = form_to_search_body(&fields)?;
    let (features, spec) = search_spec(&c, &body)?;
    let (file, bytes) = up.image.ok_or_else(|| ApiError::bad_request("missing multipart file field 'image'"))?;
    let extractors = st.extractors(&c).await?;
    let st2 = st.clone();
    let wanted = features.clone();
    let views2 = views.clone();
    let permit = ticket.work().await?;
    let query =
        tokio::task::spawn_blocking(move || -> ApiResult<(ViewQueries, Option<(VerifySettings, QueryKeypoints)>)> {
            let _permit = permit; // held until the decode is over, even if the client left
                                  // Only the searched features' extractors run.
            let chosen = wanted
                .iter()
                .map(|f| {
                    extractors
                        .iter()
                        .find(|e| e.name() == f)
                        .map(|e| e.as_ref())
                        .ok_or_else(|| ApiError::internal(format!("no extractor for feature '{f}'")))
                })
                .collect::<ApiResult<Vec<&dyn features::FeatureExtractor>>>()?;
            let decoded = features::decode_bytes(&bytes, FsPath::new(&file), &st2.upload_limits)?;
            let image = features::pipeline::working_image(decoded.image);
            let verification = match verify_settings {
                Some(v) => {
                    let kp = QueryKeypoints::of(&image, &v).map_err(|e| ApiError::internal(e.to_string()))?;
                    Some((v, kp))
                }
                None => None,
            };
            Ok((ViewQueries::embed(&image, &views2, &chosen)?, verification))
        })
        .await??;
    let (query, verification) = query;
    run_search(c, features, spec, query, Some(views), fusion, verification, started).await
}

/// Answer `err` to a refused request after reading and discarding its body (streaming, at most
/// `max_body` bytes), so a client still sending gets the answer instead of a reset connection.
async fn refuse(req: Request, max_body: usize, err: ApiError) -> ApiError {
    use http_body_util::BodyExt;
    let mut body = req.into_body();
    let mut seen = 0usize;
    while let Some(Ok(frame)) = body.frame().await {
        seen += frame.data_ref().map_or(0, |d| d.len());
        if seen > max_body {
            break;
        }
    }
    err
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AddPath {
    path: PathBuf,
}

/// `POST /api/collections/{name}/images`: multipart upload (`image`, optional `label`) or JSON
/// `{"path": "..."}` naming a file or folder under a configured `--root`. A folder starts a
/// background indexing job (202 + job URL). Needs the API key when one is set.
pub async fn add_images(
    State(st): AppStateRef,
    Path(name): Path<String>,
    headers: HeaderMap,
    req: Request,
) -> ApiResult<Response> {
    let ctype = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    // An upload decodes an image: it takes a place at the gate before its body is read.
    let ticket = if ctype.starts_with("multipart/form-data") {
        match st.admission.enter() {
            Ok(t) => Some(t),
            Err(e) => return Err(refuse(req, st.max_body, e).await),
        }
    } else {
        None
    };
    // Read the (size-limited) body before answering, even a 401: a client still sending its
    // upload would otherwise see a broken connection instead of the error.
    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, st.max_body).await.map_err(|e| {
        ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, format!("request body over {} bytes: {e}", st.max_body))
    })?;
    st.check_write(&headers)?;
    let req = Request::from_parts(parts, axum::body::Body::from(bytes));
    if let Some(ticket) = ticket {
        let mp = Multipart::from_request(req, &()).await.map_err(|e| ApiError::new(e.status(), e.body_text()))?;
        add_upload(st, &name, mp, ticket).await
    } else {
        if !ctype.starts_with("application/json") {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!(
                    "cannot add a '{ctype}' body: send an image as multipart/form-data with a part named 'image', \
                     or JSON {{\"path\": \"/absolute/file-or-folder\"}}"
                ),
            ));
        }
        let Json(body) = Json::<AddPath>::from_request(req, &()).await.map_err(json_rejection)?;
        add_path(st, &name, body.path).await
    }
}

async fn add_upload(st: Arc<AppState>, name: &str, mp: Multipart, ticket: Ticket) -> ApiResult<Response> {
    let up = read_multipart(mp).await?;
    let mut label = None;
    for (k, v) in &up.fields {
        match k.as_str() {
            "label" if !v.trim().is_empty() => label = Some(v.trim().to_string()),
            "label" => {}
            other => return Err(ApiError::bad_request(format!("unknown form field '{other}'"))),
        }
    }
    let (file, bytes) = up.image.ok_or_else(|| ApiError::bad_request("missing multipart file field 'image'"))?;
    let c = st.collection_or_create(name).await?;
    let extractors = st.extractors(&c).await?;
    let st2 = st.clone();
    let permit = ticket.work().await?;
    let rec = tokio::task::spawn_blocking(move || -> ApiResult<Value> {
        let _permit = permit;
        let mut image = extract_bytes(&bytes, FsPath::new(&file), &extractors, &st2.upload_limits)?;
        let ext = match image.format.as_str() {
            "jpeg" => "jpg",
            "tiff" => "tif",
            f => f,
        };
        let dest = uploads::upload_path(&st2.upload_dir, &bytes, ext);
        // Stored and recorded under the lock a delete takes to decide whether the file is still
        // used (see `uploads`).
        st2.uploads.with(|| -> ApiResult<Value> {
            uploads::store(&dest, &bytes).map_err(|e| ApiError::internal(format!("cannot store upload: {e}")))?;
            let meta = std::fs::metadata(&dest).map_err(|e| ApiError::internal(e.to_string()))?;
            let (size, mtime_ns) = crate::walk::size_and_mtime(&meta);
            let facts = FileFacts {
                root: Some(st2.upload_dir.clone()),
                path: dest.clone(),
                label,
                size,
                mtime_ns,
                original_name: Some(file),
            };
            image.path = dest;
            let record = build_record(&facts, &image);
            let id = record.id;
            let meta = record.metadata.clone();
            c.upsert(vec![record])?;
            Ok(json!({"id": id.to_string(), "metadata": meta}))
        })
    })
    .await??;
    Ok((StatusCode::CREATED, Json(rec)).into_response())
}

async fn add_path(st: Arc<AppState>, name: &str, path: PathBuf) -> ApiResult<Response> {
    if st.path_roots.is_empty() {
        return Err(ApiError::forbidden(
            "adding server-side paths is disabled: start the server with --root DIR to allow a folder",
        ));
    }
    if !path.is_absolute() {
        return Err(ApiError::bad_request(format!("path must be absolute: {}", path.display())));
    }
    let canon = path.canonicalize().map_err(|e| ApiError::not_found(format!("cannot open {}: {e}", path.display())))?;
    let Some(root) = st.path_root_of(&canon).map(FsPath::to_path_buf) else {
        return Err(ApiError::forbidden(format!(
            "{} is outside the folders this server may read (its --root folders)",
            path.display()
        )));
    };
    let c = st.collection_or_create(name).await?;
    let extractors = st.extractors(&c).await?;
    if canon.is_dir() {
        let job = st.new_job(canon.clone(), name);
        let id = job.lock().expect("lock").id;
        let limits = st.limits.clone();
        tokio::task::spawn_blocking(move || {
            let progress = |p: IndexProgress| job.lock().expect("lock").progress = p;
            let opts = IndexOptions { limits, ..Default::default() };
            let stop = AtomicBool::new(false);
            let res = index_roots(&c, &extractors, std::slice::from_ref(&canon), &opts, &progress, &stop);
            let mut j = job.lock().expect("lock");
            match res {
                Ok(r) => {
                    j.state = JobState::Done;
                    j.report = Some(r);
                }
                Err(e) => {
                    j.state = JobState::Failed;
                    j.error = Some(crate::error_chain::error_chain(&e));
                }
            }
        });
        let body = json!({"job": id.to_string(), "status_url": format!("/api/jobs/{id}")});
        return Ok((StatusCode::ACCEPTED, Json(body)).into_response());
    }
    if !features::decode::is_image_path(&canon) {
        return Err(ApiError::bad_request(format!("{} does not have an image file extension", path.display())));
    }
    let limits = st.limits.clone();
    let permit = st.admission.enter()?.work().await?;
    let rec = tokio::task::spawn_blocking(move || -> ApiResult<Value> {
        let _permit = permit;
        let meta = std::fs::metadata(&canon).map_err(|e| ApiError::not_found(e.to_string()))?;
        let (size, mtime_ns) = crate::walk::size_and_mtime(&meta);
        let mut results = extract_many(std::slice::from_ref(&canon), &extractors, &limits, &|_| {});
        let image = results.pop().ok_or_else(|| ApiError::internal("no extraction result"))??;
        let facts = FileFacts {
            label: crate::walk::label_for(&root, &canon),
            root: Some(root),
            path: canon,
            size,
            mtime_ns,
            original_name: None,
        };
        let record = build_record(&facts, &image);
        let id = record.id;
        let meta = record.metadata.clone();
        c.upsert(vec![record])?;
        Ok(json!({"id": id.to_string(), "metadata": meta}))
    })
    .await??;
    Ok((StatusCode::CREATED, Json(rec)).into_response())
}

#[derive(Debug, Deserialize)]
/// Query string of `GET /records/{id}`.
pub struct RecordQuery {
    /// Include the stored vectors.
    #[serde(default)]
    vectors: bool,
}

/// `GET /api/collections/{name}/records/{id}[?vectors=true]`.
pub async fn get_record(
    State(st): AppStateRef,
    Path((name, id)): Path<(String, String)>,
    q: Result<UrlQuery<RecordQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<Value>> {
    let UrlQuery(q) = q.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let id = parse_id_str(&id)?;
    let c = st.collection(&name)?;
    let rec = tokio::task::spawn_blocking(move || c.get(id)).await??;
    let rec = rec.ok_or_else(|| ApiError::not_found(format!("no record with id {id} in collection '{name}'")))?;
    let mut v = json!({"id": rec.id.to_string(), "metadata": rec.metadata, "thumb": format!("/thumb/{id}")});
    if q.vectors {
        v["vectors"] = serde_json::to_value(&rec.vectors).map_err(|e| ApiError::internal(e.to_string()))?;
    }
    Ok(Json(v))
}

/// `DELETE /api/collections/{name}/records/{id}`. Needs the API key when one is set.
pub async fn delete_record(
    State(st): AppStateRef,
    Path((name, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> ApiResult<Json<Value>> {
    st.check_write(&headers)?;
    let id = parse_id_str(&id)?;
    let c = st.collection(&name)?;
    let st2 = st.clone();
    // The record goes first (durably), then its thumbnails and, when no record is left that
    // refers to it, its uploaded image (see `uploads`).
    let n = tokio::task::spawn_blocking(move || {
        st2.uploads.with(|| -> ApiResult<usize> {
            let path = c.get_metadata(id).and_then(|m| ImageMeta::from_metadata(m).path_buf());
            let n = c.delete(&[id])?;
            if n > 0 {
                uploads::release(&st2.db, &st2.upload_dir, &st2.thumb_dir, id, path.as_deref());
            }
            Ok(n)
        })
    })
    .await??;
    if n == 0 {
        return Err(ApiError::not_found(format!("no record with id {id} in collection '{name}'")));
    }
    Ok(Json(json!({"deleted": n, "id": id.to_string()})))
}

/// `GET /api/jobs/{id}`: progress of a background indexing job.
pub async fn get_job(State(st): AppStateRef, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    let id: u64 = id.parse().map_err(|_| ApiError::bad_request(format!("bad job id '{id}'")))?;
    let job = st.job(id).ok_or_else(|| ApiError::not_found(format!("no job {id}")))?;
    let mut v = serde_json::to_value(&job).map_err(|e| ApiError::internal(e.to_string()))?;
    v["id"] = json!(job.id.to_string());
    Ok(Json(v))
}
