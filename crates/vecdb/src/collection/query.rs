//! Reads: get, scan, search (top-k, range, filtered, "more like this"), batch search, stats.
//! Each read holds the state's read lock, so it sees one consistent snapshot.

use std::sync::OnceLock;

use rayon::prelude::*;

use super::auto::AutoPolicy;
use super::state::Buf;
use super::{dir_bytes, Access, Collection};
use crate::error::{Error, Result};
use crate::filter::Metadata;
use crate::index::IdFilter;
use crate::schema::{prepare_vector, Record};
use crate::search::{CollectionStats, FieldStats, Hit, Query, SearchRequest};

impl Collection {
    /// The record with this id (vectors as stored: unit-normalized for cosine fields).
    pub fn get(&self, id: u64) -> Result<Option<Record>> {
        self.check_alive()?;
        let st = self.state.read();
        let Some(metadata) = st.metadata(id) else {
            return Ok(None);
        };
        let vectors = st.vectors_map(id, self.schema()).expect("live record has all vectors");
        Ok(Some(Record { id, vectors, metadata: metadata? }))
    }

    /// The metadata of this id, if stored (`None` too, with a warning logged, when its segment's
    /// metadata is damaged: [`Collection::get`] reports that as an error).
    pub fn get_metadata(&self, id: u64) -> Option<Metadata> {
        match self.state.read().metadata(id)? {
            Ok(m) => Some(m),
            Err(e) => {
                tracing::warn!(collection = %self.name, id, error = %e, "metadata unreadable");
                None
            }
        }
    }

    /// Number of live records.
    pub fn count(&self) -> usize {
        self.state.read().len()
    }

    /// All live ids, ascending.
    pub fn ids(&self) -> Vec<u64> {
        let mut ids: Vec<u64> = self.state.read().live_ids();
        ids.sort_unstable();
        ids
    }

    /// Call `f` on every live record, in id order. Records are read in chunks, so
    /// `f` may call other methods of the collection (writes made meanwhile may or
    /// may not be seen).
    pub fn for_each(&self, mut f: impl FnMut(&Record)) -> Result<()> {
        self.check_alive()?;
        let ids = self.ids();
        for chunk in ids.chunks(1024) {
            let recs: Vec<Record> = {
                let st = self.state.read();
                let schema = self.schema();
                let mut recs = Vec::with_capacity(chunk.len());
                for &id in chunk {
                    if let (Some(metadata), Some(vectors)) = (st.metadata(id), st.vectors_map(id, schema)) {
                        recs.push(Record { id, vectors, metadata: metadata? });
                    }
                }
                recs
            };
            recs.iter().for_each(&mut f);
        }
        Ok(())
    }

    /// Run one search (see [`SearchRequest`]).
    pub fn search(&self, req: &SearchRequest) -> Result<Vec<Hit>> {
        self.check_alive()?;
        let schema = self.schema();
        let f = schema.field_index(&req.field)?;
        let field = &schema.fields[f];
        if let Some(t) = req.threshold {
            if t.is_nan() {
                return Err(Error::InvalidArgument("threshold is NaN".into()));
            }
        }
        let st = self.state.read();
        let (query, exclude) = match &req.query {
            Query::Vector(v) => (prepare_vector(field, v.as_ref())?, None),
            Query::Id(id) => (st.vector(*id, f).ok_or(Error::NotFound(*id))?.to_owned(), Some(*id)),
        };
        let filter = req.filter.as_ref();
        // The first metadata that cannot be read fails the search (after it ends).
        let unreadable: OnceLock<Error> = OnceLock::new();
        let pred = |id: u64| {
            exclude != Some(id)
                && filter.is_none_or(|flt| {
                    st.matches(id, flt).unwrap_or_else(|e| {
                        let _ = unreadable.set(e);
                        false
                    })
                })
        };
        let pred_ref: Option<IdFilter<'_>> = if exclude.is_some() || filter.is_some() { Some(&pred) } else { None };
        let q = query.as_ref();
        let neighbors = st.search_field(field, f, q, req.k, req.threshold, &req.params, pred_ref)?;
        if let Some(e) = unreadable.into_inner() {
            return Err(e);
        }
        st.hits(neighbors, schema, req)
    }

