//! The log writer thread: it writes the WAL, the vote file and the purge
//! marker after start-up, in the order the Raft core asked for them.
//!
//! One thread, one FIFO queue. That single ordering point is what guarantees
//! that vote and log writes are never reordered (openraft's IO-ordering rule).
//!
//! One exception keeps that order: a follower's append (or commit hint) may be
//! written, and fsynced, on the caller's thread when nothing is queued ahead
//! of it and the thread is idle ([`SharedWriter::try_append_inline`]). A follower's Raft core
//! waits for that fsync before it answers the leader anyway, and handing the
//! append to this thread and back costs two thread wake-ups per replication
//! round, the largest cost a follower has after the fsync itself (issue 5).
//! The leader never does this: its core must keep shipping entries to the
//! followers while its own fsync runs.
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
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, TryRecvError};
use std::sync::{Arc, Mutex, MutexGuard};
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

/// The writer, shared by its thread and the log store handle, with what
/// decides whether a command may skip the thread.
pub(super) struct SharedWriter {
    writer: Mutex<Writer>,
    /// Commands sent to the thread that it has not finished.
    ///
    /// Invariant: only the Raft core sends commands, one call at a time, so
    /// this cannot grow while the core is inside a log store call; zero there
    /// means nothing is queued ahead of the command being made.
    queued: AtomicUsize,
    /// Set while this node is a follower or learner (see the module docs).
    inline_allowed: AtomicBool,
}

impl SharedWriter {
    pub fn new(writer: Writer) -> Self {
        SharedWriter { writer: Mutex::new(writer), queued: AtomicUsize::new(0), inline_allowed: AtomicBool::new(false) }
    }

    /// Allows or forbids appends and hints on the caller's thread.
    pub fn set_inline_allowed(&self, allowed: bool) {
        self.inline_allowed.store(allowed, Ordering::Relaxed);
    }

    /// Counts a command about to be sent to the thread.
    pub fn queued(&self) {
        self.queued.fetch_add(1, Ordering::AcqRel);
    }

    /// True while the thread has commands to finish: a command sent now
    /// does not wake it.
    pub fn is_busy(&self) -> bool {
        self.queued.load(Ordering::Acquire) != 0
    }

    /// Uncounts a command that never reached the thread.
    pub fn not_queued(&self) {
        self.queued.fetch_sub(1, Ordering::AcqRel);
    }

    /// The writer, if a command may run on the caller's thread now without
    /// reordering IO: inline commands are allowed, nothing is queued for the
    /// thread, the thread is idle (it holds the lock while it works) and the
    /// disk is not full (the thread's retry loop must not run on the Raft
    /// core's thread).
    fn inline_writer(&self) -> Option<MutexGuard<'_, Writer>> {
        if !self.inline_allowed.load(Ordering::Relaxed) || self.queued.load(Ordering::Acquire) != 0 {
            return None;
        }
        let writer = self.writer.try_lock().ok()?;
        (!writer.status.disk_full.load(Ordering::Relaxed)).then_some(writer)
    }

    /// Writes and fsyncs `records` on this thread, then fires `callback`, if
    /// [`Self::inline_writer`] allows. Otherwise, or if the disk turns out to
    /// be full, hands both back for the thread.
    pub fn try_append_inline(
        &self,
        records: Records,
        callback: IOFlushed<TypeConfig>,
    ) -> Result<(), (Records, IOFlushed<TypeConfig>)> {
        let Some(mut writer) = self.inline_writer() else {
            return Err((records, callback));
        };
        let result = writer.append_durably(std::iter::once(&records));
        if result.as_ref().is_err_and(is_disk_full) {
            return Err((records, callback));
        }
        if let Err(e) = &result {
            tracing::error!(error = %e, "log write failed");
        }
        writer.count_sync(records.len());
        drop(writer);
        callback.io_completed(result);
        Ok(())
    }

    /// Writes a commit hint on this thread if [`Self::inline_writer`] allows;
    /// otherwise hands it back for the thread.
    pub fn try_hint_inline(&self, payload: Vec<u8>) -> Result<(), Vec<u8>> {
        match self.inline_writer() {
            Some(mut writer) => {
                writer.write_hint(&mut Some(payload));
                Ok(())
            }
            None => Err(payload),
        }
    }

    /// Runs the writer thread until every sender is dropped.
    pub fn run(self: Arc<Self>, rx: Receiver<WalCmd>) {
        let mut pending: PendingAppends = Vec::new();
        let mut newest_hint: Option<Vec<u8>> = None;
        'rounds: while let Ok(first) = rx.recv() {
            let mut this = self.lock_writer();
            let mut taken = 0;
            let mut next = Some(first);
            while let Some(cmd) = next.take() {
                taken += 1;
                match cmd {
                    WalCmd::Append { records, callback } => pending.push((records, callback)),
                    WalCmd::SaveCommitted { payload } => newest_hint = Some(payload),
                    other => {
                        // Everything queued before a command is on disk when
                        // that command is acknowledged, hints included.
                        self.finish(this, &mut pending, &mut newest_hint, Some(other), std::mem::take(&mut taken));
                        // Locked again only for more work: a caller just told
                        // may then run its next command inline at once.
                        match rx.try_recv() {
                            Ok(cmd) => {
                                this = self.lock_writer();
                                next = Some(cmd);
                                continue;
                            }
                            Err(TryRecvError::Empty) | Err(TryRecvError::Disconnected) => continue 'rounds,
                        }
                    }
                }
                next = match rx.try_recv() {
                    Ok(cmd) => Some(cmd),
                    Err(TryRecvError::Empty) | Err(TryRecvError::Disconnected) => None,
                };
            }
            self.finish(this, &mut pending, &mut newest_hint, None, taken);
        }
        tracing::debug!("log writer stopped");
    }

    /// Makes the pending appends durable, writes the newest hint, then runs
    /// `cmd` (a truncate, purge or vote) if any; uncounts the `taken`
    /// commands this covers, unlocks, and only then tells their callers.
    fn finish(
        &self,
        mut writer: MutexGuard<'_, Writer>,
        pending: &mut PendingAppends,
        newest_hint: &mut Option<Vec<u8>>,
        cmd: Option<WalCmd>,
        taken: usize,
    ) {
        let appended = flush_appends(&mut writer, pending);
        writer.write_hint(newest_hint);
        let done = cmd.map_or(Completion::Nothing, |cmd| writer.handle(cmd));
        self.finished(taken);
        // Unlocked while the callers hear: the next command may run inline.
        drop(writer);
        appended.notify();
        done.notify();
    }

    fn lock_writer(&self) -> MutexGuard<'_, Writer> {
        // Poisoned: a panic mid-write; the WAL's state is unknown.
        self.writer.lock().expect("log writer state poisoned")
    }

    /// Uncounts `n` commands the thread has finished. Called under the lock
    /// and before their callers hear of it, so that a caller who has heard
    /// finds the count without them and the lock free: its next command may
    /// run inline.
    fn finished(&self, n: usize) {
        self.queued.fetch_sub(n, Ordering::AcqRel);
    }
}

