//! The switch that closes a connection from outside it: `CLIENT KILL` from
//! another connection throws it, and so does the server's shutdown.
//!
//! A connection's task polls its switch every time it wakes, twice per
//! request, so polling must cost next to nothing. `CancellationToken` locks a
//! mutex on every poll (about 1.6% of the leader's CPU under `SET`, 50
//! clients); this is one atomic load and a waker registration, which is an
//! atomic swap when the task's waker is unchanged.

use std::future::poll_fn;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::Poll;

use futures::task::AtomicWaker;

/// Closes one connection from another. Clones share the switch.
#[derive(Debug, Clone, Default)]
pub struct KillSwitch(Arc<Inner>);

#[derive(Debug, Default)]
struct Inner {
    killed: AtomicBool,
    waker: AtomicWaker,
}

impl KillSwitch {
    /// Throws the switch: [`KillSwitch::killed`] resolves, now or at once
    /// when next awaited.
    pub fn kill(&self) {
        self.0.killed.store(true, Ordering::Release);
        self.0.waker.wake();
    }

    /// Resolves once [`KillSwitch::kill`] has been called.
    pub async fn killed(&self) {
        poll_fn(|cx| {
            if self.0.killed.load(Ordering::Acquire) {
                return Poll::Ready(());
            }
            self.0.waker.register(cx.waker());
            // Invariant: a `kill` between the load above and the registration
            // woke nothing, so look again after registering.
            if self.0.killed.load(Ordering::Acquire) {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::KillSwitch;

    #[tokio::test]
    async fn killed_resolves_after_kill_and_not_before() {
        let switch = KillSwitch::default();
        let waiting = tokio::spawn({
            let switch = switch.clone();
            async move { switch.killed().await }
        });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        switch.kill();
        tokio::time::timeout(Duration::from_secs(10), waiting).await.expect("woken").unwrap();
        // Already thrown: resolves without waiting.
        switch.killed().await;
    }
}
