use bytes::{Bytes, BytesMut};
use rand::{Rng, SeedableRng};
use tokio_util::codec::Decoder;

use super::*;

fn args(list: &[&str]) -> Vec<Bytes> {
    list.iter().map(|a| Bytes::copy_from_slice(a.as_bytes())).collect()
}

fn decode_all(input: &[u8]) -> (Vec<Vec<Bytes>>, Option<ProtocolError>) {
    decode_requests(input, DecoderLimits::default())
}

/// Feeds `input` in the given chunk sizes, decoding after every chunk.
fn decode_chunked(
    input: &[u8],
    limits: DecoderLimits,
    chunks: &mut dyn Iterator<Item = usize>,
) -> (Vec<Vec<Bytes>>, Option<String>) {
    let mut decoder = RequestDecoder::new(limits);
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < input.len() {
        let n = chunks.next().unwrap_or(input.len()).clamp(1, input.len() - pos);
        buf.extend_from_slice(&input[pos..pos + n]);
        pos += n;
        loop {
            match decoder.decode(&mut buf) {
                Ok(Some(request)) => out.push(request),
                Ok(None) => break,
                Err(err) => return (out, Some(err.to_string())),
            }
        }
    }
    (out, None)
}

fn error_text(input: &[u8]) -> String {
    let (_, err) = decode_all(input);
    err.expect("expected a protocol error").reply().as_error().unwrap().to_owned()
}

#[test]
fn multibulk_and_pipelining() {
    let input = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nhello\r\n*2\r\n$3\r\nGET\r\n$1\r\nk\r\n";
    let (requests, err) = decode_all(input);
    assert!(err.is_none());
    assert_eq!(requests, vec![args(&["SET", "k", "hello"]), args(&["GET", "k"])]);
}

#[test]
fn binary_safe_and_empty_arguments() {
    let (requests, err) = decode_all(b"*3\r\n$4\r\necho\r\n$0\r\n\r\n$4\r\na\r\nb\r\n");
    assert!(err.is_none());
    assert_eq!(requests, vec![vec![Bytes::from("echo"), Bytes::new(), Bytes::from("a\r\nb")]]);
}

#[test]
fn inline_requests_and_skipped_empties() {
    let input = b"\r\n\r\n   \r\nPING\r\n*0\r\n*-1\r\n*-5\r\nset a \"b c\"\nGET a\r\n";
    let (requests, err) = decode_all(input);
    assert!(err.is_none());
    assert_eq!(requests, vec![args(&["PING"]), args(&["set", "a", "b c"]), args(&["GET", "a"])]);
}

#[test]
fn partial_request_waits() {
    let mut decoder = RequestDecoder::new(DecoderLimits::default());
    let mut buf = BytesMut::from(&b"*2\r\n$3\r\nGET\r\n$1\r"[..]);
    assert!(decoder.decode(&mut buf).unwrap().is_none());
    assert!(decoder.in_request());
    buf.extend_from_slice(b"\nk\r\n");
    assert_eq!(decoder.decode(&mut buf).unwrap(), Some(args(&["GET", "k"])));
    assert!(!decoder.in_request());
    assert!(buf.is_empty());
}

#[test]
fn arguments_are_slices_of_the_read_buffer() {
    let mut buf = BytesMut::from(&b"*2\r\n$3\r\nSET\r\n$10\r\n0123456789\r\n"[..]);
    let range = buf.as_ptr() as usize..buf.as_ptr() as usize + buf.len();
    let request = RequestDecoder::new(DecoderLimits::default()).decode(&mut buf).unwrap().unwrap();
    for arg in &request {
        assert!(range.contains(&(arg.as_ptr() as usize)), "argument was copied");
    }
}

/// The same pipelined buffer split in two at every position decodes identically.
#[test]
fn every_split_point_of_a_pipeline() {
    let input: &[u8] = b"*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$11\r\nhello world\r\n\r\nPING\r\n*0\r\n\
        echo \"a\\x41\" 'b c'\r\n*2\r\n$3\r\nGET\r\n$3\r\nkey\r\n*1\r\n$0\r\n\r\n";
    let (whole, err) = decode_all(input);
    assert!(err.is_none());
    assert_eq!(whole.len(), 5);
    for split in 1..input.len() {
        let sizes = [split, input.len()];
        let (got, failed) = decode_chunked(input, DecoderLimits::default(), &mut sizes.into_iter());
        assert_eq!(failed, None, "split at {split}");
        assert_eq!(got, whole, "split at {split}");
    }
    let (got, failed) = decode_chunked(input, DecoderLimits::default(), &mut std::iter::repeat(1));
    assert_eq!(failed, None);
    assert_eq!(got, whole, "byte by byte");
}

#[test]
fn large_value_byte_by_byte() {
    let value = vec![b'v'; 64 * 1024];
    let mut input = format!("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n${}\r\n", value.len()).into_bytes();
    input.extend_from_slice(&value);
    input.extend_from_slice(b"\r\n");
    let (got, failed) = decode_chunked(&input, DecoderLimits::default(), &mut std::iter::repeat(1));
    assert_eq!(failed, None);
    assert_eq!(got, vec![vec![Bytes::from("SET"), Bytes::from("k"), Bytes::from(value)]]);
}

