//! One keyspace entry: key, optional expire time and value packed into a single
//! heap allocation behind an 8-byte pointer.
//!
//! Payload layout (inside a [`ThinBytes`]):
//! `[flags: u8][key_len: LEB128][expire_at: u64 LE, iff flags & HAS_EXPIRE][key][value]`
//!
//! For a 16-byte key and a 32-byte value that is 4 + 1 + 1 + 16 + 32 = 54 bytes,
//! one 64-byte malloc chunk, plus the 8-byte table slot. Keys without a TTL pay
//! nothing for the TTL feature; keys with one pay 8 bytes here plus their entry in
//! the store's expiry index.
//!
//! Extending to other types: `flags >> 4` is the value type. Strings are stored
//! inline; a collection type will make `Entry` an enum whose other variants box
//! `(key + expire header, collection)`. The string variant stays a single thin
//! pointer so the memory figures above hold for string keys.

use super::thin::ThinBytes;

const HAS_EXPIRE: u8 = 0b0000_0001;
const TYPE_SHIFT: u8 = 4;
const TYPE_STRING: u8 = 0;
/// Most pieces a string value may be assembled from (APPEND: 2, SETRANGE: 3).
const MAX_VALUE_PARTS: usize = 4;

/// The type of a stored value, as `TYPE` names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ValueType {
    /// A binary-safe string.
    String,
}

impl ValueType {
    /// The name `TYPE` and `SCAN ... TYPE` use.
    pub fn name(self) -> &'static str {
        match self {
            ValueType::String => "string",
        }
    }

    /// Looks a type up by its `TYPE` name (case-insensitive).
    pub fn from_name(name: &[u8]) -> Option<ValueType> {
        name.eq_ignore_ascii_case(b"string").then_some(ValueType::String)
    }
}

/// A borrowed view of a stored value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ValueRef<'a> {
    /// A string value.
    String(&'a [u8]),
}

/// A key with its value and expire time; see the module docs for the layout.
pub(crate) struct Entry {
    raw: ThinBytes,
}

/// Offsets decoded from an entry's header.
struct Header {
    expire_at: Option<u64>,
    key_start: usize,
    key_end: usize,
}

impl Entry {
    /// A string entry.
    pub(crate) fn string(key: &[u8], value: &[u8], expire_at: Option<u64>) -> Entry {
        Entry::build(TYPE_STRING, key, expire_at, &[value])
    }

    /// A string entry whose value is the concatenation of `parts`.
    pub(crate) fn string_from_parts(key: &[u8], parts: &[&[u8]], expire_at: Option<u64>) -> Entry {
        Entry::build(TYPE_STRING, key, expire_at, parts)
    }

    fn build(value_type: u8, key: &[u8], expire_at: Option<u64>, value: &[&[u8]]) -> Entry {
        let mut head = [0u8; 1 + 10 + 8];
        head[0] = value_type << TYPE_SHIFT | if expire_at.is_some() { HAS_EXPIRE } else { 0 };
        let mut n = 1 + write_varint(key.len() as u64, &mut head[1..]);
        if let Some(at) = expire_at {
            head[n..n + 8].copy_from_slice(&at.to_le_bytes());
            n += 8;
        }
        // A fixed array, not a Vec: building an entry is on the write hot path.
        let mut parts: [&[u8]; 2 + MAX_VALUE_PARTS] = [&[]; 2 + MAX_VALUE_PARTS];
        assert!(value.len() <= MAX_VALUE_PARTS, "at most {MAX_VALUE_PARTS} value parts");
        parts[0] = &head[..n];
        parts[1] = key;
        parts[2..2 + value.len()].copy_from_slice(value);
        Entry { raw: ThinBytes::from_parts(&parts[..2 + value.len()]) }
    }

    fn header(&self) -> Header {
        let raw = self.raw.as_slice();
        let (key_len, varint_len) = read_varint(&raw[1..]);
        let mut key_start = 1 + varint_len;
        let expire_at = if raw[0] & HAS_EXPIRE != 0 {
            let at = u64::from_le_bytes(raw[key_start..key_start + 8].try_into().expect("8 bytes"));
            key_start += 8;
            Some(at)
        } else {
            None
        };
        Header { expire_at, key_start, key_end: key_start + key_len as usize }
    }

    /// Starts loading the entry's header and key into the cache (a hint).
    #[inline]
    pub(crate) fn prefetch(&self) {
        self.raw.prefetch();
    }

    /// The key.
    pub(crate) fn key(&self) -> &[u8] {
        let header = self.header();
        &self.raw.as_slice()[header.key_start..header.key_end]
    }

    /// Bytes the entry's one allocation occupies.
    pub(crate) fn allocated_bytes(&self) -> usize {
        self.raw.allocated_bytes()
    }

    /// Absolute expire time in Unix milliseconds, if the key has a TTL.
    pub(crate) fn expire_at(&self) -> Option<u64> {
        if self.raw.as_slice()[0] & HAS_EXPIRE == 0 {
            return None;
        }
        self.header().expire_at
    }

    /// True when the key has a TTL that has passed at `now_ms`.
    pub(crate) fn is_expired(&self, now_ms: u64) -> bool {
        self.expire_at().is_some_and(|at| at <= now_ms)
    }

