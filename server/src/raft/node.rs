//! [`RaftNode`]: one member of a Seshat cluster — identity, storage, the
//! openraft core and its transport — behind a small API for the KV layer and
//! the admin endpoints.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use openraft::async_runtime::WatchReceiver;
use openraft::errors::{ClientWriteError, ForwardToLeader, LinearizableReadError, RaftError};
use openraft::{ChangeMembers, Config, RaftMetrics, ReadPolicy, ServerState, SnapshotPolicy};
use rand::Rng;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::log_store::{read_checked, write_atomic, LogStore, WriterStatus};
use super::network::{serve_raft, NetworkFactory, ReplicationPacer, DEFAULT_SPARE_INTERVAL};
use super::read_batch::ReadBatcher;
use super::read_index::LeaderConfirmer;
use super::state_machine::StateMachine;
use super::write_batch::{PendingWrite, WriteBatcher};
use super::{BatchCounters, NodeAddr, NodeId, Raft, TypeConfig};
use crate::resp::Frame;
use crate::store::Operation;

/// Node ids are drawn below 2^53 so that they survive JSON tooling (kubectl,
/// jq, JavaScript) that reads numbers as doubles.
const MAX_GENERATED_ID: u64 = 1 << 53;

/// Settings for [`RaftNode::start`].
#[derive(Debug, Clone)]
pub struct RaftNodeConfig {
    /// Root of this node's data.
    pub data_dir: PathBuf,
    /// Pin the node id (tests, local mode). Must match an existing data dir's id.
    pub node_id: Option<NodeId>,
    /// Addresses advertised to peers and clients.
    pub advertise: NodeAddr,
    /// Leader heartbeat interval.
    pub heartbeat: Duration,
    /// Minimum election timeout; the maximum is 4/3 of it.
    pub election_timeout: Duration,
    /// Build a snapshot after this many log entries since the last one.
    pub snapshot_every_entries: u64,
    /// Log entries kept behind a snapshot (so that slightly lagging followers
    /// catch up from the log instead of a snapshot).
    pub keep_entries_after_snapshot: u64,
    /// Estimated bytes of entries in one AppendEntries frame; `None` for the
    /// transport's default (half its frame limit).
    pub append_budget_bytes: Option<usize>,
    /// A follower the leader's commits do not need gets at most one round of
    /// entries this often; zero sends to every follower as fast as it
    /// answers. See [`ReplicationPacer`].
    pub spare_follower_interval: Duration,
}

impl RaftNodeConfig {
    /// Defaults suited to a LAN: 60 ms heartbeats, 300–400 ms election timeout
    /// (openraft's leader lease equals the maximum, so a dead leader is
    /// replaced in roughly 0.7–0.8 s).
    pub fn new(data_dir: PathBuf, advertise: NodeAddr) -> Self {
        RaftNodeConfig {
            data_dir,
            node_id: None,
            advertise,
            heartbeat: Duration::from_millis(60),
            election_timeout: Duration::from_millis(300),
            snapshot_every_entries: 100_000,
            keep_entries_after_snapshot: 100,
            append_budget_bytes: None,
            spare_follower_interval: DEFAULT_SPARE_INTERVAL,
        }
    }
}

