//! Coalesced proposals: concurrent client writes share one log entry.
//!
//! Every write proposed on the leader goes through one task. The task takes
//! whatever has queued up since its last proposal and proposes it as one
//! entry: the write itself when it is alone, a [`WriteCmd::Batch`] when there
//! are several. Fifty clients writing at once then cost a handful of entries
//! per commit round instead of fifty: one encoding, one WAL record, one
//! replication record and one apply call per entry, on every node.
//!
//! Nothing waits for a batch to fill. Writes released by one commit reach the
//! queue from many connections within microseconds; the task yields once
//! after the first of them, so that the others queue up behind it, and then
//! proposes what is there.
//!
//! Invariants:
//! - Order: writes are proposed in the order they were queued, and openraft
//!   appends proposals in the order it receives them. A connection queues its
//!   writes one after another, so they are applied in its order.
//! - Replies: a batch entry applies its writes in order, each at its own
//!   `at_ms`, and replies one array element per write; element `i` goes to
//!   write `i`.
//! - All or nothing: a batch is one entry, so either every write in it
//!   commits or none does; a write is never half-proposed.

use std::sync::Arc;

use openraft::raft::responder::Responder;
use openraft::raft::ClientWriteResult;
use openraft::OptionalSend;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::node::{not_leader, RaftNodeError};
use super::{BatchCounters, LogOp, Raft, TypeConfig};
use crate::resp::Frame;
use crate::store::{split_batch_reply, Operation, WriteCmd};

/// At most this many writes go into one coalesced entry...
const MAX_COALESCED_WRITES: usize = 256;
/// ...and at most about this many bytes of keys and values.
const MAX_COALESCED_BYTES: usize = 1 << 20;

/// The outcome of one write.
pub type WriteResult = Result<Frame, RaftNodeError>;

/// A write handed to the batcher: resolves to its reply once applied.
pub type PendingWrite = oneshot::Receiver<WriteResult>;

struct Proposal {
    op: Operation,
    reply: oneshot::Sender<WriteResult>,
}

/// The queue in front of the proposing task.
#[derive(Debug)]
pub(crate) struct WriteBatcher {
    queue: mpsc::UnboundedSender<Proposal>,
    /// Entries proposed, and the writes they carried.
    pub(crate) counters: Arc<BatchCounters>,
}

impl std::fmt::Debug for Proposal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Proposal").field("op", &self.op.cmd.name()).finish_non_exhaustive()
    }
}

impl WriteBatcher {
    /// Starts the proposing task; it stops at `shutdown`.
    pub(crate) fn start(raft: Raft, shutdown: CancellationToken) -> Self {
        let (queue, rx) = mpsc::unbounded_channel();
        let counters = Arc::new(BatchCounters::default());
        tokio::spawn(run(rx, raft, counters.clone(), shutdown));
        WriteBatcher { queue, counters }
    }

    /// Queues `op` for the next proposal.
    pub(crate) fn submit(&self, op: Operation) -> PendingWrite {
        let (reply, rx) = oneshot::channel();
        if let Err(mpsc::error::SendError(p)) = self.queue.send(Proposal { op, reply }) {
            let _ = p.reply.send(Err(RaftNodeError::Fatal("node is shutting down".into())));
        }
        rx
    }
}

async fn run(
    mut rx: mpsc::UnboundedReceiver<Proposal>,
    raft: Raft,
    counters: Arc<BatchCounters>,
    shutdown: CancellationToken,
) {
    loop {
        let first = tokio::select! {
            _ = shutdown.cancelled() => break,
            next = rx.recv() => match next {
                Some(p) => p,
                None => break,
            },
        };
        // Let the other writes released by the same commit queue up first.
        tokio::task::yield_now().await;
        let mut bytes = first.op.cmd.approx_len();
        let mut batch = vec![first];
        while batch.len() < MAX_COALESCED_WRITES && bytes < MAX_COALESCED_BYTES {
            match rx.try_recv() {
                Ok(p) => {
                    bytes += p.op.cmd.approx_len();
                    batch.push(p);
                }
                Err(_) => break,
            }
        }
        counters.record(batch.iter().map(|p| p.op.cmd.write_count()).sum());
        propose(&raft, batch).await;
    }
    rx.close();
    while let Ok(p) = rx.try_recv() {
        let _ = p.reply.send(Err(RaftNodeError::Fatal("node is shutting down".into())));
    }
}

