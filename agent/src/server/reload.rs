//! Files the agent reads again while it runs (the bearer token, the TLS
//! pair). A mounted Secret changes by the kubelet swapping the `..data`
//! symlink, not by a write in place, and inotify on the file itself misses
//! that; so the files are simply read again every few seconds through their
//! paths, which follow whatever the symlinks point at now.

use std::time::Duration;

/// Every `interval`, runs `read` on the blocking pool and hands what it read
/// to `apply`. An error from either goes to `report`, once until it changes
/// or a read succeeds, so a broken file is not logged every few seconds.
pub async fn every<T, R, A, E>(interval: Duration, read: R, mut apply: A, mut report: E)
where
    T: Send + 'static,
    R: Fn() -> Result<T, String> + Clone + Send + 'static,
    A: FnMut(T) -> Result<(), String>,
    E: FnMut(&str),
{
    let mut last_error: Option<String> = None;
    loop {
        tokio::time::sleep(interval).await;
        let outcome = tokio::task::spawn_blocking(read.clone())
            .await
            .unwrap_or_else(|e| Err(format!("reader failed: {e}")))
            .and_then(&mut apply);
        match outcome {
            Ok(()) => last_error = None,
            Err(e) => {
                if last_error.as_deref() != Some(e.as_str()) {
                    report(&e);
                }
                last_error = Some(e);
            }
        }
    }
}
