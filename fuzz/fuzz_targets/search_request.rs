//! The HTTP search body (`POST /api/collections/{name}/search`): the bytes as JSON into
//! `vecdb::search_body::SearchBody` (what the server's handler deserializes), its checks, then
//! the search on a small collection with a dense (HNSW) and a hamming field, and, when nothing
//! matched a filter, the server's check for filter fields no record has. Errors are answers
//! (4xx); a panic, an abort or a timeout is a finding.
#![no_main]

use std::sync::{Arc, LazyLock};

use vecdb::search_body::SearchBody;
use vecdb::{Collection, CollectionSchema, Database, Metric, Record, Vector, VectorField};

/// The database (kept open) and its collection, made once per process.
static COLLECTION: LazyLock<(Database, Arc<Collection>)> = LazyLock::new(|| {
    let dir = std::env::temp_dir().join(format!("fuzz-search-request-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let db = Database::open(&dir).expect("open database");
    let schema = CollectionSchema {
        fields: vec![
            VectorField::new("dense", 4, Metric::L2, "HNSW8"),
            VectorField::new("bits", 64, Metric::Hamming, "Flat"),
        ],
    };
    let c = db.create_collection("c", schema).expect("create collection");
    let records = (1..=24u64)
        .map(|id| {
            let x = id as f32;
            Record::new(id)
                .with_vector("dense", Vector::Dense(vec![x, x * 0.5, -x, 1.0]))
                .with_vector("bits", Vector::Binary(id.wrapping_mul(0x9E37_79B9_7F4A_7C15).to_le_bytes().to_vec()))
                .with_metadata(serde_json::json!({
                    "label": if id % 3 == 0 { "cat" } else { "dog" },
                    "size": id,
                    "path": format!("/photos/{id}.jpg"),
                    "tags": ["a", "b"],
                }))
        })
        .collect();
    c.insert(records).expect("insert");
    (db, c)
});

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(body) = serde_json::from_slice::<SearchBody>(data) else { return };
    let c = &COLLECTION.1;
    // The server's default feature (catalog::choose_feature, candle-side) is the first field here.
    let feature = body.feature.clone().unwrap_or_else(|| "dense".to_string());
    let Ok(spec) = body.spec(feature) else { return };
    let Ok(query) = body.query(c, &spec.feature) else { return };
    let filter = spec.filter.clone();
    if let Ok(hits) = c.search(&spec.request(query)) {
        if hits.is_empty() {
            if let Some(f) = filter {
                let _ = f.missing_fields(c.ids().into_iter().filter_map(|id| c.get_metadata(id)));
            }
        }
    }
});