/// Proposes `batch` as one entry. Replies come from [`WriteResponder`] once
/// the entry is applied, or with the error that stopped it.
async fn propose(raft: &Raft, mut batch: Vec<Proposal>) {
    if let Err(f) = raft.as_leader() {
        // Nothing was appended: the connections may route these writes to the
        // new leader.
        let e = not_leader(f);
        for p in batch {
            let _ = p.reply.send(Err(e.duplicate()));
        }
        return;
    }
    let (op, responder) = if batch.len() == 1 {
        let p = batch.pop().expect("one write");
        (p.op, WriteResponder::single(p.reply))
    } else {
        let at_ms = batch[0].op.at_ms;
        let (ops, replies): (Vec<Operation>, Vec<_>) = batch.into_iter().map(|p| (p.op, p.reply)).unzip();
        (Operation { at_ms, cmd: WriteCmd::Batch { ops } }, WriteResponder::split(replies))
    };
    if let Err(fatal) = raft.write(LogOp::new(op)).responder(responder).await {
        // The responder was dropped with the request: its writes see a closed
        // channel and report an unknown outcome.
        tracing::error!(error = %fatal, "raft core stopped; writes were not proposed");
    }
}

/// Seshat's openraft responder: a callback run with the result once the
/// entry is applied (or failed). Dropping it unanswered closes the waiting
/// writes' channels, which they report as an unknown outcome.
pub struct WriteResponder<T>(Box<dyn FnOnce(T) + Send>);

impl WriteResponder<ClientWriteResult<TypeConfig>> {
    fn single(reply: oneshot::Sender<WriteResult>) -> Self {
        WriteResponder(Box::new(move |result: ClientWriteResult<TypeConfig>| {
            let _ = reply.send(result.map(|r| r.data).map_err(RaftNodeError::from));
        }))
    }

    fn split(replies: Vec<oneshot::Sender<WriteResult>>) -> Self {
        WriteResponder(Box::new(move |result: ClientWriteResult<TypeConfig>| match result {
            Ok(resp) => {
                let frames = split_batch_reply(resp.data, replies.len());
                for (reply, frame) in replies.into_iter().zip(frames) {
                    let _ = reply.send(Ok(frame));
                }
            }
            Err(e) => {
                let e = RaftNodeError::from(e);
                for reply in replies {
                    let _ = reply.send(Err(e.duplicate()));
                }
            }
        }))
    }
}

impl<T: OptionalSend + 'static> Responder<TypeConfig, T> for WriteResponder<T> {
    fn on_complete(self, result: T) {
        (self.0)(result)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;
    use std::time::Duration;

    use bytes::Bytes;

    use crate::raft::tests::{incr, single_node};
    use crate::raft::RaftNode;
    use crate::resp::Frame;
    use crate::store::{Operation, WriteCmd};

    // One runtime thread: every write below is queued before the proposing
    // task runs, so they must share one entry.
    #[tokio::test(flavor = "current_thread")]
    async fn queued_writes_share_one_entry_and_reply_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let node = single_node(dir.path()).await;
        let before = node.write_batching().rounds.load(Ordering::Relaxed);
        let pending: Vec<_> = (0..50).map(|_| node.submit(incr("counter")).unwrap()).collect();
        for (i, p) in pending.into_iter().enumerate() {
            assert_eq!(RaftNode::finish(p).await.unwrap(), Frame::Integer(i as i64 + 1));
        }
        let stats = node.write_batching();
        assert_eq!(stats.rounds.load(Ordering::Relaxed) - before, 1, "50 queued writes, one entry");
        assert!(stats.requests.load(Ordering::Relaxed) >= 50);
        node.shutdown().await;
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_write_error_in_a_batch_is_that_write_s_alone() {
        let dir = tempfile::tempdir().unwrap();
        let node = single_node(dir.path()).await;
        let set = Operation {
            at_ms: 1,
            cmd: WriteCmd::Set {
                key: Bytes::from_static(b"text"),
                value: Bytes::from_static(b"not a number"),
                cond: crate::store::SetCondition::Always,
                ttl: crate::store::SetTtl::Clear,
                get: false,
            },
        };
        let pending = [node.submit(set).unwrap(), node.submit(incr("text")).unwrap(), node.submit(incr("n")).unwrap()];
        let [a, b, c] = pending;
        assert_eq!(RaftNode::finish(a).await.unwrap(), Frame::ok());
        assert!(matches!(RaftNode::finish(b).await.unwrap(), Frame::Error(_)));
        assert_eq!(RaftNode::finish(c).await.unwrap(), Frame::Integer(1));
        node.shutdown().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn fatal_error_resolves_when_the_core_stops() {
        let dir = tempfile::tempdir().unwrap();
        let node = single_node(dir.path()).await;
        let watcher = {
            let node = node.clone();
            tokio::spawn(async move { node.fatal_error().await })
        };
        node.raft().shutdown().await.unwrap();
        let reason = tokio::time::timeout(Duration::from_secs(10), watcher).await.expect("resolved").unwrap();
        assert!(!reason.is_empty());
    }
}
