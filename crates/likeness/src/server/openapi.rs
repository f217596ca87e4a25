//! `GET /openapi.json`: an OpenAPI 3.1 description of every route.

use axum::Json;
use serde_json::{json, Value};

fn err(desc: &str) -> Value {
    json!({"description": desc, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}})
}

fn ok(desc: &str, schema: Value) -> Value {
    json!({"description": desc, "content": {"application/json": {"schema": schema}}})
}

fn name_param() -> Value {
    json!({"name": "name", "in": "path", "required": true, "schema": {"type": "string"}, "description": "Collection name (`images` by default)."})
}

fn id_param() -> Value {
    json!({"name": "id", "in": "path", "required": true, "schema": {"type": "string", "pattern": "^[0-9]+$"},
           "description": "Record id (64-bit, as a decimal string)."})
}

/// The routes behind the page's browse and duplicates views (kept apart: one `json!` per part).
fn page_paths(write_note: &str) -> Value {
    json!({
            "/api/collections/{name}/records": {"get": {
                "summary": "Browse a collection without a query: a page of records sorted by path",
                "parameters": [name_param(),
                    {"name": "offset", "in": "query", "schema": {"type": "integer", "minimum": 0}, "description": "Records to skip (default 0)"},
                    {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 1000}, "description": "Records to return (default 48)"},
                    {"name": "label", "in": "query", "schema": {"type": "string"}, "description": "Only records with this label"},
                    {"name": "tag", "in": "query", "schema": {"type": "string"}, "description": "Only records with a tag containing this text (case-insensitive)"}],
                "responses": {"200": ok("A page of records", json!({"type": "object", "required": ["total", "offset", "limit", "records"], "properties": {
                    "total": {"type": "integer", "description": "Records that pass the filters"}, "offset": {"type": "integer"}, "limit": {"type": "integer"},
                    "records": {"type": "array", "items": {"$ref": "#/components/schemas/Card"}}}})),
                    "400": err("Bad offset, limit or unknown parameter"), "404": err("Unknown collection")}}},
            "/api/collections/{name}/duplicates": {"get": {
                "summary": "Groups of near-duplicate images (as `likeness dedup`), with the copy to keep by three rules",
                "description": "Every record is range-searched on the feature; pairs within the threshold are joined. \
                    `keep` names the member with the most bytes (`largest`), the earliest modification time (`oldest`) \
                    and the most pixels, then a lossless format, then the most bytes (`quality`).",
                "parameters": [name_param(),
                    {"name": "feature", "in": "query", "schema": {"type": "string"}, "description": "Feature compared (default: cnn, else phash)"},
                    {"name": "threshold", "in": "query", "schema": {"type": "number", "minimum": 0}, "description": "Largest distance within a group (default: the feature's calibrated one)"}],
                "responses": {"200": ok("Groups, largest first", json!({"type": "object", "properties": {
                    "collection": {"type": "string"}, "feature": {"type": "string"}, "threshold": {"type": "number"},
                    "records": {"type": "integer"}, "took_ms": {"type": "number"},
                    "groups": {"type": "array", "items": {"type": "object", "properties": {
                        "max_distance": {"type": "number"},
                        "members": {"type": "array", "items": {"$ref": "#/components/schemas/Card"}},
                        "keep": {"type": "object", "properties": {"largest": {"type": "string"}, "oldest": {"type": "string"}, "quality": {"type": "string"}}}}}}}})),
                    "400": err("Unknown feature, or no threshold for a feature without a calibrated one"), "404": err("Unknown collection")}}},
            "/api/collections/{name}/records/{id}/original": {"get": {
                "summary": "The original image file, when it lies under a --root folder or is an upload",
                "parameters": [name_param(), id_param()],
                "responses": {"200": {"description": "The file", "content": {"image/*": {}, "application/octet-stream": {}}},
                    "400": err("Bad id"), "403": err("File outside the --root folders and uploads"), "404": err("No such record or file")}}},
            "/api/collections/{name}/records/{id}/move": {"post": {
                "summary": "Move a record's file into another folder; the record follows (new id: the hash of the new path)",
                "description": format!("File and folder must lie under a --root folder (the folder is created when missing); \
                    every collection holding the record is updated, or loses it with `forget`. {write_note}"),
                "parameters": [name_param(), id_param()],
                "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object", "required": ["to"],
                    "additionalProperties": false, "properties": {
                        "to": {"type": "string", "description": "Absolute folder under a --root folder"},
                        "forget": {"type": "boolean", "description": "Remove the record instead of updating it"}}}}}},
                "responses": {"200": ok("Moved", json!({"type": "object", "properties": {"id": {"type": "string"}, "new_id": {"type": ["string", "null"]},
                        "path": {"type": "string"}, "collections": {"type": "array", "items": {"type": "string"}}}})),
                    "400": err("Bad id or folder"), "401": err("Missing or wrong API key"),
                    "403": err("File or folder outside the --root folders, no --root, or a read-only replica"),
                    "404": err("No such record or file"), "409": err("A file of that name is already there, or another file system")}}},
            "/api/collections/{name}/records/{id}/file": {"delete": {
                "summary": "Delete a record's file from disk and its record from every collection",
                "description": format!("The file must lie under a --root folder. {write_note}"),
                "parameters": [name_param(), id_param()],
                "responses": {"200": ok("Deleted", json!({"type": "object", "properties": {"id": {"type": "string"}, "deleted_file": {"type": "string"},
                        "collections": {"type": "array", "items": {"type": "string"}}}})),
                    "400": err("Bad id"), "401": err("Missing or wrong API key"),
                    "403": err("File outside the --root folders, no --root, or a read-only replica"), "404": err("No such record or file")}}},
            "/api/server": {"get": {"summary": "What the page needs to know of the server", "responses": {"200": ok("Server facts",
                json!({"type": "object", "properties": {"read_only": {"type": "boolean"}, "writes_need_key": {"type": "boolean"},
                    "roots": {"type": "array", "items": {"type": "string"}, "description": "The --root folders"}}}))}}},
            "/favicon.svg": {"get": {"summary": "The page's icon", "responses": {"200": {"description": "SVG", "content": {"image/svg+xml": {}}}}}},
            "/favicon.ico": {"get": {"summary": "The page's icon (SVG, for browsers that ask for /favicon.ico)", "responses": {"200": {"description": "SVG", "content": {"image/svg+xml": {}}}}}}
    })
}

