//! Saving and loading an [`HnswIndex`]: `index.json` plus flat little-endian files, each
//! with a CRC-32 recorded in `index.json`. Loading validates every link before use.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::path::Path;
use std::sync::atomic::AtomicU32;

use serde::{Deserialize, Serialize};

use super::graph::{Graph, NONE};
use super::sq8::Sq8Codec;
use super::{Bits, HnswIndex, Rows, MAX_LEVEL, MAX_M};
use crate::error::{Error, Result};
use crate::metric::Metric;
use crate::vector::Element;

const VERSION: u32 = 1;

/// The `index.json` document.
#[derive(Serialize, Deserialize)]
struct Meta {
    kind: String,
    version: u32,
    dim: usize,
    metric: Metric,
    m: usize,
    ef_construction: usize,
    ef_search: usize,
    nodes: usize,
    upper_words: usize,
    entry: Option<(u32, usize)>,
    deleted: usize,
    rng: u64,
    /// `HNSW<M>,SQ8`: `vectors.bin` holds 8-bit codes (absent in older files: full vectors).
    #[serde(default)]
    quantized: bool,
    /// The trained codec of a quantized index.
    #[serde(default)]
    sq8: Option<Sq8Codec>,
    /// CRC-32 of each data file.
    crc: BTreeMap<String, u32>,
}

#[cfg(target_endian = "big")]
compile_error!("the HNSW file format is little-endian; big-endian targets are not supported");

fn u32s(v: impl Iterator<Item = u32>) -> Vec<u8> {
    v.flat_map(u32::to_le_bytes).collect()
}

/// Write the index files into `dir`.
pub(super) fn save(idx: &HnswIndex, dir: &Path) -> Result<()> {
    fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let g = &idx.graph;
    let load = |a: &AtomicU32| a.load(std::sync::atomic::Ordering::Relaxed);
    let files: Vec<(&str, Vec<u8>)> = vec![
        ("ids.bin", idx.ids.iter().flat_map(|x| x.to_le_bytes()).collect()),
        ("levels.bin", g.levels.clone()),
        ("links0.bin", u32s(g.links0.iter().map(load))),
        ("upper_off.bin", u32s(g.upper_off.iter().copied())),
        ("upper.bin", u32s(g.upper.iter().map(load))),
        ("deleted.bin", idx.deleted.0.iter().flat_map(|x| x.to_le_bytes()).collect()),
    ];
    let mut crc = BTreeMap::new();
    let write = |name: &str, bytes: &[u8]| -> Result<u32> {
        let p = dir.join(name);
        fs::write(&p, bytes).map_err(|e| Error::io(&p, e))?;
        Ok(crc32fast::hash(bytes))
    };
    crc.insert("vectors.bin".to_string(), write("vectors.bin", idx.rows.bytes())?);
    for (name, bytes) in &files {
        crc.insert(name.to_string(), write(name, bytes)?);
    }
    let meta = Meta {
        kind: "hnsw".into(),
        version: VERSION,
        dim: idx.dim,
        metric: idx.metric,
        m: idx.m,
        ef_construction: idx.ef_construction,
        ef_search: idx.ef_search,
        nodes: g.len(),
        upper_words: g.upper.len(),
        entry: g.entry(),
        deleted: idx.n_deleted,
        rng: idx.rng,
        quantized: idx.quantized,
        sq8: idx.sq8.clone(),
        crc,
    };
    let p = dir.join("index.json");
    let json = serde_json::to_vec_pretty(&meta).map_err(|e| Error::InvalidArgument(e.to_string()))?;
    fs::write(&p, json).map_err(|e| Error::io(&p, e))
}

/// Read and check one data file.
fn read(dir: &Path, name: &str, want_len: usize, meta: &Meta) -> Result<Vec<u8>> {
    let p = dir.join(name);
    let bytes = fs::read(&p).map_err(|e| Error::io(&p, e))?;
    check(&p, &bytes, want_len, name, meta)?;
    Ok(bytes)
}

fn check(p: &Path, bytes: &[u8], want_len: usize, name: &str, meta: &Meta) -> Result<()> {
    if bytes.len() != want_len {
        return Err(corrupt(p, format!("{} bytes, expected {want_len}", bytes.len())));
    }
    match meta.crc.get(name) {
        Some(&c) if c == crc32fast::hash(bytes) => Ok(()),
        Some(_) => Err(corrupt(p, "checksum mismatch".into())),
        None => Err(corrupt(p, "no checksum recorded in index.json".into())),
    }
}

fn corrupt(p: &Path, reason: String) -> Error {
    Error::Corrupt { path: p.to_path_buf(), reason }
}

fn to_u32(b: &[u8]) -> impl Iterator<Item = u32> + '_ {
    b.chunks_exact(4).map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
}

