//! One client connection: decode requests, execute or route them, reply in order.
//!
//! Pipelining without reordering: requests are taken from the read buffer in
//! order and turned into reply *slots* in a FIFO. A write on the leader is
//! handed to Raft at once and its slot completes when the entry is applied,
//! so a pipeline of N writes shares fsyncs (group commit). A read must see
//! this connection's earlier writes, so it first drains the FIFO. Commands
//! forwarded to the leader go down one upstream connection in order, and
//! their replies are read back in order.
//!
//! Consecutive writes taken from one read of the socket (a client pipeline)
//! are proposed as one log entry ([`WriteCmd::Batch`]): a pipeline of N
//! writes then costs one entry's encoding, replication and apply overhead
//! instead of N. Any other command first flushes the batch, so replies keep
//! the client's order.
//!
//! `MULTI` ... `EXEC` is queued here and becomes one log entry at `EXEC`
//! (see the `transaction` module); on a follower the whole transaction goes
//! to the leader at `EXEC`, in one go down the upstream connection, so it
//! can never be split across two upstream connections.

use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::codec::Decoder;
use tokio_util::sync::CancellationToken;

use super::forward::{Upstream, FORWARDED_MARKER};
use super::session::Session;
use super::transaction::{ExecPlan, Multi, Watching};
use super::{ConnContext, FollowerMode};
use crate::commands::{self, Parsed, ReadCmd};
use crate::kv::{now_ms, InFlightWrite, KvService, KvServiceError};
use crate::resp::{encode, Frame, Protocol, ProtocolError, RequestDecoder};
use crate::store::{split_batch_reply, Operation, WriteCmd};

/// Read buffer size for a fresh (or idle) connection. Small, so that thousands
/// of idle connections cost little memory.
const INITIAL_READ_BUF: usize = 4 << 10;
/// A buffer that grew past this for a large request is replaced once empty.
const SHRINK_READ_BUF: usize = 256 << 10;
/// Replies are written out once this many bytes are buffered.
const FLUSH_BYTES: usize = 64 << 10;
/// A pipelined write batch is proposed once it holds this many writes...
const MAX_BATCH_WRITES: usize = 512;
/// ...or this many bytes of arguments, so one log entry stays small.
const MAX_BATCH_BYTES: usize = 1 << 20;

mod exec;
use exec::Handled;

enum Slot {
    Ready(Frame),
    Write(InFlightWrite),
    /// One log entry holding several pipelined writes; one reply per part.
    WriteBatch(InFlightWrite, Vec<BatchPart>),
    /// A transaction's log entry, and the replies `EXEC` knew without it.
    Exec(InFlightWrite, Vec<Option<Frame>>),
    Forwarded,
    /// A forwarded command whose reply the client does not get (the parts of
    /// a forwarded transaction before its `EXEC`).
    ForwardedQuiet,
    /// A forwarded `EXEC`.
    ForwardedExec,
}

/// A write waiting in the connection's batch, or a part of a proposed batch.
struct BatchPart {
    cmd: &'static str,
    started: Instant,
}

/// A write collected for the next batch, with its arguments in case the batch
/// must be forwarded after all (leadership moved before it was proposed).
struct BatchedWrite {
    op: Operation,
    args: Vec<Bytes>,
    part: BatchPart,
}

struct Pending {
    slot: Slot,
    protocol: Protocol,
    cmd: &'static str,
    started: Instant,
}

enum Op {
    Write(WriteCmd, u64),
    Read(ReadCmd),
}

