//! Replicated write operations: what goes into the Raft log.
//!
//! Every field is decided by the leader when it parses the command (absolute
//! expire times, size limits), so applying an [`Operation`] needs nothing but the
//! operation and the current state: every replica computes the same result.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// One log entry's payload: a write command stamped with the leader's clock.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Operation {
    /// The leader's wall clock (Unix ms) when it proposed the command: the only
    /// "now" the state machine ever uses.
    pub at_ms: u64,
    /// The command.
    pub cmd: WriteCmd,
}

/// `SET` NX / XX.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SetCondition {
    /// Set unconditionally.
    Always,
    /// NX: only if the key does not exist.
    IfAbsent,
    /// XX: only if the key exists.
    IfPresent,
}

/// What a `SET`-like write does with the key's TTL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SetTtl {
    /// Remove any TTL (plain SET, GETSET, SETNX, MSET).
    Clear,
    /// KEEPTTL.
    Keep,
    /// Expire at this absolute Unix time in ms (EX/PX/EXAT/PXAT, SETEX, PSETEX).
    /// A time not after the apply clock deletes the key instead.
    At(i64),
}

/// `GETEX` options.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum GetExTtl {
    /// PERSIST: remove the TTL.
    Persist,
    /// Expire at this absolute Unix time in ms (not after the apply clock: delete).
    At(i64),
}

/// The operation of a `BITOP`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum BitOperation {
    /// AND of every source.
    And,
    /// OR of every source.
    Or,
    /// XOR of every source.
    Xor,
    /// NOT of the one source.
    Not,
}

/// `EXPIRE` options NX / XX / GT / LT, as flags: Redis accepts XX together with
/// GT or LT, and checks each flag in turn.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExpireCondition {
    /// NX: only if the key has no TTL.
    pub nx: bool,
    /// XX: only if the key has a TTL.
    pub xx: bool,
    /// GT: only if the new time is greater than the current one (no TTL = infinite).
    pub gt: bool,
    /// LT: only if the new time is less than the current one (no TTL = infinite).
    pub lt: bool,
}

