//! Batched read barriers: concurrent reads share one ReadIndex round.
//!
//! Without batching every read asks the Raft core for its own linearizer.
//! Here reads register and wait; one task confirms leadership for everyone
//! registered so far, answers them all, and starts the next round for the
//! reads that arrived meanwhile.
//!
//! Invariant (what makes a shared round linearizable): a read is answered
//! only by a round whose barrier was *requested after the read registered*.
//! The task takes the waiting list before it calls `ensure_linearizable`, so
//! every read in a batch registered before that call began; a read that
//! registers while a round is in flight waits for the next one.

use std::sync::{Arc, Mutex};

use openraft::ReadPolicy;
use tokio::sync::{oneshot, Notify};
use tokio_util::sync::CancellationToken;

use super::node::RaftNodeError;
use super::{BatchCounters, Raft};

type Waiter = oneshot::Sender<Result<(), RaftNodeError>>;

/// Reads waiting for the next barrier round.
#[derive(Debug, Default)]
pub(crate) struct ReadBatcher {
    waiting: Mutex<Vec<Waiter>>,
    wake: Notify,
    /// Rounds run, and the reads they answered.
    pub(crate) counters: BatchCounters,
}

impl ReadBatcher {
    /// Waits until a barrier requested after this call has completed.
    pub(crate) async fn barrier(&self) -> Result<(), RaftNodeError> {
        let (tx, rx) = oneshot::channel();
        self.waiting.lock().expect("read batch lock poisoned").push(tx);
        // A stored permit if the task is mid-round: it loops again after it.
        self.wake.notify_one();
        rx.await.unwrap_or_else(|_| Err(RaftNodeError::Fatal("the read barrier task stopped".into())))
    }

    /// Runs rounds until `shutdown`: each round confirms `policy` once for
    /// every read registered before it began.
    pub(crate) async fn run(self: Arc<Self>, raft: Raft, policy: ReadPolicy, shutdown: CancellationToken) {
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = self.wake.notified() => {}
            }
            loop {
                let batch = std::mem::take(&mut *self.waiting.lock().expect("read batch lock poisoned"));
                if batch.is_empty() {
                    break;
                }
                self.counters.record(batch.len());
                let result = raft.ensure_linearizable(policy.clone()).await.map(|_| ()).map_err(RaftNodeError::from);
                for waiter in batch {
                    let _ = waiter.send(result.as_ref().map(|_| ()).map_err(RaftNodeError::duplicate));
                }
            }
        }
        let left = std::mem::take(&mut *self.waiting.lock().expect("read batch lock poisoned"));
        for waiter in left {
            let _ = waiter.send(Err(RaftNodeError::Fatal("node is shutting down".into())));
        }
    }
}
