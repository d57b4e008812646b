//! The history model: what every client asked for, when, and what it learned.
//!
//! A history is the raw material of the linearizability checker. Each
//! [`Operation`] is one client request against one key: the [`Call`] it made,
//! the monotonic time it was invoked, and its [`Outcome`]:
//!
//! - [`Outcome::Ok`]: the server answered; the reply is the [`Ret`].
//! - [`Outcome::Fail`]: the server answered with an error that *guarantees*
//!   the operation had no effect (it was rejected before being proposed).
//! - [`Outcome::Unknown`]: timeout, lost connection, or any error that does not
//!   rule out the write having been committed. The operation may take effect at
//!   any moment after its invocation, or never.
//!
//! Timestamps are nanoseconds since a [`Clock`]'s origin, taken from
//! [`std::time::Instant`], so they are monotonic and comparable across every
//! client task of one process. Invariant: an operation's invocation timestamp is
//! taken *before* the request is written to the socket and its completion
//! timestamp *after* the reply was read, so the interval `[invoked, completed]`
//! always contains the real moment the server executed it.

use std::fmt;
use std::sync::Arc;
use std::time::Instant;

use serde::{Deserialize, Serialize};

/// Identifies a client (one connection-owning task) in a history.
pub type ClientId = u32;

/// Nanoseconds since a [`Clock`]'s origin.
pub type Timestamp = u64;

/// The integer values the register workload writes. Every `SET` writes a
/// value no other `SET` of the same run writes, so a read names the write it saw.
pub type Value = i64;

/// A monotonic clock shared by every client of one workload run.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    origin: Instant,
}

impl Clock {
    /// A clock whose zero is now.
    pub fn new() -> Self {
        Self { origin: Instant::now() }
    }

    /// Nanoseconds elapsed since the origin.
    pub fn now(&self) -> Timestamp {
        // u64 nanoseconds cover 584 years: no truncation in practice.
        self.origin.elapsed().as_nanos() as Timestamp
    }
}

impl Default for Clock {
    fn default() -> Self {
        Self::new()
    }
}

/// A single-key request, as the client issued it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Call {
    /// `GET k`.
    Get,
    /// `SET k v`.
    Set(Value),
    /// `SET k v GET`: write and return the previous value (an atomic swap).
    SetGet(Value),
    /// `SET k v NX`: write only if the key is absent; replies whether it wrote.
    SetNx(Value),
    /// `SET k v XX`: write only if the key exists; replies whether it wrote.
    SetXx(Value),
    /// `INCR k`: replies the new value (an absent key counts as 0).
    Incr,
    /// `DEL k`: replies whether a key was removed.
    Del,
    /// `UNWATCH`, then `MULTI; GET k; SET k v; EXEC`: a swap in a
    /// transaction; replies the value the GET read, as `SET .. GET` does.
    TxSwap(Value),
    /// An optimistic increment: `WATCH k; GET k` reads `n`, then
    /// `MULTI; SET k n+1; EXEC`. Replies the new value, or not-applied when
    /// `EXEC` refused because the key changed (or may have) since `WATCH`.
    WatchIncr,
}

impl Call {
    /// True when the call can change the key. Reads never do, so a read whose
    /// outcome is not `Ok` constrains nothing and is dropped before checking.
    pub fn is_mutation(&self) -> bool {
        !matches!(self, Call::Get)
    }

    /// The value this call writes unconditionally or conditionally, if any.
    pub fn written_value(&self) -> Option<Value> {
        match *self {
            Call::Set(v) | Call::SetGet(v) | Call::SetNx(v) | Call::SetXx(v) | Call::TxSwap(v) => Some(v),
            Call::Get | Call::Incr | Call::Del | Call::WatchIncr => None,
        }
    }
}

impl fmt::Display for Call {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Call::Get => write!(f, "GET"),
            Call::Set(v) => write!(f, "SET {v}"),
            Call::SetGet(v) => write!(f, "SET {v} GET"),
            Call::SetNx(v) => write!(f, "SET {v} NX"),
            Call::SetXx(v) => write!(f, "SET {v} XX"),
            Call::Incr => write!(f, "INCR"),
            Call::Del => write!(f, "DEL"),
            Call::TxSwap(v) => write!(f, "MULTI GET SET {v} EXEC"),
            Call::WatchIncr => write!(f, "WATCH GET MULTI SET+1 EXEC"),
        }
    }
}

/// A successful reply, decoded into what the register model understands.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Ret {
    /// `GET` and `SET .. GET`: the value read (`None`: key absent).
    Value(Option<Value>),
    /// Plain `SET`: `+OK`.
    Ok,
    /// `SET NX` / `SET XX` (wrote or not) and `DEL` (removed or not).
    Applied(bool),
    /// `INCR`: the new value.
    Int(Value),
    /// A reply that is well-formed RESP but not what this call can return
    /// (e.g. a non-integer string read back). The model accepts it nowhere,
    /// so it always surfaces as a violation.
    Garbage(String),
}

