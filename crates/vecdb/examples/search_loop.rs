//! One search call per query on an existing collection, as a Python loop over
//! `Collection.search` does: the Rust side of `bench/binding_cost.py`, which compares the two
//! by instruction counts (valgrind), a measure the load of other processes does not move.
//!
//! `search_loop DB COLLECTION FIELD QUERIES.f32 DIM N [EF] [K]` — QUERIES.f32 holds
//! little-endian f32 rows of DIM values; the first N are searched one by one. Prints the
//! number of hits (so the work cannot be optimised away).

use std::error::Error;

use vecdb::{Database, Query, SearchParams, SearchRequest, Vector};

fn main() -> Result<(), Box<dyn Error>> {
    let a: Vec<String> = std::env::args().collect();
    if a.len() < 7 {
        return Err("usage: search_loop DB COLLECTION FIELD QUERIES.f32 DIM N [EF] [K]".into());
    }
    let (dim, n): (usize, usize) = (a[5].parse()?, a[6].parse()?);
    let ef: Option<usize> = a.get(7).map(|s| s.parse()).transpose()?;
    let k: usize = a.get(8).map(|s| s.parse()).transpose()?.unwrap_or(10);
    let bytes = std::fs::read(&a[4])?;
    let floats: Vec<f32> = bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
    let db = Database::open_read_only(&a[1])?;
    let coll = db.collection(&a[2])?;
    let mut hits = 0;
    for q in floats.chunks_exact(dim).take(n) {
        let mut req = SearchRequest::new(a[3].clone(), Query::Vector(Vector::Dense(q.to_vec())), k);
        req.params = SearchParams { ef, ..Default::default() };
        req.include_metadata = false; // as `Collection.search` from Python by default
        hits += coll.search(&req)?.len();
    }
    println!("{hits}");
    Ok(())
}
