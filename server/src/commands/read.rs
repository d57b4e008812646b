//! Read commands: parsed into [`ReadCmd`], executed against the local store.
//!
//! Reads never change the store: a key whose TTL has passed at the reader's
//! `now_ms` is treated as absent (lazy expiry), and its removal is left to
//! writes and the leader's active sweep.

use bytes::Bytes;

use super::bits::{self, CountRange, PosRange};
use super::glob::glob_match;
use super::CommandError;
use crate::resp::Frame;
use crate::store::{Store, ValueType};

/// Unit and form of a TTL query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TtlUnit {
    /// TTL: remaining seconds (rounded).
    Seconds,
    /// PTTL: remaining milliseconds.
    Millis,
    /// EXPIRETIME: absolute Unix seconds (rounded).
    AbsoluteSeconds,
    /// PEXPIRETIME: absolute Unix milliseconds.
    AbsoluteMillis,
}

/// A typed read command.
#[derive(Debug, Clone, PartialEq)]
pub enum ReadCmd {
    /// GET (also GETEX without options).
    Get {
        /// Key.
        key: Bytes,
    },
    /// GETEX whose TTL argument is invalid: Redis checks the TTL only after
    /// finding a string at the key, so the reply is nil for a missing key,
    /// WRONGTYPE for another type, and `error` otherwise. Nothing changes.
    GetExRejected {
        /// Key.
        key: Bytes,
        /// The TTL error (not an integer, invalid expire time).
        error: CommandError,
    },
    /// MGET.
    MGet {
        /// Keys.
        keys: Vec<Bytes>,
    },
    /// STRLEN.
    StrLen {
        /// Key.
        key: Bytes,
    },
    /// GETRANGE / SUBSTR.
    GetRange {
        /// Key.
        key: Bytes,
        /// First index (negative: from the end).
        start: i64,
        /// Last index, inclusive (negative: from the end).
        end: i64,
    },
    /// EXISTS (a repeated key counts each time).
    Exists {
        /// Keys.
        keys: Vec<Bytes>,
    },
    /// TYPE.
    Type {
        /// Key.
        key: Bytes,
    },
    /// MEMORY USAGE (its SAMPLES option changes nothing: string values are
    /// measured whole).
    MemoryUsage {
        /// Key.
        key: Bytes,
    },
    /// TTL, PTTL, EXPIRETIME, PEXPIRETIME.
    Ttl {
        /// Key.
        key: Bytes,
        /// Which of the four.
        unit: TtlUnit,
    },
    /// KEYS.
    Keys {
        /// Glob pattern.
        pattern: Bytes,
    },
    /// SCAN.
    Scan {
        /// Cursor from the previous call (0 to start).
        cursor: u64,
        /// MATCH pattern (None: every key).
        pattern: Option<Bytes>,
        /// COUNT hint (keys visited per call).
        count: usize,
        /// TYPE filter, as given (an unknown type matches nothing, like Redis 7).
        type_name: Option<Bytes>,
    },
    /// GETBIT.
    GetBit {
        /// Key.
        key: Bytes,
        /// Bit offset.
        offset: u64,
    },
    /// BITCOUNT. A malformed range is reported only for an existing string.
    BitCount {
        /// Key.
        key: Bytes,
        /// The range, or why it is malformed.
        range: Result<CountRange, CommandError>,
    },
    /// BITPOS. A malformed range is reported only for an existing string.
    BitPos {
        /// Key.
        key: Bytes,
        /// The bit looked for.
        bit: bool,
        /// The range (`None`: the whole string), or why it is malformed.
        range: Result<Option<PosRange>, CommandError>,
    },
    /// RANDOMKEY.
    RandomKey,
    /// DBSIZE.
    DbSize,
}

