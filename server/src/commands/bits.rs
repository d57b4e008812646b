//! Bitmap commands over string values: SETBIT, GETBIT, BITCOUNT, BITPOS, BITOP.
//!
//! Bit 0 is the most significant bit of the first byte, as in Redis. Ranges
//! follow Redis 7.0's `bitcountCommand` and `bitposCommand`, including the
//! order in which they report errors: Redis looks the key up before it parses
//! a BITCOUNT or BITPOS range, so a missing key answers 0 (or BITPOS's
//! default) even when the range is malformed. The parsed range therefore
//! travels inside the [`ReadCmd`] as a `Result`, whose error
//! [`execute_read`](super::execute_read) reports only for an existing string.

use bytes::Bytes;

use super::args::{integer, is};
use super::read::ReadCmd;
use super::{CommandError, CommandSpec, Limits, Parsed};
use crate::store::{BitOperation, WriteCmd};

type Result = std::result::Result<Parsed, CommandError>;

/// Highest bit offset SETBIT and GETBIT accept: the last bit of a 512 MiB
/// string (Redis's `proto-max-bulk-len`). Seshat's value limit is far lower;
/// SETBIT checks that one when it runs, after the type check, as SETRANGE does.
const MAX_BIT_OFFSET: i64 = (512 << 20) * 8 - 1;

/// Whether a BITCOUNT / BITPOS range counts bytes or bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BitUnit {
    /// `BYTE` (the default): indices are byte positions.
    Byte,
    /// `BIT`: indices are bit positions.
    Bit,
}

/// A BITCOUNT range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CountRange {
    /// No range: the whole string.
    Whole,
    /// Both ends negative with start after end: Redis answers 0 before it
    /// looks at the unit argument.
    Empty,
    /// `start end [BYTE | BIT]`, inclusive, negative indices from the end.
    Span {
        /// First index.
        start: i64,
        /// Last index.
        end: i64,
        /// Unit of both.
        unit: BitUnit,
    },
}

/// A BITPOS range: `start [end [BYTE | BIT]]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PosRange {
    /// First index (negative: from the end).
    pub start: i64,
    /// Last index, inclusive; `None` searches to the end of the string, past
    /// which a clear bit is always found.
    pub end: Option<i64>,
    /// Unit of both.
    pub unit: BitUnit,
}

/// SETBIT key offset value
pub(super) fn setbit(_: &'static CommandSpec, args: &[Bytes], limits: &Limits, _: u64) -> Result {
    let offset = bit_offset(&args[2])?;
    let bit = match integer(&args[3]) {
        Ok(0) => false,
        Ok(1) => true,
        _ => return Err(CommandError::BitValue),
    };
    let max_len = limits.max_value_bytes as u64;
    Ok(Parsed::Write(WriteCmd::SetBit { key: args[1].clone(), offset, bit, max_len }))
}

/// GETBIT key offset
pub(super) fn getbit(_: &'static CommandSpec, args: &[Bytes], _: &Limits, _: u64) -> Result {
    let offset = bit_offset(&args[2])?;
    Ok(Parsed::Read(ReadCmd::GetBit { key: args[1].clone(), offset }))
}

/// BITCOUNT key \[start end \[BYTE | BIT\]\]
pub(super) fn bitcount(_: &'static CommandSpec, args: &[Bytes], _: &Limits, _: u64) -> Result {
    let range = match args.len() {
        2 => Ok(CountRange::Whole),
        4 | 5 => count_range(&args[2..]),
        _ => Err(CommandError::Syntax),
    };
    Ok(Parsed::Read(ReadCmd::BitCount { key: args[1].clone(), range }))
}

/// BITPOS key bit \[start \[end \[BYTE | BIT\]\]\]
pub(super) fn bitpos(_: &'static CommandSpec, args: &[Bytes], _: &Limits, _: u64) -> Result {
    // The bit is checked before the key is looked up; the range after.
    let bit = match integer(&args[2])? {
        0 => false,
        1 => true,
        _ => return Err(CommandError::BitArgument),
    };
    let range = match args.len() {
        3 => Ok(None),
        4..=6 => pos_range(&args[3..]).map(Some),
        _ => Err(CommandError::Syntax),
    };
    Ok(Parsed::Read(ReadCmd::BitPos { key: args[1].clone(), bit, range }))
}

/// BITOP AND | OR | XOR | NOT destkey key \[key ...\]
pub(super) fn bitop(_: &'static CommandSpec, args: &[Bytes], _: &Limits, _: u64) -> Result {
    let op = match &args[1] {
        name if is(name, "and") => BitOperation::And,
        name if is(name, "or") => BitOperation::Or,
        name if is(name, "xor") => BitOperation::Xor,
        name if is(name, "not") => BitOperation::Not,
        _ => return Err(CommandError::Syntax),
    };
    if op == BitOperation::Not && args.len() != 4 {
        return Err(CommandError::BitopNotArity);
    }
    Ok(Parsed::Write(WriteCmd::BitOp { op, dst: args[2].clone(), srcs: args[3..].to_vec() }))
}

