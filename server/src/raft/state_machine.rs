//! The replicated state machine: applies committed [`Operation`]s to the
//! in-memory [`Store`] in log order, and builds / installs snapshots.
//!
//! Invariant: `last_applied` and the store change together under one write
//! lock, so a reader that sees `last_applied >= i` also sees the effect of
//! every entry up to `i` (this is what makes ReadIndex reads linearizable).
//!
//! [`Operation`]: crate::store::Operation

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LockResult, Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard, TryLockError, TryLockResult};
use std::time::Instant;

use futures::{Stream, StreamExt};
use openraft::storage::{EntryResponder, RaftStateMachine};
use openraft::{EntryPayload, OptionalSend, RaftSnapshotBuilder};

use super::snapshot::{forked, read_meta, read_snapshot, SnapshotDir, SnapshotFile};
use super::{LogId, SnapshotMeta, StoredMembership, TypeConfig};
use crate::resp::Frame;
use crate::store::Store;

/// The state a snapshot captures.
#[derive(Debug, Default)]
pub struct SmData {
    /// The key space.
    pub store: Store,
    /// Last log entry applied to `store`.
    pub last_applied: Option<LogId>,
    /// Last membership config applied.
    pub membership: StoredMembership,
}

/// Snapshot counters for `/metrics`.
#[derive(Debug, Default)]
pub struct SnapshotStats {
    /// Snapshots built by this node.
    pub built: AtomicU64,
    /// Snapshots installed from a leader.
    pub installed: AtomicU64,
    /// Size of the latest snapshot file in bytes.
    pub last_size_bytes: AtomicU64,
    /// Duration of the latest build in milliseconds.
    pub last_build_millis: AtomicU64,
}

#[derive(Debug)]
struct Shared {
    data: RwLock<SmData>,
    snapshots: SnapshotDir,
    current: Mutex<Option<(SnapshotMeta, PathBuf)>>,
    stats: SnapshotStats,
}

/// The state machine handle. Cheap to clone; clones share state.
#[derive(Debug, Clone)]
pub struct StateMachine {
    shared: Arc<Shared>,
}

impl StateMachine {
    /// Opens the state machine, loading the newest snapshot in `dir` if there is one.
    ///
    /// A snapshot that fails its checksum is an error: the log behind it has
    /// been purged, so starting empty would silently lose data.
    pub fn open(dir: &Path) -> io::Result<Self> {
        let snapshots = SnapshotDir::open(dir)?;
        let (data, current) = match snapshots.latest()? {
            Some(path) => {
                let (meta, store) = read_snapshot(&path)
                    .map_err(|e| io::Error::new(e.kind(), format!("snapshot {} is unreadable: {e}", path.display())))?;
                tracing::info!(path = %path.display(), keys = store.len(), last = ?meta.last_log_id, "loaded snapshot");
                let data = SmData { store, last_applied: meta.last_log_id, membership: meta.last_membership.clone() };
                (data, Some((meta, path)))
            }
            None => (SmData::default(), None),
        };
        Ok(StateMachine {
            shared: Arc::new(Shared {
                data: RwLock::new(data),
                snapshots,
                current: Mutex::new(current),
                stats: SnapshotStats::default(),
            }),
        })
    }

