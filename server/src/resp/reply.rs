//! Client-side reply decoder: every RESP2 and RESP3 reply type, incremental,
//! with nesting-depth and size limits.

use bytes::{Buf, Bytes, BytesMut};

use super::error::ProtocolError;
use super::frame::Frame;

/// Limits for [`ReplyDecoder`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReplyLimits {
    /// Deepest aggregate nesting accepted (attributes count as a level).
    pub max_depth: usize,
    /// Largest bulk / verbatim / blob error payload.
    pub max_bulk_len: usize,
    /// Largest element count of one aggregate.
    pub max_elements: usize,
    /// Longest simple line (`+`, `-`, `:`, `,`, `(`, headers).
    pub max_line_len: usize,
}

impl Default for ReplyLimits {
    fn default() -> Self {
        ReplyLimits { max_depth: 64, max_bulk_len: 512 * 1024 * 1024, max_elements: 1 << 24, max_line_len: 64 * 1024 }
    }
}

/// Never pre-size an aggregate beyond this from a declared count.
const MAX_PREALLOC: usize = 1024;

/// Decodes replies sent by a RESP server (Seshat relaying a leader's replies,
/// tests). Attributes (`|`) are parsed and dropped; streamed strings (`$?`) are
/// rejected (Redis never sends them).
///
/// Invariant: parsing is resumable. Completed elements of unfinished aggregates
/// are kept on a stack and consumed from the buffer, so a reply arriving in many
/// small reads is parsed in O(n) total.
#[derive(Debug, Default)]
pub struct ReplyDecoder {
    limits: ReplyLimits,
    stack: Vec<Partial>,
    /// Prefix of the buffer already searched for CR without success.
    scanned: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Array,
    Set,
    Push,
    Map,
    Attribute,
}

/// An aggregate whose elements are still arriving.
#[derive(Debug)]
struct Partial {
    kind: Kind,
    remaining: usize,
    items: Vec<Frame>,
}

/// One parsed token: a complete value, the header of a non-empty aggregate, or
/// an empty attribute (nothing to keep).
enum Token {
    Value(Frame),
    Open(Kind, usize),
    Skip,
}

impl ReplyDecoder {
    /// A decoder with the given limits.
    pub fn new(limits: ReplyLimits) -> Self {
        ReplyDecoder { limits, stack: Vec::new(), scanned: 0 }
    }

    /// Decodes the next complete reply from `buf`, consuming its bytes.
    /// `Ok(None)`: more data is needed (what was parsed so far is kept).
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, ProtocolError> {
        loop {
            let mut frame = match self.token(buf)? {
                None => return Ok(None),
                Some(Token::Skip) => continue,
                Some(Token::Open(kind, count)) => {
                    if self.stack.len() >= self.limits.max_depth {
                        return Err(ProtocolError::TooDeep { max: self.limits.max_depth });
                    }
                    let slots = if matches!(kind, Kind::Map | Kind::Attribute) { count * 2 } else { count };
                    self.stack.push(Partial {
                        kind,
                        remaining: slots,
                        items: Vec::with_capacity(slots.min(MAX_PREALLOC)),
                    });
                    continue;
                }
                Some(Token::Value(frame)) => frame,
            };
            // Attach the value to its parent; close every parent it completes.
            loop {
                let Some(top) = self.stack.last_mut() else {
                    return Ok(Some(frame));
                };
                top.items.push(frame);
                top.remaining -= 1;
                if top.remaining > 0 {
                    break;
                }
                let done = self.stack.pop().expect("stack top exists");
                frame = match done.kind {
                    // An attribute annotates the next value: drop it and read on.
                    Kind::Attribute => break,
                    Kind::Array => Frame::Array(done.items),
                    Kind::Set => Frame::Set(done.items),
                    Kind::Push => Frame::Push(done.items),
                    Kind::Map => Frame::Map(pairs(done.items)),
                };
            }
        }
    }

    /// Finds the CR ending the line at the head of `buf`; `Ok(None)` if incomplete.
    fn line_end(&mut self, buf: &BytesMut) -> Result<Option<usize>, ProtocolError> {
        let start = self.scanned.min(buf.len());
        match memchr::memchr(b'\r', &buf[start..]) {
            None => {
                if buf.len() > self.limits.max_line_len {
                    return Err(ProtocolError::InvalidReply("line too long"));
                }
                self.scanned = buf.len();
                Ok(None)
            }
            Some(i) => {
                let cr = start + i;
                if cr > self.limits.max_line_len {
                    return Err(ProtocolError::InvalidReply("line too long"));
                }
                if cr + 2 > buf.len() {
                    self.scanned = cr;
                    return Ok(None);
                }
                if buf[cr + 1] != b'\n' {
                    return Err(ProtocolError::InvalidReply("CR not followed by LF"));
                }
                Ok(Some(cr))
            }
        }
    }

