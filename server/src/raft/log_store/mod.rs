//! The Raft log store: openraft's [`RaftLogStorage`] over a segmented WAL.
//!
//! Entries live in memory (from the purge point to the last index) for fast
//! reads by replication, and on disk in the WAL for durability. `append`
//! updates memory at once and hands the encoded entries to the writer thread,
//! which calls openraft back only after they are fsynced. On a follower, an
//! append with nothing queued ahead of it is written and fsynced on the
//! calling thread instead (see `writer`).
//!
//! Durability rules (openraft's, not optional):
//! - `save_vote` returns only after the vote is on disk.
//! - The append callback fires only after the entries are fsynced.
//! - Vote and log writes are never reordered: both go through the writer's
//!   single FIFO queue, and a follower's append skips that queue only when
//!   it is empty and the writer idle.

mod files;
mod hint;
mod wal;
mod writer;

use std::collections::VecDeque;
use std::fmt::Debug;
use std::io;
use std::ops::{Bound, RangeBounds};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, MutexGuard};

use openraft::storage::{IOFlushed, LogState, RaftLogStorage};
use openraft::{OptionalSend, RaftLogReader};
use tokio::sync::oneshot;

pub use files::{fsync_dir, is_disk_full, read_checked, write_atomic};
pub use writer::WriterStatus;

use self::wal::Wal;
use self::writer::{SharedWriter, WalCmd, Writer};
use super::codec::{decode, encode, invalid_data};
use super::{Entry, LogId, TypeConfig, Vote};

/// WAL segments roll over at this size.
const SEGMENT_MAX_BYTES: u64 = 64 << 20;
/// Bound on queued writer commands; appends beyond it apply back-pressure.
const WRITER_QUEUE: usize = 4096;

/// In-memory view of the log.
#[derive(Debug, Default)]
struct LogMem {
    /// Entries from `first_index` on, consecutive.
    entries: VecDeque<Entry>,
    first_index: u64,
    vote: Option<Vote>,
    committed: Option<LogId>,
    purged: Option<LogId>,
    /// Encoded size of the entries held, for snapshot-by-size decisions.
    bytes: usize,
    entry_bytes: VecDeque<usize>,
}

impl LogMem {
    fn last_log_id(&self) -> Option<LogId> {
        self.entries.back().map(|e| e.log_id).or(self.purged)
    }

    fn next_index(&self) -> u64 {
        self.first_index + self.entries.len() as u64
    }
}

/// The log store handle. Cheap to clone; clones share state.
#[derive(Clone)]
pub struct LogStore {
    mem: Arc<Mutex<LogMem>>,
    writer: Arc<SharedWriter>,
    /// The newest commit hint, held back until the writer thread has work.
    unsent_hint: Arc<Mutex<Option<Vec<u8>>>>,
    tx: SyncSender<WalCmd>,
    status: Arc<WriterStatus>,
}

impl Debug for LogStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogStore").finish_non_exhaustive()
    }
}

/// Paths of the log store's files inside its directory.
struct Paths {
    wal: PathBuf,
    vote: PathBuf,
    purged: PathBuf,
    committed: PathBuf,
}

impl Paths {
    fn new(dir: &Path) -> Self {
        Paths {
            wal: dir.join("wal"),
            vote: dir.join("vote"),
            purged: dir.join("purged"),
            committed: dir.join("committed"),
        }
    }
}

impl LogStore {
    /// Opens the log in `dir`, recovering vote, purge point and entries, and
    /// starts the writer thread.
    pub fn open(dir: &Path) -> io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let paths = Paths::new(dir);
        let vote: Option<Vote> = read_checked(&paths.vote)?.map(|b| decode(&b)).transpose().map_err(invalid_data)?;
        let purged: Option<LogId> =
            read_checked(&paths.purged)?.map(|b| decode(&b)).transpose().map_err(invalid_data)?;
        // The commit hint is not fsynced; a damaged one is only a lost hint.
        let committed: Option<LogId> = hint::read_hint(&paths.committed).and_then(|b| decode(&b).ok());