impl fmt::Display for Ret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Ret::Value(Some(v)) => write!(f, "{v}"),
            Ret::Value(None) => write!(f, "nil"),
            Ret::Ok => write!(f, "OK"),
            Ret::Applied(b) => write!(f, "{}", if *b { "applied" } else { "not-applied" }),
            Ret::Int(v) => write!(f, "(int) {v}"),
            Ret::Garbage(s) => write!(f, "garbage {s:?}"),
        }
    }
}

/// How an operation ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    /// The server replied successfully at `completed`.
    Ok {
        /// Completion timestamp.
        completed: Timestamp,
        /// The decoded reply.
        ret: Ret,
    },
    /// The server replied with an error that guarantees no effect.
    Fail {
        /// Completion timestamp.
        completed: Timestamp,
        /// The error text, for reports.
        error: String,
    },
    /// No reply, or an error that does not rule out an effect. The operation
    /// is open forever: it may take effect at any point after invocation.
    Unknown {
        /// Why the outcome is unknown, for reports.
        error: String,
    },
}

impl Outcome {
    /// The completion time, if the operation definitely completed.
    pub fn completed(&self) -> Option<Timestamp> {
        match self {
            Outcome::Ok { completed, .. } | Outcome::Fail { completed, .. } => Some(*completed),
            Outcome::Unknown { .. } => None,
        }
    }
}

/// One client request in a history. Serializable, so that a key's history
/// can be saved and checked again (`chaos check`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Operation {
    /// The issuing client.
    pub client: ClientId,
    /// The key the call addressed.
    pub key: String,
    /// What was asked.
    pub call: Call,
    /// When it was invoked (before the request hit the socket).
    pub invoked: Timestamp,
    /// How it ended.
    pub outcome: Outcome,
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let end = match &self.outcome {
            Outcome::Ok { completed, ret } => format!("ok {ret} @{completed}"),
            Outcome::Fail { completed, error } => format!("fail {error:?} @{completed}"),
            Outcome::Unknown { error } => format!("unknown ({error}) @inf"),
        };
        write!(f, "c{} {} {} @{} -> {}", self.client, self.key, self.call, self.invoked, end)
    }
}

/// A whole run's operations, in any order (the checker sorts by time).
#[derive(Debug, Clone, Default)]
pub struct History {
    ops: Vec<Operation>,
}

impl History {
    /// An empty history.
    pub fn new() -> Self {
        Self::default()
    }

    /// Append one finished (or abandoned) operation.
    pub fn push(&mut self, op: Operation) {
        self.ops.push(op);
    }

    /// Append many operations.
    pub fn extend(&mut self, ops: impl IntoIterator<Item = Operation>) {
        self.ops.extend(ops);
    }

    /// All operations.
    pub fn ops(&self) -> &[Operation] {
        &self.ops
    }

    /// Number of operations.
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// True when no operation was recorded.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// Counts of each outcome kind.
    pub fn stats(&self) -> HistoryStats {
        let mut s = HistoryStats::default();
        for op in &self.ops {
            match op.outcome {
                Outcome::Ok { .. } => s.ok += 1,
                Outcome::Fail { .. } => s.fail += 1,
                Outcome::Unknown { .. } => s.unknown += 1,
            }
            if let Outcome::Ok { ret, .. } = &op.outcome {
                match (op.call, ret) {
                    (Call::TxSwap(_), _) => s.tx_swaps += 1,
                    (Call::WatchIncr, Ret::Applied(false)) => s.watch_refused += 1,
                    (Call::WatchIncr, _) => s.watch_applied += 1,
                    _ => {}
                }
            }
        }
        s
    }

    /// The operations grouped by key, each group sorted by invocation time.
    /// Register operations touch one key each, so linearizability of the
    /// whole history is the conjunction of per-key linearizability (locality).
    pub fn by_key(&self) -> Vec<(String, Vec<Operation>)> {
        let mut map: std::collections::BTreeMap<&str, Vec<Operation>> = Default::default();
        for op in &self.ops {
            map.entry(op.key.as_str()).or_default().push(op.clone());
        }
        map.into_iter()
            .map(|(k, mut v)| {
                v.sort_by_key(|o| o.invoked);
                (k.to_owned(), v)
            })
            .collect()
    }
}

/// Outcome counts of a history.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HistoryStats {
    /// Operations that completed successfully.
    pub ok: usize,
    /// Operations that definitely failed.
    pub fail: usize,
    /// Operations with unknown outcome.
    pub unknown: usize,
    /// `MULTI`/`EXEC` swaps that completed.
    pub tx_swaps: usize,
    /// Optimistic increments that `EXEC` ran, and that it refused.
    pub watch_applied: usize,
    /// See `watch_applied`.
    pub watch_refused: usize,
}

/// A cheaply clonable, thread-safe sink that client tasks record into.
#[derive(Debug, Clone, Default)]
pub struct Recorder {
    inner: Arc<std::sync::Mutex<History>>,
}

impl Recorder {
    /// A new, empty recorder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Record one operation.
    pub fn record(&self, op: Operation) {
        // A poisoned lock means a client task panicked mid-push; the history
        // is still a valid list of operations, so keep recording.
        let mut h = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        h.push(op);
    }

    /// A copy of everything recorded so far.
    pub fn snapshot(&self) -> History {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}
