//! Background graph builds for `Auto` fields (see `auto.rs`): searches stay exact and writes go
//! on while the graph is built, then it is swapped in atomically.
//!
//! 1. Under the state's write lock (briefly): the build registers a [`BuildTrack`] and takes
//!    what it reads: the segments (immutable, mapped, shared), a copy of their dead-row bitsets
//!    and of the memtable's vectors.
//! 2. Without any lock: the graph is trained (8-bit codes) and filled from that copy, in
//!    chunks, checking for cancellation between them.
//! 3. Catch-up: every write since step 1 appended the ids it touched to the track; the build
//!    drains them under a read lock, re-reads those records (present: re-added, gone: removed)
//!    and applies them outside the lock, until few are left.
//! 4. Under the write lock: the last touched ids are applied and the graph replaces the exact
//!    scan in one step, so a search sees either the exact answer or the graph's, never a mix.
//! 5. A writer then checkpoints, which saves the graph's snapshot: the next open loads it. A
//!    crash before that loses nothing (the records are in the WAL and segments) and the next open
//!    starts the build again.
//!
//! The thread holds only a weak handle on the collection between steps: dropping the
//! collection cancels the build.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::auto::{AutoPolicy, Choice, GRAPH_SPEC, GRAPH_SQ8_SPEC};
use super::rows::SegRows;
use super::state::{Buf, FieldIndex, State};
use super::{Access, Collection};
use crate::error::Result;
use crate::index::{build_field_index, VectorIndex};
use crate::schema::VectorField;
use crate::search::IndexBuild;
use crate::segment::Segment;

/// Whether collections of this process start background builds (see [`set_background_builds`]).
static BUILDS_ENABLED: AtomicBool = AtomicBool::new(true);

/// Turn the background index builds of `Auto` fields on or off for this process (on by
/// default). A short-lived reader (one search, a report) turns them off: it searches exactly
/// meanwhile and would exit before a build ended. Builds already running go on.
pub fn set_background_builds(on: bool) {
    BUILDS_ENABLED.store(on, Ordering::SeqCst);
}

/// Rows per `add` call of a background build (the cancellation granularity).
const CHUNK: usize = 8_192;
/// Most vectors used to train 8-bit codes.
const TRAIN_SAMPLE: usize = 100_000;
/// Catch-up rounds outside the lock stop once a round has fewer touched ids than this.
const CATCH_UP_DONE: usize = 1_024;
/// Most catch-up rounds outside the lock (under steady heavy writes the last round runs under
/// the write lock whatever its size).
const CATCH_UP_ROUNDS: usize = 8;

/// A background build in progress, shared between the build thread and the state.
pub(super) struct BuildTrack {
    /// The field being built.
    pub(super) field: usize,
    /// The spec being built.
    pub(super) spec: String,
    /// True when searches on the result re-rank exactly (an 8-bit graph).
    pub(super) rerank: bool,
    /// Records added so far, of `total`.
    pub(super) done: AtomicUsize,
    /// Records in the copy the build started from.
    pub(super) total: usize,
    /// Ids written or deleted since the build took its copy.
    pub(super) touched: Mutex<Vec<u64>>,
    /// Set to stop the build (the field's index was changed, the state reloaded).
    pub(super) cancel: AtomicBool,
    started: Instant,
}

impl BuildTrack {
    /// The progress figures `stats` reports.
    pub(super) fn progress(&self) -> IndexBuild {
        IndexBuild {
            spec: self.spec.clone(),
            done: self.done.load(Ordering::Relaxed),
            total: self.total,
            seconds: self.started.elapsed().as_secs_f64(),
        }
    }
}

/// What a build reads, taken under the write lock when it starts.
struct Source {
    segments: Vec<Arc<Segment>>,
    rows: Vec<SegRows>,
    mem_ids: Vec<u64>,
    mem_vectors: Buf,
}

