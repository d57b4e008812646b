//! The reply value model: every RESP2 and RESP3 type.

use std::borrow::Cow;

use bytes::Bytes;

/// The protocol a connection speaks, chosen with `HELLO 2|3`.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub enum Protocol {
    /// RESP2: the default for every new connection, as in Redis.
    #[default]
    Resp2,
    /// RESP3: typed nulls, maps, sets, doubles, booleans, pushes.
    Resp3,
}

/// One RESP value. Replies are built as `Frame`s and written with
/// [`encode`](super::encode()), which downgrades RESP3-only types for RESP2 clients.
///
/// Serializable because it is also the Raft state machine's response type
/// (openraft requires `Serialize` of it with its `serde` feature).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Frame {
    /// `+text`: must not contain CR or LF (the encoder replaces them with spaces).
    /// Borrowed for the fixed replies (`OK`, `PONG`, ...): a pipelined write
    /// load builds one per write, and an allocation each showed in profiles.
    Simple(Cow<'static, str>),
    /// `-text`: the full text including the error code, e.g. `ERR syntax error`.
    Error(String),
    /// `:n`.
    Integer(i64),
    /// `$len` binary-safe string.
    Bulk(Bytes),
    /// The null reply: `$-1` in RESP2, `_` in RESP3.
    Null,
    /// `*n`.
    Array(Vec<Frame>),
    /// The null array: `*-1` in RESP2, `_` in RESP3.
    NullArray,
    /// `%n` key/value pairs (RESP2: a flat array of 2n elements).
    Map(Vec<(Frame, Frame)>),
    /// `~n` (RESP2: an array).
    Set(Vec<Frame>),
    /// `,d` (RESP2: a bulk string in Redis's double format).
    Double(f64),
    /// `#t` / `#f` (RESP2: `:1` / `:0`).
    Boolean(bool),
    /// `=len` text with a three-letter format such as `txt` (RESP2: a bulk string).
    Verbatim {
        /// Format tag, e.g. `*b"txt"` or `*b"mkd"`.
        format: [u8; 3],
        /// The text, without the `fmt:` prefix.
        text: Bytes,
    },
    /// `>n` out-of-band push (RESP2: an array).
    Push(Vec<Frame>),
    /// `(digits` arbitrary-precision integer (RESP2: a bulk string).
    BigNumber(String),
}

impl Frame {
    /// `+OK`.
    pub fn ok() -> Frame {
        Frame::Simple(Cow::Borrowed("OK"))
    }

    /// A status reply such as `+PONG`.
    pub fn simple(text: impl Into<Cow<'static, str>>) -> Frame {
        Frame::Simple(text.into())
    }

    /// An error reply; `text` is the full message including its code (`ERR ...`).
    pub fn error(text: impl Into<String>) -> Frame {
        Frame::Error(text.into())
    }

    /// A bulk string reply.
    pub fn bulk(data: impl Into<Bytes>) -> Frame {
        Frame::Bulk(data.into())
    }

    /// A bulk string reply holding a copy of `data`.
    pub fn bulk_copy(data: &[u8]) -> Frame {
        Frame::Bulk(Bytes::copy_from_slice(data))
    }

    /// The empty bulk string `$0`.
    pub fn empty_bulk() -> Frame {
        Frame::Bulk(Bytes::new())
    }

    /// An integer reply.
    pub fn integer(value: i64) -> Frame {
        Frame::Integer(value)
    }

    /// An array reply.
    pub fn array(items: Vec<Frame>) -> Frame {
        Frame::Array(items)
    }

    /// `WRONGTYPE Operation against a key holding the wrong kind of value`.
    pub fn wrong_type() -> Frame {
        Frame::Error("WRONGTYPE Operation against a key holding the wrong kind of value".to_owned())
    }

    /// True for error replies.
    pub fn is_error(&self) -> bool {
        matches!(self, Frame::Error(_))
    }

    /// The error text, if this is an error reply.
    pub fn as_error(&self) -> Option<&str> {
        match self {
            Frame::Error(text) => Some(text),
            _ => None,
        }
    }

    /// The bytes of a bulk, simple or verbatim string reply.
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Frame::Bulk(data) | Frame::Verbatim { text: data, .. } => Some(data),
            Frame::Simple(text) => Some(text.as_bytes()),
            _ => None,
        }
    }
}

impl From<i64> for Frame {
    fn from(value: i64) -> Frame {
        Frame::Integer(value)
    }
}

impl From<Bytes> for Frame {
    fn from(value: Bytes) -> Frame {
        Frame::Bulk(value)
    }
}

impl From<Vec<Frame>> for Frame {
    fn from(items: Vec<Frame>) -> Frame {
        Frame::Array(items)
    }
}
