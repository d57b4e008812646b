//! `MULTI` / `EXEC` / `DISCARD` / `WATCH` state of one connection.
//!
//! Between `MULTI` and `EXEC` commands are only queued (their arguments).
//! `EXEC` parses them again at its own clock, as Redis runs them at `EXEC`
//! time, and turns the data commands into one
//! [`WriteCmd::Transaction`](crate::store::WriteCmd::Transaction) log
//! entry: its reads and writes apply in order on every replica with nothing
//! from other clients in between, and the whole either commits or not.
//! Connection commands (`PING`, `CLIENT SETNAME` ...) and commands that fail
//! to parse get their replies here, in their places in `EXEC`'s array.
//!
//! `WATCH` remembers each key's modification stamp
//! ([`Store::watch_stamp`](crate::store::Store::watch_stamp)) from the
//! leader's applied state; the entry carries them, and applying it checks
//! them (see [`WatchedKey`]). That state may lag the commit index by a few
//! entries: a stamp read from it is older, so a write in between still aborts
//! the transaction. Reading it needs no quorum round for the same reason.

use std::collections::HashSet;

use bytes::Bytes;

use crate::commands::{self, CommandError, Limits, Parsed};
use crate::resp::Frame;
use crate::store::{Store, TxStep, WatchedKey};

/// Most commands one transaction may queue.
pub(super) const MAX_QUEUED_COMMANDS: usize = 100_000;
/// Most argument bytes one transaction may queue: the whole transaction is one
/// log entry, which must stay far below a Raft frame (256 MiB).
pub(super) const MAX_QUEUED_BYTES: usize = 16 << 20;
/// Most keys one connection may watch.
pub(super) const MAX_WATCHED_KEYS: usize = 100_000;

/// The commands a client queued after `MULTI`.
#[derive(Debug, Default)]
pub(super) struct Multi {
    /// Each queued command's arguments, in order.
    pub(super) queued: Vec<Vec<Bytes>>,
    bytes: usize,
    /// A command was refused while queueing: `EXEC` fails with `EXECABORT`.
    pub(super) aborted: bool,
}

impl Multi {
    /// Queues a command, or refuses it (and dooms the transaction) when the
    /// transaction would outgrow its limits.
    pub(super) fn queue(&mut self, args: Vec<Bytes>) -> Frame {
        let bytes: usize = args.iter().map(Bytes::len).sum();
        if self.queued.len() >= MAX_QUEUED_COMMANDS || self.bytes + bytes > MAX_QUEUED_BYTES {
            return self.refuse(Frame::Error(format!(
                "ERR transaction too large: at most {MAX_QUEUED_COMMANDS} commands and {} MiB of arguments",
                MAX_QUEUED_BYTES >> 20
            )));
        }
        self.bytes += bytes;
        self.queued.push(args);
        Frame::Simple("QUEUED".into())
    }

    /// Refuses a command (unknown, wrong arity, too large): the reply is
    /// `error`, and `EXEC` will fail, as in Redis.
    pub(super) fn refuse(&mut self, error: Frame) -> Frame {
        self.aborted = true;
        error
    }
}

/// Whether a parse error refuses the command at queueing time. Redis refuses
/// unknown commands and wrong argument counts then; any other error (syntax,
/// a bad number ...) is the command's reply inside `EXEC`'s array.
pub(super) fn refused_when_queued(error: &CommandError) -> bool {
    matches!(
        error,
        CommandError::UnknownCommand { .. } | CommandError::UnknownSubcommand { .. } | CommandError::WrongArity { .. }
    )
}

/// The keys a connection watches.
#[derive(Debug, Default)]
pub(super) struct Watching {
    /// Keys watched on this node (the leader), with what they held.
    pub(super) keys: Vec<WatchedKey>,
    /// `WATCH` was forwarded to the leader, whose session on this
    /// connection's upstream holds it: the upstream's generation then. If
    /// that upstream is closed or replaced the watch is lost, and `EXEC`
    /// fails (nil) rather than run unchecked.
    pub(super) upstream: Option<u64>,
    /// Keys were watched here while this node led, then more through the
    /// leader: no single node can check them all, so `EXEC` fails (nil).
    pub(super) split: bool,
    /// Every key watched, here or through the leader, once each.
    distinct: HashSet<Bytes>,
}

impl Watching {
    /// Keys watched, here and through the leader; a key watched twice
    /// counts once, as in Redis's `CLIENT LIST` `watch=`.
    pub(super) fn count(&self) -> usize {
        self.distinct.len()
    }

    /// Notes `keys` as watched through the leader. The leader refuses a
    /// `WATCH` past [`MAX_WATCHED_KEYS`]; the set here stops there too, so a
    /// client cannot grow it without bound through a follower.
    pub(super) fn forwarded(&mut self, keys: &[Bytes]) {
        let room = MAX_WATCHED_KEYS.saturating_sub(self.distinct.len());
        self.distinct.extend(keys.iter().take(room).cloned());
    }

    /// Adds `keys` as they are in `store` at `now_ms`.
    pub(super) fn watch(&mut self, store: &Store, keys: &[Bytes], now_ms: u64) -> Frame {
        if self.keys.len() + keys.len() > MAX_WATCHED_KEYS {
            return Frame::Error(format!("ERR too many watched keys (at most {MAX_WATCHED_KEYS})"));
        }
        for key in keys {
            // Redis keeps a key's first WATCH; a repeat changes nothing.
            if !self.distinct.insert(key.clone()) {
                continue;
            }
            let stamp = store.watch_stamp(key);
            let live = store.get(key, now_ms).is_some();
            self.keys.push(WatchedKey { key: key.clone(), stamp, live });
        }
        Frame::ok()
    }
}