impl State {
    /// The build running for field `f`, if any.
    pub(super) fn build_of(&self, f: usize) -> Option<&Arc<BuildTrack>> {
        self.builds.iter().find(|b| b.field == f)
    }

    /// Stop and forget the build of field `f` (its index is being replaced).
    pub(super) fn cancel_build(&mut self, f: usize) {
        self.builds.retain(|b| {
            let keep = b.field != f;
            if !keep {
                b.cancel.store(true, Ordering::SeqCst);
            }
            keep
        });
    }

    /// Stop every build (the state is being replaced).
    pub(super) fn cancel_builds(&mut self) {
        for b in self.builds.drain(..) {
            b.cancel.store(true, Ordering::SeqCst);
        }
    }

    /// The graph spec an `Auto` field should get now, if a build should start: when it is served
    /// exactly and has reached its threshold, or by the float graph and has outgrown its budget.
    fn build_due(&self, policy: &AutoPolicy, field: &VectorField, f: usize) -> Option<(String, bool)> {
        let fi = &self.indexes[f];
        if self.build_of(f).is_some() {
            return None;
        }
        let n = self.len();
        if fi.build_failed_at.is_some_and(|at| n < at.saturating_mul(2)) {
            return None;
        }
        let Choice::Graph { spec, rerank } = policy.choose(field, n).0 else { return None };
        let upgrade = fi.stored || (fi.spec == GRAPH_SPEC && spec == GRAPH_SQ8_SPEC);
        upgrade.then_some((spec, rerank))
    }
}

impl Collection {
    /// Start the background builds that `Auto` fields are due (see `auto.rs`); called after
    /// writes, opens, refreshes and index changes. Cheap when none is due.
    pub(crate) fn start_due_builds(&self) {
        if self.dropped.load(Ordering::SeqCst) || !BUILDS_ENABLED.load(Ordering::SeqCst) {
            return;
        }
        let schema = self.schema();
        for (f, field) in schema.fields.iter().enumerate() {
            let Some(Ok(policy)) = AutoPolicy::parse(&field.index) else { continue };
            if self.state.read().build_due(&policy, field, f).is_none() {
                continue;
            }
            let Some(me) = self.me.get().cloned() else { continue };
            let (track, source) = {
                let mut st = self.state.write();
                let Some((spec, rerank)) = st.build_due(&policy, field, f) else { continue };
                let source = take_source(&st, field, f);
                let track = Arc::new(BuildTrack {
                    field: f,
                    spec,
                    rerank,
                    done: AtomicUsize::new(0),
                    total: st.len(),
                    touched: Mutex::new(Vec::new()),
                    cancel: AtomicBool::new(false),
                    started: Instant::now(),
                });
                st.builds.push(track.clone());
                (track, source)
            };
            tracing::info!(collection = %self.name, field = %field.name, spec = %track.spec, records = track.total, "building the index in the background");
            let field = field.clone();
            let running = Running::start(&self.builds_running);
            let spawned = std::thread::Builder::new().name(format!("vecdb-build-{}", field.name)).spawn(move || {
                let _running = running;
                run_build(me, track, source, field)
            });
            if let Err(e) = spawned {
                tracing::warn!(error = %e, "could not start a background index build");
                self.state.write().cancel_build(f);
            }
        }
    }

    /// The background builds in progress (empty when none).
    pub fn index_builds(&self) -> Vec<(String, IndexBuild)> {
        let schema = self.schema();
        let st = self.state.read();
        st.builds.iter().map(|b| (schema.fields[b.field].name.clone(), b.progress())).collect()
    }

