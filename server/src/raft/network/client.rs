//! The sending side: one [`PeerClient`] per replication target.

use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use openraft::errors::{NetworkError, RPCError, ReplicationClosed, StreamingError, Timeout, Unreachable};
use openraft::network::{RPCOption, RPCTypes, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, TransferLeaderRequest, TransferLeaderResponse,
    VoteRequest, VoteResponse,
};
use openraft::RaftNetworkV2;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio_util::codec::{Framed, LengthDelimitedCodec};

use super::fit::{entries_that_fit, APPEND_BUDGET_BYTES};
use super::pacing::{ReplicationPacer, DEFAULT_SPARE_INTERVAL};
use super::wire::{codec, from_frame, to_frame, Envelope, Reply, Request, WireError, SNAPSHOT_CHUNK_BYTES};
use crate::raft::snapshot::SnapshotFile;
use crate::raft::{NodeAddr, NodeId, TypeConfig, Vote};

/// Time allowed to install a received snapshot (reading it into memory).
const SNAPSHOT_INSTALL_TIMEOUT: Duration = Duration::from_secs(120);

/// Creates a [`PeerClient`] per target; openraft calls it for every replication stream.
#[derive(Debug, Clone)]
pub struct NetworkFactory {
    my_id: NodeId,
    append_budget: usize,
    pacer: Arc<ReplicationPacer>,
}

impl NetworkFactory {
    /// A factory for node `my_id`.
    pub fn new(my_id: NodeId) -> Self {
        NetworkFactory {
            my_id,
            append_budget: APPEND_BUDGET_BYTES,
            pacer: Arc::new(ReplicationPacer::new(my_id, DEFAULT_SPARE_INTERVAL)),
        }
    }

    /// Sends each spare follower at most one round of entries per `interval`
    /// (zero: no pacing); see [`ReplicationPacer`].
    pub fn with_spare_interval(mut self, interval: Duration) -> Self {
        self.pacer = Arc::new(ReplicationPacer::new(self.my_id, interval));
        self
    }

    /// The pacer shared by this factory's clients; it needs the Raft handle
    /// ([`ReplicationPacer::attach`]) once there is one.
    pub fn pacer(&self) -> Arc<ReplicationPacer> {
        self.pacer.clone()
    }

    /// Sets the estimated bytes of entries sent in one AppendEntries frame
    /// (default: half the frame limit). Tests lower it to exercise split sends.
    pub fn with_append_budget(mut self, bytes: usize) -> Self {
        self.append_budget = bytes;
        self
    }
}

impl RaftNetworkFactory<TypeConfig> for NetworkFactory {
    type Network = PeerClient;

    async fn new_client(&mut self, target: NodeId, node: &NodeAddr) -> PeerClient {
        let mut client = PeerClient::new(self.my_id, target, node.raft_addr.clone(), self.append_budget);
        client.pacer = Some(self.pacer.clone());
        client
    }
}

/// Why a call to a peer failed.
#[derive(Debug, thiserror::Error)]
enum CallError {
    #[error("cannot connect to {addr}: {source}")]
    Connect { addr: String, source: io::Error },
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    #[error("connection failed: {0}")]
    Io(#[from] io::Error),
    #[error(transparent)]
    Remote(WireError),
    #[error("unexpected reply: {0}")]
    Unexpected(String),
}

/// A connection to one peer, re-established on demand.
pub struct PeerClient {
    from: NodeId,
    target: NodeId,
    addr: String,
    conn: Option<Framed<TcpStream, LengthDelimitedCodec>>,
    /// A request was sent and its reply not read: the call was dropped
    /// midway, so the next reply on `conn` would answer the wrong request.
    awaiting_reply: bool,
    append_budget: usize,
    /// Paces this client's AppendEntries when its target is a spare follower
    /// (replication clients only).
    pacer: Option<Arc<ReplicationPacer>>,
}

impl PeerClient {
    /// A client from node `from` to node `target` at `addr`; it connects on
    /// its first call.
    pub fn new(from: NodeId, target: NodeId, addr: String, append_budget: usize) -> Self {
        PeerClient { from, target, addr, conn: None, awaiting_reply: false, append_budget, pacer: None }
    }

