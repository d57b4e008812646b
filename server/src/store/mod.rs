//! The in-memory state machine: the keyspace every replica builds by applying
//! the Raft log.
//!
//! Determinism: [`Store::apply`] depends only on the store's state and the
//! [`Operation`] (its `at_ms` is the only clock), so replicas applying the same
//! log hold the same data, and [`Store::write_snapshot`] writes the same bytes.
//!
//! Layout (memory per key matters, issue 5):
//! - The keyspace is split into [`SHARDS`] `hashbrown` tables by bits of the key's
//!   hash. Each slot is one 8-byte pointer to an `Entry` packing key, TTL and
//!   value in one allocation. Sharding also bounds the pause of a table resize
//!   (a shard holds ~1/4096 of the keys) and gives SCAN a stable order.
//! - Hashing is SipHash-1-3 with a per-store random key (as Redis keys its
//!   SipHash), so clients cannot craft colliding keys.
//! - TTLs live inside entries (lazy expiry costs no second lookup) and in an
//!   ordered index `(expire_at, hash) → count` used by the active sweep.

mod apply;
mod entry;
mod ops;
mod snapshot;
mod thin;
mod watch;

use std::collections::BTreeMap;
use std::hash::{BuildHasher, RandomState};

use bytes::Bytes;
use hashbrown::hash_table::{Entry as Slot, HashTable};
use rand::Rng;

pub use apply::split_batch_reply;
use entry::Entry;
pub use entry::{ValueRef, ValueType};
pub use ops::{BitOperation, ExpireCondition, GetExTtl, Operation, SetCondition, SetTtl, TxStep, WatchedKey, WriteCmd};
pub use snapshot::SnapshotError;

const SHARD_BITS: u32 = 12;
/// Number of hash tables the keyspace is split into.
pub const SHARDS: usize = 1 << SHARD_BITS;
/// Most keys [`Store::prefetch`] looks up in one go.
const PREFETCH_BATCH: usize = 16;

/// The keyspace. See the module docs for layout and invariants.
pub struct Store {
    /// Invariant: an entry whose key hashes to `h` lives in `shards[shard_of(h)]`.
    shards: Box<[HashTable<Entry>]>,
    hasher: RandomState,
    /// Number of entries (expired ones included until they are removed).
    len: usize,
    /// Invariant: `expires[(at, h)]` = number of entries whose key hashes to `h`
    /// and whose TTL is `at`; absent when zero.
    expires: BTreeMap<(u64, u64), u32>,
    /// Sum of the entries' heap sizes.
    entry_bytes: usize,
    /// The highest `at_ms` applied so far: the store's clock never runs backwards
    /// even when leadership moves to a node whose wall clock is behind.
    clock_ms: u64,
    /// Invariant: every change to a key's entry (put, remove, in-place write,
    /// clear) touches the key's stamp.
    watch: watch::WatchStamps,
}

/// A borrowed view of one stored key.
#[derive(Clone, Copy, Debug)]
pub struct EntryRef<'a>(&'a Entry);

impl<'a> EntryRef<'a> {
    /// The key.
    pub fn key(&self) -> &'a [u8] {
        self.0.key()
    }

    /// The value.
    pub fn value(&self) -> ValueRef<'a> {
        self.0.value()
    }

    /// The value type.
    pub fn value_type(&self) -> ValueType {
        self.0.value_type()
    }

    /// The value if it is a string.
    pub fn as_string(&self) -> Option<&'a [u8]> {
        self.0.string_value()
    }

    /// Absolute expire time (Unix ms), if the key has a TTL.
    pub fn expire_at(&self) -> Option<u64> {
        self.0.expire_at()
    }

    /// What the key costs the keyspace, in bytes, as `MEMORY USAGE` reports
    /// it: its entry's allocation, its table slot, and its place in the
    /// expiry index when it has a TTL. An estimate in the way Redis's is: the
    /// tables' spare capacity and the Raft log are not counted.
    pub fn memory_usage(&self) -> usize {
        /// A table slot (a pointer).
        const SLOT: usize = std::mem::size_of::<usize>();
        /// A `(expire_at, hash) -> count` element of the expiry B-tree, with
        /// its share of the node around it.
        const EXPIRY_INDEX_ENTRY: usize = 32;
        self.0.allocated_bytes() + SLOT + if self.0.expire_at().is_some() { EXPIRY_INDEX_ENTRY } else { 0 }
    }
}

/// The scan order position of a hash: the shard bits (45..57 of the hash, which
/// hashbrown does not use inside a table) become the most significant bits.
fn scan_position(hash: u64) -> u64 {
    hash.rotate_left(7)
}

fn shard_of(hash: u64) -> usize {
    (scan_position(hash) >> (64 - SHARD_BITS)) as usize
}

impl Default for Store {
    fn default() -> Self {
        Store::new()
    }
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("len", &self.len)
            .field("keys_with_ttl", &self.keys_with_ttl())
            .field("clock_ms", &self.clock_ms)
            .finish()
    }
}

