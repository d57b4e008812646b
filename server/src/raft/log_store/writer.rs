//! The log writer thread: the only code that touches the WAL and the vote file
//! after start-up.
//!
//! One thread, one FIFO queue. That single ordering point is what guarantees
//! that vote and log writes are never reordered (openraft's IO-ordering rule).
//!
//! Group commit: the thread drains every command already queued, writes all
//! queued appends, and makes them durable with one `fdatasync` before firing
//! their callbacks. Under load, N concurrent client writes cost one fsync.
//!
//! A full disk is not fatal: the batch is rolled back, `disk_full` is raised
//! (the KV layer turns new writes into errors immediately), and the write is
//! retried until space returns. Any other IO error is reported to openraft,
//! which stops the Raft core: after an fsync failure the page cache can no
//! longer be trusted, so retrying would be unsafe.

use std::io;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, TryRecvError};
use std::sync::Arc;
use std::time::Duration;

use openraft::storage::IOFlushed;
use tokio::sync::oneshot;

use super::files::{is_disk_full, write_atomic};
use super::hint::CommitHintFile;
use super::wal::Wal;
use crate::raft::TypeConfig;

/// How long to wait before retrying a write that failed for lack of space.
const DISK_FULL_RETRY: Duration = Duration::from_millis(250);

/// Encoded `(index, entry)` records of one append call.
type Records = Vec<(u64, Vec<u8>)>;
/// Appends waiting for the next fsync, with their completion callbacks.
type PendingAppends = Vec<(Records, IOFlushed<TypeConfig>)>;

/// A request to the writer thread.
pub(super) enum WalCmd {
    /// Append encoded entries; fire `callback` once they are durable.
    Append { records: Records, callback: IOFlushed<TypeConfig> },
    /// Remove entries with index >= `from`.
    Truncate { from: u64, done: oneshot::Sender<io::Result<()>> },
    /// Record the purge point durably, then drop segments at or below it.
    Purge { upto: u64, marker: Vec<u8>, done: oneshot::Sender<io::Result<()>> },
    /// Persist the vote durably.
    SaveVote { payload: Vec<u8>, done: oneshot::Sender<io::Result<()>> },
    /// Persist the last known commit (a hint; not fsynced; only the newest
    /// of a round of queued hints is written).
    SaveCommitted { payload: Vec<u8> },
}

/// State shared between the writer thread and the async side.
#[derive(Debug, Default)]
pub struct WriterStatus {
    /// Raised while writes fail for lack of disk space.
    pub disk_full: AtomicBool,
    /// Number of fsyncs issued for log appends (group-commit effectiveness).
    pub fsyncs: AtomicU64,
    /// Number of entries made durable.
    pub entries_synced: AtomicU64,
    /// Bytes in WAL segments on disk.
    pub disk_bytes: AtomicU64,
}

pub(super) struct Writer {
    pub wal: Wal,
    pub vote_path: PathBuf,
    pub purged_path: PathBuf,
    pub commit_hint: CommitHintFile,
    pub status: Arc<WriterStatus>,
}

impl Writer {
    /// Runs until every sender is dropped.
    pub fn run(mut self, rx: Receiver<WalCmd>) {
        let mut pending: PendingAppends = Vec::new();
        let mut newest_hint: Option<Vec<u8>> = None;
        while let Ok(first) = rx.recv() {
            let mut next = Some(first);
            while let Some(cmd) = next.take() {
                match cmd {
                    WalCmd::Append { records, callback } => pending.push((records, callback)),
                    WalCmd::SaveCommitted { payload } => newest_hint = Some(payload),
                    other => {
                        // Everything queued before a command is on disk when
                        // that command is acknowledged, hints included.
                        self.flush_appends(&mut pending);
                        self.write_hint(&mut newest_hint);
                        self.handle(other);
                    }
                }
                next = match rx.try_recv() {
                    Ok(cmd) => Some(cmd),
                    Err(TryRecvError::Empty) | Err(TryRecvError::Disconnected) => None,
                };
            }
            self.flush_appends(&mut pending);
            self.write_hint(&mut newest_hint);
        }
        tracing::debug!("log writer stopped");
    }

    /// Writes the newest queued commit hint, if any; a failure is only a lost hint.
    fn write_hint(&mut self, newest_hint: &mut Option<Vec<u8>>) {
        if let Some(payload) = newest_hint.take() {
            if let Err(e) = self.commit_hint.write(&payload) {
                tracing::warn!(error = %e, "could not record the commit index hint");
            }
        }
    }

    fn handle(&mut self, cmd: WalCmd) {
        match cmd {
            WalCmd::Append { .. } | WalCmd::SaveCommitted { .. } => unreachable!("batched by run()"),
            WalCmd::Truncate { from, done } => {
                let _ = done.send(self.retry_on_full(|w| w.wal.truncate_from(from)));
            }
            WalCmd::Purge { upto, marker, done } => {
                let path = self.purged_path.clone();
                let r = self.retry_on_full(|w| {
                    write_atomic(&path, &marker)?;
                    w.wal.purge_upto(upto)
                });
                let _ = done.send(r);
            }
            WalCmd::SaveVote { payload, done } => {
                let path = self.vote_path.clone();
                let _ = done.send(self.retry_on_full(|_| write_atomic(&path, &payload)));
            }
        }
        self.status.disk_bytes.store(self.wal.disk_bytes(), Ordering::Relaxed);
    }

    /// Writes every pending append, fsyncs once, then fires the callbacks.
    fn flush_appends(&mut self, pending: &mut PendingAppends) {
        if pending.is_empty() {
            return;
        }
        let batch = std::mem::take(pending);
        let result = self.retry_on_full(|w| {
            let first = batch.iter().find_map(|(r, _)| r.first().map(|(i, _)| *i));
            let attempt = (|| {
                for (records, _) in &batch {
                    w.wal.append(records)?;
                }
                w.wal.sync()
            })();
            if let (Err(e), Some(first)) = (&attempt, first) {
                if is_disk_full(e) {
                    // Cut back what this batch wrote so the retry starts clean.
                    w.wal.rollback_from(first)?;
                }
            }
            attempt
        });
        let entries: usize = batch.iter().map(|(r, _)| r.len()).sum();
        self.status.fsyncs.fetch_add(1, Ordering::Relaxed);
        self.status.entries_synced.fetch_add(entries as u64, Ordering::Relaxed);
        self.status.disk_bytes.store(self.wal.disk_bytes(), Ordering::Relaxed);
        for (_, callback) in batch {
            let r = match &result {
                Ok(()) => Ok(()),
                Err(e) => Err(io::Error::new(e.kind(), e.to_string())),
            };
            callback.io_completed(r);
        }
    }

    /// Runs `op`, retrying while it fails because the disk is full.
    fn retry_on_full(&mut self, mut op: impl FnMut(&mut Self) -> io::Result<()>) -> io::Result<()> {
        loop {
            match op(self) {
                Err(e) if is_disk_full(&e) => {
                    if !self.status.disk_full.swap(true, Ordering::SeqCst) {
                        tracing::error!(error = %e, "disk full: log writes are paused and client writes are refused until space returns");
                    }
                    std::thread::sleep(DISK_FULL_RETRY);
                }
                other => {
                    if other.is_ok() && self.status.disk_full.swap(false, Ordering::SeqCst) {
                        tracing::warn!("disk space is back: log writes resumed");
                    }
                    if let Err(e) = &other {
                        tracing::error!(error = %e, "log write failed");
                    }
                    return other;
                }
            }
        }
    }
}