    /// Wait until no background index build is running, calling `progress` about twice a second
    /// with the builds in progress. A command that ends after a bulk load calls this so that the
    /// next process opens the saved graph instead of building it again.
    pub fn wait_for_index_builds(&self, mut progress: impl FnMut(&[(String, IndexBuild)])) {
        loop {
            let builds = self.index_builds();
            // A finished build still saves its snapshot (the thread checkpoints) after the swap.
            if builds.is_empty() && self.builds_running.load(Ordering::SeqCst) == 0 {
                return;
            }
            if !builds.is_empty() {
                progress(&builds);
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }
}

/// Removes a progress file when dropped.
struct ProgressGuard(PathBuf);

impl Drop for ProgressGuard {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Counts a build thread as running until it ends (whatever way it ends).
struct Running(Arc<AtomicUsize>);

impl Running {
    fn start(counter: &Arc<AtomicUsize>) -> Running {
        counter.fetch_add(1, Ordering::SeqCst);
        Running(counter.clone())
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The file a writer's build keeps its progress in, for other processes (`db info`).
fn progress_path(dir: &Path, field: &str) -> PathBuf {
    dir.join(format!("index-{field}.building"))
}

/// What the progress file holds.
#[derive(serde::Serialize, serde::Deserialize)]
struct ProgressFile {
    pid: u32,
    build: IndexBuild,
}

/// Write the progress file of `track` (best effort: a report, not data).
fn write_progress(dir: &Path, field: &str, track: &BuildTrack) {
    let file = ProgressFile { pid: std::process::id(), build: track.progress() };
    if let Ok(json) = serde_json::to_vec(&file) {
        let _ = crate::fsutil::atomic_write(&progress_path(dir, field), &json);
    }
}

/// The build another (live) process runs on `field` of the collection in `dir`, from its
/// progress file.
pub(super) fn read_progress(dir: &Path, field: &str) -> Option<IndexBuild> {
    let file: ProgressFile = serde_json::from_slice(&std::fs::read(progress_path(dir, field)).ok()?).ok()?;
    let alive = Path::new(&format!("/proc/{}", file.pid)).exists();
    alive.then_some(file.build)
}

/// Copy what a build of field `f` reads: the segments, their dead rows, the memtable's vectors.
fn take_source(st: &State, field: &VectorField, f: usize) -> Source {
    let mut mem_ids = Vec::with_capacity(st.memtable.len());
    let mut mem_vectors = Buf::new(field.element());
    for (&id, m) in &st.memtable {
        mem_ids.push(id);
        mem_vectors.push(m.vectors[f].as_ref());
    }
    Source { segments: st.segments.clone(), rows: st.rows.clone(), mem_ids, mem_vectors }
}

/// The build thread's body: build, catch up, swap, checkpoint; on failure the field stays
/// exact and the build is tried again once the collection has doubled.
fn run_build(me: Weak<Collection>, track: Arc<BuildTrack>, source: Source, field: VectorField) {
    // A writer shows its progress to other processes; the file goes when the build ends.
    let report_to = me.upgrade().filter(|c| matches!(c.access, Access::Writer(_))).map(|c| c.dir.clone());
    let _progress_file = report_to.as_ref().map(|dir| ProgressGuard(progress_path(dir, &field.name)));
    let report = |t: &BuildTrack| {
        if let Some(dir) = &report_to {
            write_progress(dir, &field.name, t);
        }
    };
    report(&track);
    let built = build(&track, &source, &field, &report);
    drop(source);
    let index = match built {
        Ok(Some(index)) => index,
        Ok(None) => return, // cancelled
        Err(e) => {
            tracing::warn!(field = %field.name, spec = %track.spec, error = %e, "background index build failed; exact search goes on");
            if let Some(c) = me.upgrade() {
                let mut st = c.state.write();
                if is_current(&st, &track) {
                    st.indexes[track.field].build_failed_at = Some(track.total);
                    st.cancel_build(track.field);
                }
            }
            return;
        }
    };
    let Some(swapped) = catch_up_and_swap(&me, &track, index, &field) else { return };
    let Some(c) = me.upgrade() else { return };
    tracing::info!(collection = %c.name, field = %field.name, spec = %track.spec, records = swapped, seconds = track.started.elapsed().as_secs_f64(), "background index build done");
    // The collection may have grown past the memory budget while the graph was built (a bulk
    // load runs at exact-write speed meanwhile and the catch-up absorbs it): the 8-bit graph
    // is then due now.
    c.start_due_builds();
    if matches!(c.access, Access::Writer(_)) {
        if let Err(e) = c.checkpoint_with(0) {
            tracing::warn!(field = %field.name, error = %e, "checkpoint after the index build failed (the index is rebuilt after a restart)");
        }
    }
}

/// True while `track` is still the state's build of its field.
fn is_current(st: &State, track: &Arc<BuildTrack>) -> bool {
    st.build_of(track.field).is_some_and(|b| Arc::ptr_eq(b, track))
}

/// Build the graph from `source`; `Ok(None)` when cancelled.
fn build(
    track: &BuildTrack,
    source: &Source,
    field: &VectorField,
    report: &dyn Fn(&BuildTrack),
) -> Result<Option<Box<dyn VectorIndex>>> {
    let mut reported = Instant::now();
    let mut index = build_field_index(&track.spec, field)?;
    let live_rows = |si: usize| {
        let seg = &source.segments[si];
        (0..seg.rows()).filter(move |&r| !source.rows[si].is_dead(r))
    };
    if !index.is_trained() {
        let stride = track.total.div_ceil(TRAIN_SAMPLE).max(1);
        let mut sample = Buf::new(field.element());
        let mut i = 0usize;
        for (si, seg) in source.segments.iter().enumerate() {
            for r in live_rows(si) {
                if i.is_multiple_of(stride) {
                    sample.push(seg.vector(track.field, r));
                }
                i += 1;
            }
        }
        // Everything may still be in the memtable (a bulk load before its first checkpoint).
        index.train(if i == 0 { source.mem_vectors.as_ref() } else { sample.as_ref() })?;
    }
    let in_place = super::in_place::prefer_in_place(index.as_mut());
    if in_place {
        // A float graph links the segments' rows where they are mapped (no copy).
        let h = index.as_hnsw_mut().expect("an in-place index is a graph");
        for (si, seg) in source.segments.iter().enumerate() {
            let more = super::in_place::add_segment_rows(h, seg, track.field, live_rows(si), CHUNK, |n| {
                track.done.fetch_add(n, Ordering::Relaxed);
                if reported.elapsed() > Duration::from_secs(2) {
                    report(track);
                    reported = Instant::now();
                }
                !track.cancel.load(Ordering::SeqCst)
            })?;
            if !more {
                return Ok(None);
            }
        }
    }
    let (mut ids, mut buf) = (Vec::with_capacity(CHUNK), Buf::new(field.element()));
    let mut flush = |ids: &mut Vec<u64>, buf: &mut Buf, index: &mut Box<dyn VectorIndex>| -> Result<bool> {
        if track.cancel.load(Ordering::SeqCst) {
            return Ok(false);
        }
        if !ids.is_empty() {
            index.add(ids, buf.as_ref())?;
            track.done.fetch_add(ids.len(), Ordering::Relaxed);
            if reported.elapsed() > Duration::from_secs(2) {
                report(track);
                reported = Instant::now();
            }
        }
        ids.clear();
        buf.clear();
        Ok(true)
    };
    // (An in-place graph linked the segments' rows above: only the memtable is left.)
    for (si, seg) in source.segments.iter().enumerate().filter(|_| !in_place) {
        for r in live_rows(si) {
            ids.push(seg.ids()[r]);
            buf.push(seg.vector(track.field, r));
            if ids.len() == CHUNK && !flush(&mut ids, &mut buf, &mut index)? {
                return Ok(None);
            }
        }
    }
    if !flush(&mut ids, &mut buf, &mut index)? {
        return Ok(None);
    }
    if !source.mem_ids.is_empty() {
        index.add(&source.mem_ids, source.mem_vectors.as_ref())?;
        track.done.fetch_add(source.mem_ids.len(), Ordering::Relaxed);
    }
    Ok(Some(index))
}

/// The ids touched since the last drain, sorted and distinct.
fn drain_ids(track: &BuildTrack) -> Vec<u64> {
    let mut touched = std::mem::take(&mut *track.touched.lock());
    touched.sort_unstable();
    touched.dedup();
    touched
}

/// `touched` read back from `st`: (present ids, their vectors of the field, ids no longer live).
fn read_touched(st: &State, touched: &[u64], track: &BuildTrack, field: &VectorField) -> (Vec<u64>, Buf, Vec<u64>) {
    let (mut ids, mut buf, mut gone) = (Vec::new(), Buf::new(field.element()), Vec::new());
    for &id in touched {
        match st.vector(id, track.field) {
            Some(v) => {
                ids.push(id);
                buf.push(v);
            }
            None => gone.push(id),
        }
    }
    (ids, buf, gone)
}

fn apply_touched(index: &mut dyn VectorIndex, ids: &[u64], buf: &Buf, gone: &[u64]) -> Result<()> {
    index.remove(gone)?;
    if !ids.is_empty() {
        index.add(ids, buf.as_ref())?;
    }
    Ok(())
}

/// Apply the writes made during the build, then swap the graph in; the number of records it
/// holds, or `None` when the build was cancelled, failed or the collection is gone.
fn catch_up_and_swap(
    me: &Weak<Collection>,
    track: &Arc<BuildTrack>,
    mut index: Box<dyn VectorIndex>,
    field: &VectorField,
) -> Option<usize> {
    let fail = |c: &Collection, e: crate::error::Error| {
        tracing::warn!(field = %field.name, error = %e, "background index catch-up failed; exact search goes on");
        let mut st = c.state.write();
        if is_current(&st, track) {
            st.indexes[track.field].build_failed_at = Some(track.total);
            st.cancel_build(track.field);
        }
    };
    for _ in 0..CATCH_UP_ROUNDS {
        // Drained in chunks, each read under a brief read lock: the vectors copied at once stay
        // bounded however much a bulk load wrote during the build. (A record rewritten after its
        // chunk was read is touched again and comes back in the next round.)
        let touched = drain_ids(track);
        for chunk in touched.chunks(CHUNK) {
            let c = me.upgrade()?;
            let (ids, buf, gone) = {
                let st = c.state.read();
                if !is_current(&st, track) {
                    return None;
                }
                read_touched(&st, chunk, track, field)
            };
            drop(c);
            if let Err(e) = apply_touched(index.as_mut(), &ids, &buf, &gone) {
                fail(&*me.upgrade()?, e);
                return None;
            }
        }
        if touched.len() < CATCH_UP_DONE {
            break;
        }
    }
    let c = me.upgrade()?;
    let mut st = c.state.write();
    if !is_current(&st, track) {
        return None;
    }
    let touched = drain_ids(track);
    let (ids, buf, gone) = read_touched(&st, &touched, track, field);
    if let Err(e) = apply_touched(index.as_mut(), &ids, &buf, &gone) {
        drop(st);
        fail(&c, e);
        return None;
    }
    let n = st.len();
    if index.len() != n {
        drop(st);
        let why = format!("the built index holds {} records, the collection {n}", index.len());
        fail(&c, crate::error::Error::InvalidArgument(why));
        return None;
    }
    // The build is over: the 8-bit codes a float graph was linked through go (later writes
    // are single records, linked without them).
    if let Some(h) = index.as_hnsw_mut() {
        h.release_build_codes();
    }
    let mut fi = FieldIndex::built(index, &track.spec, true, n, false);
    fi.rerank = track.rerank;
    st.indexes[track.field] = fi;
    st.cancel_build(track.field);
    // The graph read the segments of step 1 in place: point it at today's.
    st.relocate_in_place();
    Some(n)
}