    /// Read access to the applied state.
    ///
    /// Uncontended, this is a plain lock. While a snapshot build holds the
    /// lock and an apply waits for it, a new reader waits too; it then blocks
    /// through `block_in_place`, so that the async runtime keeps running
    /// Raft heartbeats instead of every worker thread sleeping on the lock
    /// (which let followers time out and elect a new leader under load).
    pub fn read(&self) -> RwLockReadGuard<'_, SmData> {
        acquire(self.shared.data.try_read(), || self.shared.data.read())
    }

    /// Write access, with the same care for the runtime as [`StateMachine::read`].
    fn write(&self) -> RwLockWriteGuard<'_, SmData> {
        acquire(self.shared.data.try_write(), || self.shared.data.write())
    }

    /// Snapshot counters.
    pub fn stats(&self) -> &SnapshotStats {
        &self.shared.stats
    }

    /// Metadata of the newest snapshot, if any.
    pub fn current_snapshot_meta(&self) -> Option<SnapshotMeta> {
        self.shared.current.lock().expect("snapshot lock poisoned").as_ref().map(|(m, _)| m.clone())
    }

    /// A path for receiving a snapshot from the network.
    pub fn incoming_snapshot_path(&self) -> PathBuf {
        self.shared.snapshots.temp_path()
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotData = SnapshotFile;
    type SnapshotBuilder = StateMachine;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), io::Error> {
        let d = self.read();
        Ok((d.last_applied, d.membership.clone()))
    }

    async fn apply<Strm>(&mut self, mut entries: Strm) -> Result<(), io::Error>
    where
        Strm: Stream<Item = Result<EntryResponder<TypeConfig>, io::Error>> + Unpin + OptionalSend,
    {
        while let Some(item) = entries.next().await {
            let (entry, responder) = item?;
            let reply = {
                let mut d = self.write();
                d.last_applied = Some(entry.log_id);
                match entry.payload {
                    EntryPayload::Blank => Frame::Null,
                    EntryPayload::Normal(op) => d.store.apply(&op),
                    EntryPayload::Membership(m) => {
                        d.membership = StoredMembership::new(Some(entry.log_id), m);
                        Frame::Null
                    }
                }
            };
            if let Some(responder) = responder {
                responder.send(reply);
            }
        }
        Ok(())
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn install_snapshot(&mut self, meta: &SnapshotMeta, snapshot: SnapshotFile) -> Result<(), io::Error> {
        let this = self.clone();
        let meta = meta.clone();
        tokio::task::spawn_blocking(move || {
            let (file_meta, store) = read_snapshot(&snapshot.path)?;
            if file_meta.last_log_id != meta.last_log_id {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("snapshot file is for {:?}, expected {:?}", file_meta.last_log_id, meta.last_log_id),
                ));
            }
            let path = this.shared.snapshots.promote(&snapshot.path, &meta)?;
            let keys = store.len();
            {
                let mut d = this.write();
                d.store = store;
                d.last_applied = meta.last_log_id;
                d.membership = meta.last_membership.clone();
            }
            this.shared.stats.installed.fetch_add(1, Ordering::Relaxed);
            if let Ok(md) = std::fs::metadata(&path) {
                this.shared.stats.last_size_bytes.store(md.len(), Ordering::Relaxed);
            }
            tracing::info!(last = ?meta.last_log_id, keys, "installed snapshot from leader");
            *this.shared.current.lock().expect("snapshot lock poisoned") = Some((meta, path));
            Ok(())
        })
        .await
        .map_err(io::Error::other)?
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> Result<Option<openraft::type_config::alias::SnapshotOf<TypeConfig, SnapshotFile>>, io::Error> {
        let current = self.shared.current.lock().expect("snapshot lock poisoned").clone();
        match current {
            Some((meta, path)) => {
                let file = SnapshotFile::open(path)?;
                Ok(Some(openraft::Snapshot { meta, snapshot: file }))
            }
            None => Ok(None),
        }
    }
}

/// Stores from this many keys, or whose last snapshot was at least
/// [`FORK_FROM_SNAPSHOT_BYTES`], are written by a forked child. Writing them
/// under the lock would stall applies for long: 1.2–1.4 s for 1M keys on
/// this project's 2-core machines, against ~47 ms for 100,000.
const FORK_FROM_KEYS: usize = 250_000;
/// See [`FORK_FROM_KEYS`]: the same for a few large values.
const FORK_FROM_SNAPSHOT_BYTES: u64 = 32 << 20;

impl RaftSnapshotBuilder<TypeConfig> for StateMachine {
    type SnapshotData = SnapshotFile;