fn bit_offset(arg: &[u8]) -> std::result::Result<u64, CommandError> {
    match integer(arg) {
        Ok(offset @ 0..=MAX_BIT_OFFSET) => Ok(offset as u64),
        _ => Err(CommandError::BitOffset),
    }
}

fn count_range(args: &[Bytes]) -> std::result::Result<CountRange, CommandError> {
    let (start, end) = (integer(&args[0])?, integer(&args[1])?);
    if start < 0 && end < 0 && start > end {
        return Ok(CountRange::Empty);
    }
    Ok(CountRange::Span { start, end, unit: unit(args.get(2))? })
}

fn pos_range(args: &[Bytes]) -> std::result::Result<PosRange, CommandError> {
    let start = integer(&args[0])?;
    // Redis reads the unit before the end.
    let unit = unit(args.get(2))?;
    let end = args.get(1).map(|end| integer(end)).transpose()?;
    Ok(PosRange { start, end, unit })
}

fn unit(arg: Option<&Bytes>) -> std::result::Result<BitUnit, CommandError> {
    match arg {
        None => Ok(BitUnit::Byte),
        Some(arg) if is(arg, "byte") => Ok(BitUnit::Byte),
        Some(arg) if is(arg, "bit") => Ok(BitUnit::Bit),
        Some(_) => Err(CommandError::Syntax),
    }
}

/// The bit at `offset` (0 past the end).
pub(crate) fn bit_at(value: &[u8], offset: u64) -> bool {
    let byte = usize::try_from(offset >> 3).unwrap_or(usize::MAX);
    value.get(byte).is_some_and(|b| b & mask(offset) != 0)
}

/// The mask selecting bit `offset` within its byte.
pub(crate) fn mask(offset: u64) -> u8 {
    0x80 >> (offset & 7)
}

/// BITOP's result: as long as the longest source, each shorter one read as
/// padded with zero bytes.
pub(crate) fn combine(op: BitOperation, sources: &[&[u8]]) -> Vec<u8> {
    let len = sources.iter().map(|s| s.len()).max().unwrap_or(0);
    let byte = |source: &[u8], i: usize| source.get(i).copied().unwrap_or(0);
    let (first, rest) = sources.split_first().expect("BITOP has a source");
    (0..len)
        .map(|i| {
            let others = rest.iter().map(|source| byte(source, i));
            match op {
                BitOperation::And => others.fold(byte(first, i), |acc, b| acc & b),
                BitOperation::Or => others.fold(byte(first, i), |acc, b| acc | b),
                BitOperation::Xor => others.fold(byte(first, i), |acc, b| acc ^ b),
                BitOperation::Not => !byte(first, i),
            }
        })
        .collect()
}

/// BITCOUNT over an existing string.
pub(super) fn count(value: &[u8], range: CountRange) -> i64 {
    let bits = match range {
        CountRange::Whole => resolve(value.len(), 0, -1, BitUnit::Byte),
        CountRange::Empty => None,
        CountRange::Span { start, end, unit } => resolve(value.len(), start, end, unit),
    };
    bits.map_or(0, |(first, last)| ones(value, first, last) as i64)
}

/// BITPOS over an existing string.
pub(super) fn position(value: &[u8], bit: bool, range: Option<PosRange>) -> i64 {
    let (bits, end_given) = match range {
        None => (resolve(value.len(), 0, -1, BitUnit::Byte), false),
        Some(PosRange { start, end, unit }) => (resolve(value.len(), start, end.unwrap_or(-1), unit), end.is_some()),
    };
    // An empty range holds neither a 0 nor a 1.
    let Some((first, last)) = bits else { return -1 };
    match first_bit(value, bit, first, last) {
        Some(offset) => offset as i64,
        // With no end given the string counts as padded with zeros.
        None if !bit && !end_given => last as i64 + 1,
        None => -1,
    }
}

/// Resolves a range as Redis does (negative indices from the end, then
/// clamped to the string) into inclusive bit offsets; `None` when empty.
fn resolve(len: usize, start: i64, end: i64, unit: BitUnit) -> Option<(u64, u64)> {
    let total = match unit {
        BitUnit::Byte => len as i64,
        BitUnit::Bit => len as i64 * 8,
    };
    let from_end = |i: i64| if i < 0 { total.saturating_add(i) } else { i };
    let start = from_end(start).max(0);
    let end = from_end(end).max(0).min(total - 1);
    if start > end {
        return None;
    }
    let (start, end) = (start as u64, end as u64);
    Some(match unit {
        BitUnit::Byte => (start * 8, end * 8 + 7),
        BitUnit::Bit => (start, end),
    })
}

