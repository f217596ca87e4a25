//! Limits on what one client, and all clients together, can make the server hold: a cap on
//! open connections (accepting waits when it is reached, so sockets queue in the kernel rather
//! than in memory) and a per-client-address request rate (token bucket; 429 with
//! `Retry-After` beyond it).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Instant;

use axum::extract::connect_info::{ConnectInfo, Connected};
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::serve::{IncomingStream, Listener};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::error::ApiError;

/// A TCP listener that holds at most `max` connections open at once.
pub struct CappedListener {
    inner: TcpListener,
    permits: Arc<Semaphore>,
}

impl CappedListener {
    /// Cap `inner` at `max` open connections (at least 1).
    pub fn new(inner: TcpListener, max: usize) -> CappedListener {
        CappedListener { inner, permits: Arc::new(Semaphore::new(max.clamp(1, Semaphore::MAX_PERMITS))) }
    }
}

/// An accepted connection; its place is given back when it closes.
pub struct CappedStream {
    stream: TcpStream,
    _permit: OwnedSemaphorePermit,
}

impl Listener for CappedListener {
    type Io = CappedStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (CappedStream, SocketAddr) {
        let permit = self.permits.clone().acquire_owned().await.expect("the semaphore is never closed");
        loop {
            match self.inner.accept().await {
                Ok((stream, addr)) => {
                    stream.set_nodelay(true).ok();
                    return (CappedStream { stream, _permit: permit }, addr);
                }
                // Out of file descriptors and the like: wait a moment rather than spin (as axum does).
                Err(e) => {
                    tracing::debug!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.inner.local_addr()
    }
}

impl AsyncRead for CappedStream {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for CappedStream {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

/// The client's address, for handlers and middleware (`ConnectInfo<Peer>`).
#[derive(Debug, Clone, Copy)]
pub struct Peer(pub SocketAddr);

impl Connected<IncomingStream<'_, CappedListener>> for Peer {
    fn connect_info(stream: IncomingStream<'_, CappedListener>) -> Peer {
        Peer(*stream.remote_addr())
    }
}

/// Requests per second each client address may send, with bursts up to `burst`.
#[derive(Debug)]
pub struct RateLimiter {
    rate: f64,
    burst: f64,
    buckets: Mutex<HashMap<IpAddr, (f64, Instant)>>,
}

/// Addresses remembered before idle ones are forgotten.
const MAX_TRACKED: usize = 65_536;

impl RateLimiter {
    /// `rate` requests per second per address (0: unlimited), bursts of `burst` (at least 1).
    pub fn new(rate: f64, burst: f64) -> RateLimiter {
        RateLimiter { rate, burst: burst.max(1.0), buckets: Mutex::new(HashMap::new()) }
    }

    /// Take a token for `ip`; `Err(seconds to wait)` when it has none.
    pub fn check(&self, ip: IpAddr, now: Instant) -> Result<(), u64> {
        if self.rate <= 0.0 {
            return Ok(());
        }
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if buckets.len() >= MAX_TRACKED && !buckets.contains_key(&ip) {
            // Forget addresses whose bucket has refilled: they are as if new.
            let (rate, burst) = (self.rate, self.burst);
            buckets.retain(|_, (tokens, at)| *tokens + now.duration_since(*at).as_secs_f64() * rate < burst);
        }
        let (tokens, at) = buckets.entry(ip).or_insert((self.burst, now));
        *tokens = (*tokens + now.duration_since(*at).as_secs_f64() * self.rate).min(self.burst);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            Err(((1.0 - *tokens) / self.rate).ceil().max(1.0) as u64)
        }
    }
}

/// Middleware: 429 with `Retry-After` for a client over its rate (`/health` is never limited).
pub async fn rate_limit(State(limiter): State<Arc<RateLimiter>>, req: Request, next: Next) -> Response {
    let peer = req.extensions().get::<ConnectInfo<Peer>>().map(|c| c.0 .0.ip());
    if let (Some(ip), false) = (peer, req.uri().path() == "/health") {
        if let Err(wait) = limiter.check(ip, Instant::now()) {
            return ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                format!("too many requests from {ip}: the limit is {} per second; retry in {wait} s", limiter.rate),
            )
            .with_retry_after(wait)
            .into_response();
        }
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn buckets_allow_bursts_then_the_rate_per_address() {
        let l = RateLimiter::new(2.0, 3.0);
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        let t = Instant::now();
        for _ in 0..3 {
            l.check(a, t).unwrap();
        }
        assert_eq!(l.check(a, t), Err(1));
        l.check(b, t).unwrap(); // another client is not affected
        l.check(a, t + Duration::from_millis(500)).unwrap(); // one token back after 1/rate
        assert!(l.check(a, t + Duration::from_millis(600)).is_err());
        assert!(RateLimiter::new(0.0, 1.0).check(a, t).is_ok(), "0 means unlimited");
    }
}