        let (wal, recovered) = Wal::open(&paths.wal, purged.map(|p| p.index), SEGMENT_MAX_BYTES)?;
        let mut mem =
            LogMem { vote, purged, committed, first_index: purged.map_or(0, |p| p.index + 1), ..LogMem::default() };
        for (index, payload) in recovered.records {
            let entry: Entry = decode(&payload).map_err(invalid_data)?;
            if entry.log_id.index != index {
                return Err(invalid_data(format!("record {index} holds entry {}", entry.log_id.index)));
            }
            if mem.entries.is_empty() {
                mem.first_index = index;
            }
            mem.bytes += payload.len();
            mem.entry_bytes.push_back(payload.len());
            mem.entries.push_back(entry);
        }
        if let (Some(p), Some(first)) = (purged, mem.entries.front()) {
            if first.log_id.index != p.index + 1 {
                return Err(invalid_data(format!(
                    "log starts at {} but the purge point is {}: entries are missing",
                    first.log_id.index, p.index
                )));
            }
        }
        // The commit hint can never be beyond what the log holds.
        if let (Some(c), Some(last)) = (mem.committed, mem.last_log_id()) {
            if c.index > last.index {
                mem.committed = Some(last);
            }
        } else if mem.last_log_id().is_none() {
            mem.committed = None;
        }
        tracing::info!(
            entries = mem.entries.len(),
            first = mem.first_index,
            last = ?mem.last_log_id().map(|l| l.index),
            purged = ?purged.map(|p| p.index),
            torn_tail_bytes = recovered.torn_tail_bytes,
            "raft log recovered"
        );

