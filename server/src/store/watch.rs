//! Modification stamps for `WATCH`: has a key been written since a client
//! looked at it?
//!
//! Every write to a key stamps the key's slot with a fresh value of a counter
//! of writes applied; a `WATCH` remembers the stamp, and `EXEC` runs only if
//! it is unchanged. Keys share [`SLOTS`] slots, so a write to another key of
//! the same slot also aborts a transaction watching this one: with a few
//! hundred writes between a `WATCH` and its `EXEC`, about one transaction in
//! a hundred retries for nothing, which `WATCH`'s contract allows (Redis's own
//! `FLUSHALL` and expiry aborts are as blunt). Slots keep the cost of a write
//! fixed (one table store, no memory per key) instead of a version in every
//! entry plus tombstones for deleted keys.
//!
//! Invariant (what makes the check deterministic): the slot of a key and every
//! stamp depend only on the log, never on a node's hash seed or clock, and the
//! snapshot carries them; so every replica decides an `EXEC` alike.

/// Number of stamp slots (a power of two): 128 KiB of stamps, small enough to
/// stay in cache on the write path.
pub(crate) const SLOTS: usize = 1 << 14;

/// The stamps of every slot, and the counter they are drawn from.
#[derive(Clone)]
pub(crate) struct WatchStamps {
    /// Invariant: every stamp is at most `counter`.
    stamps: Box<[u64]>,
    /// Writes stamped so far.
    counter: u64,
}

impl Default for WatchStamps {
    fn default() -> Self {
        WatchStamps { stamps: vec![0; SLOTS].into_boxed_slice(), counter: 0 }
    }
}

/// The slot of `key`: CRC-32, the same on every node (unlike the keyspace's
/// seeded hash).
fn slot_of(key: &[u8]) -> usize {
    crc32fast::hash(key) as usize & (SLOTS - 1)
}

impl WatchStamps {
    /// The current stamp of `key`'s slot.
    pub(crate) fn get(&self, key: &[u8]) -> u64 {
        self.stamps[slot_of(key)]
    }

    /// Records a write to `key`: its slot's stamp becomes greater than any
    /// stamp a client can have seen.
    pub(crate) fn touch(&mut self, key: &[u8]) {
        self.counter += 1;
        self.stamps[slot_of(key)] = self.counter;
    }

    /// Records a write to every key (FLUSHALL).
    pub(crate) fn touch_all(&mut self) {
        self.counter += 1;
        self.stamps.fill(self.counter);
    }

    /// The counter, and the slots written so far with their stamps in slot
    /// order, for a snapshot (most slots of a small store are never written).
    pub(crate) fn parts(&self) -> (u64, Vec<(u32, u64)>) {
        let written = self.stamps.iter().enumerate().filter(|(_, &stamp)| stamp != 0);
        (self.counter, written.map(|(slot, &stamp)| (slot as u32, stamp)).collect())
    }

    /// Rebuilds the stamps from a snapshot's parts; `None` if they break the
    /// invariants (a corrupt snapshot): slots in range and ascending, stamps
    /// written (non-zero) and at most the counter.
    pub(crate) fn from_parts(counter: u64, written: &[(u32, u64)]) -> Option<WatchStamps> {
        let mut stamps = WatchStamps { stamps: vec![0; SLOTS].into_boxed_slice(), counter };
        let mut previous = None;
        for &(slot, stamp) in written {
            let slot = slot as usize;
            if slot >= SLOTS || previous.is_some_and(|p| p >= slot) || stamp == 0 || stamp > counter {
                return None;
            }
            stamps.stamps[slot] = stamp;
            previous = Some(slot);
        }
        Some(stamps)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_touch_changes_the_stamp_of_its_key_and_no_other_slot() {
        let mut stamps = WatchStamps::default();
        let (a, b) = (b"alpha".as_slice(), b"beta".as_slice());
        assert_ne!(slot_of(a), slot_of(b));
        let (seen_a, seen_b) = (stamps.get(a), stamps.get(b));
        stamps.touch(a);
        assert_ne!(stamps.get(a), seen_a);
        assert_eq!(stamps.get(b), seen_b);
        // A second write after a client looked again is seen too.
        let seen_a = stamps.get(a);
        stamps.touch(a);
        assert_ne!(stamps.get(a), seen_a);
        stamps.touch_all();
        assert_ne!(stamps.get(b), seen_b);
    }

    #[test]
    fn parts_round_trip_and_corrupt_parts_are_refused() {
        let mut stamps = WatchStamps::default();
        stamps.touch(b"k");
        stamps.touch(b"other");
        let (counter, written) = stamps.parts();
        assert_eq!(written.len(), 2);
        let back = WatchStamps::from_parts(counter, &written).unwrap();
        assert_eq!((back.get(b"k"), back.get(b"other")), (stamps.get(b"k"), stamps.get(b"other")));
        assert!(WatchStamps::from_parts(1, &written).is_none(), "a stamp above the counter");
        let reversed: Vec<_> = written.iter().rev().copied().collect();
        assert!(WatchStamps::from_parts(counter, &reversed).is_none(), "slots out of order");
        assert!(WatchStamps::from_parts(counter, &[(SLOTS as u32, 1)]).is_none(), "slot out of range");
        assert!(WatchStamps::from_parts(counter, &[(0, 0)]).is_none(), "an unwritten slot listed");
    }
}
