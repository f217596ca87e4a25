//! Admission of the requests that decode images (search by image, uploads, server-side adds,
//! thumbnails): a bounded number run at once, a bounded number wait, the rest are told to come
//! back later (503 with `Retry-After`) instead of piling up memory and threads.
//!
//! A request first takes a place ([`Admission::enter`], immediate: `workers + queue` places in
//! all, so at most that many request bodies are buffered), then waits for a worker
//! ([`Ticket::work`], at most `max_wait`). The [`Permit`] travels into the blocking task that
//! decodes and is released when that task ends, even when the client has gone away meanwhile,
//! so at most `workers` full-resolution images are decoded at any moment.

use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::error::{ApiError, ApiResult};

/// Seconds a refused client is asked to wait (`Retry-After`).
pub const RETRY_AFTER_S: u64 = 1;

/// The admission gate of image work (see the [module docs](self)).
#[derive(Debug)]
pub struct Admission {
    places: Arc<Semaphore>,
    workers: Arc<Semaphore>,
    max_wait: Duration,
    /// Image work running at once.
    pub worker_count: usize,
    /// Requests that may wait for a worker.
    pub queue_len: usize,
}

/// A place in line for a worker.
#[derive(Debug)]
pub struct Ticket {
    place: OwnedSemaphorePermit,
    workers: Arc<Semaphore>,
    max_wait: Duration,
}

/// The right to decode one image; dropped when the work is done.
#[derive(Debug)]
pub struct Permit {
    _place: OwnedSemaphorePermit,
    _worker: OwnedSemaphorePermit,
}

/// 503 with `Retry-After`.
fn busy(message: String) -> ApiError {
    ApiError::new(StatusCode::SERVICE_UNAVAILABLE, message).with_retry_after(RETRY_AFTER_S)
}

impl Admission {
    /// `workers` images decoded at once (at least 1), `queue` requests waiting, each at most `max_wait`.
    pub fn new(workers: usize, queue: usize, max_wait: Duration) -> Admission {
        let workers = workers.max(1);
        Admission {
            places: Arc::new(Semaphore::new(workers + queue)),
            workers: Arc::new(Semaphore::new(workers)),
            max_wait,
            worker_count: workers,
            queue_len: queue,
        }
    }

    /// A place in line, or 503 at once when every place is taken.
    pub fn enter(&self) -> ApiResult<Ticket> {
        let place = self.places.clone().try_acquire_owned().map_err(|_| {
            busy(format!(
                "the server is busy: {} image requests running and {} waiting; retry in {RETRY_AFTER_S} s",
                self.worker_count, self.queue_len
            ))
        })?;
        Ok(Ticket { place, workers: self.workers.clone(), max_wait: self.max_wait })
    }

    /// A second gate with its own `queue` places sharing this gate's workers (thumbnails wait
    /// in a line of their own, so a page of 24 new thumbnails does not crowd out searches, but
    /// never decode more images at once than the workers).
    pub fn sharing_workers(&self, queue: usize) -> Admission {
        Admission {
            places: Arc::new(Semaphore::new(self.worker_count + queue)),
            workers: self.workers.clone(),
            max_wait: self.max_wait,
            worker_count: self.worker_count,
            queue_len: queue,
        }
    }

    /// Image requests admitted now (running or waiting).
    pub fn in_use(&self) -> usize {
        self.worker_count + self.queue_len - self.places.available_permits()
    }
}

impl Ticket {
    /// Wait for a worker; 503 after the gate's `max_wait`.
    pub async fn work(self) -> ApiResult<Permit> {
        let worker = tokio::time::timeout(self.max_wait, self.workers.acquire_owned()).await.map_err(|_| {
            busy(format!(
                "the server is busy: no image worker free within {:.0} s; retry later",
                self.max_wait.as_secs_f64()
            ))
        })?;
        let worker = worker.map_err(|_| ApiError::internal("admission gate closed"))?;
        Ok(Permit { _place: self.place, _worker: worker })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn places_and_workers_are_bounded_and_released() {
        let gate = Admission::new(1, 1, Duration::from_millis(50));
        let a = gate.enter().unwrap().work().await.unwrap();
        let waiting = gate.enter().unwrap();
        let refused = gate.enter().unwrap_err();
        assert_eq!(refused.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(refused.retry_after, Some(RETRY_AFTER_S));
        assert_eq!(gate.in_use(), 2);
        // the waiting one times out while the worker is held ...
        assert_eq!(waiting.work().await.unwrap_err().status, StatusCode::SERVICE_UNAVAILABLE);
        // ... and gets it once released
        drop(a);
        let b = gate.enter().unwrap().work().await.unwrap();
        drop(b);
        assert_eq!(gate.in_use(), 0);
    }
}
