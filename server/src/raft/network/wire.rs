//! Frames exchanged between peers.

use bytes::{Bytes, BytesMut};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, TransferLeaderRequest, VoteRequest, VoteResponse,
};
use serde::{Deserialize, Serialize};
use tokio_util::codec::LengthDelimitedCodec;

use crate::raft::codec::{decode, encode};
use crate::raft::{NodeId, TypeConfig, Vote};

/// Largest frame either side accepts: a batch of entries or one snapshot chunk.
pub const MAX_FRAME_BYTES: usize = 256 << 20;
/// Snapshot files travel in chunks of this size.
pub const SNAPSHOT_CHUNK_BYTES: usize = 1 << 20;

/// A request and the node it is addressed to.
#[derive(Debug, Serialize, Deserialize)]
pub struct Envelope {
    /// The node id the sender believes it is talking to.
    pub target: NodeId,
    /// The sender's node id.
    pub from: NodeId,
    /// The request.
    pub body: Request,
}

/// Raft RPCs.
#[derive(Debug, Serialize, Deserialize)]
pub enum Request {
    /// Log replication / heartbeat.
    AppendEntries(AppendEntriesRequest<TypeConfig>),
    /// Election.
    Vote(VoteRequest<TypeConfig>),
    /// Pre-vote round (no term bump).
    PreVote(VoteRequest<TypeConfig>),
    /// Leadership hand-over.
    TransferLeader(TransferLeaderRequest<TypeConfig>),
    /// A piece of a snapshot file. `offset == 0` starts a new transfer; `last`
    /// ends it, after which the receiver installs the snapshot.
    SnapshotChunk {
        /// The leader's vote, checked again at install time.
        vote: Vote,
        /// Byte offset of `data` in the snapshot file.
        offset: u64,
        /// File bytes.
        data: Bytes,
        /// True on the final chunk.
        last: bool,
    },
    /// Has the receiver granted a vote above `vote`? Asked by a leader
    /// confirming its leadership for ReadIndex reads (`raft::read_index`);
    /// answered from the receiver's persisted vote, without its Raft core.
    ConfirmLeader {
        /// The asking leader's vote.
        vote: Vote,
    },
}

/// Replies, in the order of requests on a connection.
#[derive(Debug, Serialize, Deserialize)]
pub enum Reply {
    /// Reply to [`Request::AppendEntries`].
    AppendEntries(AppendEntriesResponse<TypeConfig>),
    /// Reply to [`Request::Vote`] and [`Request::PreVote`].
    Vote(VoteResponse<TypeConfig>),
    /// Reply to [`Request::TransferLeader`].
    TransferLeader(Result<(), String>),
    /// A non-final snapshot chunk was stored.
    ChunkStored,
    /// The snapshot was installed.
    Snapshot(SnapshotResponse<TypeConfig>),
    /// The request was refused.
    Error(WireError),
    /// Reply to [`Request::ConfirmLeader`]: true when the receiver's vote is
    /// not above the leader's, so it has granted no newer leader.
    LeaderConfirmed(bool),
}

/// Why a peer refused a request.
#[derive(Debug, Clone, Serialize, Deserialize, thiserror::Error)]
pub enum WireError {
    /// The receiver is a different node than the sender expected.
    #[error("node id mismatch: addressed to {expected}, this is node {actual}")]
    NodeIdMismatch {
        /// Id the sender addressed.
        expected: NodeId,
        /// Id of the receiver.
        actual: NodeId,
    },
    /// The receiver's Raft core failed (shutting down or fatal error).
    #[error("remote raft error: {0}")]
    Raft(String),
    /// The request could not be handled (bad snapshot chunk order, IO error).
    #[error("remote could not handle the request: {0}")]
    Failed(String),
}

/// The frame codec: 4-byte big-endian length prefix.
pub fn codec() -> LengthDelimitedCodec {
    LengthDelimitedCodec::builder().max_frame_length(MAX_FRAME_BYTES).new_codec()
}

/// Encodes a message into a frame body.
pub fn to_frame<T: Serialize>(msg: &T) -> std::io::Result<Bytes> {
    encode(msg).map(Bytes::from).map_err(crate::raft::codec::invalid_data)
}

/// Decodes a frame body.
pub fn from_frame<T: serde::de::DeserializeOwned>(frame: BytesMut) -> std::io::Result<T> {
    decode(&frame).map_err(crate::raft::codec::invalid_data)
}
