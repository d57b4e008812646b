//! Reply encoder: RESP3 as is, RESP3-only types downgraded for RESP2 clients the
//! way Redis downgrades them.

use bytes::{BufMut, BytesMut};

use super::frame::{Frame, Protocol};
use super::num::format_double;

/// Appends the wire form of `frame` for a client speaking `proto` to `out`.
///
/// RESP2 downgrades: `Map` → flat array, `Set`/`Push` → array, `Null` → `$-1`,
/// `NullArray` → `*-1`, `Double`/`BigNumber`/`Verbatim` → bulk string,
/// `Boolean` → `:1`/`:0`. In RESP3 both nulls are `_`.
pub fn encode(frame: &Frame, proto: Protocol, out: &mut BytesMut) {
    let resp3 = proto == Protocol::Resp3;
    match frame {
        Frame::Simple(text) => line(out, b'+', text.as_bytes()),
        Frame::Error(text) => line(out, b'-', text.as_bytes()),
        Frame::Integer(value) => integer(out, b':', *value),
        Frame::Bulk(data) => bulk(out, data),
        Frame::Null if resp3 => out.put_slice(b"_\r\n"),
        Frame::Null => out.put_slice(b"$-1\r\n"),
        Frame::NullArray if resp3 => out.put_slice(b"_\r\n"),
        Frame::NullArray => out.put_slice(b"*-1\r\n"),
        Frame::Array(items) => aggregate(out, b'*', items, proto),
        Frame::Set(items) => aggregate(out, if resp3 { b'~' } else { b'*' }, items, proto),
        Frame::Push(items) => aggregate(out, if resp3 { b'>' } else { b'*' }, items, proto),
        Frame::Map(pairs) => {
            if resp3 {
                header(out, b'%', pairs.len());
            } else {
                header(out, b'*', pairs.len() * 2);
            }
            for (key, value) in pairs {
                encode(key, proto, out);
                encode(value, proto, out);
            }
        }
        Frame::Double(value) => {
            let mut text = Vec::with_capacity(24);
            format_double(*value, &mut text);
            if resp3 {
                line(out, b',', &text);
            } else {
                bulk(out, &text);
            }
        }
        Frame::Boolean(value) if resp3 => out.put_slice(if *value { b"#t\r\n" } else { b"#f\r\n" }),
        Frame::Boolean(value) => integer(out, b':', i64::from(*value)),
        Frame::Verbatim { format, text } if resp3 => {
            header(out, b'=', text.len() + 4);
            out.put_slice(format);
            out.put_u8(b':');
            out.put_slice(text);
            out.put_slice(b"\r\n");
        }
        Frame::Verbatim { text, .. } => bulk(out, text),
        Frame::BigNumber(digits) if resp3 => line(out, b'(', digits.as_bytes()),
        Frame::BigNumber(digits) => bulk(out, digits.as_bytes()),
    }
}

/// Encodes `frame` into a fresh buffer (tests, relaying).
pub fn encode_to_vec(frame: &Frame, proto: Protocol) -> Vec<u8> {
    let mut out = BytesMut::new();
    encode(frame, proto, &mut out);
    out.to_vec()
}

/// A one-line reply. CR and LF would end the line early and desynchronise the
/// client, so they are replaced with spaces (Redis does the same for errors).
fn line(out: &mut BytesMut, tag: u8, text: &[u8]) {
    out.reserve(text.len() + 3);
    out.put_u8(tag);
    if memchr::memchr2(b'\r', b'\n', text).is_some() {
        out.extend(text.iter().map(|&b| if b == b'\r' || b == b'\n' { b' ' } else { b }));
    } else {
        out.put_slice(text);
    }
    out.put_slice(b"\r\n");
}

fn integer(out: &mut BytesMut, tag: u8, value: i64) {
    out.put_u8(tag);
    out.put_slice(itoa::Buffer::new().format(value).as_bytes());
    out.put_slice(b"\r\n");
}

fn header(out: &mut BytesMut, tag: u8, len: usize) {
    out.put_u8(tag);
    out.put_slice(itoa::Buffer::new().format(len).as_bytes());
    out.put_slice(b"\r\n");
}

fn bulk(out: &mut BytesMut, data: &[u8]) {
    out.reserve(data.len() + 16);
    header(out, b'$', data.len());
    out.put_slice(data);
    out.put_slice(b"\r\n");
}

fn aggregate(out: &mut BytesMut, tag: u8, items: &[Frame], proto: Protocol) {
    header(out, tag, items.len());
    for item in items {
        encode(item, proto, out);
    }
}
