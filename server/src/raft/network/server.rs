//! The receiving side: accepts peer connections on `--raft-addr` and hands
//! each request to the local Raft core.

use std::io;
use std::path::PathBuf;

use futures::{SinkExt, StreamExt};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::codec::Framed;
use tokio_util::sync::CancellationToken;

use super::wire::{codec, from_frame, to_frame, Envelope, Reply, Request, WireError};
use crate::raft::log_store::LogStore;
use crate::raft::read_index::grants_no_newer_leader;
use crate::raft::snapshot::SnapshotFile;
use crate::raft::state_machine::{received_snapshot_meta, StateMachine};
use crate::raft::{NodeId, Raft, Vote};

/// Serves Raft RPCs on `listener` until `shutdown` is cancelled.
pub async fn serve_raft(
    listener: TcpListener,
    raft: Raft,
    my_id: NodeId,
    state_machine: StateMachine,
    log: LogStore,
    shutdown: CancellationToken,
) {
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => return,
            a = listener.accept() => a,
        };
        match accepted {
            Ok((stream, peer)) => {
                let _ = stream.set_nodelay(true);
                let conn = PeerConnection {
                    raft: raft.clone(),
                    my_id,
                    state_machine: state_machine.clone(),
                    log: log.clone(),
                    incoming: None,
                };
                let shutdown = shutdown.clone();
                tokio::spawn(async move {
                    tokio::select! {
                        _ = shutdown.cancelled() => {}
                        r = conn.run(stream) => if let Err(e) = r {
                            tracing::debug!(%peer, error = %e, "raft peer connection closed");
                        }
                    }
                });
            }
            Err(e) => {
                tracing::warn!(error = %e, "accepting a raft connection failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    }
}

/// A snapshot being received.
struct IncomingSnapshot {
    path: PathBuf,
    file: tokio::fs::File,
    received: u64,
}

struct PeerConnection {
    raft: Raft,
    my_id: NodeId,
    state_machine: StateMachine,
    log: LogStore,
    incoming: Option<IncomingSnapshot>,
}

impl PeerConnection {
    async fn run(mut self, stream: TcpStream) -> io::Result<()> {
        let mut framed = Framed::new(stream, codec());
        let result = async {
            while let Some(frame) = framed.next().await {
                let envelope: Envelope = from_frame(frame?)?;
                let reply = if envelope.target != self.my_id {
                    tracing::warn!(
                        expected = envelope.target,
                        actual = self.my_id,
                        from = envelope.from,
                        "refusing raft RPC addressed to another node id"
                    );
                    Reply::Error(WireError::NodeIdMismatch { expected: envelope.target, actual: self.my_id })
                } else {
                    self.handle(envelope.body).await
                };
                framed.send(to_frame(&reply)?).await?;
            }
            Ok(())
        }
        .await;
        self.discard_incoming().await;
        result
    }

    async fn handle(&mut self, req: Request) -> Reply {
        match req {
            Request::AppendEntries(rpc) => match self.raft.append_entries(rpc).await {
                Ok(r) => Reply::AppendEntries(r),
                Err(e) => Reply::Error(WireError::Raft(e.to_string())),
            },
            Request::Vote(rpc) => match self.raft.vote(rpc).await {
                Ok(r) => Reply::Vote(r),
                Err(e) => Reply::Error(WireError::Raft(e.to_string())),
            },
            Request::PreVote(rpc) => match self.raft.pre_vote(rpc).await {
                Ok(r) => Reply::Vote(r),
                Err(e) => Reply::Error(WireError::Raft(e.to_string())),
            },
            Request::TransferLeader(rpc) => match self.raft.handle_transfer_leader(rpc).await {
                Ok(r) => Reply::TransferLeader(r.map_err(|e| e.to_string())),
                Err(e) => Reply::Error(WireError::Raft(e.to_string())),
            },
            // From the persisted vote, not the Raft core: see `raft::read_index`.
            Request::ConfirmLeader { vote } => Reply::LeaderConfirmed(grants_no_newer_leader(self.log.vote(), &vote)),
            Request::SnapshotChunk { vote, offset, data, last } => {
                match self.snapshot_chunk(vote, offset, &data, last).await {
                    Ok(reply) => reply,
                    Err(e) => {
                        self.discard_incoming().await;
                        Reply::Error(WireError::Failed(e.to_string()))
                    }
                }
            }
        }
    }

    async fn snapshot_chunk(&mut self, vote: Vote, offset: u64, data: &[u8], last: bool) -> io::Result<Reply> {
        if offset == 0 {
            self.discard_incoming().await;
            let path = self.state_machine.incoming_snapshot_path();
            let file = tokio::fs::OpenOptions::new().create_new(true).write(true).open(&path).await?;
            self.incoming = Some(IncomingSnapshot { path, file, received: 0 });
        }
        let incoming = self
            .incoming
            .as_mut()
            .ok_or_else(|| io::Error::other(format!("snapshot chunk at offset {offset} without a start")))?;
        if incoming.received != offset {
            return Err(io::Error::other(format!("snapshot chunk at offset {offset}, expected {}", incoming.received)));
        }
        incoming.file.write_all(data).await?;
        incoming.received += data.len() as u64;
        if !last {
            return Ok(Reply::ChunkStored);
        }
        let incoming = self.incoming.take().expect("checked above");
        incoming.file.sync_all().await?;
        drop(incoming.file);
        let path = incoming.path;
        let meta = {
            let path = path.clone();
            tokio::task::spawn_blocking(move || received_snapshot_meta(&path)).await.map_err(io::Error::other)??
        };
        let snapshot = openraft::Snapshot { meta, snapshot: SnapshotFile::open(path.clone())? };
        match self.raft.install_full_snapshot(vote, snapshot).await {
            Ok(resp) => {
                // Installed snapshots were renamed into place; anything left was not needed.
                let _ = tokio::fs::remove_file(&path).await;
                Ok(Reply::Snapshot(resp))
            }
            Err(e) => {
                let _ = tokio::fs::remove_file(&path).await;
                Ok(Reply::Error(WireError::Raft(e.to_string())))
            }
        }
    }

    async fn discard_incoming(&mut self) {
        if let Some(incoming) = self.incoming.take() {
            drop(incoming.file);
            let _ = tokio::fs::remove_file(&incoming.path).await;
        }
    }
}
