//! Applying replicated write operations.
//!
//! Every function here is deterministic: its only inputs are the store and the
//! operation, with `now` derived from `Operation::at_ms`. Replies follow Redis,
//! including errors that depend on stored data (they are decided here, so every
//! replica agrees on them).

use bytes::Bytes;

use super::entry::Entry;
use super::ops::{
    BitOperation, ExpireCondition, GetExTtl, Operation, SetCondition, SetTtl, TxStep, WatchedKey, WriteCmd,
};
use super::Store;
use crate::commands::{self, bits, CommandError, Limits, Parsed};
use crate::resp::num::{format_human_float, parse_f64, parse_i64};
use crate::resp::Frame;

/// Splits the reply of a [`WriteCmd::Batch`] of `parts` writes into one reply
/// per write, in order. Any other shape is a bug: it is logged, and every part
/// gets an internal error rather than a reply meant for another write.
pub fn split_batch_reply(reply: Frame, parts: usize) -> Vec<Frame> {
    match reply {
        Frame::Array(replies) if replies.len() == parts => replies,
        other => {
            tracing::error!(reply = ?other, parts, "a write batch replied with the wrong shape");
            vec![Frame::Error("ERR internal error: malformed batch reply".into()); parts]
        }
    }
}

/// True when the absolute time `at` (Unix ms, may be negative) is not after `now`.
fn passed(at: i64, now: u64) -> bool {
    u64::try_from(at).map_or(true, |at| at <= now)
}

fn error(err: CommandError) -> Frame {
    err.to_frame()
}

/// How many keys ahead of the write being applied a batch's keys are
/// prefetched: enough to overlap that many memory stalls, few enough that the
/// prefetched lines are still cached when their write comes.
const PREFETCH_DISTANCE: usize = 16;

/// Software prefetching for a batch (issue 5). Applying a pipelined batch is
/// bound by memory latency, not work: each write's lookup misses the cache
/// for the table's control bytes, its slot and then the entry, one miss after
/// the other. Looking keys up ahead, several in a tight loop whose loads do
/// not depend on each other, lets those misses overlap; as Redis 8 does for
/// batches of pipelined commands.
///
/// Invariant: prefetching only reads; the store's contents and every reply
/// are the same with it or without it.
struct Prefetch<'op> {
    /// Every key the batch writes, in apply order.
    keys: Vec<&'op [u8]>,
    /// Keys of writes applied (or being applied) so far.
    reached: usize,
    /// Keys prefetched so far.
    issued: usize,
}

impl<'op> Prefetch<'op> {
    /// A prefetcher for `op`: over its keys when it is a batch, else idle.
    fn of(op: &'op Operation) -> Self {
        let mut keys = Vec::new();
        if matches!(op.cmd, WriteCmd::Batch { .. }) {
            op.cmd.for_each_key(&mut |key| keys.push(&key[..]));
        }
        Prefetch { keys, reached: 0, issued: 0 }
    }

    /// Called before `cmd` is applied: once it is a single write and fewer
    /// than half of [`PREFETCH_DISTANCE`] keys past it are prefetched, tops
    /// the window up in one go (one go, so that the lookups' misses overlap).
    fn advance(&mut self, store: &Store, cmd: &WriteCmd) {
        if self.keys.is_empty() || matches!(cmd, WriteCmd::Batch { .. }) {
            return;
        }
        cmd.for_each_key(&mut |_| self.reached += 1);
        if self.issued >= self.reached + PREFETCH_DISTANCE / 2 {
            return;
        }
        let target = (self.reached + PREFETCH_DISTANCE).min(self.keys.len());
        store.prefetch(&self.keys[self.issued.min(target)..target]);
        self.issued = self.issued.max(target);
    }
}

impl Store {
    /// Applies one replicated write and returns the client's reply (possibly an
    /// error frame: WRONGTYPE, not an integer, ...; the state is then unchanged).
    ///
    /// "Now" is `max(op.at_ms, highest at_ms applied so far)`: expiry decisions
    /// never use the local clock, and never go backwards across leader changes.
    pub fn apply(&mut self, op: &Operation) -> Frame {
        let mut prefetch = Prefetch::of(op);
        self.apply_with(op, &mut prefetch)
    }

