//! Server-side request decoder: multibulk and inline requests, Redis's grammar,
//! errors and limits, incremental and zero-copy.

use bytes::{Buf, Bytes, BytesMut};
use tokio_util::codec::Decoder;

use super::error::ProtocolError;
use super::inline::split_inline;
use super::num::parse_i64;

/// Hard limits applied while decoding requests. Exceeding one is a protocol error
/// and closes the connection, so one client can never make the server buffer more
/// than these bounds allow. The one exception is an argument longer than
/// `max_bulk_len` but not than `max_skipped_bulk_len`: it is read and discarded,
/// and its request fails alone ([`ProtocolError::ArgumentTooLarge`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DecoderLimits {
    /// Largest argument kept (default 512 MiB; `seshat serve` sets its value limit
    /// plus 1 KiB).
    pub max_bulk_len: usize,
    /// Largest declared `$len` skipped rather than refused; a longer one is a
    /// protocol error (512 MiB, Redis's `proto-max-bulk-len`). Skipped bytes
    /// are discarded as they arrive and do not count toward `max_request_bytes`.
    pub max_skipped_bulk_len: usize,
    /// Largest declared `*N` (Redis accepts up to `INT_MAX`; default 1 Mi).
    pub max_multibulk_len: usize,
    /// Longest inline request line, and longest `*`/`$` header line (64 KiB).
    pub max_inline_len: usize,
    /// Largest total declared size of one request, headers included.
    pub max_request_bytes: usize,
}

impl Default for DecoderLimits {
    fn default() -> Self {
        DecoderLimits {
            max_bulk_len: 512 * 1024 * 1024,
            max_skipped_bulk_len: 512 * 1024 * 1024,
            max_multibulk_len: 1024 * 1024,
            max_inline_len: 64 * 1024,
            max_request_bytes: 512 * 1024 * 1024,
        }
    }
}

/// Before AUTH, Redis caps requests at 10 arguments of at most 16 KiB each.
const UNAUTHENTICATED_MAX_ARGS: i64 = 10;
const UNAUTHENTICATED_MAX_BULK: usize = 16 * 1024;

/// Never reserve more than this ahead of data actually received: a client that
/// declares a large bulk and then trickles it in only costs what it sent.
const MAX_RESERVE: usize = 1024 * 1024;

/// Never pre-size an argument vector beyond this from a declared `*N`.
const MAX_PREALLOC_ARGS: usize = 1024;

/// Decodes client requests into argument vectors.
///
/// Grammar and errors are Redis's (`processMultibulkBuffer` / `processInlineBuffer`):
/// a request starting with `*` is a multibulk of bulk strings, anything else is an
/// inline line split by [`split_inline`]. Empty lines and `*0`/`*-1` are skipped.
///
/// Invariants:
/// - Parsing is resumable: a partial request keeps its parsed arguments and the
///   scan position for the next line terminator, so input arriving byte by byte
///   costs O(n) in total, never O(n²).
/// - Bulk arguments are `split_to(..).freeze()` slices of the read buffer (no copy).
///   They keep that buffer's allocation alive while they live.
/// - A declared length is checked against the limits before any data is read, and
///   at most `MAX_RESERVE` bytes are reserved ahead of received data.
/// - An argument over `max_bulk_len` is never buffered: its bytes are dropped as
///   they arrive, the rest of its request is read (and dropped) to keep the stream
///   framed, and the request yields [`ProtocolError::ArgumentTooLarge`].
/// - Any input, however malformed, yields `Ok` or `Err`, never a panic.
#[derive(Debug)]
pub struct RequestDecoder {
    limits: DecoderLimits,
    authenticated: bool,
    /// Bytes at the head of the buffer already searched for the current line's
    /// terminator without finding it.
    scanned: usize,
    /// Multibulk arguments still to read; 0 between requests.
    remaining: usize,
    /// Arguments of the current multibulk request read so far.
    args: Vec<Bytes>,
    /// Length of the current argument once its `$len` line has been read.
    bulk_len: Option<usize>,
    /// Declared bytes of the current request so far (headers + data + CRLFs),
    /// skipped arguments' data not included.
    request_bytes: usize,
    /// Bytes of the current (oversized) argument discarded so far; back to 0
    /// once that argument is passed.
    skipped: usize,
    /// Declared length of the current request's first oversized argument;
    /// taken when the request ends, so a new request starts without one.
    oversized: Option<usize>,
}