struct Connection {
    ctx: Arc<ConnContext>,
    session: Session,
    queue: VecDeque<Pending>,
    local_writes: usize,
    forwards: usize,
    upstream: Option<Upstream>,
    out: BytesMut,
    /// Leader-local writes not yet proposed; see the module docs.
    batch: Vec<BatchedWrite>,
    batch_bytes: usize,
    /// Commands queued since `MULTI`, if the client is in one.
    multi: Option<Multi>,
    watching: Watching,
    /// Counts upstream connections opened, so a watch held by one of them is
    /// known lost once another replaces it.
    upstream_generation: u64,
    /// The last command without subcommands and its `CLIENT LIST` id.
    last_command: Option<(&'static commands::CommandSpec, u32)>,
}

/// Serves one client connection until it closes.
///
/// It closes when its [`ClientInfo`](super::ClientInfo)'s kill switch is
/// thrown, by `CLIENT KILL` or by `serve_resp` at `shutdown`. The connection
/// waits on that switch alone: a `CancellationToken` locks a mutex on every
/// poll, and the task is polled twice per request.
pub(super) async fn run(ctx: Arc<ConnContext>, stream: TcpStream, peer: SocketAddr, shutdown: CancellationToken) {
    ctx.metrics.connections_total.inc();
    let id = ctx.ids.next();
    if ctx.clients().len() >= ctx.max_clients {
        let mut stream = stream;
        let _ = stream.write_all(b"-ERR max number of clients reached\r\n").await;
        return;
    }
    let mut conn = Connection {
        session: Session::new(id, peer, stream.local_addr().ok(), stream.as_raw_fd(), ctx.requirepass.is_some()),
        ctx: ctx.clone(),
        queue: VecDeque::new(),
        local_writes: 0,
        forwards: 0,
        upstream: None,
        out: BytesMut::new(),
        batch: Vec::new(),
        batch_bytes: 0,
        multi: None,
        watching: Watching::default(),
        upstream_generation: 0,
        last_command: None,
    };
    ctx.clients().insert(id, conn.session.info.clone());
    ctx.metrics.connections.inc();
    let kill = conn.session.info.kill.clone();
    if shutdown.is_cancelled() {
        // Registered after `serve_resp`'s shutdown sweep: nobody will kill it.
        kill.kill();
    }
    tokio::select! {
        result = conn.serve(stream) => if let Err(e) = result {
            tracing::debug!(%peer, error = %e, "client connection ended with an error");
        },
        () = kill.killed() => tracing::debug!(%peer, "client connection closed by CLIENT KILL or shutdown"),
    }
    ctx.clients().remove(&id);
    ctx.metrics.connections.dec();
}

impl Connection {
    async fn serve(&mut self, stream: TcpStream) -> io::Result<()> {
        let (mut rd, mut wr) = stream.into_split();
        let mut rbuf = BytesMut::with_capacity(INITIAL_READ_BUF);
        let mut decoder = RequestDecoder::new(self.ctx.decoder_limits);
        decoder.set_authenticated(self.session.authenticated);
        loop {
            loop {
                match decoder.decode(&mut rbuf) {
                    Ok(Some(args)) => {
                        self.dispatch(args).await;
                        // Before AUTH, requests are capped small (as Redis does), so
                        // an anonymous client cannot make the server buffer much.
                        decoder.set_authenticated(self.session.authenticated);
                        if self.session.quit {
                            self.flush_batch().await;
                            self.drain().await;
                            wr.write_all(&self.out).await?;
                            return Ok(());
                        }
                        if self.out.len() >= FLUSH_BYTES {
                            wr.write_all(&self.out).await?;
                            self.out.clear();
                        }
                    }
                    Ok(None) => break,
                    Err(ProtocolError::ArgumentTooLarge { len, .. }) => {
                        // The decoder consumed the whole request: only it fails,
                        // answered in order, and the connection goes on.
                        self.flush_batch().await;
                        let limits = &self.ctx.kv.config().limits;
                        let reply = Frame::Error(format!(
                            "ERR argument too large: {len} bytes (values may be up to {} bytes, keys up to {})",
                            limits.max_value_bytes, limits.max_key_bytes
                        ));
                        self.push(Slot::Ready(reply), "unknown", Instant::now());
                    }
                    Err(e) => {
                        // The stream cannot be resynchronised: reply, then close (as Redis does).
                        self.flush_batch().await;
                        self.drain().await;
                        encode(&e.reply(), self.session.info.protocol, &mut self.out);
                        wr.write_all(&self.out).await?;
                        return Ok(());
                    }
                }
            }
            self.flush_batch().await;
            self.drain().await;
            if !self.out.is_empty() {
                wr.write_all(&self.out).await?;
                self.out.clear();
            }
            if rbuf.is_empty() && rbuf.capacity() > SHRINK_READ_BUF {
                rbuf = BytesMut::with_capacity(INITIAL_READ_BUF);
            }
            if rd.read_buf(&mut rbuf).await? == 0 {
                return Ok(());
            }
        }
    }

