//! RESP2/RESP3 codec.
//!
//! - [`RequestDecoder`]: the server side, a `tokio_util` [`Decoder`](tokio_util::codec::Decoder)
//!   turning client bytes into argument vectors with Redis's grammar, errors and limits.
//! - [`encode()`]: writes a [`Frame`] for a RESP2 or RESP3 client.
//! - [`ReplyDecoder`]: the client side, parsing any reply (relaying, tests).
//!
//! Decoding arbitrary bytes never panics: every malformed input is a
//! [`ProtocolError`] whose [`reply`](ProtocolError::reply) is Redis's text.

mod encode;
mod error;
mod frame;
mod inline;
pub mod num;
mod reply;
mod request;

pub use encode::{encode, encode_to_vec};
pub use error::ProtocolError;
pub use frame::{Frame, Protocol};
pub use inline::{split_inline, UnbalancedQuotes};
pub use reply::{ReplyDecoder, ReplyLimits};
pub use request::{decode_requests, DecoderLimits, RequestDecoder};