impl RequestDecoder {
    /// A decoder for an authenticated connection (no pre-AUTH caps).
    pub fn new(limits: DecoderLimits) -> Self {
        RequestDecoder {
            limits,
            authenticated: true,
            scanned: 0,
            remaining: 0,
            args: Vec::new(),
            bulk_len: None,
            request_bytes: 0,
            skipped: 0,
            oversized: None,
        }
    }

    /// The limits this decoder enforces.
    pub fn limits(&self) -> DecoderLimits {
        self.limits
    }

    /// Marks the connection as (un)authenticated. While unauthenticated, requests
    /// are capped like Redis caps them before AUTH (10 arguments, 16 KiB each),
    /// so an anonymous client cannot make the server buffer large requests.
    pub fn set_authenticated(&mut self, authenticated: bool) {
        self.authenticated = authenticated;
    }

    /// True while a request has been partly received.
    pub fn in_request(&self) -> bool {
        self.remaining > 0
    }

    /// Finds the next `byte` at or after the already scanned prefix; remembers how
    /// far it looked when not found.
    fn find(&mut self, buf: &BytesMut, byte: u8) -> Option<usize> {
        let start = self.scanned.min(buf.len());
        match memchr::memchr(byte, &buf[start..]) {
            Some(i) => Some(start + i),
            None => {
                self.scanned = buf.len();
                None
            }
        }
    }

    fn decode_inline(&mut self, buf: &mut BytesMut) -> Result<Option<Vec<Bytes>>, ProtocolError> {
        let Some(newline) = self.find(buf, b'\n') else {
            if buf.len() > self.limits.max_inline_len {
                return Err(ProtocolError::TooBigInline);
            }
            return Ok(None);
        };
        let end = if newline > 0 && buf[newline - 1] == b'\r' { newline - 1 } else { newline };
        // Stricter than Redis, which only checks while the newline is missing:
        // the outcome must not depend on how the line was split into reads.
        if end > self.limits.max_inline_len {
            return Err(ProtocolError::TooBigInline);
        }
        let args = split_inline(&buf[..end]).map_err(|_| ProtocolError::UnbalancedQuotes)?;
        buf.advance(newline + 1);
        self.scanned = 0;
        Ok(Some(args))
    }

    /// Finds the end of a `*N` or `$N` header line. `Ok(None)`: incomplete.
    /// Like Redis, the line ends at the first CR and the byte after it is skipped
    /// unchecked.
    fn header_line(&mut self, buf: &BytesMut, too_big: ProtocolError) -> Result<Option<usize>, ProtocolError> {
        let Some(cr) = self.find(buf, b'\r') else {
            if buf.len() > self.limits.max_inline_len {
                return Err(too_big);
            }
            return Ok(None);
        };
        // As for inline lines: the same error whether or not the CR has arrived.
        if cr > self.limits.max_inline_len {
            return Err(too_big);
        }
        if cr + 2 > buf.len() {
            self.scanned = cr; // the CR is found again next time without rescanning
            return Ok(None);
        }
        Ok(Some(cr))
    }

    /// Reads the `$len` line of the next argument. `Ok(None)`: incomplete.
    fn bulk_header(&mut self, buf: &mut BytesMut) -> Result<Option<usize>, ProtocolError> {
        let Some(cr) = self.header_line(buf, ProtocolError::TooBigBulkCount)? else {
            return Ok(None);
        };
        if buf[0] != b'$' {
            return Err(ProtocolError::ExpectedBulk(buf[0]));
        }
        let len = parse_i64(&buf[1..cr])
            .and_then(|n| usize::try_from(n).ok())
            .filter(|&n| n <= self.limits.max_bulk_len.max(self.limits.max_skipped_bulk_len))
            .ok_or(ProtocolError::InvalidBulkLength)?;
        if !self.authenticated && len > UNAUTHENTICATED_MAX_BULK {
            return Err(ProtocolError::UnauthenticatedBulkLength);
        }
        let kept = if len > self.limits.max_bulk_len { 0 } else { len + 2 };
        self.request_bytes = self.request_bytes.saturating_add(cr + 2 + kept);
        if self.request_bytes > self.limits.max_request_bytes {
            return Err(ProtocolError::RequestTooLarge { max: self.limits.max_request_bytes });
        }
        buf.advance(cr + 2);
        self.scanned = 0;
        Ok(Some(len))
    }