/// The first bit equal to `bit` from bit `first` to bit `last`, inclusive,
/// stepping over whole bytes that cannot hold it.
fn first_bit(value: &[u8], bit: bool, first: u64, last: u64) -> Option<u64> {
    let hopeless = if bit { 0x00 } else { 0xFF };
    let mut offset = first;
    while offset <= last {
        if offset & 7 == 0 && offset + 7 <= last && value[(offset >> 3) as usize] == hopeless {
            offset += 8;
        } else if bit_at(value, offset) == bit {
            return Some(offset);
        } else {
            offset += 1;
        }
    }
    None
}

/// Set bits from bit `first` to bit `last`, inclusive, both within `value`.
fn ones(value: &[u8], first: u64, last: u64) -> u64 {
    let (first_byte, last_byte) = ((first >> 3) as usize, (last >> 3) as usize);
    let whole: u64 = value[first_byte..=last_byte].iter().map(|b| u64::from(b.count_ones())).sum();
    // Take back the bits of the edge bytes that lie outside the range.
    let before_first = !(0xFFu8 >> (first & 7));
    let after_last = (0xFFu16 >> ((last & 7) + 1)) as u8;
    whole
        - u64::from((value[first_byte] & before_first).count_ones())
        - u64::from((value[last_byte] & after_last).count_ones())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(start: i64, end: i64, unit: BitUnit) -> CountRange {
        CountRange::Span { start, end, unit }
    }

    #[test]
    fn bits_are_numbered_from_the_high_bit_of_the_first_byte() {
        let v = [0b1000_0001u8, 0b0100_0000];
        let set: Vec<u64> = (0..20).filter(|&i| bit_at(&v, i)).collect();
        assert_eq!(set, [0, 7, 9]);
        assert!(!bit_at(&v, u64::MAX));
    }

    #[test]
    fn bitcount_ranges_match_redis() {
        let v = b"foobar";
        assert_eq!(count(v, CountRange::Whole), 26);
        assert_eq!(count(v, span(0, 0, BitUnit::Byte)), 4);
        assert_eq!(count(v, span(1, 1, BitUnit::Byte)), 6);
        assert_eq!(count(v, span(1, 1, BitUnit::Bit)), 1);
        assert_eq!(count(v, span(5, 30, BitUnit::Bit)), 17);
        assert_eq!(count(v, span(-2, -1, BitUnit::Byte)), 7);
        assert_eq!(count(v, span(0, -1, BitUnit::Bit)), 26);
        assert_eq!(count(v, span(3, 1, BitUnit::Byte)), 0);
        assert_eq!(count(v, span(-100, 100, BitUnit::Byte)), 26);
        assert_eq!(count(v, CountRange::Empty), 0);
        assert_eq!(count(b"", CountRange::Whole), 0);
        assert_eq!(count(b"", span(0, -1, BitUnit::Bit)), 0);
    }

    #[test]
    fn bitpos_matches_redis() {
        let range = |start, end, unit| Some(PosRange { start, end, unit });
        assert_eq!(position(b"\xff\xf0\x00", false, None), 12);
        assert_eq!(position(b"\x00\xff\xf0", true, range(0, None, BitUnit::Byte)), 8);
        assert_eq!(position(b"\x00\xff\xf0", true, range(2, None, BitUnit::Byte)), 16);
        assert_eq!(position(b"\x00\xff\xf0", true, range(2, Some(-1), BitUnit::Byte)), 16);
        assert_eq!(position(b"\x00\xff\xf0", true, range(7, Some(15), BitUnit::Bit)), 8);
        assert_eq!(position(b"\x00\x00\x00", true, None), -1);
        // All ones: with no end the string is padded with zeros; with an end, no zero is found.
        assert_eq!(position(b"\xff\xff", false, None), 16);
        assert_eq!(position(b"\xff\xff", false, range(1, None, BitUnit::Byte)), 16);
        assert_eq!(position(b"\xff\xff", false, range(0, Some(-1), BitUnit::Byte)), -1);
        assert_eq!(position(b"", false, None), -1);
        assert_eq!(position(b"\x80", true, range(1, Some(0), BitUnit::Byte)), -1);
    }

    #[test]
    fn bitop_pads_shorter_sources_with_zeros() {
        let (a, b): (&[u8], &[u8]) = (b"\xf0\x0f\xff", b"\x3c");
        assert_eq!(combine(BitOperation::And, &[a, b]), [0x30, 0, 0]);
        assert_eq!(combine(BitOperation::Or, &[a, b]), [0xfc, 0x0f, 0xff]);
        assert_eq!(combine(BitOperation::Xor, &[a, b, b]), a);
        assert_eq!(combine(BitOperation::Not, &[b]), [0xc3]);
        assert_eq!(combine(BitOperation::And, &[b"", b""]), Vec::<u8>::new());
    }

    #[test]
    fn ones_excludes_the_edges_outside_the_range() {
        let v = [0xFFu8; 3];
        assert_eq!(ones(&v, 0, 23), 24);
        assert_eq!(ones(&v, 3, 3), 1);
        assert_eq!(ones(&v, 7, 8), 2);
        assert_eq!(ones(&v, 1, 22), 22);
    }
}
