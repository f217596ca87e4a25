//! Group commit: writers queue their operation; the first waiting writer becomes the leader,
//! validates every queued operation against the state plus the effects of the ones before it,
//! appends them all to the WAL with one `write`, makes them durable with one `fdatasync`, and
//! only then applies them to the in-memory state and indexes.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use parking_lot::Mutex;

use super::{poisoned_error, Collection};
use crate::error::{Error, Result};
use crate::schema::{prepare_vectors, Record};
use crate::wal::{PutRec, WalOp};

/// WAL size that triggers a checkpoint into a new segment.
const CHECKPOINT_BYTES: u64 = 64 << 20;

pub(super) enum Op {
    Insert(Vec<PutRec>),
    Upsert(Vec<PutRec>),
    Delete(Vec<u64>),
}

pub(super) struct Ticket {
    pub(super) op: Mutex<Option<Op>>,
    pub(super) result: Mutex<Option<Result<usize>>>,
}

#[derive(Default)]
pub(super) struct Queue {
    pub(super) pending: Vec<Arc<Ticket>>,
    pub(super) leader: bool,
}

impl Collection {
    pub(super) fn prepare(&self, records: Vec<Record>) -> Result<Vec<PutRec>> {
        let schema = self.schema();
        records
            .into_iter()
            .map(|mut r| Ok(PutRec { id: r.id, vectors: prepare_vectors(schema, &mut r)?, metadata: r.metadata }))
            .collect()
    }

    /// Insert new records: all or nothing, durable (fsynced) when this returns.
    /// Fails without writing anything on a duplicate id (in the batch or already
    /// stored), a wrong dimension, NaN/inf, an unknown or missing vector field.
    pub fn insert(&self, records: Vec<Record>) -> Result<()> {
        self.check_alive()?;
        let recs = self.prepare(records)?;
        let mut seen = HashSet::with_capacity(recs.len());
        if let Some(r) = recs.iter().find(|r| !seen.insert(r.id)) {
            return Err(Error::DuplicateId(r.id));
        }
        if recs.is_empty() {
            return Ok(());
        }
        self.submit(Op::Insert(recs)).map(|_| ())
    }

    /// Insert or replace records (all or nothing, durable when this returns);
    /// within one batch a later record with the same id wins.
    pub fn upsert(&self, records: Vec<Record>) -> Result<()> {
        self.check_alive()?;
        let recs = self.prepare(records)?;
        if recs.is_empty() {
            return Ok(());
        }
        self.submit(Op::Upsert(recs)).map(|_| ())
    }

    /// Delete ids (durable when this returns); returns how many existed.
    pub fn delete(&self, ids: &[u64]) -> Result<usize> {
        self.check_alive()?;
        if ids.is_empty() {
            return Ok(0);
        }
        self.submit(Op::Delete(ids.to_vec()))
    }

