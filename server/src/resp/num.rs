//! Number ↔ text conversions with Redis's exact rules.
//!
//! Redis is strict about integers (`string2ll`: no sign `+`, no leading zeros, no
//! spaces) and has its own float layouts; clients and tests compare these texts
//! byte for byte, so they live in one place shared by the codec, the command
//! parser and the store.

/// Parses a signed 64-bit integer exactly as Redis's `string2ll` does.
///
/// Accepted: `0`, or an optional `-` followed by a non-zero digit and more digits,
/// within `i64`. Rejected: empty input, `+1`, `01`, `-0`, ` 1`, `1 `, overflow.
pub fn parse_i64(s: &[u8]) -> Option<i64> {
    if s == b"0" {
        return Some(0);
    }
    let (negative, digits) = match s.split_first()? {
        (b'-', rest) => (true, rest),
        _ => (false, s),
    };
    match digits.first() {
        Some(b'1'..=b'9') => {}
        _ => return None,
    }
    // Accumulate as a negative number: |i64::MIN| does not fit in i64.
    let mut value: i64 = 0;
    for &b in digits {
        if !b.is_ascii_digit() {
            return None;
        }
        value = value.checked_mul(10)?.checked_sub(i64::from(b - b'0'))?;
    }
    if negative {
        Some(value)
    } else {
        value.checked_neg()
    }
}

/// Parses an unsigned 64-bit integer (SCAN cursors): plain decimal digits only.
pub fn parse_u64(s: &[u8]) -> Option<u64> {
    if s.is_empty() || s.len() > 20 || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(s).ok()?.parse().ok()
}

/// Longest text Redis accepts as a float (`MAX_LONG_DOUBLE_CHARS`).
const MAX_FLOAT_CHARS: usize = 5 * 1024;

/// Parses a float as Redis's `string2ld` does (INCRBYFLOAT operands and values).
///
/// Rejects empty or over-long input, leading whitespace, trailing garbage, NaN and
/// finite text that overflows `f64`. `inf`/`infinity` are accepted (the arithmetic
/// then fails with "increment would produce NaN or Infinity", as in Redis).
/// Deviation: Redis computes in `long double`; Seshat uses `f64` on every replica.
pub fn parse_f64(s: &[u8]) -> Option<f64> {
    if s.is_empty() || s.len() >= MAX_FLOAT_CHARS || s[0].is_ascii_whitespace() {
        return None;
    }
    let text = std::str::from_utf8(s).ok()?;
    let value: f64 = text.parse().ok()?;
    if value.is_nan() {
        return None;
    }
    if value.is_infinite() && !text.to_ascii_lowercase().contains("inf") {
        return None; // out of range, like strtold's ERANGE
    }
    Some(value)
}

/// Formats the result of INCRBYFLOAT like Redis's `ld2string(.., LD_STR_HUMAN)`:
/// plain decimal notation, no exponent, no trailing zeros, and never `-0`.
pub fn format_human_float(value: f64) -> String {
    if value == 0.0 {
        return "0".to_owned();
    }
    // `Display` for f64 prints the shortest text that round-trips, never in
    // exponent form, which is what LD_STR_HUMAN's trimmed "%.17Lf" aims at.
    format!("{value}")
}

/// Appends the text of a double reply as Redis ≥ 7.2 writes it (`fpconv_dtoa`):
/// shortest round-trip digits in `%.17g`-like layout, `inf`, `-inf`, `nan`.
pub fn format_double(value: f64, out: &mut Vec<u8>) {
    if value.is_sign_negative() {
        out.push(b'-');
    }
    if value == 0.0 {
        out.push(b'0');
        return;
    }
    if value.is_nan() {
        out.extend_from_slice(b"nan");
        return;
    }
    if value.is_infinite() {
        out.extend_from_slice(b"inf");
        return;
    }
    // `{:e}` yields the shortest round-trip digits as "d.ddde<exp>".
    let sci = format!("{:e}", value.abs());
    let (mantissa, exp) = sci.split_once('e').expect("LowerExp always has an exponent");
    let exp10: i32 = exp.parse().expect("LowerExp exponent is an integer");
    let digits: Vec<u8> = mantissa.bytes().filter(u8::is_ascii_digit).collect();
    let ndigits = digits.len() as i32;
    // K: power of ten of the last digit, as in fpconv's emit_digits.
    let k = exp10 - (ndigits - 1);
    let abs_exp = exp10.abs();
    if k >= 0 && abs_exp < ndigits + 7 {
        out.extend_from_slice(&digits);
        out.resize(out.len() + k as usize, b'0');
        return;
    }
    if k < 0 && (k > -7 || abs_exp < 4) {
        let offset = ndigits + k;
        if offset <= 0 {
            out.extend_from_slice(b"0.");
            out.resize(out.len() + (-offset) as usize, b'0');
            out.extend_from_slice(&digits);
        } else {
            let (int_part, frac_part) = digits.split_at(offset as usize);
            out.extend_from_slice(int_part);
            out.push(b'.');
            out.extend_from_slice(frac_part);
        }
        return;
    }
    out.push(digits[0]);
    if digits.len() > 1 {
        out.push(b'.');
        out.extend_from_slice(&digits[1..]);
    }
    out.push(b'e');
    out.push(if exp10 < 0 { b'-' } else { b'+' });
    out.extend_from_slice(itoa::Buffer::new().format(abs_exp).as_bytes());
}