/// Load an index saved by [`save`].
pub(super) fn load(dir: &Path) -> Result<HnswIndex> {
    let mp = dir.join("index.json");
    let text = fs::read(&mp).map_err(|e| Error::io(&mp, e))?;
    let meta: Meta = serde_json::from_slice(&text).map_err(|e| corrupt(&mp, e.to_string()))?;
    if meta.kind != "hnsw" {
        return Err(corrupt(&mp, format!("kind is '{}', not 'hnsw'", meta.kind)));
    }
    if meta.version != VERSION {
        return Err(corrupt(&mp, format!("unsupported version {}", meta.version)));
    }
    if !(2..=MAX_M).contains(&meta.m) || meta.dim == 0 || meta.nodes >= NONE as usize {
        return Err(corrupt(&mp, format!("bad parameters m={} dim={} nodes={}", meta.m, meta.dim, meta.nodes)));
    }
    let n = meta.nodes;
    let (m, m0) = (meta.m, 2 * meta.m);
    let element = meta.metric.element();
    if meta.quantized && element != Element::F32 {
        return Err(corrupt(&mp, format!("SQ8 codes with metric {}", meta.metric)));
    }
    match (&meta.sq8, meta.quantized) {
        (Some(c), true) => c.validate(meta.dim, meta.metric).map_err(|r| corrupt(&mp, r))?,
        (None, true) if meta.nodes > 0 => return Err(corrupt(&mp, "SQ8 codes without a codec".into())),
        (Some(_), false) => return Err(corrupt(&mp, "an SQ8 codec on an index of full vectors".into())),
        _ => {}
    }
    let floats = element == Element::F32 && !meta.quantized;
    let row_bytes = if meta.quantized { meta.dim } else { element.bytes_per_vector(meta.dim) };

    // Vectors: memory-mapped.
    let vp = dir.join("vectors.bin");
    let rows = if n == 0 {
        read(dir, "vectors.bin", 0, &meta)?;
        if floats {
            Rows::F32(Vec::new())
        } else {
            Rows::Bits(Vec::new())
        }
    } else {
        let f = fs::File::open(&vp).map_err(|e| Error::io(&vp, e))?;
        // SAFETY: the file is private to this index directory; it must not be modified while mapped.
        let map = unsafe { memmap2::Mmap::map(&f) }.map_err(|e| Error::io(&vp, e))?;
        check(&vp, &map, n * row_bytes, "vectors.bin", &meta)?;
        if floats && bytemuck::try_cast_slice::<u8, f32>(&map).is_err() {
            return Err(corrupt(&vp, "mapping is not 4-byte aligned".into()));
        }
        Rows::Mapped(std::sync::Arc::new(map))
    };

    let ids_b = read(dir, "ids.bin", 8 * n, &meta)?;
    let ids: Vec<u64> = ids_b.chunks_exact(8).map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes"))).collect();
    let levels = read(dir, "levels.bin", n, &meta)?;
    let links0: Vec<u32> = to_u32(&read(dir, "links0.bin", 4 * n * (m0 + 1), &meta)?).collect();
    let upper_off: Vec<u32> = to_u32(&read(dir, "upper_off.bin", 4 * n, &meta)?).collect();
    let upper: Vec<u32> = to_u32(&read(dir, "upper.bin", 4 * meta.upper_words, &meta)?).collect();
    let del_b = read(dir, "deleted.bin", 8 * n.div_ceil(64), &meta)?;
    let deleted = Bits(del_b.chunks_exact(8).map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes"))).collect());

    // Structure checks: every block in bounds, every link a real node.
    let gp = dir.join("links0.bin");
    let check_block = |block: &[u32], cap: usize, what: &str| -> Result<()> {
        let c = block[0] as usize;
        if c > cap {
            return Err(corrupt(&gp, format!("{what}: {c} links, at most {cap} allowed")));
        }
        if let Some(bad) = block[1..=c].iter().find(|&&x| x as usize >= n) {
            return Err(corrupt(&gp, format!("{what}: link to node {bad} of {n}")));
        }
        Ok(())
    };
    for v in 0..n {
        let level = levels[v] as usize;
        if level > MAX_LEVEL {
            return Err(corrupt(&dir.join("levels.bin"), format!("node {v} has level {level}")));
        }
        check_block(&links0[v * (m0 + 1)..(v + 1) * (m0 + 1)], m0, &format!("node {v} level 0"))?;
        let off = upper_off[v];
        if level == 0 {
            continue;
        }
        let end = off as usize + level * (m + 1);
        if off == NONE || end > upper.len() {
            return Err(corrupt(&dir.join("upper_off.bin"), format!("node {v}: upper block out of bounds")));
        }
        for l in 1..=level {
            let s = off as usize + (l - 1) * (m + 1);
            check_block(&upper[s..s + m + 1], m, &format!("node {v} level {l}"))?;
        }
    }
    match meta.entry {
        None if n > 0 => return Err(corrupt(&mp, "no entry point in a non-empty graph".into())),
        Some((e, l)) if e as usize >= n || levels[e as usize] as usize != l => {
            return Err(corrupt(&mp, format!("entry point {e} at level {l} is not a node of that level")));
        }
        _ => {}
    }
    let mut counted = 0;
    let mut slot_of = HashMap::with_capacity(n);
    for (slot, &id) in ids.iter().enumerate() {
        if deleted.get(slot as u32) {
            counted += 1;
        } else if slot_of.insert(id, slot as u32).is_some() {
            return Err(corrupt(&dir.join("ids.bin"), format!("id {id} is live twice")));
        }
    }
    if counted != meta.deleted || deleted.0.iter().map(|w| w.count_ones() as usize).sum::<usize>() != counted {
        return Err(corrupt(&dir.join("deleted.bin"), "removed count does not match index.json".into()));
    }

    let graph = Graph::from_parts(
        m,
        links0.into_iter().map(AtomicU32::new).collect(),
        levels,
        upper_off,
        upper.into_iter().map(AtomicU32::new).collect(),
        meta.entry,
    );
    Ok(HnswIndex {
        dim: meta.dim,
        metric: meta.metric,
        m,
        ef_construction: meta.ef_construction.max(1),
        ef_search: meta.ef_search.max(1),
        rows,
        quantized: meta.quantized,
        sq8: meta.sq8,
        graph,
        ids,
        slot_of,
        deleted,
        n_deleted: meta.deleted,
        rng: meta.rng,
        unwalked: 0,
    })
}