    async fn build_snapshot(
        &mut self,
    ) -> Result<openraft::type_config::alias::SnapshotOf<TypeConfig, SnapshotFile>, io::Error> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || {
            let started = Instant::now();
            // The read lock gives a consistent cut at `last_applied`; applies
            // wait for it. For a large store they wait only until a forked
            // child holds that cut (see `forked`).
            let snapshots = &this.shared.snapshots;
            let unsynced = snapshots.temp_path();
            let d = this.read();
            let meta = SnapshotMeta { last_log_id: d.last_applied, last_membership: d.membership.clone() };
            let large = d.store.len() >= FORK_FROM_KEYS
                || this.shared.stats.last_size_bytes.load(Ordering::Relaxed) >= FORK_FROM_SNAPSHOT_BYTES;
            forked::write_then_release(d, large, |d| snapshots.write(&unsynced, &meta, &d.store)).inspect_err(
                |_| {
                    let _ = std::fs::remove_file(&unsynced);
                },
            )?;
            // The fsync needs no consistent cut: applies resume before it.
            let path = snapshots.finish(&unsynced, &meta)?;
            let file = SnapshotFile::open(path.clone())?;
            let size = file.len()?;
            let stats = &this.shared.stats;
            stats.built.fetch_add(1, Ordering::Relaxed);
            stats.last_size_bytes.store(size, Ordering::Relaxed);
            stats.last_build_millis.store(started.elapsed().as_millis() as u64, Ordering::Relaxed);
            tracing::info!(last = ?meta.last_log_id, size, millis = started.elapsed().as_millis() as u64, "built snapshot");
            *this.shared.current.lock().expect("snapshot lock poisoned") = Some((meta.clone(), path));
            Ok(openraft::Snapshot { meta, snapshot: file })
        })
        .await
        .map_err(io::Error::other)?
    }
}

/// The guard from `attempt`, or, if the lock is held, from `wait` run through
/// `block_in_place`. A poisoned lock means a panic mid-apply: the state can
/// no longer be trusted, so this panics too.
fn acquire<G>(attempt: TryLockResult<G>, wait: impl FnOnce() -> LockResult<G>) -> G {
    const POISONED: &str = "state machine lock poisoned";
    match attempt {
        Ok(guard) => guard,
        Err(TryLockError::WouldBlock) => block_in_place(|| wait().expect(POISONED)),
        Err(TryLockError::Poisoned(_)) => panic!("{POISONED}"),
    }
}

/// Runs `f`, which may block, without stalling the async runtime: on a
/// multi-threaded runtime's worker it hands the worker's other tasks to
/// another thread first; elsewhere (a blocking thread, a test runtime) it
/// just runs `f`.
fn block_in_place<T>(f: impl FnOnce() -> T) -> T {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current() {
        Ok(h) if h.runtime_flavor() == RuntimeFlavor::MultiThread => tokio::task::block_in_place(f),
        _ => f(),
    }
}

/// Reads a received snapshot file's metadata (used by the transport before installing).
pub fn received_snapshot_meta(path: &Path) -> io::Result<SnapshotMeta> {
    read_meta(path)
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::store::{Operation, SetCondition, SetTtl, WriteCmd};

    fn set(i: usize) -> Operation {
        let cmd = WriteCmd::Set {
            key: Bytes::from(format!("key:{i:08}")),
            value: Bytes::from_static(b"v"),
            cond: SetCondition::Always,
            ttl: SetTtl::Clear,
            get: false,
        };
        Operation { at_ms: 1_700_000_000_000, cmd }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_large_store_snapshots_whole_and_reopens() {
        let dir = tempfile::tempdir().unwrap();
        let mut sm = StateMachine::open(dir.path()).unwrap();
        {
            let mut d = sm.write();
            for i in 0..FORK_FROM_KEYS {
                d.store.apply(&set(i));
            }
        }
        let snapshot = sm.build_snapshot().await.unwrap();
        assert_eq!(sm.stats().built.load(Ordering::Relaxed), 1);
        let (_, store) = read_snapshot(&snapshot.snapshot.path).unwrap();
        assert_eq!(store.len(), FORK_FROM_KEYS);
        drop(sm);
        let reopened = StateMachine::open(dir.path()).unwrap();
        assert_eq!(reopened.read().store.len(), FORK_FROM_KEYS);
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .filter(|n| n.to_string_lossy().ends_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }
}