/// A typed, validated write command. Arguments are checked (syntax, key and
/// value sizes) before a command becomes a `WriteCmd`; errors that depend on
/// the stored data (WRONGTYPE, not an integer, overflow, NX conflicts, missing
/// RENAME source) are decided by [`Store::apply`](super::Store::apply).
///
/// Multi-key commands are one `WriteCmd`, hence one log entry, applied atomically.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum WriteCmd {
    /// SET (all options), SETEX, PSETEX, GETSET (`get: true`, `ttl: Clear`).
    Set {
        /// Key.
        key: Bytes,
        /// New value.
        value: Bytes,
        /// NX / XX.
        cond: SetCondition,
        /// TTL handling.
        ttl: SetTtl,
        /// GET: reply with the old value instead of OK.
        get: bool,
    },
    /// SETNX: like `SET NX` but replies 1/0.
    SetNx {
        /// Key.
        key: Bytes,
        /// Value.
        value: Bytes,
    },
    /// MSET: set every pair, clearing their TTLs.
    MSet {
        /// Key/value pairs, applied in order (a repeated key keeps the last value).
        pairs: Vec<(Bytes, Bytes)>,
    },
    /// MSETNX: set every pair only if none of the keys exists; replies 1/0.
    MSetNx {
        /// Key/value pairs.
        pairs: Vec<(Bytes, Bytes)>,
    },
    /// GETDEL.
    GetDel {
        /// Key.
        key: Bytes,
    },
    /// GETEX with an option (GETEX without options is a read).
    GetEx {
        /// Key.
        key: Bytes,
        /// New TTL.
        ttl: GetExTtl,
    },
    /// INCR, INCRBY, DECR, DECRBY (DECRBY n is `delta: -n`).
    IncrBy {
        /// Key.
        key: Bytes,
        /// Amount added.
        delta: i64,
    },
    /// INCRBYFLOAT.
    IncrByFloat {
        /// Key.
        key: Bytes,
        /// Amount added (finite or ±inf; the result must be finite).
        delta: f64,
    },
    /// APPEND.
    Append {
        /// Key.
        key: Bytes,
        /// Bytes appended.
        value: Bytes,
        /// Longest value allowed after appending (the leader's max value size).
        max_len: u64,
    },
    /// SETRANGE.
    SetRange {
        /// Key.
        key: Bytes,
        /// Byte offset (zero-padded when past the end).
        offset: u64,
        /// Bytes written at `offset`.
        value: Bytes,
        /// Longest value allowed after writing (the leader's max value size).
        max_len: u64,
    },
    /// DEL, UNLINK: replies the number of keys removed.
    Del {
        /// Keys (a repeated key counts once).
        keys: Vec<Bytes>,
    },
    /// EXPIRE, PEXPIRE, EXPIREAT, PEXPIREAT.
    Expire {
        /// Key.
        key: Bytes,
        /// Absolute Unix time in ms; may be negative (deletes the key).
        at_ms: i64,
        /// NX / XX / GT / LT.
        cond: ExpireCondition,
    },
    /// PERSIST.
    Persist {
        /// Key.
        key: Bytes,
    },
    /// RENAME (`nx: false`), RENAMENX (`nx: true`).
    Rename {
        /// Existing key.
        src: Bytes,
        /// New name.
        dst: Bytes,
        /// RENAMENX: do nothing if `dst` exists.
        nx: bool,
    },
    /// FLUSHDB, FLUSHALL.
    FlushAll,
    /// The leader's active expiry sweep: deletes each key that is still expired
    /// at the operation's time (a key rewritten meanwhile survives). Replies the
    /// number of keys deleted.
    ExpireKeys {
        /// Candidate keys, from [`Store::expired_keys`](super::Store::expired_keys).
        keys: Vec<Bytes>,
    },
    /// Writes proposed together as one log entry, so that N writes cost one
    /// entry, not N: one client's pipeline (built by its connection), or the
    /// concurrent writes of many clients (coalesced by the leader). Applied in
    /// order, each at its own time, exactly as N entries would be; replies an
    /// array of the N replies. Clients never send this.
    Batch {
        /// The writes, in the client's order.
        ops: Vec<Operation>,
    },
    /// A client's `MULTI` ... `EXEC`: its reads and writes run in order, as one
    /// log entry, with nothing from other clients in between; replies an array
    /// of their replies (an error in one step does not stop the others, as in
    /// Redis). Unless a watched key changed since its `WATCH`: then nothing
    /// runs and the reply is nil.
    Transaction {
        /// The queued commands, in the client's order.
        steps: Vec<TxStep>,
        /// The keys the client watched, with what it saw.
        watched: Vec<WatchedKey>,
    },
    // New variants go last: existing logs decode by variant index.
    /// SETBIT: replies the bit's old value.
    SetBit {
        /// Key.
        key: Bytes,
        /// Bit offset (the string is zero-padded when it is past the end).
        offset: u64,
        /// The new value of the bit.
        bit: bool,
        /// Longest value allowed after growing (the leader's max value size).
        max_len: u64,
    },
    /// COPY: replies 1 when copied, 0 when the source is missing or the
    /// destination exists without REPLACE. The copy keeps the source's TTL.
    Copy {
        /// Key copied.
        src: Bytes,
        /// Key written.
        dst: Bytes,
        /// REPLACE: overwrite an existing destination.
        replace: bool,
    },
    /// BITOP: stores the operation over the sources (missing ones count as
    /// empty, shorter ones as zero-padded) at `dst`, without a TTL, or deletes
    /// `dst` when the result is empty; replies the result's length.
    BitOp {
        /// The operation.
        op: BitOperation,
        /// Key written.
        dst: Bytes,
        /// Keys read, in order (exactly one for NOT).
        srcs: Vec<Bytes>,
    },
}

/// One command of a [`WriteCmd::Transaction`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum TxStep {
    /// A write, applied exactly as it would be alone.
    Write(WriteCmd),
    /// A read, as the client sent it (validated by the leader). It runs at its
    /// place in the transaction so that it sees the writes before it; only the
    /// leader's reply reaches a client, and reads change nothing, so replicas
    /// may run it or not alike.
    Read(Vec<Bytes>),
}

/// A key under `WATCH`, and the state the watching client saw.
///
/// Invariant: `stamp` is the key's [`Store::watch_stamp`](super::Store::watch_stamp)
/// read from an applied state; every write to the key (or a FLUSHALL) after
/// that state raises it, on every replica alike, so comparing stamps at apply
/// time is deterministic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatchedKey {
    /// The key.
    pub key: Bytes,
    /// The key's modification stamp when it was watched.
    pub stamp: u64,
    /// Whether the key held a live value then (a watched key that expires
    /// afterwards counts as changed, as in Redis 7).
    pub live: bool,
}