    /// The address this client connects to.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Asks the target whether it has granted a vote above `vote`
    /// ([`Request::ConfirmLeader`]): `Ok(true)` when it has not.
    pub async fn confirm_leader(&mut self, vote: Vote, ttl: Duration) -> io::Result<bool> {
        match self.call(Request::ConfirmLeader { vote }, ttl).await {
            Ok(Reply::LeaderConfirmed(confirmed)) => Ok(confirmed),
            Ok(other) => Err(io::Error::other(CallError::Unexpected(format!("{other:?}")))),
            Err(e) => Err(io::Error::other(e)),
        }
    }

    async fn call(&mut self, body: Request, ttl: Duration) -> Result<Reply, CallError> {
        let envelope = Envelope { target: self.target, from: self.from, body };
        let frame = to_frame(&envelope)?;
        match tokio::time::timeout(ttl, self.exchange(frame)).await {
            Ok(Ok(Reply::Error(e))) => {
                if matches!(e, WireError::NodeIdMismatch { .. }) {
                    // Whoever answers at that address is not our member.
                    self.conn = None;
                }
                Err(CallError::Remote(e))
            }
            Ok(Ok(reply)) => Ok(reply),
            Ok(Err(e)) => {
                self.conn = None;
                Err(e)
            }
            Err(_) => {
                // The reply may still arrive later; the connection's request /
                // reply pairing is lost, so it cannot be reused.
                self.conn = None;
                Err(CallError::Timeout(ttl))
            }
        }
    }

    async fn exchange(&mut self, frame: Bytes) -> Result<Reply, CallError> {
        if self.awaiting_reply {
            self.conn = None;
            self.awaiting_reply = false;
        }
        if self.conn.is_none() {
            let stream = TcpStream::connect(&self.addr)
                .await
                .map_err(|source| CallError::Connect { addr: self.addr.clone(), source })?;
            stream.set_nodelay(true)?;
            self.conn = Some(Framed::new(stream, codec()));
        }
        let conn = self.conn.as_mut().expect("connected above");
        self.awaiting_reply = true;
        conn.send(frame).await?;
        let reply = match conn.next().await {
            Some(reply) => reply?,
            None => {
                return Err(CallError::Io(io::Error::new(io::ErrorKind::UnexpectedEof, "peer closed the connection")))
            }
        };
        self.awaiting_reply = false;
        Ok(from_frame(reply)?)
    }

    fn rpc_error(&self, action: RPCTypes, e: CallError) -> RPCError<TypeConfig> {
        match e {
            CallError::Connect { .. } | CallError::Remote(WireError::NodeIdMismatch { .. }) => {
                RPCError::Unreachable(Unreachable::new(&e))
            }
            CallError::Timeout(timeout) => {
                RPCError::Timeout(Timeout { action, id: self.from, target: self.target, timeout })
            }
            other => RPCError::Network(NetworkError::new(&other)),
        }
    }

    async fn send_snapshot(
        &mut self,
        vote: Vote,
        snapshot: SnapshotFile,
        ttl: Duration,
    ) -> Result<SnapshotResponse<TypeConfig>, CallError> {
        let mut file = tokio::fs::File::from_std(snapshot.file);
        let total = file.metadata().await?.len();
        let mut offset = 0u64;
        let mut buf = vec![0u8; SNAPSHOT_CHUNK_BYTES];
        loop {
            let mut filled = 0;
            while filled < buf.len() {
                let n = file.read(&mut buf[filled..]).await?;
                if n == 0 {
                    break;
                }
                filled += n;
            }
            let last = offset + filled as u64 >= total;
            let chunk = Request::SnapshotChunk { vote, offset, data: Bytes::copy_from_slice(&buf[..filled]), last };
            let wait = if last { SNAPSHOT_INSTALL_TIMEOUT } else { ttl };
            match self.call(chunk, wait).await? {
                Reply::ChunkStored if !last => offset += filled as u64,
                Reply::Snapshot(resp) if last => return Ok(resp),
                other => return Err(CallError::Unexpected(format!("{other:?}"))),
            }
        }
    }
}

impl RaftNetworkV2<TypeConfig> for PeerClient {
    type SnapshotData = SnapshotFile;