/// Formats a double reply into a `String` (see [`format_double`]).
pub fn double_to_string(value: f64) -> String {
    let mut out = Vec::with_capacity(24);
    format_double(value, &mut out);
    String::from_utf8(out).expect("double text is ASCII")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_i64_follows_string2ll() {
        for (text, want) in [
            ("0", Some(0)),
            ("1", Some(1)),
            ("-1", Some(-1)),
            ("9223372036854775807", Some(i64::MAX)),
            ("-9223372036854775808", Some(i64::MIN)),
            ("9223372036854775808", None),
            ("-9223372036854775809", None),
            ("", None),
            ("-", None),
            ("+1", None),
            ("01", None),
            ("-0", None),
            ("00", None),
            (" 1", None),
            ("1 ", None),
            ("1a", None),
            ("12345678901234567890123", None),
        ] {
            assert_eq!(parse_i64(text.as_bytes()), want, "{text:?}");
        }
    }

    #[test]
    fn parse_u64_cursor() {
        assert_eq!(parse_u64(b"0"), Some(0));
        assert_eq!(parse_u64(b"18446744073709551615"), Some(u64::MAX));
        assert_eq!(parse_u64(b"18446744073709551616"), None);
        assert_eq!(parse_u64(b"-1"), None);
        assert_eq!(parse_u64(b""), None);
        assert_eq!(parse_u64(b"1x"), None);
    }

    #[test]
    fn parse_f64_follows_string2ld() {
        assert_eq!(parse_f64(b"10.5"), Some(10.5));
        assert_eq!(parse_f64(b"5.0e3"), Some(5000.0));
        assert_eq!(parse_f64(b"-.5"), Some(-0.5));
        assert_eq!(parse_f64(b"inf"), Some(f64::INFINITY));
        assert_eq!(parse_f64(b"-Infinity"), Some(f64::NEG_INFINITY));
        for bad in [&b""[..], b" 1", b"1 ", b"nan", b"abc", b"1e400", b"1e", b"."] {
            assert_eq!(parse_f64(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
        assert_eq!(parse_f64(&vec![b'1'; MAX_FLOAT_CHARS]), None);
    }

    #[test]
    fn human_float_matches_redis_examples() {
        assert_eq!(format_human_float(10.5 + 0.1), "10.6");
        assert_eq!(format_human_float(10.6 - 5.0), "5.6");
        assert_eq!(format_human_float(5000.0 + 200.0), "5200");
        assert_eq!(format_human_float(-0.0), "0");
        assert_eq!(format_human_float(-3.25), "-3.25");
    }

    #[test]
    fn double_layout_matches_fpconv() {
        for (value, want) in [
            (0.0, "0"),
            (-0.0, "-0"),
            (1.5, "1.5"),
            (-1.5, "-1.5"),
            (0.1, "0.1"),
            (100.0, "100"),
            (1e7, "10000000"),
            (1e21, "1e+21"),
            (1.5e300, "1.5e+300"),
            (0.000001, "0.000001"),
            (1.5e-7, "1.5e-7"),
            (123456.789, "123456.789"),
            (f64::INFINITY, "inf"),
            (f64::NEG_INFINITY, "-inf"),
            (f64::NAN, "nan"),
        ] {
            assert_eq!(double_to_string(value), want, "{value:e}");
        }
    }

    #[test]
    fn double_text_round_trips() {
        for value in [1.0 / 3.0, 2.0f64.sqrt(), 1e-300, 6.02214076e23, -123.456e-10] {
            let text = double_to_string(value);
            assert_eq!(text.parse::<f64>().unwrap(), value, "{text}");
        }
    }
}