    /// Run many searches in parallel; results in request order. Plain top-k
    /// requests on one field (query vectors, same k and params, no filter or
    /// threshold) go to the index's batched search in one call.
    pub fn search_batch(&self, reqs: &[SearchRequest]) -> Result<Vec<Vec<Hit>>> {
        let Some(first) = reqs.first() else {
            return Ok(Vec::new());
        };
        let batchable = reqs.len() > 1
            && reqs.iter().all(|r| {
                r.field == first.field
                    && r.k == first.k
                    && r.k.is_some_and(|k| k > 0)
                    && r.threshold.is_none()
                    && r.filter.is_none()
                    && r.params == first.params
                    && matches!(r.query, Query::Vector(_))
            });
        if !batchable {
            return reqs.par_iter().map(|r| self.search(r)).collect();
        }
        self.check_alive()?;
        let schema = self.schema();
        let f = schema.field_index(&first.field)?;
        let field = &schema.fields[f];
        if field.is_multi() {
            // Queries of a multi-vector field hold different numbers of vectors.
            return reqs.par_iter().map(|r| self.search(r)).collect();
        }
        let mut buf = Buf::new(field.element());
        for r in reqs {
            if let Query::Vector(v) = &r.query {
                buf.push(prepare_vector(field, v.as_ref())?.as_ref());
            }
        }
        let st = self.state.read();
        let fi = &st.indexes[f];
        if !fi.ready || fi.rerank {
            drop(st);
            return reqs.par_iter().map(|r| self.search(r)).collect();
        }
        let k = first.k.expect("batchable requests have k");
        let results = if fi.stored {
            match st.search_batch_stored(field, f, buf.as_ref(), k, &first.params)? {
                Some(r) => r,
                None => {
                    drop(st);
                    return reqs.par_iter().map(|r| self.search(r)).collect();
                }
            }
        } else {
            fi.index.search_batch(buf.as_ref(), k, &first.params, None)?
        };
        results.into_iter().zip(reqs).map(|(n, r)| st.hits(n, schema, r)).collect()
    }

    /// Counts, disk usage and per-field index figures.
    pub fn stats(&self) -> CollectionStats {
        let schema = self.schema();
        let (wal_bytes, disk_bytes) = {
            let wal_bytes = match &self.access {
                Access::Writer(w) => w.lock().wal.len(),
                Access::Follower(f) => f.lock().wal_bytes(),
            };
            (wal_bytes, dir_bytes(&self.dir))
        };
        let st = self.state.read();
        let seg_rows: usize = st.segments.iter().map(|s| s.rows()).sum();
        CollectionStats {
            count: st.len(),
            deleted: seg_rows - st.seg_live,
            disk_bytes,
            segments: st.segments.len(),
            wal_bytes,
            records_heap_bytes: st.records_heap_bytes() as u64,
            fields: schema
                .fields
                .iter()
                .zip(&st.indexes)
                .enumerate()
                .map(|(f, (field, fi))| FieldStats {
                    name: field.name.clone(),
                    dim: field.dim,
                    metric: field.metric,
                    index: if fi.ready {
                        fi.index.description()
                    } else {
                        format!("{} (untrained: exact scan)", fi.index.description())
                    },
                    memory_bytes: fi.index.memory_bytes(),
                    disk_bytes: st.segments.iter().map(|s| s.column_bytes(f) as u64).sum(),
                    resident_bytes: st.segments.iter().map(|s| s.column_resident_bytes(f) as u64).sum(),
                    heap_bytes: (fi.index.memory_bytes() + st.memtable.len() * field.bytes_per_vector()) as u64,
                    origin: fi.origin,
                    policy: match AutoPolicy::parse(&field.index) {
                        Some(Ok(p)) => Some(match (fi.stored, fi.rerank) {
                            (true, _) => p.choose(field, st.len()).1,
                            (false, rerank) => {
                                let how = if rerank { " + exact re-rank from the mapped vectors" } else { "" };
                                format!("{}{how}: chosen by the Auto policy ({})", fi.spec, p.choose(field, st.len()).1)
                            }
                        }),
                        _ => None,
                    },
                    build: st.build_of(f).map(|b| b.progress()).or_else(|| match self.access {
                        Access::Follower(_) => super::background::read_progress(&self.dir, &field.name),
                        Access::Writer(_) => None,
                    }),
                })
                .collect(),
        }
    }
}