impl WriteCmd {
    /// A short name of the operation for logs (never the keys or values).
    pub fn name(&self) -> &'static str {
        match self {
            WriteCmd::Set { .. } => "set",
            WriteCmd::SetNx { .. } => "setnx",
            WriteCmd::MSet { .. } => "mset",
            WriteCmd::MSetNx { .. } => "msetnx",
            WriteCmd::GetDel { .. } => "getdel",
            WriteCmd::GetEx { .. } => "getex",
            WriteCmd::IncrBy { .. } => "incrby",
            WriteCmd::IncrByFloat { .. } => "incrbyfloat",
            WriteCmd::Append { .. } => "append",
            WriteCmd::SetRange { .. } => "setrange",
            WriteCmd::Del { .. } => "del",
            WriteCmd::Expire { .. } => "expire",
            WriteCmd::Persist { .. } => "persist",
            WriteCmd::Rename { .. } => "rename",
            WriteCmd::FlushAll => "flushall",
            WriteCmd::ExpireKeys { .. } => "expire-sweep",
            WriteCmd::Batch { .. } => "batch",
            WriteCmd::Transaction { .. } => "transaction",
            WriteCmd::SetBit { .. } => "setbit",
            WriteCmd::Copy { .. } => "copy",
            WriteCmd::BitOp { .. } => "bitop",
        }
    }

    /// Bytes of keys and values the command carries: a cheap estimate of its
    /// encoded size, used to bound how much is coalesced into one entry.
    pub fn approx_len(&self) -> usize {
        match self {
            WriteCmd::Set { key, value, .. }
            | WriteCmd::SetNx { key, value }
            | WriteCmd::Append { key, value, .. }
            | WriteCmd::SetRange { key, value, .. } => key.len() + value.len(),
            WriteCmd::GetDel { key }
            | WriteCmd::GetEx { key, .. }
            | WriteCmd::IncrBy { key, .. }
            | WriteCmd::IncrByFloat { key, .. }
            | WriteCmd::Expire { key, .. }
            | WriteCmd::Persist { key }
            | WriteCmd::SetBit { key, .. } => key.len(),
            WriteCmd::MSet { pairs } | WriteCmd::MSetNx { pairs } => pairs.iter().map(|(k, v)| k.len() + v.len()).sum(),
            WriteCmd::Del { keys } | WriteCmd::ExpireKeys { keys } => keys.iter().map(Bytes::len).sum(),
            WriteCmd::Rename { src, dst, .. } | WriteCmd::Copy { src, dst, .. } => src.len() + dst.len(),
            WriteCmd::BitOp { dst, srcs, .. } => dst.len() + srcs.iter().map(Bytes::len).sum::<usize>(),
            WriteCmd::FlushAll => 0,
            WriteCmd::Batch { ops } => ops.iter().map(|op| op.cmd.approx_len()).sum(),
            WriteCmd::Transaction { steps, watched } => {
                let steps: usize = steps.iter().map(TxStep::approx_len).sum();
                steps + watched.iter().map(|w| w.key.len()).sum::<usize>()
            }
        }
    }

    /// Client writes this command carries: the batch's size for a batch, else 1.
    pub fn write_count(&self) -> usize {
        match self {
            WriteCmd::Batch { ops } => ops.iter().map(|op| op.cmd.write_count()).sum(),
            // One client command (EXEC), whatever it holds.
            _ => 1,
        }
    }

    /// Calls `f` with each key this command writes (and the sources COPY and
    /// BITOP read), in argument order (a batch's in the order of its writes),
    /// without allocating.
    pub fn for_each_key<'a>(&'a self, f: &mut impl FnMut(&'a Bytes)) {
        match self {
            WriteCmd::Set { key, .. }
            | WriteCmd::SetNx { key, .. }
            | WriteCmd::GetDel { key }
            | WriteCmd::GetEx { key, .. }
            | WriteCmd::IncrBy { key, .. }
            | WriteCmd::IncrByFloat { key, .. }
            | WriteCmd::Append { key, .. }
            | WriteCmd::SetRange { key, .. }
            | WriteCmd::Expire { key, .. }
            | WriteCmd::Persist { key }
            | WriteCmd::SetBit { key, .. } => f(key),
            WriteCmd::MSet { pairs } | WriteCmd::MSetNx { pairs } => pairs.iter().for_each(|(key, _)| f(key)),
            WriteCmd::Del { keys } | WriteCmd::ExpireKeys { keys } => keys.iter().for_each(&mut *f),
            WriteCmd::Rename { src, dst, .. } | WriteCmd::Copy { src, dst, .. } => {
                f(src);
                f(dst);
            }
            WriteCmd::BitOp { dst, srcs, .. } => {
                f(dst);
                srcs.iter().for_each(&mut *f);
            }
            WriteCmd::FlushAll => {}
            WriteCmd::Batch { ops } => ops.iter().for_each(|op| op.cmd.for_each_key(f)),
            WriteCmd::Transaction { steps, .. } => steps.iter().for_each(|step| {
                if let TxStep::Write(cmd) = step {
                    cmd.for_each_key(f);
                }
            }),
        }
    }
}

impl TxStep {
    /// Bytes of keys, values and arguments the step carries.
    pub fn approx_len(&self) -> usize {
        match self {
            TxStep::Write(cmd) => cmd.approx_len(),
            TxStep::Read(args) => args.iter().map(Bytes::len).sum(),
        }
    }
}