#[test]
fn redis_protocol_error_texts() {
    let cases: &[(&[u8], &str)] = &[
        (b"*1\r\n*1\r\n", "ERR Protocol error: expected '$', got '*'"),
        (b"*1\r\n:1\r\n", "ERR Protocol error: expected '$', got ':'"),
        (b"*x\r\n", "ERR Protocol error: invalid multibulk length"),
        (b"*01\r\n", "ERR Protocol error: invalid multibulk length"),
        (b"*1 \r\n", "ERR Protocol error: invalid multibulk length"),
        (b"*3000000000\r\n", "ERR Protocol error: invalid multibulk length"),
        (b"*1\r\n$-1\r\n", "ERR Protocol error: invalid bulk length"),
        (b"*1\r\n$x\r\n", "ERR Protocol error: invalid bulk length"),
        (b"*1\r\n$+1\r\n", "ERR Protocol error: invalid bulk length"),
        (b"*1\r\n$1000000000\r\n", "ERR Protocol error: invalid bulk length"),
        (b"set a \"b\r\n", "ERR Protocol error: unbalanced quotes in request"),
        (b"set a \"b\"c\r\n", "ERR Protocol error: unbalanced quotes in request"),
    ];
    for (input, want) in cases {
        assert_eq!(error_text(input), *want, "{:?}", String::from_utf8_lossy(input));
    }
}

#[test]
fn oversized_lines() {
    let long = vec![b'a'; 64 * 1024 + 1];
    assert_eq!(error_text(&long), "ERR Protocol error: too big inline request");
    let mut with_newline = long.clone();
    with_newline.extend_from_slice(b"\r\n");
    assert_eq!(error_text(&with_newline), "ERR Protocol error: too big inline request");
    let mut mbulk = b"*".to_vec();
    mbulk.extend_from_slice(&long);
    assert_eq!(error_text(&mbulk), "ERR Protocol error: too big mbulk count string");
    let mut bulk = b"*1\r\n$".to_vec();
    bulk.extend_from_slice(&long);
    assert_eq!(error_text(&bulk), "ERR Protocol error: too big bulk count string");
}

#[test]
fn huge_declared_bulk_never_allocates_it() {
    let limits = DecoderLimits { max_bulk_len: 1 << 30, max_request_bytes: 1 << 31, ..DecoderLimits::default() };
    let mut decoder = RequestDecoder::new(limits);
    let mut buf = BytesMut::from(&b"*2\r\n$3\r\nSET\r\n$1000000000\r\nabc"[..]);
    assert!(decoder.decode(&mut buf).unwrap().is_none());
    assert!(buf.capacity() <= 2 * MAX_RESERVE, "reserved {} bytes", buf.capacity());
    // With the default 512 MiB limit the header alone is rejected.
    let mut decoder = RequestDecoder::new(DecoderLimits::default());
    let mut buf = BytesMut::from(&b"*1\r\n$1000000000\r\n"[..]);
    assert!(matches!(decoder.decode(&mut buf), Err(ProtocolError::InvalidBulkLength)));
}

#[test]
fn configured_limits() {
    let limits = DecoderLimits {
        max_bulk_len: 8,
        max_skipped_bulk_len: 8,
        max_multibulk_len: 3,
        max_inline_len: 16,
        max_request_bytes: 40,
    };
    let run = |input: &[u8]| decode_requests(input, limits);
    assert!(run(b"*3\r\n$8\r\n12345678\r\n$1\r\na\r\n$1\r\nb\r\n").1.is_none());
    assert!(matches!(run(b"*4\r\n").1, Some(ProtocolError::InvalidMultibulkLength)));
    assert!(matches!(run(b"*1\r\n$9\r\n").1, Some(ProtocolError::InvalidBulkLength)));
    assert!(matches!(run(b"0123456789abcdefg\r\n").1, Some(ProtocolError::TooBigInline)));
    let (_, err) = run(b"*3\r\n$8\r\n12345678\r\n$8\r\n12345678\r\n$8\r\n");
    assert_eq!(err.unwrap().reply().as_error(), Some("ERR Protocol error: too big request (over 40 bytes)"));
}

/// Limits under which arguments of 9..=100 bytes are skipped, not refused.
const SKIPPING: DecoderLimits = DecoderLimits {
    max_bulk_len: 8,
    max_skipped_bulk_len: 100,
    max_multibulk_len: 4,
    max_inline_len: 16,
    max_request_bytes: 40,
};