    async fn append_entries(
        &mut self,
        mut rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<TypeConfig>, RPCError<TypeConfig>> {
        // Send what fits in one frame; openraft sends the rest next.
        let fit = entries_that_fit(&rpc.entries, self.append_budget);
        let sent_up_to = if fit < rpc.entries.len() {
            rpc.entries.truncate(fit);
            rpc.entries.last().map(|e| e.log_id)
        } else {
            None
        };
        let last_index = rpc.entries.last().map(|e| e.log_id.index);
        let sent = match (&self.pacer, last_index) {
            (Some(pacer), Some(last_index)) => pacer.wait_turn(self.target, last_index).await,
            _ => Instant::now(),
        };
        let reply = self.call(Request::AppendEntries(rpc), option.soft_ttl()).await;
        if let (Some(pacer), Ok(Reply::AppendEntries(_))) = (&self.pacer, &reply) {
            // Heartbeats prove the follower answers, but only rounds of
            // entries measure the round trip that ranks it.
            pacer.acknowledged(self.target, last_index.map(|_| sent.elapsed()), Instant::now());
        }
        match reply {
            Ok(Reply::AppendEntries(AppendEntriesResponse::Success)) if sent_up_to.is_some() => {
                Ok(AppendEntriesResponse::PartialSuccess(sent_up_to))
            }
            Ok(Reply::AppendEntries(r)) => Ok(r),
            Ok(other) => Err(self.rpc_error(RPCTypes::AppendEntries, CallError::Unexpected(format!("{other:?}")))),
            Err(e) => Err(self.rpc_error(RPCTypes::AppendEntries, e)),
        }
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        match self.call(Request::Vote(rpc), option.soft_ttl()).await {
            Ok(Reply::Vote(r)) => Ok(r),
            Ok(other) => Err(self.rpc_error(RPCTypes::Vote, CallError::Unexpected(format!("{other:?}")))),
            Err(e) => Err(self.rpc_error(RPCTypes::Vote, e)),
        }
    }

    async fn pre_vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        match self.call(Request::PreVote(rpc), option.soft_ttl()).await {
            Ok(Reply::Vote(r)) => Ok(r),
            Ok(other) => Err(self.rpc_error(RPCTypes::Vote, CallError::Unexpected(format!("{other:?}")))),
            Err(e) => Err(self.rpc_error(RPCTypes::Vote, e)),
        }
    }

    async fn full_snapshot(
        &mut self,
        vote: Vote,
        snapshot: openraft::type_config::alias::SnapshotOf<TypeConfig, SnapshotFile>,
        cancel: impl Future<Output = ReplicationClosed> + openraft::OptionalSend + 'static,
        option: RPCOption,
    ) -> Result<SnapshotResponse<TypeConfig>, StreamingError<TypeConfig>> {
        let ttl = option.soft_ttl().max(Duration::from_secs(5));
        let send = self.send_snapshot(vote, snapshot.snapshot, ttl);
        tokio::select! {
            closed = cancel => {
                self.conn = None;
                Err(StreamingError::Closed(closed))
            }
            result = send => match result {
                Ok(r) => Ok(r),
                Err(CallError::Timeout(timeout)) => {
                    Err(StreamingError::Timeout(Timeout { action: RPCTypes::InstallSnapshot, id: self.from, target: self.target, timeout }))
                }
                Err(e @ CallError::Connect { .. }) => Err(StreamingError::Unreachable(Unreachable::new(&e))),
                Err(e) => Err(StreamingError::Network(NetworkError::new(&e))),
            }
        }
    }

    async fn transfer_leader(
        &mut self,
        req: TransferLeaderRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<TransferLeaderResponse<TypeConfig>, RPCError<TypeConfig>> {
        match self.call(Request::TransferLeader(req), option.soft_ttl()).await {
            Ok(Reply::TransferLeader(Ok(()))) => Ok(Ok(())),
            Ok(Reply::TransferLeader(Err(msg))) => {
                Err(self.rpc_error(RPCTypes::TransferLeader, CallError::Unexpected(msg)))
            }
            Ok(other) => Err(self.rpc_error(RPCTypes::TransferLeader, CallError::Unexpected(format!("{other:?}")))),
            Err(e) => Err(self.rpc_error(RPCTypes::TransferLeader, e)),
        }
    }
}