/// The schema of a record as the browse and duplicates routes describe it.
fn card_schema() -> Value {
    json!({"type": "object", "properties": {"id": {"type": "string"}, "path": {"type": ["string", "null"]}, "name": {"type": ["string", "null"]},
                "label": {"type": ["string", "null"]}, "tags": {"type": "array", "items": {"type": "string"}}, "size": {"type": ["integer", "null"]},
                "width": {"type": ["integer", "null"]}, "height": {"type": ["integer", "null"]}, "format": {"type": ["string", "null"]},
                "mtime": {"type": ["integer", "null"], "description": "Modification time, seconds since the Unix epoch"},
                "thumb": {"type": "string"}, "original": {"type": ["string", "null"], "description": "URL of the file, when the server serves it"}}})
}

/// The OpenAPI document.
pub fn document() -> Value {
    let mut doc = core_document();
    if let (Some(paths), Value::Object(page)) = (doc["paths"].as_object_mut(), page_paths(WRITE_NOTE)) {
        paths.extend(page);
    }
    doc["components"]["schemas"]["Card"] = card_schema();
    doc
}

/// Said of every write.
const WRITE_NOTE: &str = "Needs the API key (header `x-api-key` or `Authorization: Bearer`) when the server has one.";

/// Every route but the page's views.
fn core_document() -> Value {
    let search_results = json!({"$ref": "#/components/schemas/SearchResults"});
    let write_note = WRITE_NOTE;
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "likeness",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Image similarity search over an embedded vector database. Errors are JSON objects \
                            `{\"error\": \"...\"}` with a 4xx/5xx status. Ids are decimal strings.",
        },
        "paths": {
            "/health": {"get": {"summary": "Liveness check", "responses": {"200": ok("Server is up", json!({"type": "object",
                "properties": {"status": {"type": "string"}, "version": {"type": "string"}, "collections": {"type": "integer"},
                    "read_only": {"type": "boolean", "description": "True for a `serve --read-only` replica"},
                    "refreshed_ms_ago": {"type": ["integer", "null"], "description": "Replicas only: time since the last catch-up with the writer"}}}))}}},
            "/openapi.json": {"get": {"summary": "This document", "responses": {"200": ok("OpenAPI document", json!({"type": "object"}))}}},
            "/api/collections": {"get": {"summary": "List collections", "responses": {"200": ok("Collections",
                json!({"type": "object", "properties": {"collections": {"type": "array", "items": {"$ref": "#/components/schemas/Collection"}},
                       "default": {"type": "string"}}}))}}},
            "/api/collections/{name}": {"get": {"summary": "One collection: count and vector fields", "parameters": [name_param()],
                "responses": {"200": ok("The collection", json!({"$ref": "#/components/schemas/Collection"})), "404": err("Unknown collection")}}},
            "/api/collections/{name}/labels": {"get": {"summary": "Distinct labels with counts", "parameters": [name_param()],
                "responses": {"200": ok("Labels", json!({"type": "object", "properties": {"labels": {"type": "array", "items": {"type": "object",
                    "properties": {"label": {"type": "string"}, "count": {"type": "integer"}}}}}})), "404": err("Unknown collection")}}},
            "/api/collections/{name}/search": {"post": {
                "summary": "Search by vector or by stored id (more like this; the record itself is excluded)",
                "parameters": [name_param()],
                "requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/SearchBody"}}}},
                "responses": {"200": ok("Ranked hits, closest first", search_results.clone()), "400": err("Bad parameters, or a filter on a field no record has"),
                              "404": err("Unknown collection or id"), "413": err("Body too large"), "422": err("Malformed body")}}},
            "/api/collections/{name}/search/image": {"post": {
                "summary": "Search by an uploaded image",
                "parameters": [name_param()],
                "requestBody": {"required": true, "content": {"multipart/form-data": {"schema": {"type": "object", "required": ["image"],
                    "properties": {
                        "image": {"type": "string", "format": "binary", "description": "JPEG, PNG, WebP, GIF, BMP or TIFF"},
                        "feature": {"type": "string", "description": "A field, or several joined by '+' (cnn+color+phash): a hybrid search fused by reciprocal rank"},
                        "robust": {"type": "string", "description": "Robust search: also search views of the image and keep each record's best: 'true'/'all', or a list of turns,mirror,tilt[=DEG:DEG],regions"},
                        "fusion": {"enum": ["rrf", "max"], "description": "Hybrid: reciprocal-rank fusion (default) or the best calibrated similarity"},
                        "verify": {"type": "string", "description": "Geometric verification: match local keypoints of the image with each of the top N hits (decoded from their stored files) and move the verified ones first, most inliers first: 'true' (N = 20) or N (1 to 200); 'false'/'0' for none"},
                        "k": {"type": "integer"}, "threshold": {"type": "number"},
                        "ef": {"type": "integer"}, "nprobe": {"type": "integer"}, "checks": {"type": "integer"}, "rerank": {"type": "integer"},
                        "filter": {"type": "string", "description": "JSON filter, as in SearchBody.filter"}}}}}},
                "responses": {"200": ok("Ranked hits, closest first", search_results), "400": err("Not an image, bad parameters, or a filter on a field no record has"),
                              "404": err("Unknown collection"), "413": err("Body or image too large"),
                              "503": err("Busy: too many image requests (Retry-After)")}}},
            "/api/collections/{name}/images": {"post": {
                "summary": "Add an image: an upload, or a server-side file or folder under a --root folder",
                "description": format!("A folder starts a background indexing job (202; poll `status_url`). \
                    The collection is created with the server's features when missing. {write_note}"),
                "parameters": [name_param()],
                "requestBody": {"required": true, "content": {
                    "multipart/form-data": {"schema": {"type": "object", "required": ["image"], "properties": {
                        "image": {"type": "string", "format": "binary"}, "label": {"type": "string"}}}},
                    "application/json": {"schema": {"type": "object", "required": ["path"], "properties": {
                        "path": {"type": "string", "description": "Absolute path of a file or folder under a --root folder"}}}}}},
                "responses": {
                    "201": ok("Stored", json!({"type": "object", "properties": {"id": {"type": "string"}, "metadata": {"type": "object"}}})),
                    "202": ok("Folder indexing started", json!({"type": "object", "properties": {"job": {"type": "string"}, "status_url": {"type": "string"}}})),
                    "400": err("Not an image / bad request"), "401": err("Missing or wrong API key"),
                    "403": err("Path outside the allowed folders, path adds disabled, or a read-only replica"), "404": err("No such file"),
                    "413": err("Body or image too large"), "415": err("Neither multipart nor JSON"),
                    "503": err("Busy: too many image requests (Retry-After)")}}},
            "/api/collections/{name}/records/{id}": {
                "get": {"summary": "A stored record", "parameters": [name_param(), id_param(),
                        {"name": "vectors", "in": "query", "schema": {"type": "boolean"}, "description": "Include the vectors"}],
                        "responses": {"200": ok("The record", json!({"$ref": "#/components/schemas/Record"})), "400": err("Bad id"), "404": err("Not found")}},
                "delete": {"summary": "Delete a record", "description": write_note, "parameters": [name_param(), id_param()],
                        "responses": {"200": ok("Deleted", json!({"type": "object", "properties": {"deleted": {"type": "integer"}, "id": {"type": "string"}}})),
                                      "401": err("Missing or wrong API key"), "403": err("A read-only replica"), "404": err("Not found")}}},
            "/api/jobs/{id}": {"get": {"summary": "Progress of a folder indexing job", "parameters": [{"name": "id", "in": "path", "required": true, "schema": {"type": "string"}}],
                "responses": {"200": ok("Job", json!({"type": "object", "properties": {"id": {"type": "string"}, "state": {"enum": ["running", "done", "failed"]},
                    "progress": {"type": "object"}, "report": {"type": ["object", "null"]}, "error": {"type": ["string", "null"]}}})), "404": err("No such job")}}},
            "/thumb/{id}": {"get": {"summary": "JPEG thumbnail (at most 256 px) of a stored image", "parameters": [id_param()],
                "responses": {"200": {"description": "Thumbnail", "content": {"image/jpeg": {}}}, "400": err("Bad id"),
                              "403": err("File outside the indexed folders"), "404": err("No such record or file")}}},
            "/": {"get": {"summary": "The web page", "responses": {"200": {"description": "HTML", "content": {"text/html": {}}}}}},
        },
        "components": {"schemas": {
            "Error": {"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}}},
            "Collection": {"type": "object", "properties": {"name": {"type": "string"}, "count": {"type": "integer"},
                "fields": {"type": "array", "items": {"type": "object", "properties": {"name": {"type": "string"}, "dim": {"type": "integer"},
                    "metric": {"enum": ["l2", "cosine", "dot", "hamming"]}, "index": {"type": "string", "description": "The field's index spec (e.g. `Auto`, `HNSW32`)"},
                    "vectors_per_record": {"type": "integer", "description": "Vectors each record holds in this field: 1, or more for a multi-vector field (`regions`: 5), searched by the best pair"},
                    "serving": {"type": "string", "description": "The index answering searches now (for `Auto`: `Flat` while small, then the graph it chose)"},
                    "policy": {"type": ["string", "null"], "description": "For `Auto`: what serves the field and why (size, threshold, memory budget)"},
                    "build": {"type": ["object", "null"], "description": "A background index build in progress",
                        "properties": {"spec": {"type": "string"}, "done": {"type": "integer"}, "total": {"type": "integer"}, "seconds": {"type": "number"}}},
                    "bands": {"type": ["object", "null"], "description": "Distance bands of calibrated features (docs/app.md): at most `near_duplicate`, `similar`, `related`; further is unrelated",
                        "properties": {"near_duplicate": {"type": "number"}, "similar": {"type": "number"}, "related": {"type": "number"}}}}}}}},
            "SearchBody": {"type": "object", "additionalProperties": false, "properties": {
                "vector": {"type": "array", "items": {"type": "number"}, "description": "Query vector; for hamming features the packed bytes (0..255)"},
                "id": {"type": "string", "description": "Search by this stored record"},
                "feature": {"type": "string", "description": "Vector field (default: cnn when present), or several joined by '+' (cnn+color+phash) for a hybrid search by `id` (fused by reciprocal rank; no threshold)"},
                "fusion": {"enum": ["rrf", "max", null], "description": "Hybrid: reciprocal-rank fusion (default) or the best calibrated similarity"},
                "k": {"type": "integer", "minimum": 1, "maximum": 10000, "description": "Results (default 10)"},
                "threshold": {"type": "number", "description": "Range search: every hit with distance <= threshold"},
                "filter": {"type": "object", "description": "e.g. {\"label\": \"cat\"}, {\"label\": {\"in\": [\"cat\",\"dog\"]}}, {\"width\": {\"gte\": 100}}, {\"path\": {\"prefix\": \"/p/\"}}, {\"and\": [...]}, {\"or\": [...]}, {\"not\": {...}}"},
                "include_vectors": {"type": "boolean"},
                "ef": {"type": "integer", "minimum": 1, "maximum": 100000, "description": "HNSW candidate list (default: the index's, 64)"},
                "nprobe": {"type": "integer", "minimum": 1, "maximum": 100000, "description": "IVF lists probed"},
                "checks": {"type": "integer", "minimum": 1, "maximum": 100000, "description": "k-d forest leaf budget"},
                "rerank": {"type": "integer", "minimum": 1, "maximum": 100000, "description": "Candidates re-ranked exactly (LSH, ...,Refine)"}}},
            "Hit": {"type": "object", "properties": {"id": {"type": "string"}, "distance": {"type": "number", "description": "Distance on the (first) feature searched"},
                "path": {"type": ["string", "null"]}, "label": {"type": ["string", "null"]}, "thumb": {"type": "string"}, "metadata": {"type": ["object", "null"]},
                "distances": {"type": "object", "additionalProperties": {"type": "number"}, "description": "Distance on each feature searched"},
                "similarity": {"type": ["number", "null"], "minimum": 0, "maximum": 1, "description": "Calibrated on the bands: near duplicate >= 0.9, similar >= 0.7, related >= 0.5"},
                "verdict": {"enum": ["near duplicate", "similar", "related", "unrelated", null]},
                "verdict_by": {"type": ["string", "null"], "description": "The feature the verdict is read from"},
                "view": {"type": "string", "description": "Robust search: the query view that matched (original, turn90, mirror, tilt+15, region ...)"},
                "fused_score": {"type": "number", "description": "Hybrid search: reciprocal-rank score over the best possible (1 = first on every feature)"},
                "verification": {"$ref": "#/components/schemas/Verification"}}},
            "Verification": {"type": "object", "description": "Geometric verification of a hit (search with `verify`)", "properties": {
                "inliers": {"type": "integer", "description": "Keypoint matches consistent with the fitted affine transform"},
                "matches": {"type": "integer", "description": "Keypoint matches before the fit"},
                "verified": {"type": "boolean", "description": "Enough inliers: the query appears in this image"},
                "quad": {"type": ["array", "null"], "minItems": 4, "maxItems": 4, "items": {"type": "array", "minItems": 2, "maxItems": 2, "items": {"type": "number"}},
                    "description": "When verified: the query's corners (top-left, top-right, bottom-right, bottom-left) in the hit image's pixels, [x, y] each"},
                "mirrored": {"type": "boolean", "description": "Matched against the query's mirror image"},
                "error": {"type": "string", "description": "Why the hit could not be verified (its file missing or unreadable); it keeps its place"}}},
            "SearchResults": {"type": "object", "properties": {"collection": {"type": "string"}, "feature": {"type": "string"},
                "took_ms": {"type": "number"}, "no_close_match": {"type": ["boolean", "null"], "description": "The best hit is calibrated as unrelated (null: no calibrated feature, or no hit)"},
                "robust": {"type": "object", "description": "The views searched, when robust"},
                "fusion": {"enum": ["rrf", "max"], "description": "Hybrid: how the features were combined"},
                "verified": {"type": "boolean", "description": "The top hits were geometrically verified"},
                "results": {"type": "array", "items": {"$ref": "#/components/schemas/Hit"}}}},
            "Record": {"type": "object", "properties": {"id": {"type": "string"}, "metadata": {"type": "object"}, "thumb": {"type": "string"},
                "vectors": {"type": "object"}}},
        }},
    })
}