/// Errors of the Raft layer, typed for the KV layer and the HTTP API to map.
#[derive(Debug, thiserror::Error)]
pub enum RaftNodeError {
    /// This node is not the leader; the write was not appended anywhere.
    #[error("not the leader (leader: {leader_id:?})")]
    NotLeader {
        /// The leader, when known.
        leader_id: Option<NodeId>,
        /// Its addresses, when known.
        leader: Option<NodeAddr>,
    },
    /// No quorum answered in time. For writes the outcome is unknown: the
    /// entry may still commit later.
    #[error("no quorum: {0}")]
    NoQuorum(String),
    /// The entry was appended but then discarded on a leader change; it may or
    /// may not commit through the new leader.
    #[error("leader changed before the write was acknowledged; it may or may not have been applied")]
    Indeterminate,
    /// A membership change was refused.
    #[error("membership change refused: {0}")]
    Membership(String),
    /// The cluster is already initialized, or initialization was refused.
    #[error("initialize refused: {0}")]
    Initialize(String),
    /// The Raft core stopped (storage failure or shutdown).
    #[error("raft core stopped: {0}")]
    Fatal(String),
    /// Opening storage or the data dir failed.
    #[error("storage: {0}")]
    Storage(#[from] io::Error),
    /// The data dir belongs to another node id than the one requested.
    #[error("data dir {dir} belongs to node {found}, not {requested}")]
    IdentityMismatch {
        /// The data dir.
        dir: PathBuf,
        /// Id stored there.
        found: NodeId,
        /// Id requested with `--node-id`.
        requested: NodeId,
    },
}

pub(crate) fn not_leader(f: ForwardToLeader<TypeConfig>) -> RaftNodeError {
    RaftNodeError::NotLeader { leader_id: f.leader_id, leader: f.leader_node }
}

impl From<RaftError<TypeConfig, ClientWriteError<TypeConfig>>> for RaftNodeError {
    fn from(e: RaftError<TypeConfig, ClientWriteError<TypeConfig>>) -> Self {
        match e {
            RaftError::APIError(api) => api.into(),
            RaftError::Fatal(f) => RaftNodeError::Fatal(f.to_string()),
        }
    }
}

impl From<ClientWriteError<TypeConfig>> for RaftNodeError {
    fn from(e: ClientWriteError<TypeConfig>) -> Self {
        match e {
            ClientWriteError::ForwardToLeader(f) => not_leader(f),
            ClientWriteError::LogEntryDiscarded(_) => RaftNodeError::Indeterminate,
            ClientWriteError::ChangeMembershipError(m) => RaftNodeError::Membership(m.to_string()),
            ClientWriteError::PreconditionFailed(p) => RaftNodeError::Membership(p.to_string()),
        }
    }
}

impl From<RaftError<TypeConfig, LinearizableReadError<TypeConfig>>> for RaftNodeError {
    fn from(e: RaftError<TypeConfig, LinearizableReadError<TypeConfig>>) -> Self {
        match e {
            RaftError::APIError(LinearizableReadError::ForwardToLeader(f)) => not_leader(f),
            RaftError::APIError(LinearizableReadError::QuorumNotEnough(q)) => RaftNodeError::NoQuorum(q.to_string()),
            RaftError::Fatal(f) => RaftNodeError::Fatal(f.to_string()),
        }
    }
}

impl RaftNodeError {
    /// A copy of a shared outcome (a read-barrier round, a coalesced write
    /// batch) for each request that shared it. The variants those produce are
    /// copied exactly; any other is reported by its message.
    pub(crate) fn duplicate(&self) -> RaftNodeError {
        match self {
            RaftNodeError::NotLeader { leader_id, leader } => {
                RaftNodeError::NotLeader { leader_id: *leader_id, leader: leader.clone() }
            }
            RaftNodeError::NoQuorum(m) => RaftNodeError::NoQuorum(m.clone()),
            RaftNodeError::Indeterminate => RaftNodeError::Indeterminate,
            RaftNodeError::Membership(m) => RaftNodeError::Membership(m.clone()),
            other => RaftNodeError::Fatal(other.to_string()),
        }
    }
}

/// How a read makes sure it observes every write acknowledged before it began.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadBarrier {
    /// ReadIndex: confirm leadership with a quorum round trip, then wait for
    /// the state machine to apply up to the commit index seen at that moment.
    ReadIndex,
    /// Leader lease: skip the round trip while the lease is valid (assumes
    /// bounded clock drift).
    Lease,
}

/// One member of the cluster.
pub struct RaftNode {
    id: NodeId,
    addr: NodeAddr,
    raft: Raft,
    state_machine: StateMachine,
    log: LogStore,
    shutdown: CancellationToken,
    recovered: Arc<AtomicBool>,
    read_index_reads: Arc<ReadBatcher>,
    lease_reads: Arc<ReadBatcher>,
    writes: WriteBatcher,
    pacer: Arc<ReplicationPacer>,
}

/// Marks the node recovered once its state machine has re-applied everything
/// the cluster had committed that this node's durable log holds. Until then
/// the node must not serve local (stale) reads: its state could be older than
/// what it served before it restarted.
async fn watch_recovery(raft: Raft, recovered: Arc<AtomicBool>) {
    match raft.wait_for_recovery(None).await {
        Ok(m) => {
            tracing::info!(applied = ?m.last_applied.map(|l| l.index), "state machine recovered the committed state");
            recovered.store(true, Ordering::SeqCst);
        }
        Err(e) => tracing::debug!(error = %e, "recovery wait ended"),
    }
}

/// Keeps the log store told whether this node follows, so that a follower's
/// appends skip the writer thread (see `log_store::writer`). Only a
/// performance hint: the store keeps IO order whatever the role, so a change
/// of role seen late costs at most a few slow appends.
async fn tell_log_store_the_role(raft: Raft, log: LogStore) {
    let mut server = raft.server_metrics();
    loop {
        let state = server.borrow_watched().state;
        log.set_following(matches!(state, ServerState::Follower | ServerState::Learner));
        if server.changed().await.is_err() {
            return;
        }
    }
}

