//! Polling a condition with a deadline: how tests wait, instead of sleeping.

use std::future::Future;
use std::time::Duration;

/// A condition was not reached before its deadline.
#[derive(Debug, thiserror::Error)]
#[error("timed out after {timeout:?} waiting for {what}")]
pub struct TimedOut {
    /// What was awaited.
    pub what: String,
    /// How long.
    pub timeout: Duration,
}

/// Call `f` until it yields `Some`, for at most `timeout`. The pause between
/// attempts grows from 20 ms to 250 ms: fast when things are quick, gentle on
/// a cluster that is electing a leader.
pub async fn poll<T, F, Fut>(timeout: Duration, what: &str, mut f: F) -> Result<T, TimedOut>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    let mut pause = Duration::from_millis(20);
    loop {
        if let Some(v) = f().await {
            return Ok(v);
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(TimedOut { what: what.to_owned(), timeout });
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(250));
    }
}