    /// Copies the session's client info (name, protocol ...) into the shared
    /// client list after a connection command may have changed it.
    fn publish_session_info(&self) {
        if let Some(info) = self.ctx.clients().get_mut(&self.session.info.id) {
            info.clone_from(&self.session.info);
        }
    }

    /// Records the command for `CLIENT LIST`. The id of the last plain
    /// command is kept, so a run of GETs costs a pointer comparison and two
    /// relaxed stores each.
    fn record_activity(&mut self, spec: &'static commands::CommandSpec, args: &[Bytes], now: u64) {
        let id = match self.last_command {
            Some((last, id)) if std::ptr::eq(last, spec) => Some(id),
            _ if !spec.subcommands.is_empty() => {
                commands::command_id(spec, args.get(1).and_then(|sub| spec.subcommand(sub)))
            }
            _ => {
                let id = commands::command_id(spec, None);
                self.last_command = id.map(|id| (spec, id));
                id
            }
        };
        if let Some(id) = id {
            self.session.info.activity.command(id, now);
        }
    }

    /// Queues a reply slot. Every caller flushes the write batch first, so
    /// slots are queued in the client's order.
    fn push(&mut self, slot: Slot, cmd: &'static str, started: Instant) {
        debug_assert!(self.batch.is_empty(), "a slot was queued ahead of batched writes");
        match slot {
            Slot::Write(_) | Slot::WriteBatch(..) | Slot::Exec(..) => self.local_writes += 1,
            Slot::Forwarded | Slot::ForwardedQuiet | Slot::ForwardedExec => self.forwards += 1,
            Slot::Ready(_) => {}
        }
        self.queue.push_back(Pending { slot, protocol: self.session.info.protocol, cmd, started });
    }

    async fn dispatch(&mut self, args: Vec<Bytes>) {
        let started = Instant::now();
        if args.len() == 1 && args[0].eq_ignore_ascii_case(FORWARDED_MARKER) {
            self.flush_batch().await;
            self.session.forwarded = true;
            self.push(Slot::Ready(Frame::ok()), "seshat.forwarded", started);
            return;
        }
        let spec = commands::lookup(&args[0]);
        let name = spec.map_or("unknown", |s| s.name);
        if !self.session.authenticated && !Session::allowed_unauthenticated(name) {
            self.flush_batch().await;
            self.push(Slot::Ready(Frame::Error("NOAUTH Authentication required.".into())), name, started);
            return;
        }
        let now = now_ms();
        if let Some(spec) = spec {
            self.record_activity(spec, &args, now);
        }
        let parsed = commands::parse(&args, &self.ctx.kv.config().limits, now);
        if !matches!(parsed, Ok(Parsed::Write(_))) {
            self.flush_batch().await;
        }
        if self.multi.is_some() || matches!(name, "multi" | "exec" | "discard" | "watch" | "unwatch" | "reset") {
            let handled = self.transactional(&args, name, &parsed, started).await;
            self.session.info.activity.transaction(self.multi.as_ref().map(|m| m.queued.len()), self.watching.count());
            match handled {
                Handled::Reply(reply) => return self.push(Slot::Ready(reply), name, started),
                Handled::Queued => return,
                Handled::NotHere => {}
            }
        }
        match parsed {
            Err(e) => self.push(Slot::Ready(e.to_frame()), name, started),
            Ok(Parsed::Connection(spec)) => {
                let reply = self.session.execute(&self.ctx, spec.name, &args);
                self.publish_session_info();
                self.push(Slot::Ready(reply), name, started);
            }
            Ok(Parsed::Write(cmd)) => self.route(Op::Write(cmd, now), args, name, started).await,
            Ok(Parsed::Read(cmd)) => self.route(Op::Read(cmd), args, name, started).await,
        }
    }

