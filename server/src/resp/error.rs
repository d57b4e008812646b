//! Protocol errors: the stream cannot be parsed further.

use super::frame::Frame;

/// A framing error. After a request-side error the connection must be closed
/// (as Redis does): the byte stream cannot be resynchronised. The one exception
/// is [`ProtocolError::ArgumentTooLarge`], after which the stream is still framed.
/// [`ProtocolError::reply`] gives the error text Redis sends just before closing.
#[derive(Debug, thiserror::Error)]
pub enum ProtocolError {
    /// `*N` with N not an integer, or above the multibulk limit.
    #[error("invalid multibulk length")]
    InvalidMultibulkLength,
    /// `$N` with N not an integer, negative, or above the bulk limit.
    #[error("invalid bulk length")]
    InvalidBulkLength,
    /// A multibulk element that is not a bulk string (e.g. a nested array).
    #[error("expected '$', got '{}'", char::from(*.0))]
    ExpectedBulk(u8),
    /// An inline request line longer than the inline limit.
    #[error("too big inline request")]
    TooBigInline,
    /// A `*` header line longer than the inline limit.
    #[error("too big mbulk count string")]
    TooBigMultibulkCount,
    /// A `$` header line longer than the inline limit.
    #[error("too big bulk count string")]
    TooBigBulkCount,
    /// An inline request with an unterminated or badly closed quote.
    #[error("unbalanced quotes in request")]
    UnbalancedQuotes,
    /// More than 10 arguments before AUTH, when authentication is required.
    #[error("unauthenticated multibulk length")]
    UnauthenticatedMultibulkLength,
    /// An argument over 16 KiB before AUTH, when authentication is required.
    #[error("unauthenticated bulk length")]
    UnauthenticatedBulkLength,
    /// An argument longer than the server keeps. The decoder has read and dropped
    /// the whole request, so the stream stays framed: only this request fails.
    #[error("argument too large: {len} bytes (max {max})")]
    ArgumentTooLarge {
        /// The argument's declared length.
        len: usize,
        /// The configured `max_bulk_len`.
        max: usize,
    },
    /// The declared sizes of one request add up to more than the per-request limit.
    #[error("too big request (over {max} bytes)")]
    RequestTooLarge {
        /// The configured `max_request_bytes`.
        max: usize,
    },
    /// A malformed reply (client side, [`ReplyDecoder`](super::ReplyDecoder)).
    #[error("invalid reply: {0}")]
    InvalidReply(&'static str),
    /// A reply nested deeper than the decoder allows.
    #[error("reply nesting deeper than {max}")]
    TooDeep {
        /// The configured depth limit.
        max: usize,
    },
    /// Reading from or writing to the socket failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

impl ProtocolError {
    /// The error reply Redis sends for this error, e.g.
    /// `ERR Protocol error: invalid multibulk length`.
    pub fn reply(&self) -> Frame {
        match self {
            ProtocolError::ArgumentTooLarge { .. } => Frame::Error(format!("ERR {self}")),
            _ => Frame::Error(format!("ERR Protocol error: {self}")),
        }
    }
}