impl std::fmt::Debug for RaftNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RaftNode").field("id", &self.id).field("addr", &self.addr).finish_non_exhaustive()
    }
}

/// Reads the node id stored in `dir`, or creates one.
pub fn load_or_create_node_id(dir: &Path, pinned: Option<NodeId>) -> Result<NodeId, RaftNodeError> {
    std::fs::create_dir_all(dir)?;
    let path = dir.join("node_id");
    if let Some(bytes) = read_checked(&path)? {
        let text = String::from_utf8_lossy(&bytes);
        let found: NodeId = text
            .trim()
            .parse()
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, format!("{}: not a node id", path.display())))?;
        if let Some(requested) = pinned {
            if requested != found {
                return Err(RaftNodeError::IdentityMismatch { dir: dir.to_path_buf(), found, requested });
            }
        }
        return Ok(found);
    }
    let id = pinned.unwrap_or_else(|| rand::rng().random_range(1..MAX_GENERATED_ID));
    write_atomic(&path, id.to_string().as_bytes())?;
    tracing::info!(node_id = id, dir = %dir.display(), "created node identity");
    Ok(id)
}

impl RaftNode {
    /// Opens storage in `cfg.data_dir`, starts the Raft core, and serves peer
    /// RPCs on `raft_listener`.
    ///
    /// Returns at once; [`RaftNode::is_recovered`] turns true when the state
    /// machine has caught up with what the cluster committed (which needs a
    /// leader, so it cannot be awaited here: a whole cluster restarts together).
    pub async fn start(cfg: RaftNodeConfig, raft_listener: TcpListener) -> Result<Arc<Self>, RaftNodeError> {
        let id = load_or_create_node_id(&cfg.data_dir, cfg.node_id)?;
        let raft_dir = cfg.data_dir.join("raft");
        let log = {
            let dir = raft_dir.join("log");
            tokio::task::spawn_blocking(move || LogStore::open(&dir)).await.map_err(io::Error::other)??
        };
        let state_machine = {
            let dir = raft_dir.join("snapshots");
            tokio::task::spawn_blocking(move || StateMachine::open(&dir)).await.map_err(io::Error::other)??
        };

        let election_min = cfg.election_timeout.as_millis() as u64;
        let config = Config {
            cluster_name: "seshat".to_string(),
            heartbeat_interval: cfg.heartbeat.as_millis() as u64,
            election_timeout_min: election_min,
            // openraft's leader lease equals the maximum: voters refuse a new
            // leader until it expires. A narrow range keeps failover near
            // max + min instead of up to 2 × max, pre-vote keeps split votes rare.
            election_timeout_max: election_min * 4 / 3,
            snapshot_policy: SnapshotPolicy::LogsSinceLast(cfg.snapshot_every_entries),
            max_in_snapshot_log_to_keep: cfg.keep_entries_after_snapshot,
            max_payload_entries: 1024,
            // A node that was cut off must not bump its term and depose a
            // healthy leader when it comes back.
            enable_pre_vote: Some(true),
            // Ship entries to followers as soon as they are handed to the log
            // store, so the leader's fsync overlaps the followers' round trip
            // and fsync instead of preceding it.
            broadcast_submitted_on_append: Some(true),
            // A restarted leader must win an election, and commit an entry of
            // its new term, before it serves reads: it does not know how far
            // the commit index had moved (the commit hint is not fsynced), and
            // resuming leadership in place let it serve reads from before
            // acknowledged writes (found by the kill-all durability test).
            enable_leader_restore: Some(false),
            // A follower whose log tail was damaged (and cut off on restart)
            // may hold fewer entries than it acknowledged. Rather than panic
            // the leader's Raft core, re-replicate from the point the follower
            // really has. Losing fsynced data is outside Raft's fault model; a
            // quorum of intact logs still holds every committed entry.
            allow_log_reversion: Some(true),
            ..Config::default()
        }
        .validate()
        .map_err(|e| RaftNodeError::Fatal(format!("invalid raft config: {e}")))?;

        let mut network = NetworkFactory::new(id).with_spare_interval(cfg.spare_follower_interval);
        if let Some(bytes) = cfg.append_budget_bytes {
            network = network.with_append_budget(bytes);
        }
        let pacer = network.pacer();
        let raft = Raft::new(id, Arc::new(config), network, log.clone(), state_machine.clone())
            .await
            .map_err(|e| RaftNodeError::Fatal(e.to_string()))?;
        pacer.attach(raft.clone());

        let shutdown = CancellationToken::new();
        tokio::spawn(serve_raft(raft_listener, raft.clone(), id, state_machine.clone(), log.clone(), shutdown.clone()));

        let recovered = Arc::new(AtomicBool::new(false));
        tokio::spawn(watch_recovery(raft.clone(), recovered.clone()));
        tokio::spawn(tell_log_store_the_role(raft.clone(), log.clone()));
        let applied = state_machine.read().last_applied;
        tracing::info!(node_id = id, applied = ?applied.map(|l| l.index), addr = ?cfg.advertise, "raft node started");

        let read_index_reads = Arc::new(ReadBatcher::default());
        // Well inside the election timeout: see `read_index`, invariant 3.
        let confirmer =
            LeaderConfirmer::new(id, raft.clone(), log.clone(), state_machine.clone(), cfg.election_timeout / 3);
        tokio::spawn(read_index_reads.clone().run(
            raft.clone(),
            ReadPolicy::ReadIndex,
            Some(confirmer),
            shutdown.clone(),
        ));
        let lease_reads = Arc::new(ReadBatcher::default());
        tokio::spawn(lease_reads.clone().run(raft.clone(), ReadPolicy::LeaseRead, None, shutdown.clone()));
        let writes = WriteBatcher::start(raft.clone(), shutdown.clone());

        Ok(Arc::new(RaftNode {
            id,
            addr: cfg.advertise,
            raft,
            state_machine,
            log,
            shutdown,
            recovered,
            read_index_reads,
            lease_reads,
            writes,
            pacer,
        }))
    }