    /// [`Store::apply`], with `prefetch` running ahead over a batch's keys.
    fn apply_with<'op>(&mut self, op: &'op Operation, prefetch: &mut Prefetch<'op>) -> Frame {
        prefetch.advance(self, &op.cmd);
        let now = op.at_ms.max(self.clock_ms);
        self.clock_ms = now;
        self.apply_cmd(now, &op.cmd, prefetch)
    }

    /// Applies one write at the store clock `now`.
    fn apply_cmd<'op>(&mut self, now: u64, cmd: &'op WriteCmd, prefetch: &mut Prefetch<'op>) -> Frame {
        match cmd {
            WriteCmd::Set { key, value, cond, ttl, get } => self.apply_set(now, key, value, *cond, *ttl, *get),
            WriteCmd::SetNx { key, value } => {
                let frame = self.apply_set(now, key, value, SetCondition::IfAbsent, SetTtl::Clear, false);
                Frame::Integer(i64::from(frame == Frame::ok()))
            }
            WriteCmd::MSet { pairs } => {
                for (key, value) in pairs {
                    self.put(self.hash(key), Entry::string(key, value, None));
                }
                Frame::ok()
            }
            WriteCmd::MSetNx { pairs } => {
                if pairs.iter().any(|(key, _)| self.expire_if_due(key, self.hash(key), now)) {
                    return Frame::Integer(0);
                }
                for (key, value) in pairs {
                    self.put(self.hash(key), Entry::string(key, value, None));
                }
                Frame::Integer(1)
            }
            WriteCmd::GetDel { key } => self.apply_getdel(now, key),
            WriteCmd::GetEx { key, ttl } => self.apply_getex(now, key, *ttl),
            WriteCmd::IncrBy { key, delta } => self.apply_incrby(now, key, *delta),
            WriteCmd::IncrByFloat { key, delta } => self.apply_incrbyfloat(now, key, *delta),
            WriteCmd::Append { key, value, max_len } => self.apply_append(now, key, value, *max_len),
            WriteCmd::SetRange { key, offset, value, max_len } => {
                self.apply_setrange(now, key, *offset, value, *max_len)
            }
            WriteCmd::Del { keys } => {
                let mut removed = 0;
                for key in keys {
                    let hash = self.hash(key);
                    if self.expire_if_due(key, hash, now) {
                        self.remove(key, hash);
                        removed += 1;
                    }
                }
                Frame::Integer(removed)
            }
            WriteCmd::Expire { key, at_ms, cond } => self.apply_expire(now, key, *at_ms, *cond),
            WriteCmd::Persist { key } => {
                let hash = self.hash(key);
                if !self.expire_if_due(key, hash, now) || self.find(key, hash).and_then(Entry::expire_at).is_none() {
                    return Frame::Integer(0);
                }
                self.set_expire(key, hash, None);
                Frame::Integer(1)
            }
            WriteCmd::Rename { src, dst, nx } => self.apply_rename(now, src, dst, *nx),
            WriteCmd::FlushAll => {
                self.clear();
                Frame::ok()
            }
            WriteCmd::ExpireKeys { keys } => {
                let mut removed = 0;
                for key in keys {
                    let hash = self.hash(key);
                    if self.find(key, hash).is_some_and(|e| e.is_expired(now)) {
                        self.remove(key, hash);
                        removed += 1;
                    }
                }
                Frame::Integer(removed)
            }
            WriteCmd::Batch { ops } => Frame::Array(ops.iter().map(|op| self.apply_with(op, prefetch)).collect()),
            WriteCmd::Transaction { steps, watched } => self.apply_transaction(now, steps, watched, prefetch),
            WriteCmd::SetBit { key, offset, bit, max_len } => self.apply_setbit(now, key, *offset, *bit, *max_len),
            WriteCmd::Copy { src, dst, replace } => self.apply_copy(now, src, dst, *replace),
            WriteCmd::BitOp { op, dst, srcs } => self.apply_bitop(now, *op, dst, srcs),
        }
    }

    /// `EXEC`: nil if a watched key changed since it was watched, else every
    /// step in order, at one clock, with nothing in between.
    fn apply_transaction<'op>(
        &mut self,
        now: u64,
        steps: &'op [TxStep],
        watched: &[WatchedKey],
        prefetch: &mut Prefetch<'op>,
    ) -> Frame {
        let changed = |store: &Store, w: &WatchedKey| {
            store.watch_stamp(&w.key) != w.stamp || (w.live && store.get(&w.key, now).is_none())
        };
        if watched.iter().any(|w| changed(self, w)) {
            return Frame::NullArray;
        }
        let replies = steps.iter().map(|step| match step {
            TxStep::Write(cmd) => self.apply_cmd(now, cmd, prefetch),
            TxStep::Read(args) => self.transaction_read(now, args),
        });
        Frame::Array(replies.collect())
    }

    /// A read inside a transaction, at its place among the writes. The leader
    /// checked it (key sizes included) before proposing it, so it is parsed
    /// here without limits.
    fn transaction_read(&self, now: u64, args: &[Bytes]) -> Frame {
        let unlimited = Limits { max_key_bytes: usize::MAX, max_value_bytes: usize::MAX };
        match commands::parse(args, &unlimited, now) {
            Ok(Parsed::Read(cmd)) => commands::execute_read(&cmd, self, now),
            Ok(_) => Frame::Error("ERR internal error: a transaction's read step is not a read".into()),
            Err(e) => e.to_frame(),
        }
    }

    /// The live entry for `key` after lazy expiry at `now`, as (hash, entry).
    fn live(&mut self, key: &[u8], now: u64) -> (u64, Option<&Entry>) {
        let hash = self.hash(key);
        if self.expire_if_due(key, hash, now) {
            (hash, self.find(key, hash))
        } else {
            (hash, None)
        }
    }

    /// Replaces the TTL of an existing key.
    fn set_expire(&mut self, key: &[u8], hash: u64, expire_at: Option<u64>) {
        if let Some(entry) = self.remove(key, hash) {
            self.put(hash, entry.with_expire(expire_at));
        }
    }

    fn apply_set(&mut self, now: u64, key: &Bytes, value: &Bytes, cond: SetCondition, ttl: SetTtl, get: bool) -> Frame {
        let (hash, old) = self.live(key, now);
        // GET checks the old value's type before anything else, as Redis does.
        let reply = match (get, old) {
            (false, _) => Frame::ok(),
            (true, None) => Frame::Null,
            (true, Some(entry)) => match entry.string_value() {
                Some(value) => Frame::bulk_copy(value),
                None => return error(CommandError::WrongType),
            },
        };
        let old_expire = old.and_then(Entry::expire_at);
        let blocked = match cond {
            SetCondition::Always => false,
            SetCondition::IfAbsent => old.is_some(),
            SetCondition::IfPresent => old.is_none(),
        };
        if blocked {
            return if get { reply } else { Frame::Null };
        }
        let expire_at = match ttl {
            SetTtl::Clear => None,
            SetTtl::Keep => old_expire,
            SetTtl::At(at) if passed(at, now) => {
                // Already expired: the key simply stops existing.
                self.remove(key, hash);
                return reply;
            }
            SetTtl::At(at) => Some(at as u64),
        };
        self.put(hash, Entry::string(key, value, expire_at));
        reply
    }

    fn apply_getdel(&mut self, now: u64, key: &[u8]) -> Frame {
        let (hash, old) = self.live(key, now);
        let reply = match old {
            None => return Frame::Null,
            Some(entry) => match entry.string_value() {
                Some(value) => Frame::bulk_copy(value),
                None => return error(CommandError::WrongType),
            },
        };
        self.remove(key, hash);
        reply
    }

    fn apply_getex(&mut self, now: u64, key: &[u8], ttl: GetExTtl) -> Frame {
        let (hash, old) = self.live(key, now);
        let reply = match old {
            None => return Frame::Null,
            Some(entry) => match entry.string_value() {
                Some(value) => Frame::bulk_copy(value),
                None => return error(CommandError::WrongType),
            },
        };
        match ttl {
            GetExTtl::Persist => self.set_expire(key, hash, None),
            GetExTtl::At(at) if passed(at, now) => {
                self.remove(key, hash);
            }
            GetExTtl::At(at) => self.set_expire(key, hash, Some(at as u64)),
        }
        reply
    }

    fn apply_incrby(&mut self, now: u64, key: &[u8], delta: i64) -> Frame {
        let (hash, old) = self.live(key, now);
        let (current, expire_at) = match old {
            None => (0, None),
            Some(entry) => match entry.string_value().map(parse_i64) {
                None => return error(CommandError::WrongType),
                Some(None) => return error(CommandError::NotInteger),
                Some(Some(n)) => (n, entry.expire_at()),
            },
        };
        let Some(result) = current.checked_add(delta) else {
            return error(CommandError::IncrOverflow);
        };
        let mut text = itoa::Buffer::new();
        self.put(hash, Entry::string(key, text.format(result).as_bytes(), expire_at));
        Frame::Integer(result)
    }

    fn apply_incrbyfloat(&mut self, now: u64, key: &[u8], delta: f64) -> Frame {
        let (hash, old) = self.live(key, now);
        let (current, expire_at) = match old {
            None => (0.0, None),
            Some(entry) => match entry.string_value().map(parse_f64) {
                None => return error(CommandError::WrongType),
                Some(None) => return error(CommandError::NotFloat),
                Some(Some(n)) => (n, entry.expire_at()),
            },
        };
        let result = current + delta;
        if !result.is_finite() {
            return error(CommandError::NanOrInfinity);
        }
        let text = format_human_float(result);
        self.put(hash, Entry::string(key, text.as_bytes(), expire_at));
        Frame::Bulk(Bytes::from(text))
    }

    /// The string at `key` with its TTL, a missing key reading as empty with
    /// none, for the commands that edit a string (APPEND, SETRANGE, SETBIT);
    /// WRONGTYPE for another type.
    fn live_string(&mut self, key: &[u8], now: u64) -> Result<(u64, &[u8], Option<u64>), Frame> {
        let (hash, old) = self.live(key, now);
        match old {
            None => Ok((hash, &[], None)),
            Some(entry) => match entry.string_value() {
                Some(value) => Ok((hash, value, entry.expire_at())),
                None => Err(error(CommandError::WrongType)),
            },
        }
    }

    fn apply_append(&mut self, now: u64, key: &[u8], value: &[u8], max_len: u64) -> Frame {
        let (hash, old_value, expire_at) = match self.live_string(key, now) {
            Ok(found) => found,
            Err(reply) => return reply,
        };
        let new_len = old_value.len() + value.len();
        if new_len as u64 > max_len {
            return error(CommandError::ValueTooLarge { size: new_len, max: max_len as usize });
        }
        // Deviation from Redis's amortised O(1) append: a packed entry is rebuilt,
        // O(value length), which the value size limit bounds.
        let entry = Entry::string_from_parts(key, &[old_value, value], expire_at);
        self.put(hash, entry);
        Frame::Integer(new_len as i64)
    }

    fn apply_setrange(&mut self, now: u64, key: &[u8], offset: u64, value: &[u8], max_len: u64) -> Frame {
        let (hash, old_value, expire_at) = match self.live_string(key, now) {
            Ok(found) => found,
            Err(reply) => return reply,
        };
        if value.is_empty() {
            // Nothing written: no size check and no key created, as in Redis.
            return Frame::Integer(old_value.len() as i64);
        }
        let end = offset.saturating_add(value.len() as u64);
        if end > max_len {
            return error(CommandError::ValueTooLarge { size: end as usize, max: max_len as usize });
        }
        let (offset, end) = (offset as usize, end as usize); // both ≤ max_len
        let old_len = old_value.len();
        if end <= old_len {
            self.string_in_place(key, hash)[offset..end].copy_from_slice(value);
            return Frame::Integer(old_len as i64);
        }
        let entry = if offset <= old_len {
            Entry::string_from_parts(key, &[&old_value[..offset], value], expire_at)
        } else {
            let padding = vec![0u8; offset - old_len];
            Entry::string_from_parts(key, &[old_value, &padding, value], expire_at)
        };
        self.put(hash, entry);
        Frame::Integer(end as i64)
    }

    fn apply_setbit(&mut self, now: u64, key: &[u8], offset: u64, bit: bool, max_len: u64) -> Frame {
        let (hash, old_value, expire_at) = match self.live_string(key, now) {
            Ok(found) => found,
            Err(reply) => return reply,
        };
        let was = bits::bit_at(old_value, offset);
        let byte = (offset >> 3) as usize; // offset < 2^32: parsing bounds it
        let mask = bits::mask(offset);
        if byte < old_value.len() {
            // Redis signals the key as modified even when the bit already had
            // the value (so a WATCH on it aborts): the stamp moves either way.
            let value = self.string_in_place(key, hash);
            value[byte] = if bit { value[byte] | mask } else { value[byte] & !mask };
            return Frame::Integer(i64::from(was));
        }
        let new_len = byte + 1;
        if new_len as u64 > max_len {
            return error(CommandError::ValueTooLarge { size: new_len, max: max_len as usize });
        }
        let mut tail = vec![0u8; new_len - old_value.len()];
        if bit {
            *tail.last_mut().expect("at least one byte") |= mask;
        }
        let entry = Entry::string_from_parts(key, &[old_value, &tail], expire_at);
        self.put(hash, entry);
        Frame::Integer(0)
    }

    fn apply_copy(&mut self, now: u64, src: &[u8], dst: &[u8], replace: bool) -> Frame {
        let (_, source) = self.live(src, now);
        let Some(copy) = source.map(|entry| entry.renamed(dst)) else {
            return Frame::Integer(0);
        };
        let (dst_hash, existing) = self.live(dst, now);
        if existing.is_some() && !replace {
            return Frame::Integer(0);
        }
        self.put(dst_hash, copy);
        Frame::Integer(1)
    }

    fn apply_bitop(&mut self, now: u64, op: BitOperation, dst: &[u8], srcs: &[Bytes]) -> Frame {
        let hashes: Vec<u64> = srcs
            .iter()
            .map(|src| {
                let hash = self.hash(src);
                self.expire_if_due(src, hash, now);
                hash
            })
            .collect();
        let mut values = Vec::with_capacity(srcs.len());
        for (src, &hash) in srcs.iter().zip(&hashes) {
            match self.find(src, hash).map(Entry::string_value) {
                None => values.push(&[][..]),
                Some(Some(value)) => values.push(value),
                Some(None) => return error(CommandError::WrongType),
            }
        }
        let result = bits::combine(op, &values);
        let (dst_hash, existing) = self.live(dst, now);
        let existed = existing.is_some();
        if result.is_empty() {
            if existed {
                self.remove(dst, dst_hash);
            }
            return Frame::Integer(0);
        }
        self.put(dst_hash, Entry::string(dst, &result, None));
        Frame::Integer(result.len() as i64)
    }

    /// The string value of the live entry at `key`, to change in place (its
    /// length stays): the key's WATCH stamp moves first.
    fn string_in_place(&mut self, key: &[u8], hash: u64) -> &mut [u8] {
        self.watch.touch(key);
        let shard = &mut self.shards[super::shard_of(hash)];
        let entry = shard.find_mut(hash, |e| e.key() == key).expect("live entry");
        entry.string_value_mut().expect("string entry")
    }

    fn apply_expire(&mut self, now: u64, key: &[u8], at: i64, cond: ExpireCondition) -> Frame {
        let (hash, old) = self.live(key, now);
        let Some(entry) = old else {
            return Frame::Integer(0);
        };
        // No TTL counts as an infinite one for GT / LT.
        let current = entry.expire_at().map(i128::from);
        let at_wide = i128::from(at);
        let allowed = !(cond.nx && current.is_some()
            || cond.xx && current.is_none()
            || cond.gt && current.is_none_or(|c| at_wide <= c)
            || cond.lt && current.is_some_and(|c| at_wide >= c));
        if !allowed {
            return Frame::Integer(0);
        }
        if passed(at, now) {
            self.remove(key, hash);
        } else {
            self.set_expire(key, hash, Some(at as u64));
        }
        Frame::Integer(1)
    }

    fn apply_rename(&mut self, now: u64, src: &[u8], dst: &[u8], nx: bool) -> Frame {
        let (src_hash, old) = self.live(src, now);
        if old.is_none() {
            return error(CommandError::NoSuchKey);
        }
        if src == dst {
            return if nx { Frame::Integer(0) } else { Frame::ok() };
        }
        let (dst_hash, existing) = self.live(dst, now);
        if existing.is_some() && nx {
            return Frame::Integer(0);
        }
        let entry = self.remove(src, src_hash).expect("live source");
        self.put(dst_hash, entry.renamed(dst));
        if nx {
            Frame::Integer(1)
        } else {
            Frame::ok()
        }
    }
}