    async fn route(&mut self, op: Op, args: Vec<Bytes>, name: &'static str, started: Instant) {
        // One Arc increment, so `kv` stays usable across `self.drain()`.
        let ctx = self.ctx.clone();
        let kv = &ctx.kv;
        let needs_leader = matches!(op, Op::Write(..)) || kv.reads_need_leader();
        if !needs_leader || kv.node().is_leader() {
            let result = match op {
                Op::Write(cmd, at_ms) => {
                    if self.batch.is_empty() && self.forwards > 0 {
                        self.drain().await;
                    }
                    self.batch_bytes += args.iter().map(Bytes::len).sum::<usize>();
                    self.batch.push(BatchedWrite {
                        op: Operation { at_ms, cmd },
                        args,
                        part: BatchPart { cmd: name, started },
                    });
                    if self.batch.len() >= MAX_BATCH_WRITES || self.batch_bytes >= MAX_BATCH_BYTES {
                        self.flush_batch().await;
                    }
                    return;
                }
                Op::Read(cmd) => {
                    self.drain().await;
                    kv.read(&cmd).await.map(Slot::Ready)
                }
            };
            match result {
                Ok(slot) => return self.push(slot, name, started),
                // Leadership moved between the check and the call; nothing
                // was appended, so routing to the new leader is safe.
                Err(KvServiceError::NotLeader { .. }) => {}
                Err(e) => return self.push(Slot::Ready(e.to_frame()), name, started),
            }
        }
        self.flush_batch().await;
        let slot = self.route_to_leader(&args).await;
        self.push(slot, name, started);
    }

    /// Proposes the collected writes: one plain entry for a single write,
    /// one [`WriteCmd::Batch`] entry for several.
    async fn flush_batch(&mut self) {
        if self.batch.is_empty() {
            return;
        }
        self.batch_bytes = 0;
        let (mut ops, held): (Vec<Operation>, Vec<(Vec<Bytes>, BatchPart)>) =
            std::mem::take(&mut self.batch).into_iter().map(|w| (w.op, (w.args, w.part))).unzip();
        let kv = self.ctx.kv.clone();
        // `(write, is_batch)`: a single write is proposed as itself.
        let submitted = if ops.len() == 1 {
            let op = ops.pop().expect("one write");
            kv.submit_write(op.cmd, op.at_ms).await.map(|write| (write, false))
        } else {
            let at_ms = ops[0].at_ms;
            kv.submit_write(WriteCmd::Batch { ops }, at_ms).await.map(|write| (write, true))
        };
        match submitted {
            Ok((write, false)) => self.push(Slot::Write(write), held[0].1.cmd, held[0].1.started),
            Ok((write, true)) => {
                let started = held[0].1.started;
                let parts = held.into_iter().map(|(_, part)| part).collect();
                self.push(Slot::WriteBatch(write, parts), "batch", started);
            }
            // Leadership moved before the proposal; nothing was appended, so
            // sending each write to the new leader, in order, is safe.
            Err(KvServiceError::NotLeader { .. }) => {
                for (args, part) in held {
                    let slot = self.route_to_leader(&args).await;
                    self.push(slot, part.cmd, part.started);
                }
            }
            Err(e) => {
                let frame = e.to_frame();
                for (_, part) in held {
                    self.push(Slot::Ready(frame.clone()), part.cmd, part.started);
                }
            }
        }
    }