        let status = Arc::new(WriterStatus::default());
        status.disk_bytes.store(wal.disk_bytes(), Ordering::Relaxed);
        let writer = Writer {
            wal,
            vote_path: paths.vote,
            purged_path: paths.purged,
            commit_hint: hint::CommitHintFile::open(&paths.committed)?,
            status: status.clone(),
        };
        let writer = Arc::new(SharedWriter::new(writer));
        let (tx, rx) = sync_channel(WRITER_QUEUE);
        let thread_side = writer.clone();
        std::thread::Builder::new().name("seshat-log-writer".into()).spawn(move || thread_side.run(rx))?;
        Ok(LogStore { mem: Arc::new(Mutex::new(mem)), writer, unsent_hint: Arc::default(), tx, status })
    }

    /// Tells the store whether this node follows (follower or learner). Only
    /// then may appends be written on the Raft core's thread; the leader's
    /// core must not wait for its own fsync.
    pub fn set_following(&self, following: bool) {
        self.writer.set_inline_allowed(following);
    }

    /// Writer status: disk-full flag and fsync counters.
    pub fn status(&self) -> &Arc<WriterStatus> {
        &self.status
    }

    /// The vote on disk. `save_vote` records a vote here after it is
    /// durable and before it returns; openraft acts on a vote (grants it,
    /// leads or follows with it) only after that.
    pub fn vote(&self) -> Option<Vote> {
        self.lock().vote
    }

    /// Encoded bytes of the entries currently held (not yet purged).
    pub fn held_bytes(&self) -> usize {
        self.lock().bytes
    }

    fn lock(&self) -> MutexGuard<'_, LogMem> {
        // A poisoned lock means a panic mid-update; the in-memory log can no
        // longer be trusted, and continuing could serve a corrupt log.
        self.mem.lock().expect("log store state poisoned")
    }

    async fn request(&self, cmd: impl FnOnce(oneshot::Sender<io::Result<()>>) -> WalCmd) -> io::Result<()> {
        let (done, rx) = oneshot::channel();
        self.send(cmd(done)).await?;
        rx.await.map_err(|_| io::Error::other("log writer thread dropped a request"))?
    }

    /// Sends `cmd` to the writer thread, after the held-back commit hint.
    async fn send(&self, cmd: WalCmd) -> io::Result<()> {
        if let Some(payload) = self.unsent_hint.lock().expect("hint lock poisoned").take() {
            self.send_hint(payload);
        }
        self.writer.queued();
        let tx = self.tx.clone();
        match tx.try_send(cmd) {
            Ok(()) => Ok(()),
            // The queue is bounded; a blocking send must not stall the async runtime.
            Err(TrySendError::Full(cmd)) => tokio::task::spawn_blocking(move || tx.send(cmd))
                .await
                .map_err(io::Error::other)?
                .map_err(|_| writer_stopped()),
            Err(TrySendError::Disconnected(_)) => Err(writer_stopped()),
        }
    }

    /// Queues a commit hint; dropped if the queue is full (it is only a hint).
    fn send_hint(&self, payload: Vec<u8>) {
        self.writer.queued();
        if self.tx.try_send(WalCmd::SaveCommitted { payload }).is_err() {
            self.writer.not_queued();
        }
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, io::Error> {
        let mem = self.lock();
        let start = match range.start_bound() {
            Bound::Included(&s) => s,
            Bound::Excluded(&s) => s + 1,
            Bound::Unbounded => mem.first_index,
        }
        .max(mem.first_index);
        let end = match range.end_bound() {
            Bound::Included(&e) => e + 1,
            Bound::Excluded(&e) => e,
            Bound::Unbounded => mem.next_index(),
        }
        .min(mem.next_index());
        if start >= end {
            return Ok(Vec::new());
        }
        let from = (start - mem.first_index) as usize;
        let to = (end - mem.first_index) as usize;
        Ok(mem.entries.range(from..to).cloned().collect())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, io::Error> {
        Ok(self.lock().vote)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, io::Error> {
        let mem = self.lock();
        Ok(LogState { last_purged_log_id: mem.purged, last_log_id: mem.last_log_id() })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), io::Error> {
        let payload = encode(vote).map_err(invalid_data)?;
        self.request(|done| WalCmd::SaveVote { payload, done }).await?;
        self.lock().vote = Some(*vote);
        Ok(())
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), io::Error> {
        self.lock().committed = committed;
        if let Some(c) = committed {
            let payload = encode(&c).map_err(invalid_data)?;
            let mut held = self.unsent_hint.lock().expect("hint lock poisoned");
            // This hint supersedes one held back.
            *held = None;
            if let Err(payload) = self.writer.try_hint_inline(payload) {
                if self.writer.is_busy() {
                    self.send_hint(payload);
                } else {
                    // Waking the idle thread for a hint alone cost the leader
                    // ~8% of its CPU per SET (issue 5): it rides along with
                    // the next command instead. Until then a restart replays
                    // from an older hint, which is all a lost hint costs.
                    *held = Some(payload);
                }
            }
        }
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, io::Error> {
        Ok(self.lock().committed)
    }

    async fn append<I>(&mut self, entries: I, callback: IOFlushed<TypeConfig>) -> Result<(), io::Error>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut records = Vec::new();
        {
            let mut mem = self.lock();
            for entry in entries {
                let payload = encode(&entry).map_err(invalid_data)?;
                let index = entry.log_id.index;
                if mem.entries.is_empty() {
                    mem.first_index = index;
                } else if index != mem.next_index() {
                    return Err(io::Error::other(format!(
                        "append of {index} when the next index is {}",
                        mem.next_index()
                    )));
                }
                mem.bytes += payload.len();
                mem.entry_bytes.push_back(payload.len());
                mem.entries.push_back(entry);
                records.push((index, payload));
            }
        }
        if records.is_empty() {
            callback.io_completed(Ok(()));
            return Ok(());
        }
        match self.writer.try_append_inline(records, callback) {
            Ok(()) => Ok(()),
            Err((records, callback)) => self.send(WalCmd::Append { records, callback }).await,
        }
    }

    async fn truncate_after(&mut self, last_log_id: Option<LogId>) -> Result<(), io::Error> {
        let from = last_log_id.map_or(0, |l| l.index + 1);
        {
            let mut mem = self.lock();
            while mem.next_index() > from.max(mem.first_index) {
                if mem.entries.pop_back().is_none() {
                    break;
                }
                let b = mem.entry_bytes.pop_back().unwrap_or(0);
                mem.bytes -= b;
            }
        }
        self.request(|done| WalCmd::Truncate { from, done }).await
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), io::Error> {
        {
            let mut mem = self.lock();
            while mem.first_index <= log_id.index {
                if mem.entries.pop_front().is_none() {
                    break;
                }
                let b = mem.entry_bytes.pop_front().unwrap_or(0);
                mem.bytes -= b;
                mem.first_index += 1;
            }
            mem.first_index = mem.first_index.max(log_id.index + 1);
            mem.purged = Some(log_id);
        }
        let marker = encode(&log_id).map_err(invalid_data)?;
        self.request(|done| WalCmd::Purge { upto: log_id.index, marker, done }).await
    }
}

fn writer_stopped() -> io::Error {
    io::Error::other("log writer thread has stopped")
}

#[cfg(test)]
mod tests;