/// The callers to tell that their commands are done, and the outcome.
enum Completion {
    Nothing,
    Appends(Vec<IOFlushed<TypeConfig>>, io::Result<()>),
    Done(oneshot::Sender<io::Result<()>>, io::Result<()>),
}

impl Completion {
    fn notify(self) {
        match self {
            Completion::Nothing => {}
            Completion::Appends(callbacks, result) => {
                for callback in callbacks {
                    let r = match &result {
                        Ok(()) => Ok(()),
                        Err(e) => Err(io::Error::new(e.kind(), e.to_string())),
                    };
                    callback.io_completed(r);
                }
            }
            Completion::Done(done, result) => {
                let _ = done.send(result);
            }
        }
    }
}

/// Writes every pending append and fsyncs once; the callbacks are returned
/// for the caller to fire.
fn flush_appends(writer: &mut Writer, pending: &mut PendingAppends) -> Completion {
    if pending.is_empty() {
        return Completion::Nothing;
    }
    let batch = std::mem::take(pending);
    let result = writer.retry_on_full(|w| w.append_durably(batch.iter().map(|(records, _)| records)));
    writer.count_sync(batch.iter().map(|(r, _)| r.len()).sum());
    Completion::Appends(batch.into_iter().map(|(_, callback)| callback).collect(), result)
}

impl Writer {
    /// Writes the newest queued commit hint, if any; a failure is only a lost hint.
    fn write_hint(&mut self, newest_hint: &mut Option<Vec<u8>>) {
        if let Some(payload) = newest_hint.take() {
            if let Err(e) = self.commit_hint.write(&payload) {
                tracing::warn!(error = %e, "could not record the commit index hint");
            }
        }
    }

    /// Runs a truncate, purge or vote; its caller is returned, to be told.
    fn handle(&mut self, cmd: WalCmd) -> Completion {
        let (done, result) = match cmd {
            WalCmd::Append { .. } | WalCmd::SaveCommitted { .. } => unreachable!("batched by run()"),
            WalCmd::Truncate { from, done } => (done, self.retry_on_full(|w| w.wal.truncate_from(from))),
            WalCmd::Purge { upto, marker, done } => {
                let path = self.purged_path.clone();
                let r = self.retry_on_full(|w| {
                    write_atomic(&path, &marker)?;
                    w.wal.purge_upto(upto)
                });
                (done, r)
            }
            WalCmd::SaveVote { payload, done } => {
                let path = self.vote_path.clone();
                (done, self.retry_on_full(|_| write_atomic(&path, &payload)))
            }
        };
        self.status.disk_bytes.store(self.wal.disk_bytes(), Ordering::Relaxed);
        Completion::Done(done, result)
    }

    /// One attempt to write `batch` and fsync it. On a full disk, what the
    /// attempt wrote is cut back, so that a retry starts clean.
    fn append_durably<'a>(&mut self, batch: impl Iterator<Item = &'a Records> + Clone) -> io::Result<()> {
        let first = batch.clone().find_map(|r| r.first().map(|(i, _)| *i));
        let attempt = (|| {
            for records in batch {
                self.wal.append(records)?;
            }
            self.wal.sync()
        })();
        if let (Err(e), Some(first)) = (&attempt, first) {
            if is_disk_full(e) {
                self.wal.rollback_from(first)?;
            }
        }
        attempt
    }

    /// Updates the counters after a sync of `entries` entries.
    fn count_sync(&self, entries: usize) {
        self.status.fsyncs.fetch_add(1, Ordering::Relaxed);
        self.status.entries_synced.fetch_add(entries as u64, Ordering::Relaxed);
        self.status.disk_bytes.store(self.wal.disk_bytes(), Ordering::Relaxed);
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