    async fn route_to_leader(&mut self, args: &[Bytes]) -> Slot {
        let node = self.ctx.kv.node();
        if self.session.forwarded {
            // Never forward twice: two nodes briefly naming each other leader
            // would bounce the command between them.
            return Slot::Ready(Frame::Error(
                "CLUSTERDOWN leadership is changing: this node is no longer the leader".into(),
            ));
        }
        let addr = match node.leader() {
            Some((id, Some(addr))) if id != node.id() => addr,
            _ => return Slot::Ready(KvServiceError::NotLeader { leader_id: None, leader: None }.to_frame()),
        };
        if self.ctx.follower_mode == FollowerMode::Redirect {
            return Slot::Ready(Frame::Error(format!("MOVED 0 {}", addr.resp_addr)));
        }
        if self.local_writes > 0 {
            self.drain().await;
        }
        if self.upstream.as_ref().is_some_and(|u| u.addr() != addr.resp_addr) {
            self.drain().await;
            self.upstream = None;
        }
        if self.upstream.is_none() {
            match Upstream::connect(&addr.resp_addr, self.ctx.requirepass.as_deref()).await {
                Ok(up) => {
                    self.upstream = Some(up);
                    self.upstream_generation += 1;
                }
                Err(e) => {
                    return Slot::Ready(Frame::Error(format!(
                        "CLUSTERDOWN leader at {} is unreachable: {e}",
                        addr.resp_addr
                    )))
                }
            }
        }
        self.upstream.as_mut().expect("connected above").queue(args);
        self.ctx.metrics.forwarded.inc();
        Slot::Forwarded
    }

    /// Resolves every pending slot in order and encodes the replies. The
    /// write batch must have been flushed (else its replies would be missed).
    async fn drain(&mut self) {
        debug_assert!(self.batch.is_empty(), "drain with writes still batched");
        while let Some(p) = self.queue.pop_front() {
            let frame = match p.slot {
                Slot::Ready(f) => f,
                Slot::Write(w) => {
                    self.local_writes -= 1;
                    KvService::finish_write(w).await.unwrap_or_else(|e| e.to_frame())
                }
                Slot::WriteBatch(w, parts) => {
                    self.local_writes -= 1;
                    let replies = match KvService::finish_write(w).await {
                        Ok(reply) => split_batch_reply(reply, parts.len()),
                        Err(e) => vec![e.to_frame(); parts.len()],
                    };
                    for (frame, part) in replies.into_iter().zip(parts) {
                        let ok = !matches!(frame, Frame::Error(_));
                        self.ctx.metrics.observe_command(part.cmd, ok, part.started.elapsed());
                        encode(&frame, p.protocol, &mut self.out);
                    }
                    continue;
                }
                Slot::Exec(w, known) => {
                    self.local_writes -= 1;
                    let applied = KvService::finish_write(w).await.unwrap_or_else(|e| e.to_frame());
                    ExecPlan::merge(known, applied)
                }
                Slot::Forwarded => {
                    self.forwards -= 1;
                    self.forwarded_reply().await
                }
                Slot::ForwardedExec => {
                    self.forwards -= 1;
                    // The upstream speaks RESP3, where an aborted EXEC's nil
                    // array arrives as a plain null.
                    match self.forwarded_reply().await {
                        Frame::Null => Frame::NullArray,
                        reply => reply,
                    }
                }
                Slot::ForwardedQuiet => {
                    self.forwards -= 1;
                    self.forwarded_reply().await;
                    continue;
                }
            };
            self.ctx.metrics.observe_command(p.cmd, !matches!(frame, Frame::Error(_)), p.started.elapsed());
            encode(&frame, p.protocol, &mut self.out);
        }
    }

    /// The reply of a forwarded command.
    async fn forwarded_reply(&mut self) -> Frame {
        let Some(up) = self.upstream.as_mut() else {
            return Frame::Error(
                "TRYAGAIN connection to the leader was lost; the command may or may not have been applied".into(),
            );
        };
        match up.recv().await {
            Ok(frame) => frame,
            Err(e) => {
                self.upstream = None;
                Frame::Error(format!(
                    "TRYAGAIN forwarding to the leader failed ({e}); the command may or may not have been applied"
                ))
            }
        }
    }
}
