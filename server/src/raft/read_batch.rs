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
//!
//! Under load a round first waits, for a few yields to the runtime, until
//! about as many reads have registered as the last round answered: without
//! that, rounds start as soon as the first read of the next wave arrives and
//! answer a dozen reads each instead of two dozen ([`ReadBatcher::gather`]).
//!
//! A ReadIndex round is confirmed by a [`LeaderConfirmer`] (a quorum of
//! followers asked directly), and by openraft's `ensure_linearizable` when
//! that cannot decide; lease rounds always go to openraft.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use openraft::ReadPolicy;
use tokio::sync::{oneshot, Notify};
use tokio_util::sync::CancellationToken;

use super::node::RaftNodeError;
use super::read_index::LeaderConfirmer;
use super::{BatchCounters, Raft};

type Waiter = oneshot::Sender<Result<(), RaftNodeError>>;

/// At most this many yields to the runtime while a round gathers its reads.
/// Each is one pass over the runnable tasks and the I/O driver: microseconds.
const MAX_GATHER_YIELDS: usize = 16;

/// Reads waiting for the next barrier round.
#[derive(Debug, Default)]
pub(crate) struct ReadBatcher {
    waiting: Mutex<Vec<Waiter>>,
    wake: Notify,
    /// Rounds run, and the reads they answered.
    pub(crate) counters: BatchCounters,
    /// Rounds decided by openraft's `ensure_linearizable`: every lease
    /// round, and ReadIndex rounds the confirmer could not decide.
    pub(crate) openraft_rounds: AtomicU64,
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

    /// Lets the runtime run its other tasks (connections with reads ready on
    /// their sockets) until as many reads wait as the last round answered,
    /// or [`MAX_GATHER_YIELDS`] yields have passed.
    ///
    /// Under load a round costs about as much as a dozen reads' socket work,
    /// so rounds half full cost throughput. A lone client's read (`last_batch`
    /// of 1) never waits; the first read after a busy spell waits at most
    /// the yields, once.
    async fn gather(&self, last_batch: usize) {
        for _ in 0..MAX_GATHER_YIELDS {
            if self.waiting.lock().expect("read batch lock poisoned").len() >= last_batch {
                return;
            }
            tokio::task::yield_now().await;
        }
    }

    /// Runs rounds until `shutdown`: each round confirms `policy` once for
    /// every read registered before it began, through `confirmer` first when
    /// there is one.
    pub(crate) async fn run(
        self: Arc<Self>,
        raft: Raft,
        policy: ReadPolicy,
        mut confirmer: Option<LeaderConfirmer>,
        shutdown: CancellationToken,
    ) {
        let mut last_batch = 0;
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = self.wake.notified() => {}
            }
            loop {
                self.gather(last_batch).await;
                let batch = std::mem::take(&mut *self.waiting.lock().expect("read batch lock poisoned"));
                if batch.is_empty() {
                    break;
                }
                self.counters.record(batch.len());
                last_batch = batch.len();
                let confirmed = match confirmer.as_mut() {
                    Some(c) => c
                        .confirm()
                        .await
                        .inspect_err(|why| tracing::debug!(%why, "asking openraft to confirm the read round"))
                        .is_ok(),
                    None => false,
                };
                let result = if confirmed {
                    Ok(())
                } else {
                    self.openraft_rounds.fetch_add(1, Ordering::Relaxed);
                    raft.ensure_linearizable(policy.clone()).await.map(|_| ()).map_err(RaftNodeError::from)
                };
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

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use crate::raft::node::ReadBarrier;
    use crate::raft::tests::single_node;

    // One runtime thread, so that "arrives a few yields later" is exact.
    #[tokio::test(flavor = "current_thread")]
    async fn a_staggered_wave_of_reads_shares_the_round_the_last_wave_sized() {
        let dir = tempfile::tempdir().unwrap();
        let node = single_node(dir.path()).await;
        let rounds = || node.read_batching()[0].rounds.load(Ordering::Relaxed);
        let wave = |stagger: bool| {
            let tasks: Vec<_> = (0..8)
                .map(|i| {
                    let node = node.clone();
                    tokio::spawn(async move {
                        for _ in 0..if stagger { i % 4 } else { 0 } {
                            tokio::task::yield_now().await;
                        }
                        node.read_barrier(ReadBarrier::ReadIndex).await
                    })
                })
                .collect();
            async move {
                for t in tasks {
                    t.await.unwrap().unwrap();
                }
            }
        };
        wave(false).await;
        let before = rounds();
        // Reads trickling in over a few yields: without gathering, the first
        // of them would start a round alone.
        wave(true).await;
        assert_eq!(rounds() - before, 1, "eight reads after a round of eight: one round");
        node.shutdown().await;
    }
}
