//! Shutdown signals: Ctrl-C (SIGINT) and SIGTERM (what `docker stop`, systemd and Kubernetes
//! send) both ask for the same clean shutdown.

/// Resolves at the first SIGINT or SIGTERM; returns the signal's name.
pub async fn shutdown_requested() -> &'static str {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => tokio::select! {
                _ = tokio::signal::ctrl_c() => "SIGINT",
                _ = term.recv() => "SIGTERM",
            },
            Err(_) => {
                tokio::signal::ctrl_c().await.ok();
                "SIGINT"
            }
        }
    }
    #[cfg(not(unix))]
    {
        tokio::signal::ctrl_c().await.ok();
        "SIGINT"
    }
}
