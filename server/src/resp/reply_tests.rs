use bytes::{Bytes, BytesMut};
use rand::{Rng, SeedableRng};

use super::*;
use crate::resp::{encode_to_vec, Protocol};

fn decode_one(input: &[u8]) -> Result<Option<Frame>, ProtocolError> {
    let mut buf = BytesMut::from(input);
    ReplyDecoder::default().decode(&mut buf)
}

fn bulk(text: &str) -> Frame {
    Frame::Bulk(Bytes::copy_from_slice(text.as_bytes()))
}

/// One value of every type, nested in aggregates.
fn every_type() -> Vec<Frame> {
    vec![
        Frame::Simple("OK".into()),
        Frame::Error("ERR something bad".into()),
        Frame::Integer(-42),
        Frame::Integer(i64::MAX),
        bulk("hello\r\nworld"),
        Frame::empty_bulk(),
        Frame::Null,
        Frame::NullArray,
        Frame::Array(vec![]),
        Frame::Array(vec![Frame::Integer(1), Frame::Array(vec![bulk("x"), Frame::Null])]),
        Frame::Map(vec![(bulk("a"), Frame::Integer(1)), (Frame::Simple("b".into()), Frame::Set(vec![bulk("c")]))]),
        Frame::Map(vec![]),
        Frame::Set(vec![Frame::Integer(1), Frame::Integer(2)]),
        Frame::Double(3.25),
        Frame::Double(f64::INFINITY),
        Frame::Double(f64::NEG_INFINITY),
        Frame::Boolean(true),
        Frame::Boolean(false),
        Frame::Verbatim { format: *b"txt", text: Bytes::from_static(b"some text") },
        Frame::Push(vec![bulk("message"), bulk("chan"), bulk("payload")]),
        Frame::BigNumber("-3492890328409238509324850943850943825024385".into()),
    ]
}

/// What a RESP2 client sees for `frame`.
fn downgraded(frame: &Frame) -> Frame {
    match frame {
        Frame::Array(items) | Frame::Set(items) | Frame::Push(items) => {
            Frame::Array(items.iter().map(downgraded).collect())
        }
        Frame::Map(pairs) => Frame::Array(pairs.iter().flat_map(|(k, v)| [downgraded(k), downgraded(v)]).collect()),
        Frame::Double(d) => bulk(&crate::resp::num::double_to_string(*d)),
        Frame::Boolean(b) => Frame::Integer(i64::from(*b)),
        Frame::Verbatim { text, .. } => Frame::Bulk(text.clone()),
        Frame::BigNumber(digits) => bulk(digits),
        other => other.clone(),
    }
}

/// What a RESP3 client sees for `frame` (both nulls are `_`).
fn as_resp3(frame: &Frame) -> Frame {
    match frame {
        Frame::NullArray => Frame::Null,
        Frame::Array(items) => Frame::Array(items.iter().map(as_resp3).collect()),
        Frame::Set(items) => Frame::Set(items.iter().map(as_resp3).collect()),
        Frame::Push(items) => Frame::Push(items.iter().map(as_resp3).collect()),
        Frame::Map(pairs) => Frame::Map(pairs.iter().map(|(k, v)| (as_resp3(k), as_resp3(v))).collect()),
        other => other.clone(),
    }
}

#[test]
fn exact_wire_bytes() {
    let cases: &[(Frame, &[u8], &[u8])] = &[
        (Frame::ok(), b"+OK\r\n", b"+OK\r\n"),
        (Frame::Null, b"$-1\r\n", b"_\r\n"),
        (Frame::NullArray, b"*-1\r\n", b"_\r\n"),
        (Frame::Boolean(true), b":1\r\n", b"#t\r\n"),
        (Frame::Double(1.5), b"$3\r\n1.5\r\n", b",1.5\r\n"),
        (Frame::Double(f64::NEG_INFINITY), b"$4\r\n-inf\r\n", b",-inf\r\n"),
        (Frame::Map(vec![(bulk("a"), Frame::Integer(1))]), b"*2\r\n$1\r\na\r\n:1\r\n", b"%1\r\n$1\r\na\r\n:1\r\n"),
        (Frame::Set(vec![Frame::Integer(1)]), b"*1\r\n:1\r\n", b"~1\r\n:1\r\n"),
        (Frame::Verbatim { format: *b"txt", text: Bytes::from_static(b"hi") }, b"$2\r\nhi\r\n", b"=6\r\ntxt:hi\r\n"),
        (Frame::Push(vec![Frame::Integer(1)]), b"*1\r\n:1\r\n", b">1\r\n:1\r\n"),
        (Frame::BigNumber("123".into()), b"$3\r\n123\r\n", b"(123\r\n"),
        (Frame::Error("ERR a\r\nb".into()), b"-ERR a  b\r\n", b"-ERR a  b\r\n"),
    ];
    for (frame, resp2, resp3) in cases {
        assert_eq!(encode_to_vec(frame, Protocol::Resp2), *resp2, "{frame:?} RESP2");
        assert_eq!(encode_to_vec(frame, Protocol::Resp3), *resp3, "{frame:?} RESP3");
    }
}