/// What `EXEC` does with its queued commands.
#[derive(Debug, Default)]
pub(super) struct ExecPlan {
    /// The data commands, for one log entry.
    pub(super) steps: Vec<TxStep>,
    /// One reply per queued command: known now (connection commands, parse
    /// errors), or `None` for the next data command's reply from the log.
    pub(super) replies: Vec<Option<Frame>>,
}

impl ExecPlan {
    /// Parses `queued` at `now_ms`; `run_connection` executes a connection
    /// command (by its top-level name) and returns its reply.
    pub(super) fn new(
        queued: &[Vec<Bytes>],
        limits: &Limits,
        now_ms: u64,
        mut run_connection: impl FnMut(&'static str, &[Bytes]) -> Frame,
    ) -> ExecPlan {
        let mut plan = ExecPlan::default();
        for args in queued {
            let reply = match commands::parse(args, limits, now_ms) {
                Ok(Parsed::Write(cmd)) => {
                    plan.steps.push(TxStep::Write(cmd));
                    None
                }
                Ok(Parsed::Read(_)) => {
                    plan.steps.push(TxStep::Read(args.clone()));
                    None
                }
                Ok(Parsed::Connection(spec)) => Some(run_connection(spec.name, args)),
                Err(e) => Some(e.to_frame()),
            };
            plan.replies.push(reply);
        }
        plan
    }

    /// `EXEC`'s reply: the replies known at `EXEC` merged, in order, with
    /// `applied`, the log entry's reply (nil when a watched key changed).
    pub(super) fn merge(replies: Vec<Option<Frame>>, applied: Frame) -> Frame {
        let data = match applied {
            Frame::NullArray => return Frame::NullArray,
            Frame::Array(data) if data.len() == replies.iter().filter(|r| r.is_none()).count() => data,
            // An error instead of the array (a timeout, leadership lost):
            // it is EXEC's reply.
            Frame::Error(e) => return Frame::Error(e),
            other => {
                tracing::error!(reply = ?other, "a transaction replied with the wrong shape");
                return Frame::Error("ERR internal error: malformed transaction reply".into());
            }
        };
        let mut data = data.into_iter();
        Frame::Array(replies.into_iter().map(|known| known.or_else(|| data.next()).unwrap_or(Frame::Null)).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(line: &str) -> Vec<Bytes> {
        line.split(' ').map(|a| Bytes::copy_from_slice(a.as_bytes())).collect()
    }

    #[test]
    fn a_plan_keeps_data_commands_for_the_log_and_answers_the_rest_in_place() {
        let queued = [args("SET a 1"), args("PING"), args("GET a"), args("SET a 1 EX nope"), args("INCR a")];
        let plan = ExecPlan::new(&queued, &Limits::default(), 1_000, |name, _| Frame::Simple(name.into()));
        assert_eq!(plan.steps.len(), 3, "SET, GET and INCR go into the entry");
        assert!(matches!(plan.steps[1], TxStep::Read(ref a) if a == &args("GET a")));
        assert_eq!(plan.replies[1], Some(Frame::Simple("ping".into())));
        assert_eq!(plan.replies[3], Some(CommandError::NotInteger.to_frame()));
        let applied = Frame::Array(vec![Frame::ok(), Frame::bulk_copy(b"1"), Frame::Integer(2)]);
        let Frame::Array(merged) = ExecPlan::merge(plan.replies, applied) else { panic!("not an array") };
        assert_eq!(
            merged,
            vec![
                Frame::ok(),
                Frame::Simple("ping".into()),
                Frame::bulk_copy(b"1"),
                CommandError::NotInteger.to_frame(),
                Frame::Integer(2)
            ]
        );
    }

    #[test]
    fn an_aborted_or_failed_entry_is_the_whole_reply() {
        assert_eq!(ExecPlan::merge(vec![None], Frame::NullArray), Frame::NullArray);
        let timeout = Frame::Error("TRYAGAIN timed out".into());
        assert_eq!(ExecPlan::merge(vec![None, Some(Frame::ok())], timeout.clone()), timeout);
        assert!(matches!(ExecPlan::merge(vec![None], Frame::ok()), Frame::Error(_)));
    }

    #[test]
    fn queueing_is_bounded_and_a_refusal_dooms_the_transaction() {
        let mut multi = Multi::default();
        assert_eq!(multi.queue(args("SET a 1")), Frame::Simple("QUEUED".into()));
        assert!(!multi.aborted);
        let huge = vec![Bytes::from_static(b"SET"), Bytes::from(vec![b'x'; MAX_QUEUED_BYTES])];
        assert!(matches!(multi.queue(huge), Frame::Error(_)));
        assert!(multi.aborted);
        assert_eq!(multi.queued.len(), 1);
        assert!(refused_when_queued(&CommandError::WrongArity { name: "get".into() }));
        assert!(!refused_when_queued(&CommandError::Syntax));
    }

    #[test]
    fn a_key_watched_twice_counts_once_and_keeps_its_first_stamp() {
        let store = Store::new();
        let mut w = Watching::default();
        assert_eq!(w.watch(&store, &args("a b"), 1_000), Frame::ok());
        assert_eq!(w.watch(&store, &args("b"), 1_000), Frame::ok());
        assert_eq!((w.count(), w.keys.len()), (2, 2));
        w.forwarded(&args("b c"));
        assert_eq!(w.count(), 3, "b counted once; c through the leader");
    }

    #[test]
    fn keys_watched_through_the_leader_stop_at_the_limit() {
        let mut w = Watching::default();
        let many: Vec<Bytes> = (0..MAX_WATCHED_KEYS + 10).map(|i| Bytes::from(i.to_string())).collect();
        w.forwarded(&many);
        w.forwarded(&args("one more"));
        assert_eq!(w.count(), MAX_WATCHED_KEYS);
    }
}
