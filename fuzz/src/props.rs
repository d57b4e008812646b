//! The properties the fuzz targets check, shared with the deterministic
//! fuzz-smoke test that CI runs (`tests/tests/fuzz_smoke.rs` includes this
//! file), so a crash found by libFuzzer is reproducible with `cargo test`.
//!
//! Every function must return normally for any input; a panic is a finding.

use bytes::{Bytes, BytesMut};
use seshat_server::commands::{self, Limits, Parsed};
use seshat_server::resp::{
    decode_requests, encode_to_vec, DecoderLimits, Frame, Protocol, ReplyDecoder, ReplyLimits, RequestDecoder,
};
use seshat_server::store::{Operation, Store};
use tokio_util::codec::Decoder;

/// Fixed "now" for parsing and applying: TTL arithmetic is exercised against
/// a realistic clock without making runs time-dependent.
const NOW_MS: u64 = 1_700_000_000_000;

/// `resp_decode`: the request and reply decoders on arbitrary bytes.
///
/// - Decoding never panics.
/// - Incremental decoding (the input cut into chunks whose sizes come from
///   the input itself) gives exactly the requests and error of one-shot decoding.
/// - Every decoded request, re-encoded as a multibulk, decodes to itself.
/// - Every decoded reply, re-encoded as RESP3, decodes to itself.
pub fn resp_decode(data: &[u8]) {
    let limits = DecoderLimits::default();
    let (requests, error) = decode_requests(data, limits);

    let (chunked, chunked_error) = decode_in_chunks(data, limits);
    assert_eq!(requests, chunked, "chunked decoding differs");
    assert_eq!(error.as_ref().map(|e| e.to_string()), chunked_error, "chunked decoding error differs");

    for args in &requests {
        let encoded = encode_multibulk(args);
        let (again, err) = decode_requests(&encoded, limits);
        assert!(err.is_none(), "re-encoded request fails: {err:?}");
        assert_eq!(again, vec![args.clone()], "request round trip");
    }

    let mut decoder = ReplyDecoder::new(ReplyLimits::default());
    let mut buf = BytesMut::from(data);
    // Each iteration consumes input or stops: bounded by the input length.
    while let Ok(Some(frame)) = decoder.decode(&mut buf) {
        let encoded = encode_to_vec(&frame, Protocol::Resp3);
        let mut d2 = ReplyDecoder::new(ReplyLimits::default());
        let mut b2 = BytesMut::from(&encoded[..]);
        let again = d2.decode(&mut b2);
        // Debug comparison: NaN doubles must compare equal to themselves.
        assert_eq!(
            format!("{:?}", again.as_ref().map(|f| f.as_ref().map(normalize))),
            format!("{:?}", Ok::<_, ()>(Some(normalize(&frame)))),
            "reply round trip of {frame:?} via {:?}",
            String::from_utf8_lossy(&encoded)
        );
        assert!(b2.is_empty(), "re-encoded reply left bytes");
    }
}

/// Frames the encoder legitimately rewrites: simple strings and errors have
/// CR/LF replaced by spaces, and RESP3 has one null for both RESP2 nulls.
fn normalize(f: &Frame) -> Frame {
    let clean = |s: &str| s.replace(['\r', '\n'], " ");
    match f {
        Frame::NullArray => Frame::Null,
        Frame::Simple(s) => Frame::Simple(clean(s).into()),
        Frame::Error(s) => Frame::Error(clean(s)),
        Frame::Array(v) => Frame::Array(v.iter().map(normalize).collect()),
        Frame::Set(v) => Frame::Set(v.iter().map(normalize).collect()),
        Frame::Push(v) => Frame::Push(v.iter().map(normalize).collect()),
        Frame::Map(v) => Frame::Map(v.iter().map(|(k, x)| (normalize(k), normalize(x))).collect()),
        other => other.clone(),
    }
}

fn decode_in_chunks(data: &[u8], limits: DecoderLimits) -> (Vec<Vec<Bytes>>, Option<String>) {
    let mut decoder = RequestDecoder::new(limits);
    let mut buf = BytesMut::new();
    let mut requests = Vec::new();
    let mut pos = 0;
    // Chunk sizes 1..=16, cycling through the input's own bytes.
    let mut k = 0;
    while pos < data.len() {
        let size = 1 + (data[k % data.len()] as usize % 16);
        k += 1;
        let end = (pos + size).min(data.len());
        buf.extend_from_slice(&data[pos..end]);
        pos = end;
        loop {
            match decoder.decode(&mut buf) {
                Ok(Some(args)) => requests.push(args),
                Ok(None) => break,
                Err(e) => return (requests, Some(e.to_string())),
            }
        }
    }
    (requests, None)
}

fn encode_multibulk(args: &[Bytes]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// `command_parse`: the command layer and the state machine on arbitrary
/// argument vectors. The input is lines of space-separated arguments, one
/// command per line.
///
/// - Parsing never panics, for any arity and any bytes.
/// - Writes are applied to two stores with different hash keys (two
///   replicas): their replies and their snapshots must be identical (the
///   state machine is deterministic).
/// - Every write survives the log codec (bincode) unchanged.
/// - A snapshot read back writes the same bytes.
/// - Reads execute without panicking.
pub fn command_parse(data: &[u8]) {
    let limits = Limits::default();
    let mut a = Store::new();
    let mut b = Store::new();
    for (i, line) in data.split(|&c| c == b'\n').take(64).enumerate() {
        let args: Vec<Bytes> = line.split(|&c| c == b' ').map(Bytes::copy_from_slice).collect();
        let now = NOW_MS + i as u64 * 1000;
        match commands::parse(&args, &limits, now) {
            Ok(Parsed::Write(cmd)) => {
                let op = Operation { at_ms: now, cmd };
                let bytes = seshat_server::raft::codec::encode(&op).expect("encode");
                let decoded: Operation = seshat_server::raft::codec::decode(&bytes).expect("decode");
                assert_eq!(decoded.cmd, op.cmd, "log codec round trip");
                let ra = a.apply(&op);
                let rb = b.apply(&decoded);
                assert_eq!(format!("{ra:?}"), format!("{rb:?}"), "replicas replied differently");
            }
            Ok(Parsed::Read(cmd)) => {
                let _ = commands::execute_read(&cmd, &a, now);
            }
            Ok(Parsed::Connection(_)) | Err(_) => {}
        }
    }
    let (mut sa, mut sb) = (Vec::new(), Vec::new());
    a.write_snapshot(&mut sa).expect("snapshot a");
    b.write_snapshot(&mut sb).expect("snapshot b");
    assert!(sa == sb, "replicas diverged: snapshots differ");
    let restored = Store::read_snapshot(&sa[..]).expect("snapshot reads back");
    let mut again = Vec::new();
    restored.write_snapshot(&mut again).expect("snapshot again");
    assert!(again == sa, "snapshot round trip changed bytes");
}