/// Statuses any route may answer besides its own (limits, keys, bad input), added to every
/// operation that does not already describe them.
const COMMON_ERRORS: &[(&str, &str)] = &[
    ("400", "Bad request: a malformed id, parameter or body"),
    ("401", "A key is needed (--api-key for writes, --read-key for reads)"),
    ("413", "Body over --max-body"),
    ("415", "Unsupported content type"),
    ("422", "Body that does not deserialize"),
    ("429", "Over --rate-limit for this client address (Retry-After)"),
    ("503", "Busy (image work queue full) or over --request-timeout-s (Retry-After when busy)"),
];

/// `doc` with [`COMMON_ERRORS`] added to every operation.
fn with_common_errors(mut doc: Value) -> Value {
    if let Some(paths) = doc["paths"].as_object_mut() {
        for ops in paths.values_mut().filter_map(Value::as_object_mut) {
            for op in ops.values_mut() {
                if let Some(responses) = op["responses"].as_object_mut() {
                    for (code, desc) in COMMON_ERRORS {
                        responses.entry(code.to_string()).or_insert_with(|| err(desc));
                    }
                }
            }
        }
    }
    doc
}

/// `GET /openapi.json`.
pub async fn handler() -> Json<Value> {
    Json(with_common_errors(document()))
}