    fn decode_multibulk(&mut self, buf: &mut BytesMut) -> Result<Option<Vec<Bytes>>, ProtocolError> {
        while self.remaining > 0 {
            let len = match self.bulk_len {
                Some(len) => len,
                None => match self.bulk_header(buf)? {
                    Some(len) => {
                        self.bulk_len = Some(len);
                        len
                    }
                    None => return Ok(None),
                },
            };
            if len > self.limits.max_bulk_len {
                // Too long to keep, short enough to skip: drop what has arrived.
                let drop = (len + 2 - self.skipped).min(buf.len());
                buf.advance(drop);
                self.skipped += drop;
                if self.skipped < len + 2 {
                    return Ok(None);
                }
                self.skipped = 0;
                self.oversized.get_or_insert(len);
            } else {
                if buf.len() < len + 2 {
                    // Size the buffer for the rest of this argument, within MAX_RESERVE.
                    buf.reserve((len + 2 - buf.len()).min(MAX_RESERVE));
                    return Ok(None);
                }
                self.args.push(buf.split_to(len).freeze());
                buf.advance(2); // Redis skips the CRLF after the data without checking it
            }
            self.remaining -= 1;
            self.bulk_len = None;
        }
        let args = std::mem::take(&mut self.args);
        match self.oversized.take() {
            // The whole request has been consumed: the stream is framed again.
            Some(len) => Err(ProtocolError::ArgumentTooLarge { len, max: self.limits.max_bulk_len }),
            None => Ok(Some(args)),
        }
    }
}

impl Decoder for RequestDecoder {
    type Item = Vec<Bytes>;
    type Error = ProtocolError;

    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Vec<Bytes>>, ProtocolError> {
        loop {
            if self.in_request() {
                return self.decode_multibulk(buf);
            }
            let Some(&first) = buf.first() else {
                return Ok(None);
            };
            if first != b'*' {
                match self.decode_inline(buf)? {
                    Some(args) if args.is_empty() => continue, // blank line: skipped
                    other => return Ok(other),
                }
            }
            let Some(cr) = self.header_line(buf, ProtocolError::TooBigMultibulkCount)? else {
                return Ok(None);
            };
            let count = parse_i64(&buf[1..cr]).ok_or(ProtocolError::InvalidMultibulkLength)?;
            if count > 0 && count as u64 > self.limits.max_multibulk_len as u64 {
                return Err(ProtocolError::InvalidMultibulkLength);
            }
            if !self.authenticated && count > UNAUTHENTICATED_MAX_ARGS {
                return Err(ProtocolError::UnauthenticatedMultibulkLength);
            }
            buf.advance(cr + 2);
            self.scanned = 0;
            if count <= 0 {
                continue; // `*0` and `*-1` are skipped, as in Redis
            }
            let count = count as usize; // bounded by max_multibulk_len above
            self.args = Vec::with_capacity(count.min(MAX_PREALLOC_ARGS));
            self.remaining = count;
            self.bulk_len = None;
            self.request_bytes = cr + 2;
        }
    }
}

/// Decodes every complete request in `input` (fuzzing and tests).
///
/// Returns the requests decoded before the first protocol error (if any) and
/// that error. Never panics, whatever `input` holds.
pub fn decode_requests(input: &[u8], limits: DecoderLimits) -> (Vec<Vec<Bytes>>, Option<ProtocolError>) {
    let mut decoder = RequestDecoder::new(limits);
    let mut buf = BytesMut::from(input);
    let mut requests = Vec::new();
    loop {
        match decoder.decode(&mut buf) {
            Ok(Some(args)) => requests.push(args),
            Ok(None) => return (requests, None),
            Err(err) => return (requests, Some(err)),
        }
    }
}

#[cfg(test)]
#[path = "request_tests.rs"]
mod tests;