    /// True once the state machine holds at least everything the cluster had
    /// committed of this node's durable log (see [`RaftNode::start`]).
    pub fn is_recovered(&self) -> bool {
        self.recovered.load(Ordering::SeqCst)
    }

    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.id
    }

    /// This node's advertised addresses.
    pub fn addr(&self) -> &NodeAddr {
        &self.addr
    }

    /// The openraft handle.
    pub fn raft(&self) -> &Raft {
        &self.raft
    }

    /// The applied state.
    pub fn state_machine(&self) -> &StateMachine {
        &self.state_machine
    }

    /// Log writer status (disk-full flag, fsync counters).
    pub fn log_status(&self) -> &Arc<WriterStatus> {
        self.log.status()
    }

    /// Bytes of log held since the last purge.
    pub fn log_held_bytes(&self) -> usize {
        self.log.held_bytes()
    }

    /// Read-barrier rounds decided by openraft's `ensure_linearizable`
    /// rather than by asking a quorum directly (`read_index`).
    pub fn read_rounds_by_openraft(&self) -> u64 {
        [&self.read_index_reads, &self.lease_reads].iter().map(|b| b.openraft_rounds.load(Ordering::Relaxed)).sum()
    }

    /// Read-barrier rounds (ReadIndex and lease) and the reads they answered.
    pub fn read_batching(&self) -> [&BatchCounters; 2] {
        [&self.read_index_reads.counters, &self.lease_reads.counters]
    }

    /// Entries proposed by the write coalescer and the writes they carried.
    pub fn write_batching(&self) -> &BatchCounters {
        &self.writes.counters
    }

    /// The pacer of this node's replication to spare followers (rounds held
    /// back, who is spare).
    pub fn replication_pacer(&self) -> &ReplicationPacer {
        &self.pacer
    }

    /// Latest Raft metrics.
    pub fn metrics(&self) -> RaftMetrics<TypeConfig> {
        self.raft.metrics().borrow_watched().clone()
    }

    /// True while this node is the leader.
    pub fn is_leader(&self) -> bool {
        self.raft.as_leader().is_ok()
    }

    /// The current leader and its addresses, as far as this node knows.
    pub fn leader(&self) -> Option<(NodeId, Option<NodeAddr>)> {
        // Followers ask this for every forwarded command: read the two fields
        // under the watch borrow instead of cloning all the metrics.
        let rx = self.raft.metrics();
        let m = rx.borrow_watched();
        let id = m.current_leader?;
        let addr = m.membership_config.membership().get_node(&id).cloned();
        Some((id, addr))
    }

    /// Current server state (leader, follower, …).
    pub fn server_state(&self) -> ServerState {
        self.raft.metrics().borrow_watched().state
    }

    /// Hands a write to the Raft core without waiting for it to commit. It
    /// may share a log entry with other clients' concurrent writes (see
    /// [`super::write_batch`]).
    ///
    /// Writes submitted in order are appended in that order, which lets a
    /// pipelining client have many writes in flight (group commit) while its
    /// replies still come back in order. `NotLeader` here means nothing was
    /// appended, so the write may be routed to the leader.
    pub fn submit(&self, op: Operation) -> Result<PendingWrite, RaftNodeError> {
        if let Err(f) = self.raft.as_leader() {
            return Err(not_leader(f));
        }
        Ok(self.writes.submit(op))
    }

    /// Waits for a submitted write's reply.
    pub async fn finish(pending: PendingWrite) -> Result<Frame, RaftNodeError> {
        pending.await.unwrap_or(Err(RaftNodeError::Indeterminate))
    }

    /// Proposes a write and waits until it is applied.
    pub async fn propose(&self, op: Operation) -> Result<Frame, RaftNodeError> {
        let pending = self.submit(op)?;
        Self::finish(pending).await
    }

    /// Waits until a read started now would observe every write acknowledged
    /// before now (linearizable), using `barrier`.
    /// Concurrent reads share barrier rounds (see `ReadBatcher`).
    pub async fn read_barrier(&self, barrier: ReadBarrier) -> Result<(), RaftNodeError> {
        match barrier {
            ReadBarrier::ReadIndex => self.read_index_reads.barrier().await,
            ReadBarrier::Lease => self.lease_reads.barrier().await,
        }
    }

    /// Bootstraps a new cluster with `members` (this node alone when empty).
    pub async fn initialize(&self, members: BTreeMap<NodeId, NodeAddr>) -> Result<(), RaftNodeError> {
        let members = if members.is_empty() { BTreeMap::from([(self.id, self.addr.clone())]) } else { members };
        self.raft.initialize(members).await.map_err(|e| RaftNodeError::Initialize(e.to_string()))
    }

    /// Adds (or updates) a learner; with `blocking`, waits for it to catch up.
    pub async fn add_learner(&self, id: NodeId, addr: NodeAddr, blocking: bool) -> Result<u64, RaftNodeError> {
        let resp = self.raft.add_learner(id, addr, blocking).await?;
        Ok(resp.log_id.index)
    }

    /// Replaces the voter set (joint consensus) and, in the same change,
    /// removes the learners in `remove_learners`. Removed voters stay learners
    /// with `retain`.
    pub async fn change_voters(
        &self,
        voters: BTreeSet<NodeId>,
        retain: bool,
        remove_learners: BTreeSet<NodeId>,
    ) -> Result<u64, RaftNodeError> {
        let current = self.metrics().membership_config.clone();
        let learners: BTreeSet<NodeId> = current.membership().learner_ids().collect();
        let remove: BTreeSet<NodeId> =
            remove_learners.into_iter().filter(|id| learners.contains(id) && !voters.contains(id)).collect();
        let change = if remove.is_empty() {
            ChangeMembers::ReplaceAllVoters(voters)
        } else {
            ChangeMembers::Batch(vec![ChangeMembers::ReplaceAllVoters(voters), ChangeMembers::RemoveNodes(remove)])
        };
        let resp = self.raft.change_membership(change, retain).await?;
        Ok(resp.log_id.index)
    }

    /// Asks the leader to hand leadership to `to`.
    pub async fn transfer_leader(&self, to: NodeId) -> Result<(), RaftNodeError> {
        self.raft.trigger().transfer_leader(to).await.map_err(|e| RaftNodeError::Fatal(e.to_string()))
    }

    /// Builds a snapshot now.
    pub async fn snapshot(&self) -> Result<(), RaftNodeError> {
        self.raft.trigger().snapshot().await.map_err(|e| RaftNodeError::Fatal(e.to_string()))
    }

    /// Resolves with the reason once the Raft core has stopped on a fatal
    /// error (storage failure, panic). The process must then exit: a node whose
    /// core is dead would otherwise keep reporting its last role forever.
    pub async fn fatal_error(&self) -> String {
        // Waits on the server-metrics channel, which changes only with role,
        // leader or membership, and closes when the core task ends. The full
        // metrics channel (which carries `running_state`) is re-sent on every
        // commit: a waiter there cost a thread wake-up per write.
        let all = self.raft.metrics();
        let mut server = self.raft.server_metrics();
        loop {
            if let Err(fatal) = &all.borrow_watched().running_state {
                return fatal.to_string();
            }
            if server.changed().await.is_err() {
                if let Err(fatal) = &all.borrow_watched().running_state {
                    return fatal.to_string();
                }
                return "raft core task ended".to_string();
            }
        }
    }

    /// Stops the Raft core and the peer listener.
    pub async fn shutdown(&self) {
        self.shutdown.cancel();
        if let Err(e) = self.raft.shutdown().await {
            tracing::warn!(error = %e, "raft shutdown");
        }
    }
}