#[test]
fn every_type_round_trips_in_both_protocols() {
    for frame in every_type() {
        let got = decode_one(&encode_to_vec(&frame, Protocol::Resp3)).unwrap().unwrap();
        assert_eq!(got, as_resp3(&frame), "RESP3");
        let got = decode_one(&encode_to_vec(&frame, Protocol::Resp2)).unwrap().unwrap();
        assert_eq!(got, downgraded(&frame), "RESP2");
    }
}

#[test]
fn nan_round_trips() {
    let got = decode_one(&encode_to_vec(&Frame::Double(f64::NAN), Protocol::Resp3)).unwrap().unwrap();
    assert!(matches!(got, Frame::Double(d) if d.is_nan()));
}

/// A stream of replies split at every point decodes to the same replies.
#[test]
fn every_split_point() {
    let frames = every_type();
    let mut wire = Vec::new();
    for frame in &frames {
        wire.extend(encode_to_vec(frame, Protocol::Resp3));
    }
    let want: Vec<Frame> = frames.iter().map(as_resp3).collect();
    for split in 0..=wire.len() {
        let mut decoder = ReplyDecoder::default();
        let mut buf = BytesMut::from(&wire[..split]);
        let mut got = Vec::new();
        while let Some(frame) = decoder.decode(&mut buf).unwrap() {
            got.push(frame);
        }
        buf.extend_from_slice(&wire[split..]);
        while let Some(frame) = decoder.decode(&mut buf).unwrap() {
            got.push(frame);
        }
        assert_eq!(got, want, "split at {split}");
        assert!(buf.is_empty());
    }
}

#[test]
fn attributes_are_dropped() {
    let input = b"|1\r\n+key-popularity\r\n%1\r\n$1\r\na\r\n,0.19\r\n*2\r\n:1\r\n|0\r\n:2\r\n";
    let got = decode_one(input).unwrap().unwrap();
    assert_eq!(got, Frame::Array(vec![Frame::Integer(1), Frame::Integer(2)]));
}

#[test]
fn depth_limit() {
    let mut deep = Vec::new();
    for _ in 0..65 {
        deep.extend_from_slice(b"*1\r\n");
    }
    deep.extend_from_slice(b":1\r\n");
    assert!(matches!(decode_one(&deep), Err(ProtocolError::TooDeep { max: 64 })));
    let ok = &deep[4..];
    assert!(decode_one(ok).unwrap().is_some());
}

#[test]
fn size_limits_and_malformed_input() {
    let limits = ReplyLimits { max_bulk_len: 4, max_elements: 2, max_line_len: 8, ..ReplyLimits::default() };
    let run = |input: &[u8]| ReplyDecoder::new(limits).decode(&mut BytesMut::from(input));
    assert!(run(b"$5\r\n").is_err());
    assert!(run(b"*3\r\n").is_err());
    assert!(run(b"+123456789").is_err());
    assert!(run(b"$4\r\nabcd\r\n").unwrap().is_some());
    for bad in [
        &b"?x\r\n"[..],
        b"$2\r\nabcd",
        b":x\r\n",
        b"#x\r\n",
        b"(12a\r\n",
        b"=2\r\nab\r\n",
        b"+a\rb",
        b"\r\n",
        b"$-2\r\n",
    ] {
        assert!(decode_one(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
    }
}

#[test]
fn huge_declared_length_does_not_allocate() {
    let mut buf = BytesMut::from(&b"$500000000\r\nabc"[..]);
    assert!(ReplyDecoder::default().decode(&mut buf).unwrap().is_none());
    assert!(buf.capacity() < 4 << 20);
    let mut buf = BytesMut::from(&b"*16000000\r\n:1\r\n"[..]);
    assert!(ReplyDecoder::default().decode(&mut buf).unwrap().is_none());
}

#[test]
fn random_garbage_never_panics() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let tokens: &[&[u8]] = &[
        b"*", b"%", b"|", b"~", b">", b"$", b"=", b"!", b"_", b",", b"#", b"(", b"1", b"2", b"-1", b"0", b"\r\n", b"t",
        b"txt:", b"x", b"\r",
    ];
    for _ in 0..5000 {
        let mut input = Vec::new();
        for _ in 0..rng.random_range(1..20) {
            input.extend_from_slice(tokens[rng.random_range(0..tokens.len())]);
        }
        let mut decoder = ReplyDecoder::default();
        let mut buf = BytesMut::from(&input[..]);
        while let Ok(Some(_)) = decoder.decode(&mut buf) {}
    }
}