impl Store {
    /// An empty store.
    pub fn new() -> Self {
        Store {
            shards: (0..SHARDS).map(|_| HashTable::new()).collect(),
            hasher: RandomState::new(),
            len: 0,
            expires: BTreeMap::new(),
            entry_bytes: 0,
            clock_ms: 0,
            watch: watch::WatchStamps::default(),
        }
    }

    /// Number of keys, including expired keys not yet removed (as Redis's DBSIZE).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Number of keys with a TTL (`INFO keyspace`'s `expires`). O(distinct
    /// expiry times); `INFO` is not a hot path.
    pub fn keys_with_ttl(&self) -> usize {
        self.expires.values().map(|&n| n as usize).sum()
    }

    /// True when no key is stored.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The highest operation time applied so far (Unix ms).
    pub fn clock_ms(&self) -> u64 {
        self.clock_ms
    }

    /// Approximate heap bytes held: tables, entries and the expiry index
    /// (allocator rounding and BTree node slack not included).
    pub fn approx_memory_bytes(&self) -> usize {
        let tables: usize = self.shards.iter().map(HashTable::allocation_size).sum();
        let index = self.expires.len() * (std::mem::size_of::<(u64, u64)>() + std::mem::size_of::<u32>());
        tables + self.entry_bytes + index + std::mem::size_of_val(&*self.shards)
    }

    fn hash(&self, key: &[u8]) -> u64 {
        self.hasher.hash_one(key)
    }

    fn find(&self, key: &[u8], hash: u64) -> Option<&Entry> {
        self.shards[shard_of(hash)].find(hash, |e| e.key() == key)
    }

    /// Starts loading what lookups of `keys` will touch, so that their cache
    /// misses overlap instead of following one another. For each group of
    /// [`PREFETCH_BATCH`] keys, three passes, each of which leaves the next
    /// one's loads independent: hash every key (no table memory touched), load
    /// each key's control-byte group, then read the slots whose tag matches and
    /// prefetch their entries. Only reads; a hint for the writes about to run.
    fn prefetch(&self, keys: &[&[u8]]) {
        for group in keys.chunks(PREFETCH_BATCH) {
            let hashes: [u64; PREFETCH_BATCH] = std::array::from_fn(|i| group.get(i).map_or(0, |key| self.hash(key)));
            let probes: [Option<_>; PREFETCH_BATCH] = std::array::from_fn(|i| {
                (i < group.len()).then(|| self.shards[shard_of(hashes[i])].iter_hash(hashes[i]))
            });
            for candidate in probes.into_iter().flatten().flatten() {
                candidate.prefetch();
            }
        }
    }