#[test]
fn an_oversized_argument_fails_its_request_alone() {
    let mut decoder = RequestDecoder::new(SKIPPING);
    // The long argument in the middle, then a request that must still decode.
    let input = [&b"*3\r\n$3\r\nSET\r\n$60\r\n"[..], &[b'x'; 60], b"\r\n$1\r\nv\r\n*1\r\n$4\r\nPING\r\n"].concat();
    let mut buf = BytesMut::from(&input[..]);
    let err = decoder.decode(&mut buf).unwrap_err();
    assert!(matches!(err, ProtocolError::ArgumentTooLarge { len: 60, max: 8 }), "{err:?}");
    assert_eq!(err.reply().as_error(), Some("ERR argument too large: 60 bytes (max 8)"));
    assert_eq!(decoder.decode(&mut buf).unwrap(), Some(args(&["PING"])));
    // 60 skipped bytes do not count toward the 40-byte request limit.
    assert!(buf.is_empty());
}

#[test]
fn a_skipped_argument_is_never_buffered_however_it_arrives() {
    let input = [&b"*2\r\n$3\r\nSET\r\n$100\r\n"[..], &[b'x'; 100], b"\r\n*1\r\n$4\r\nPING\r\n"].concat();
    for chunk in [1, 2, 7, 64, input.len()] {
        let mut decoder = RequestDecoder::new(SKIPPING);
        let mut buf = BytesMut::new();
        let mut outcomes = Vec::new();
        for piece in input.chunks(chunk) {
            buf.extend_from_slice(piece);
            loop {
                match decoder.decode(&mut buf) {
                    Ok(Some(request)) => outcomes.push(Ok(request)),
                    Ok(None) => break,
                    Err(e) => outcomes.push(Err(e.to_string())),
                }
                assert!(outcomes.len() <= 2, "chunk {chunk}: {outcomes:?}");
            }
            assert!(buf.len() <= chunk.max(16), "chunk {chunk}: {} bytes held", buf.len());
        }
        assert_eq!(
            outcomes,
            vec![Err("argument too large: 100 bytes (max 8)".to_owned()), Ok(args(&["PING"]))],
            "chunk {chunk}"
        );
    }
}

#[test]
fn past_the_skip_limit_a_bulk_length_is_refused() {
    let (_, err) = decode_requests(b"*2\r\n$3\r\nSET\r\n$101\r\n", SKIPPING);
    assert!(matches!(err, Some(ProtocolError::InvalidBulkLength)), "{err:?}");
    // Before AUTH the 16 KiB cap still closes the connection.
    let mut decoder = RequestDecoder::new(DecoderLimits { max_bulk_len: 8, ..DecoderLimits::default() });
    decoder.set_authenticated(false);
    let mut buf = BytesMut::from(&b"*2\r\n$3\r\nSET\r\n$20000\r\n"[..]);
    assert!(matches!(decoder.decode(&mut buf), Err(ProtocolError::UnauthenticatedBulkLength)));
}

#[test]
fn unauthenticated_caps() {
    let mut decoder = RequestDecoder::new(DecoderLimits::default());
    decoder.set_authenticated(false);
    let mut buf = BytesMut::from(&b"*11\r\n"[..]);
    let err = decoder.decode(&mut buf).unwrap_err();
    assert_eq!(err.reply().as_error(), Some("ERR Protocol error: unauthenticated multibulk length"));
    let mut decoder = RequestDecoder::new(DecoderLimits::default());
    decoder.set_authenticated(false);
    let mut buf = BytesMut::from(&b"*2\r\n$4\r\nAUTH\r\n$16385\r\n"[..]);
    let err = decoder.decode(&mut buf).unwrap_err();
    assert_eq!(err.reply().as_error(), Some("ERR Protocol error: unauthenticated bulk length"));
}

/// Random, mostly protocol-shaped garbage: never a panic, and the outcome does
/// not depend on how the bytes were split into reads.
#[test]
fn random_input_is_chunking_independent() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x5e5a7);
    let tokens: &[&[u8]] = &[
        b"*",
        b"$",
        b"\r\n",
        b"\r",
        b"\n",
        b"1",
        b"2",
        b"3",
        b"0",
        b"-1",
        b"10",
        b"abc",
        b"\"",
        b"'",
        b"\\x4",
        b" ",
        b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n",
        b"PING\r\n",
        b"\0",
        b"\xff",
    ];
    let limits = DecoderLimits {
        max_bulk_len: 64,
        max_skipped_bulk_len: 64,
        max_multibulk_len: 8,
        max_inline_len: 32,
        max_request_bytes: 256,
    };
    for _ in 0..3000 {
        let mut input = Vec::new();
        for _ in 0..rng.random_range(1..24) {
            input.extend_from_slice(tokens[rng.random_range(0..tokens.len())]);
        }
        let (whole, err) = decode_requests(&input, limits);
        let sizes: Vec<usize> = (0..input.len()).map(|_| rng.random_range(1..5)).collect();
        let (chunked, chunked_err) = decode_chunked(&input, limits, &mut sizes.into_iter());
        assert_eq!(chunked, whole, "{:?}", String::from_utf8_lossy(&input));
        assert_eq!(chunked_err, err.map(|e| e.to_string()), "{:?}", String::from_utf8_lossy(&input));
    }
}