    /// The value's type.
    pub(crate) fn value_type(&self) -> ValueType {
        match self.raw.as_slice()[0] >> TYPE_SHIFT {
            TYPE_STRING => ValueType::String,
            other => unreachable!("entries are only built with known types, found {other}"),
        }
    }

    /// The value.
    pub(crate) fn value(&self) -> ValueRef<'_> {
        match self.value_type() {
            ValueType::String => ValueRef::String(&self.raw.as_slice()[self.header().key_end..]),
        }
    }

    /// The value, if it is a string.
    pub(crate) fn string_value(&self) -> Option<&[u8]> {
        match self.value() {
            ValueRef::String(value) => Some(value),
        }
    }

    /// The string value, mutable in place (its length is fixed).
    pub(crate) fn string_value_mut(&mut self) -> Option<&mut [u8]> {
        match self.value_type() {
            ValueType::String => {
                let start = self.header().key_end;
                Some(&mut self.raw.as_mut_slice()[start..])
            }
        }
    }

    /// This entry with another expire time (a new allocation only if the presence
    /// of a TTL changes).
    pub(crate) fn with_expire(mut self, expire_at: Option<u64>) -> Entry {
        match (self.expire_at(), expire_at) {
            (Some(_), Some(at)) => {
                let start = self.header().key_start - 8;
                self.raw.as_mut_slice()[start..start + 8].copy_from_slice(&at.to_le_bytes());
                self
            }
            (None, None) => self,
            _ => {
                let header = self.header();
                let raw = self.raw.as_slice();
                let value_type = raw[0] >> TYPE_SHIFT;
                Entry::build(value_type, &raw[header.key_start..header.key_end], expire_at, &[&raw[header.key_end..]])
            }
        }
    }

    /// A copy of this entry under another key (RENAME).
    pub(crate) fn renamed(&self, key: &[u8]) -> Entry {
        let header = self.header();
        let raw = self.raw.as_slice();
        Entry::build(raw[0] >> TYPE_SHIFT, key, header.expire_at, &[&raw[header.key_end..]])
    }

    /// Heap bytes used by this entry (before allocator rounding).
    pub(crate) fn heap_size(&self) -> usize {
        self.raw.heap_size()
    }
}

impl std::fmt::Debug for Entry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Entry")
            .field("key", &String::from_utf8_lossy(self.key()))
            .field("expire_at", &self.expire_at())
            .field("value", &self.value())
            .finish()
    }
}

/// Writes `value` as LEB128 into `out`, returning the bytes written (≤ 10).
fn write_varint(mut value: u64, out: &mut [u8]) -> usize {
    let mut n = 0;
    loop {
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            out[n] = byte;
            return n + 1;
        }
        out[n] = byte | 0x80;
        n += 1;
    }
}

/// Reads a LEB128 value written by [`write_varint`]: (value, bytes read).
fn read_varint(input: &[u8]) -> (u64, usize) {
    let mut value = 0u64;
    for (i, &byte) in input.iter().enumerate() {
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return (value, i + 1);
        }
    }
    unreachable!("entry headers always hold a complete varint")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_is_one_pointer() {
        assert_eq!(std::mem::size_of::<Entry>(), 8);
    }

    #[test]
    fn small_pair_fits_one_64_byte_chunk() {
        let entry = Entry::string(&[b'k'; 16], &[b'v'; 32], None);
        assert_eq!(entry.heap_size(), 54);
    }

    #[test]
    fn fields_round_trip() {
        for key_len in [0usize, 1, 127, 128, 300, 20_000] {
            let key = vec![b'k'; key_len];
            for expire in [None, Some(0), Some(1_700_000_000_123)] {
                let entry = Entry::string(&key, b"value", expire);
                assert_eq!(entry.key(), &key[..]);
                assert_eq!(entry.expire_at(), expire);
                assert_eq!(entry.string_value(), Some(&b"value"[..]));
                assert_eq!(entry.value_type(), ValueType::String);
            }
        }
    }

    #[test]
    fn expire_changes() {
        let entry = Entry::string(b"k", b"v", None);
        let entry = entry.with_expire(Some(10));
        assert_eq!((entry.key(), entry.expire_at(), entry.string_value()), (&b"k"[..], Some(10), Some(&b"v"[..])));
        let entry = entry.with_expire(Some(20));
        assert_eq!(entry.expire_at(), Some(20));
        assert!(entry.is_expired(20) && !entry.is_expired(19));
        let entry = entry.with_expire(None);
        assert_eq!((entry.key(), entry.expire_at(), entry.string_value()), (&b"k"[..], None, Some(&b"v"[..])));
        let renamed = entry.with_expire(Some(5)).renamed(b"other");
        assert_eq!((renamed.key(), renamed.expire_at()), (&b"other"[..], Some(5)));
    }

    #[test]
    fn value_mutates_in_place() {
        let mut entry = Entry::string(b"key", b"abc", Some(7));
        entry.string_value_mut().unwrap().copy_from_slice(b"xyz");
        assert_eq!(entry.string_value(), Some(&b"xyz"[..]));
        assert_eq!(entry.expire_at(), Some(7));
    }

    #[test]
    fn varints() {
        for value in [0, 1, 127, 128, 16_383, 16_384, u64::from(u32::MAX), u64::MAX] {
            let mut buf = [0u8; 10];
            let n = write_varint(value, &mut buf);
            assert_eq!(read_varint(&buf[..n]), (value, n));
        }
    }
}