    fn token(&mut self, buf: &mut BytesMut) -> Result<Option<Token>, ProtocolError> {
        let Some(cr) = self.line_end(buf)? else {
            return Ok(None);
        };
        if cr == 0 {
            return Err(ProtocolError::InvalidReply("empty line"));
        }
        let tag = buf[0];
        let line = &buf[1..cr];
        let token = match tag {
            b'+' => Token::Value(Frame::Simple(text(line)?.into())),
            b'-' => Token::Value(Frame::Error(text(line)?)),
            b':' => Token::Value(Frame::Integer(integer(line)?)),
            b'_' if line.is_empty() => Token::Value(Frame::Null),
            b'#' => Token::Value(Frame::Boolean(match line {
                b"t" => true,
                b"f" => false,
                _ => return Err(ProtocolError::InvalidReply("bad boolean")),
            })),
            b',' => Token::Value(Frame::Double(double(line)?)),
            b'(' => Token::Value(Frame::BigNumber(big_number(line)?)),
            b'$' | b'!' | b'=' => {
                if line == b"-1" && tag == b'$' {
                    Token::Value(Frame::Null)
                } else {
                    let len = self.length(line, self.limits.max_bulk_len)?;
                    if buf.len() < cr + 2 + len + 2 {
                        // Wait for the payload; the header is re-read next time
                        // (O(1): its CR is at the remembered scan position).
                        self.scanned = cr;
                        buf.reserve((cr + 2 + len + 2 - buf.len()).min(1 << 20));
                        return Ok(None);
                    }
                    if &buf[cr + 2 + len..cr + 4 + len] != b"\r\n" {
                        return Err(ProtocolError::InvalidReply("bulk not terminated by CRLF"));
                    }
                    buf.advance(cr + 2);
                    let payload = buf.split_to(len).freeze();
                    buf.advance(2);
                    self.scanned = 0;
                    return Ok(Some(Token::Value(blob(tag, payload)?)));
                }
            }
            b'*' if line == b"-1" => Token::Value(Frame::NullArray),
            b'*' | b'~' | b'>' | b'%' | b'|' => {
                let count = self.length(line, self.limits.max_elements)?;
                let kind = match tag {
                    b'*' => Kind::Array,
                    b'~' => Kind::Set,
                    b'>' => Kind::Push,
                    b'%' => Kind::Map,
                    _ => Kind::Attribute,
                };
                match (count, kind) {
                    (0, Kind::Array) => Token::Value(Frame::Array(Vec::new())),
                    (0, Kind::Set) => Token::Value(Frame::Set(Vec::new())),
                    (0, Kind::Push) => Token::Value(Frame::Push(Vec::new())),
                    (0, Kind::Map) => Token::Value(Frame::Map(Vec::new())),
                    (0, Kind::Attribute) => Token::Skip,
                    (count, kind) => Token::Open(kind, count),
                }
            }
            _ => return Err(ProtocolError::InvalidReply("unknown type byte")),
        };
        buf.advance(cr + 2);
        self.scanned = 0;
        Ok(Some(token))
    }

    fn length(&self, line: &[u8], max: usize) -> Result<usize, ProtocolError> {
        let n = integer(line)?;
        usize::try_from(n).ok().filter(|&n| n <= max).ok_or(ProtocolError::InvalidReply("length out of range"))
    }
}

fn pairs(items: Vec<Frame>) -> Vec<(Frame, Frame)> {
    let mut out = Vec::with_capacity(items.len() / 2);
    let mut iter = items.into_iter();
    while let (Some(key), Some(value)) = (iter.next(), iter.next()) {
        out.push((key, value));
    }
    out
}

fn text(line: &[u8]) -> Result<String, ProtocolError> {
    Ok(String::from_utf8_lossy(line).into_owned())
}

fn integer(line: &[u8]) -> Result<i64, ProtocolError> {
    std::str::from_utf8(line).ok().and_then(|s| s.parse().ok()).ok_or(ProtocolError::InvalidReply("bad integer"))
}

fn double(line: &[u8]) -> Result<f64, ProtocolError> {
    let text = std::str::from_utf8(line).map_err(|_| ProtocolError::InvalidReply("bad double"))?;
    match text {
        "inf" => Ok(f64::INFINITY),
        "-inf" => Ok(f64::NEG_INFINITY),
        "nan" | "-nan" => Ok(f64::NAN),
        _ => text.parse().map_err(|_| ProtocolError::InvalidReply("bad double")),
    }
}

fn big_number(line: &[u8]) -> Result<String, ProtocolError> {
    let digits = line.strip_prefix(b"-").unwrap_or(line);
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return Err(ProtocolError::InvalidReply("bad big number"));
    }
    Ok(String::from_utf8_lossy(line).into_owned())
}

fn blob(tag: u8, payload: Bytes) -> Result<Frame, ProtocolError> {
    Ok(match tag {
        b'$' => Frame::Bulk(payload),
        b'!' => Frame::Error(String::from_utf8_lossy(&payload).into_owned()),
        _ => {
            if payload.len() < 4 || payload[3] != b':' {
                return Err(ProtocolError::InvalidReply("bad verbatim string"));
            }
            let format = [payload[0], payload[1], payload[2]];
            Frame::Verbatim { format, text: payload.slice(4..) }
        }
    })
}

#[cfg(test)]
#[path = "reply_tests.rs"]
mod tests;