    /// The key's entry unless it is missing or expired at `now_ms` (lazy expiry
    /// for reads: nothing is removed, reads never change state).
    pub fn get(&self, key: &[u8], now_ms: u64) -> Option<EntryRef<'_>> {
        self.find(key, self.hash(key)).filter(|e| !e.is_expired(now_ms)).map(EntryRef)
    }

    /// Every key live at `now_ms`, in no particular order.
    pub fn iter(&self, now_ms: u64) -> impl Iterator<Item = EntryRef<'_>> + '_ {
        self.shards.iter().flat_map(HashTable::iter).filter(move |e| !e.is_expired(now_ms)).map(EntryRef)
    }

    /// One SCAN step from `cursor`: visits about `count` keys in scan order and
    /// returns `(next cursor, keys live at now_ms and accepted by filter)`; the
    /// next cursor is 0 when the iteration is complete.
    ///
    /// Cursor = a position in the order of `scan_position` of the key hashes.
    /// Positions only grow, and each call returns every visited key whose
    /// position lies in `[cursor, next)`, so a key present from the first call
    /// to the last is returned exactly once, whatever is written in between
    /// (stronger than Redis, which may repeat keys). A step never splits a group
    /// of keys with equal positions. Cursors are valid within this process only
    /// (the hash key is random per store), like Redis's across restarts.
    pub fn scan(
        &self,
        cursor: u64,
        count: usize,
        now_ms: u64,
        mut filter: impl FnMut(EntryRef<'_>) -> bool,
    ) -> (u64, Vec<Bytes>) {
        let count = count.max(1);
        let mut keys = Vec::new();
        let mut visited = 0usize;
        let mut position = cursor;
        loop {
            let shard = (position >> (64 - SHARD_BITS)) as usize;
            let mut candidates: Vec<(u64, &Entry)> = self.shards[shard]
                .iter()
                .map(|e| (scan_position(self.hash(e.key())), e))
                .filter(|&(p, _)| p >= position)
                .collect();
            candidates.sort_unstable_by_key(|&(p, _)| p);
            for (i, &(p, entry)) in candidates.iter().enumerate() {
                if visited >= count && p != candidates[i - 1].0 {
                    return (p, keys);
                }
                visited += 1;
                if !entry.is_expired(now_ms) && filter(EntryRef(entry)) {
                    keys.push(Bytes::copy_from_slice(entry.key()));
                }
            }
            if shard == SHARDS - 1 {
                return (0, keys);
            }
            position = ((shard as u64) + 1) << (64 - SHARD_BITS);
            if visited >= count {
                return (position, keys);
            }
        }
    }

    /// A random key live at `now_ms` (RANDOMKEY), or None if there is none.
    pub fn random_key(&self, now_ms: u64, rng: &mut impl Rng) -> Option<Bytes> {
        if self.len == 0 {
            return None;
        }
        for _ in 0..16 {
            let mut index = rng.random_range(0..self.len);
            for shard in self.shards.iter() {
                if index < shard.len() {
                    let entry = shard.iter().nth(index).expect("index < shard length");
                    if !entry.is_expired(now_ms) {
                        return Some(Bytes::copy_from_slice(entry.key()));
                    }
                    break;
                }
                index -= shard.len();
            }
        }
        // Mostly expired keys: fall back to a walk from a random shard.
        let start = rng.random_range(0..SHARDS);
        (0..SHARDS)
            .flat_map(|i| self.shards[(start + i) % SHARDS].iter())
            .find(|e| !e.is_expired(now_ms))
            .map(|e| Bytes::copy_from_slice(e.key()))
    }

    /// Up to `limit` keys whose TTL has passed at `now_ms`, earliest first: the
    /// leader proposes them as [`WriteCmd::ExpireKeys`] (active expiry).
    pub fn expired_keys(&self, now_ms: u64, limit: usize) -> Vec<Bytes> {
        let mut keys = Vec::new();
        for (&(at, hash), _) in self.expires.range(..=(now_ms, u64::MAX)) {
            // iter_hash may also yield entries that merely share hashbrown's tag.
            for entry in self.shards[shard_of(hash)].iter_hash(hash) {
                if keys.len() >= limit {
                    return keys;
                }
                if entry.expire_at() == Some(at) && self.hash(entry.key()) == hash {
                    keys.push(Bytes::copy_from_slice(entry.key()));
                }
            }
        }
        keys
    }

    fn index_add(&mut self, entry: &Entry, hash: u64) {
        if let Some(at) = entry.expire_at() {
            *self.expires.entry((at, hash)).or_insert(0) += 1;
        }
    }

    fn index_remove(&mut self, entry: &Entry, hash: u64) {
        if let Some(at) = entry.expire_at() {
            if let std::collections::btree_map::Entry::Occupied(mut slot) = self.expires.entry((at, hash)) {
                *slot.get_mut() -= 1;
                if *slot.get() == 0 {
                    slot.remove();
                }
            }
        }
    }

    /// The modification stamp of `key` for `WATCH`: it changes whenever the
    /// key is written (and, rarely, when a key sharing its slot is).
    pub fn watch_stamp(&self, key: &[u8]) -> u64 {
        self.watch.get(key)
    }

    /// Inserts or replaces the entry for its key, keeping the indexes in step.
    fn put(&mut self, hash: u64, entry: Entry) {
        self.watch.touch(entry.key());
        self.index_add(&entry, hash);
        self.entry_bytes += entry.heap_size();
        let hasher = &self.hasher;
        let slot = self.shards[shard_of(hash)].entry(hash, |e| e.key() == entry.key(), |e| hasher.hash_one(e.key()));
        match slot {
            Slot::Occupied(mut occupied) => {
                let old = std::mem::replace(occupied.get_mut(), entry);
                self.entry_bytes -= old.heap_size();
                self.index_remove(&old, hash);
            }
            Slot::Vacant(vacant) => {
                vacant.insert(entry);
                self.len += 1;
            }
        }
    }

    /// Removes the key's entry (expired or not).
    fn remove(&mut self, key: &[u8], hash: u64) -> Option<Entry> {
        let found = self.shards[shard_of(hash)].find_entry(hash, |e| e.key() == key).ok()?;
        let (entry, _) = found.remove();
        self.watch.touch(key);
        self.len -= 1;
        self.entry_bytes -= entry.heap_size();
        self.index_remove(&entry, hash);
        Some(entry)
    }

    /// Removes the key if it has expired at `now_ms` (lazy expiry for writes);
    /// true if a live entry remains.
    fn expire_if_due(&mut self, key: &[u8], hash: u64, now_ms: u64) -> bool {
        match self.find(key, hash) {
            None => false,
            Some(entry) if entry.is_expired(now_ms) => {
                self.remove(key, hash);
                false
            }
            Some(_) => true,
        }
    }

    fn clear(&mut self) {
        for shard in self.shards.iter_mut() {
            *shard = HashTable::new(); // frees the memory too, unlike clear()
        }
        self.expires.clear();
        self.watch.touch_all();
        self.len = 0;
        self.entry_bytes = 0;
    }
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tx_tests;
