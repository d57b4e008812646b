//! Keeping an AppendEntries request inside one frame.
//!
//! openraft hands the transport up to `max_payload_entries` entries at once,
//! and an entry may be a batch of many writes, so a follower catching up on
//! a large log could be sent a request bigger than [`MAX_FRAME_BYTES`]: its
//! encoding would fail, and the same request would be retried forever. The
//! transport instead sends the longest prefix that fits and reports a partial
//! success up to its last entry; openraft sends the rest in the next request.

use openraft::EntryPayload;

use super::wire::MAX_FRAME_BYTES;
use crate::raft::Entry;

/// Estimated bytes of entries sent in one request. Half the frame limit, so
/// that an estimate short by up to 2× still fits.
pub(super) const APPEND_BUDGET_BYTES: usize = MAX_FRAME_BYTES / 2;

/// Bytes an entry's encoding takes beyond its keys and values, overestimated:
/// log id, payload tag, and per write its time, command tag, lengths, options.
const PER_ENTRY: usize = 64;
const PER_WRITE: usize = 48;
/// Membership entries list every member's addresses; they are few and small.
const MEMBERSHIP: usize = 16 << 10;

/// An upper-bound estimate of an entry's encoded size.
pub(super) fn size_hint(entry: &Entry) -> usize {
    PER_ENTRY
        + match &entry.payload {
            EntryPayload::Normal(op) => op.cmd.approx_len() + PER_WRITE * op.cmd.write_count(),
            EntryPayload::Membership(_) => MEMBERSHIP,
            EntryPayload::Blank => 0,
        }
}

/// How many leading entries to send within `budget` bytes: always at least
/// one (a single entry is bounded by the request size limit, far below a frame).
pub(super) fn entries_that_fit(entries: &[Entry], budget: usize) -> usize {
    let mut used = 0usize;
    for (i, entry) in entries.iter().enumerate() {
        used = used.saturating_add(size_hint(entry));
        if used > budget && i > 0 {
            return i;
        }
    }
    entries.len()
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use openraft::entry::RaftEntry;
    use openraft::vote::RaftLeaderId;

    use super::*;
    use crate::raft::{LogId, TypeConfig};
    use crate::store::{Operation, SetCondition, SetTtl, WriteCmd};

    fn set(value_len: usize) -> Operation {
        Operation {
            at_ms: 1,
            cmd: WriteCmd::Set {
                key: Bytes::from_static(b"k"),
                value: Bytes::from(vec![b'v'; value_len]),
                cond: SetCondition::Always,
                ttl: SetTtl::Clear,
                get: false,
            },
        }
    }

    fn entry(index: u64, op: Operation) -> Entry {
        let leader = <<TypeConfig as openraft::RaftTypeConfig>::LeaderId as RaftLeaderId>::new(1, 1).to_committed();
        Entry::new(LogId::new(leader, index), EntryPayload::Normal(op.into()))
    }

    #[test]
    fn small_requests_are_sent_whole() {
        let entries: Vec<Entry> = (1..=100).map(|i| entry(i, set(32))).collect();
        assert_eq!(entries_that_fit(&entries, APPEND_BUDGET_BYTES), 100);
    }

    #[test]
    fn a_long_request_is_cut_to_its_budget() {
        let entries: Vec<Entry> = (1..=10).map(|i| entry(i, set(1000))).collect();
        let one = size_hint(&entries[0]);
        assert_eq!(entries_that_fit(&entries, 3 * one), 3);
        assert_eq!(entries_that_fit(&entries, 3 * one - 1), 2);
    }

    #[test]
    fn an_entry_over_the_budget_is_still_sent_alone() {
        let entries = vec![entry(1, set(5000)), entry(2, set(1))];
        assert_eq!(entries_that_fit(&entries, 100), 1);
    }

    #[test]
    fn the_estimate_bounds_the_real_encoding() {
        let batch = Operation { at_ms: 1, cmd: WriteCmd::Batch { ops: (0..500).map(|_| set(3)).collect() } };
        for e in [entry(1, set(0)), entry(2, set(70_000)), entry(3, batch)] {
            let encoded = crate::raft::codec::encode(&e).expect("encode").len();
            assert!(encoded <= size_hint(&e), "encoded {encoded} > hint {}", size_hint(&e));
        }
    }
}
