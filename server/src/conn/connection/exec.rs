//! The connection's side of `MULTI` / `EXEC` / `DISCARD` / `WATCH`: queueing,
//! and sending a transaction to the leader's log or, whole, to the leader.

use std::time::Instant;

use bytes::Bytes;

use super::{Connection, Slot};
use crate::commands::{self, Parsed};
use crate::conn::transaction::{self, ExecPlan, Multi, Watching};
use crate::kv::{now_ms, KvServiceError};
use crate::resp::Frame;
use crate::store::WriteCmd;

/// What [`Connection::transactional`] did with a request.
pub(super) enum Handled {
    /// Answer this.
    Reply(Frame),
    /// Its reply slot is queued already.
    Queued,
    /// Run it as any other request.
    NotHere,
}

impl Connection {
    /// Handles a request that starts, ends or joins a transaction, or
    /// watches keys.
    pub(super) async fn transactional(
        &mut self,
        args: &[Bytes],
        name: &'static str,
        parsed: &Result<Parsed, commands::CommandError>,
        started: Instant,
    ) -> Handled {
        let Some(multi) = self.multi.as_mut() else {
            return match (name, parsed) {
                (_, Err(_)) => Handled::NotHere,
                ("multi", _) => {
                    self.multi = Some(Multi::default());
                    Handled::Reply(Frame::ok())
                }
                ("exec", _) => Handled::Reply(Frame::Error("ERR EXEC without MULTI".into())),
                ("discard", _) => Handled::Reply(Frame::Error("ERR DISCARD without MULTI".into())),
                ("watch", _) => self.watch(args, started).await,
                ("unwatch", _) => Handled::Reply(self.unwatch()),
                _ => {
                    // RESET: forgets the watch, then runs as usual.
                    self.unwatch();
                    Handled::NotHere
                }
            };
        };
        match (name, parsed) {
            // They run at once, as in Redis, and end the transaction.
            ("quit" | "reset", Ok(_)) => {
                self.multi = None;
                self.unwatch();
                Handled::NotHere
            }
            ("exec", Ok(_)) => {
                self.exec(started).await;
                Handled::Queued
            }
            ("discard", Ok(_)) => {
                self.multi = None;
                Handled::Reply(self.unwatch())
            }
            ("multi", Ok(_)) => Handled::Reply(Frame::Error("ERR MULTI calls can not be nested".into())),
            ("watch", Ok(_)) => Handled::Reply(Frame::Error("ERR WATCH inside MULTI is not allowed".into())),
            (_, Err(e)) if transaction::refused_when_queued(e) => Handled::Reply(multi.refuse(e.to_frame())),
            _ => Handled::Reply(multi.queue(args.to_vec())),
        }
    }

    /// `WATCH`: on the leader, remembers the keys' stamps; on a follower,
    /// forwards it to the leader (whose session on the upstream keeps it).
    async fn watch(&mut self, args: &[Bytes], started: Instant) -> Handled {
        let ctx = self.ctx.clone();
        if ctx.kv.node().is_leader() {
            // An earlier WATCH forwarded to the leader of then is not here.
            self.watching.split |= self.watching.upstream.is_some();
            // As a read: it must see this connection's earlier writes.
            self.drain().await;
            let sm = ctx.kv.node().state_machine().read();
            return Handled::Reply(self.watching.watch(&sm.store, &args[1..], now_ms()));
        }
        self.watching.split |= !self.watching.keys.is_empty();
        let generation = self.upstream_generation;
        match self.route_to_leader(args).await {
            Slot::Ready(reply) => Handled::Reply(reply),
            slot => {
                // A second WATCH through a new upstream: the first one's is lost.
                let kept = self.watching.upstream.is_none_or(|g| g == generation && g == self.upstream_generation);
                self.watching.split |= !kept;
                self.watching.upstream = Some(self.upstream_generation);
                self.watching.forwarded(&args[1..]);
                self.push(slot, "watch", started);
                Handled::Queued
            }
        }
    }

    /// Whether the leader still holds this connection's forwarded `WATCH`.
    fn upstream_watch_held(&self) -> bool {
        self.watching.upstream == Some(self.upstream_generation) && self.upstream.is_some()
    }

    /// Forgets every watched key (`UNWATCH`, `DISCARD`, `EXEC`, `RESET`); a
    /// watch held by the leader is dropped there too, without a reply.
    fn unwatch(&mut self) -> Frame {
        let held = self.upstream_watch_held();
        self.watching = Watching::default();
        if let Some(up) = self.upstream.as_mut().filter(|_| held) {
            up.queue(&[Bytes::from_static(b"UNWATCH")]);
            self.push(Slot::ForwardedQuiet, "unwatch", Instant::now());
        }
        Frame::ok()
    }