    /// Group commit: queue `op`; the first waiting writer commits everything queued.
    pub(super) fn submit(&self, op: Op) -> Result<usize> {
        if self.is_read_only() {
            return Err(Error::ReadOnly(self.name.clone()));
        }
        let ticket = Arc::new(Ticket { op: Mutex::new(Some(op)), result: Mutex::new(None) });
        let mut q = self.queue.lock();
        q.pending.push(ticket.clone());
        loop {
            if let Some(r) = ticket.result.lock().take() {
                return r;
            }
            if !q.leader {
                q.leader = true;
                let batch = std::mem::take(&mut q.pending);
                drop(q);
                let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.commit_group(&batch)));
                if run.is_err() {
                    // An index panicked mid-apply: the WAL is intact but memory may be half
                    // updated, so refuse further writes (reopening recovers) and wake everyone.
                    let why = "internal panic while applying a write".to_string();
                    if let Ok(mut w) = self.writer() {
                        w.poisoned = Some(why.clone());
                    }
                    for t in &batch {
                        let mut r = t.result.lock();
                        if r.is_none() {
                            *r = Some(Err(poisoned_error(&self.name, &why)));
                        }
                    }
                }
                q = self.queue.lock();
                q.leader = false;
                self.cv.notify_all();
                continue;
            }
            self.cv.wait(&mut q);
        }
    }

    pub(super) fn commit_group(&self, batch: &[Arc<Ticket>]) {
        let finish = |t: &Ticket, r: Result<usize>| *t.result.lock() = Some(r);
        let mut w = match self.writer() {
            Ok(w) => w,
            Err(e) => {
                let shared = Arc::new(e);
                batch.iter().for_each(|t| finish(t, Err(Error::Shared(shared.clone()))));
                return;
            }
        };
        if self.dropped.load(Ordering::SeqCst) {
            batch.iter().for_each(|t| finish(t, Err(Error::UnknownCollection(self.name.clone()))));
            return;
        }
        if let Some(why) = &w.poisoned {
            let why = why.clone();
            batch.iter().for_each(|t| finish(t, Err(poisoned_error(&self.name, &why))));
            return;
        }
        let schema = self.schema();
        // Validate against the state plus the effects of earlier operations in this group.
        let mut accepted: Vec<(usize, WalOp, usize)> = Vec::new();
        {
            let st = self.state.read();
            let mut overlay: HashMap<u64, bool> = HashMap::new();
            for (i, t) in batch.iter().enumerate() {
                let Some(op) = t.op.lock().take() else {
                    continue;
                };
                let present = |overlay: &HashMap<u64, bool>, id: u64| {
                    overlay.get(&id).copied().unwrap_or_else(|| st.contains(id))
                };
                match op {
                    Op::Insert(recs) => {
                        if let Some(r) = recs.iter().find(|r| present(&overlay, r.id)) {
                            finish(t, Err(Error::DuplicateId(r.id)));
                            continue;
                        }
                        recs.iter().for_each(|r| {
                            overlay.insert(r.id, true);
                        });
                        let n = recs.len();
                        accepted.push((i, WalOp::Put(recs), n));
                    }
                    Op::Upsert(recs) => {
                        recs.iter().for_each(|r| {
                            overlay.insert(r.id, true);
                        });
                        let n = recs.len();
                        accepted.push((i, WalOp::Put(recs), n));
                    }
                    Op::Delete(ids) => {
                        let mut seen = HashSet::new();
                        let live: Vec<u64> =
                            ids.into_iter().filter(|&id| seen.insert(id) && present(&overlay, id)).collect();
                        if live.is_empty() {
                            finish(t, Ok(0));
                            continue;
                        }
                        live.iter().for_each(|&id| {
                            overlay.insert(id, false);
                        });
                        let n = live.len();
                        accepted.push((i, WalOp::Delete(live), n));
                    }
                }
            }
        }
        if accepted.is_empty() {
            return;
        }
        let mut payloads = Vec::with_capacity(accepted.len());
        let mut ok = Vec::with_capacity(accepted.len());
        for (i, op, n) in accepted {
            match op.encode() {
                Ok(p) => {
                    payloads.push(p);
                    ok.push((i, op, n));
                }
                Err(e) => finish(&batch[i], Err(e)),
            }
        }
        if let Err(e) = w.wal.append(&payloads).and_then(|_| w.wal.sync()) {
            let why = e.to_string();
            tracing::error!(collection = %self.name, error = %why, "WAL write failed; collection is now read-only");
            w.poisoned = Some(why);
            let shared = Arc::new(e);
            for (i, _, _) in &ok {
                finish(&batch[*i], Err(Error::Shared(shared.clone())));
            }
            return;
        }
        {
            let mut st = self.state.write();
            for (i, op, n) in ok {
                match op {
                    WalOp::Put(recs) => st.put(recs, schema, true),
                    WalOp::Delete(ids) => {
                        st.delete(&ids, true);
                    }
                }
                finish(&batch[i], Ok(n));
            }
            if st.indexes.iter().any(|fi| !fi.ready) {
                st.retry_unready(schema);
            }
        }
        self.start_due_builds();
        if w.wal.len() >= CHECKPOINT_BYTES {
            if let Err(e) = self.checkpoint_locked(&mut w) {
                tracing::error!(collection = %self.name, error = %e, "checkpoint failed");
            }
        }
    }
}