/// Executes a read against `store` at the reader's clock `now_ms`.
pub fn execute_read(cmd: &ReadCmd, store: &Store, now_ms: u64) -> Frame {
    match cmd {
        ReadCmd::Get { key } => on_string(store, key, now_ms, Frame::Null, Frame::bulk_copy),
        ReadCmd::GetExRejected { key, error } => on_string(store, key, now_ms, Frame::Null, |_| error.to_frame()),
        ReadCmd::MGet { keys } => Frame::Array(
            keys.iter()
                .map(|key| match store.get(key, now_ms).and_then(|e| e.as_string()) {
                    Some(value) => Frame::bulk_copy(value),
                    None => Frame::Null, // missing or not a string: nil, as in Redis
                })
                .collect(),
        ),
        ReadCmd::StrLen { key } => {
            on_string(store, key, now_ms, Frame::Integer(0), |value| Frame::Integer(value.len() as i64))
        }
        ReadCmd::GetRange { key, start, end } => {
            on_string(store, key, now_ms, Frame::empty_bulk(), |value| Frame::bulk_copy(substring(value, *start, *end)))
        }
        ReadCmd::Exists { keys } => {
            Frame::Integer(keys.iter().filter(|key| store.get(key, now_ms).is_some()).count() as i64)
        }
        ReadCmd::Type { key } => Frame::Simple(store.get(key, now_ms).map_or("none", |e| e.value_type().name()).into()),
        ReadCmd::MemoryUsage { key } => {
            store.get(key, now_ms).map_or(Frame::Null, |e| Frame::Integer(e.memory_usage() as i64))
        }
        ReadCmd::Ttl { key, unit } => Frame::Integer(ttl(store, key, *unit, now_ms)),
        ReadCmd::Keys { pattern } => Frame::Array(
            store
                .iter(now_ms)
                .filter(|entry| glob_match(pattern, entry.key(), false))
                .map(|entry| Frame::bulk_copy(entry.key()))
                .collect(),
        ),
        ReadCmd::Scan { cursor, pattern, count, type_name } => {
            let wanted = type_name.as_ref().map(|name| ValueType::from_name(name));
            let (next, keys) = store.scan(*cursor, *count, now_ms, |entry| {
                let type_ok = match wanted {
                    None => true,
                    Some(wanted) => wanted == Some(entry.value_type()),
                };
                type_ok && pattern.as_ref().is_none_or(|p| glob_match(p, entry.key(), false))
            });
            Frame::Array(vec![
                Frame::Bulk(Bytes::from(next.to_string())),
                Frame::Array(keys.into_iter().map(Frame::Bulk).collect()),
            ])
        }
        ReadCmd::GetBit { key, offset } => on_string(store, key, now_ms, Frame::Integer(0), |value| {
            Frame::Integer(i64::from(bits::bit_at(value, *offset)))
        }),
        ReadCmd::BitCount { key, range } => on_string(store, key, now_ms, Frame::Integer(0), |value| match range {
            Ok(range) => Frame::Integer(bits::count(value, *range)),
            Err(e) => e.to_frame(),
        }),
        // A missing key is an endless run of zeros.
        ReadCmd::BitPos { key, bit, range } => {
            on_string(store, key, now_ms, Frame::Integer(if *bit { -1 } else { 0 }), |value| match range {
                Ok(range) => Frame::Integer(bits::position(value, *bit, *range)),
                Err(e) => e.to_frame(),
            })
        }
        ReadCmd::RandomKey => store.random_key(now_ms, &mut rand::rng()).map_or(Frame::Null, Frame::Bulk),
        ReadCmd::DbSize => Frame::Integer(store.len() as i64),
    }
}

/// The reply of a read of the string at `key`: `missing` when there is no
/// live key, WRONGTYPE for another type (checked before anything else, as
/// Redis does), else `f` of the value.
fn on_string(store: &Store, key: &[u8], now_ms: u64, missing: Frame, f: impl FnOnce(&[u8]) -> Frame) -> Frame {
    match store.get(key, now_ms) {
        None => missing,
        Some(entry) => entry.as_string().map_or_else(Frame::wrong_type, f),
    }
}

/// GETRANGE index arithmetic, exactly as Redis 7's `getrangeCommand`.
fn substring(value: &[u8], start: i64, end: i64) -> &[u8] {
    if start < 0 && end < 0 && start > end {
        return &[];
    }
    let len = value.len() as i64;
    let mut start = if start < 0 { len.saturating_add(start) } else { start };
    let mut end = if end < 0 { len.saturating_add(end) } else { end };
    start = start.max(0);
    end = end.max(0);
    if end >= len {
        end = len - 1;
    }
    if start > end || len == 0 {
        return &[];
    }
    &value[start as usize..=end as usize]
}

/// TTL / PTTL / EXPIRETIME / PEXPIRETIME: -2 missing, -1 no TTL; seconds are
/// rounded to nearest like Redis's `(ms + 500) / 1000`.
fn ttl(store: &Store, key: &[u8], unit: TtlUnit, now_ms: u64) -> i64 {
    let Some(entry) = store.get(key, now_ms) else {
        return -2;
    };
    let Some(at) = entry.expire_at() else {
        return -1;
    };
    let ms = match unit {
        TtlUnit::Seconds | TtlUnit::Millis => at.saturating_sub(now_ms),
        TtlUnit::AbsoluteSeconds | TtlUnit::AbsoluteMillis => at,
    };
    let ms = i128::from(ms);
    let value = match unit {
        TtlUnit::Millis | TtlUnit::AbsoluteMillis => ms,
        TtlUnit::Seconds | TtlUnit::AbsoluteSeconds => (ms + 500) / 1000,
    };
    i64::try_from(value).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::substring;

    #[test]
    fn getrange_arithmetic_matches_redis() {
        let v = b"This is a string";
        assert_eq!(substring(v, 0, 3), b"This");
        assert_eq!(substring(v, -3, -1), b"ing");
        assert_eq!(substring(v, 0, -1), v);
        assert_eq!(substring(v, 10, 100), b"string");
        assert_eq!(substring(v, -1, -5), b"");
        assert_eq!(substring(v, 5, 3), b"");
        assert_eq!(substring(v, -100, 2), b"Thi");
        assert_eq!(substring(v, i64::MIN, i64::MAX), v);
        assert_eq!(substring(b"", 0, -1), b"");
        assert_eq!(substring(v, 100, 200), b"");
    }
}