    /// `EXEC`: proposes the transaction as one log entry on the leader, or
    /// sends the whole of it to the leader.
    async fn exec(&mut self, started: Instant) {
        let multi = self.multi.take().expect("EXEC inside MULTI");
        if multi.aborted {
            self.unwatch();
            let reply = Frame::Error("EXECABORT Transaction discarded because of previous errors.".into());
            return self.push(Slot::Ready(reply), "exec", started);
        }
        let ctx = self.ctx.clone();
        let is_leader = ctx.kv.node().is_leader();
        let watched_here = !self.watching.keys.is_empty();
        let watched_upstream = self.watching.upstream.is_some();
        // A watch no single node can check any more fails the transaction
        // (nil, as if a key changed): it never runs unchecked.
        let unverifiable = self.watching.split
            || (watched_here && !is_leader)
            || (watched_upstream && (is_leader || !self.upstream_watch_held()));
        if unverifiable {
            self.unwatch();
            return self.push(Slot::Ready(Frame::NullArray), "exec", started);
        }
        if watched_upstream || !is_leader {
            let watch = std::mem::take(&mut self.watching).upstream;
            return self.forward_exec(&multi.queued, started, watch).await;
        }
        let now = now_ms();
        let session = &mut self.session;
        let plan = ExecPlan::new(&multi.queued, &ctx.kv.config().limits, now, |name, args| match name {
            // Queued after MULTI it has nothing left to forget: EXEC drops
            // the watch anyway.
            "unwatch" => Frame::ok(),
            _ => session.execute(&ctx, name, args),
        });
        self.publish_session_info();
        let watched = std::mem::take(&mut self.watching).keys;
        let checks_watch = !watched.is_empty();
        if plan.steps.is_empty() && !checks_watch {
            // Nothing for the log: every reply is known already.
            let reply = ExecPlan::merge(plan.replies, Frame::Array(Vec::new()));
            return self.push(Slot::Ready(reply), "exec", started);
        }
        if self.forwards > 0 {
            self.drain().await;
        }
        match ctx.kv.submit_write(WriteCmd::Transaction { steps: plan.steps, watched }, now).await {
            Ok(write) => self.push(Slot::Exec(write, plan.replies), "exec", started),
            // Leadership moved before the proposal; nothing was appended, so
            // the new leader can run it, unless it carried a watch only this
            // node could check: then it fails (nil).
            Err(KvServiceError::NotLeader { .. }) if checks_watch => {
                self.push(Slot::Ready(Frame::NullArray), "exec", started)
            }
            Err(KvServiceError::NotLeader { .. }) => self.forward_exec(&multi.queued, started, None).await,
            Err(e) => self.push(Slot::Ready(e.to_frame()), "exec", started),
        }
    }

    /// Sends `MULTI`, the queued commands and `EXEC` to the leader down one
    /// upstream connection; only `EXEC`'s reply reaches the client.
    /// `watch`: the generation of the upstream that holds this transaction's
    /// `WATCH`; if the transaction would go down another, it fails (nil).
    async fn forward_exec(&mut self, queued: &[Vec<Bytes>], started: Instant, watch: Option<u64>) {
        match self.route_to_leader(&[Bytes::from_static(b"MULTI")]).await {
            Slot::Ready(reply) => return self.push(Slot::Ready(reply), "exec", started),
            slot => self.push(slot_quiet(slot), "multi", started),
        }
        let up = self.upstream.as_mut().expect("route_to_leader connected it");
        if watch.is_some_and(|generation| generation != self.upstream_generation) {
            // The connection that carried the WATCH closed on the way (the
            // leader moved, or draining replies found it broken).
            up.queue(&[Bytes::from_static(b"DISCARD")]);
            self.push(Slot::ForwardedQuiet, "discard", started);
            return self.push(Slot::Ready(Frame::NullArray), "exec", started);
        }
        for args in queued {
            up.queue(args);
        }
        up.queue(&[Bytes::from_static(b"EXEC")]);
        for _ in queued {
            self.push(Slot::ForwardedQuiet, "queued", started);
        }
        self.push(Slot::ForwardedExec, "exec", started);
    }
}

/// `slot` with its reply withheld from the client, if it is a forward.
fn slot_quiet(slot: Slot) -> Slot {
    match slot {
        Slot::Forwarded => Slot::ForwardedQuiet,
        other => other,
    }
}
