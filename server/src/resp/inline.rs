//! Inline commands (`SET k "a b"\r\n`): Redis's `sdssplitargs` quoting rules.

use bytes::Bytes;

/// The quoting in a line is unbalanced (`"abc`, `"a"b`, `'x`).
#[derive(Debug, PartialEq, Eq)]
pub struct UnbalancedQuotes;

/// Splits one inline request line into arguments exactly as Redis does:
///
/// - arguments are separated by blanks (`isspace`);
/// - inside `"..."`: `\n \r \t \b \a`, `\xHH`, and `\<any>` → `<any>`;
/// - inside `'...'`: only `\'` is an escape;
/// - a closing quote must be followed by a blank or the end of the line;
/// - a NUL byte ends the line (Redis treats the line as a C string).
///
/// An empty or blank line yields no arguments (the request is skipped).
pub fn split_inline(line: &[u8]) -> Result<Vec<Bytes>, UnbalancedQuotes> {
    let line = match memchr::memchr(0, line) {
        Some(nul) => &line[..nul],
        None => line,
    };
    // Reading past the end yields NUL, mirroring the C string terminator the
    // original relies on; this keeps the state machine a line-for-line port.
    let at = |i: usize| line.get(i).copied().unwrap_or(0);
    let mut args = Vec::new();
    let mut i = 0;
    loop {
        while i < line.len() && is_space(line[i]) {
            i += 1;
        }
        if i >= line.len() {
            return Ok(args);
        }
        let mut current = Vec::new();
        let (mut in_double, mut in_single, mut done) = (false, false, false);
        while !done {
            let c = at(i);
            if in_double {
                if c == b'\\' && at(i + 1) == b'x' && is_hex(at(i + 2)) && is_hex(at(i + 3)) {
                    current.push(hex(at(i + 2)) * 16 + hex(at(i + 3)));
                    i += 3;
                } else if c == b'\\' && at(i + 1) != 0 {
                    i += 1;
                    current.push(match at(i) {
                        b'n' => b'\n',
                        b'r' => b'\r',
                        b't' => b'\t',
                        b'b' => 0x08,
                        b'a' => 0x07,
                        other => other,
                    });
                } else if c == b'"' {
                    if at(i + 1) != 0 && !is_space(at(i + 1)) {
                        return Err(UnbalancedQuotes);
                    }
                    done = true;
                } else if c == 0 {
                    return Err(UnbalancedQuotes);
                } else {
                    current.push(c);
                }
            } else if in_single {
                if c == b'\\' && at(i + 1) == b'\'' {
                    i += 1;
                    current.push(b'\'');
                } else if c == b'\'' {
                    if at(i + 1) != 0 && !is_space(at(i + 1)) {
                        return Err(UnbalancedQuotes);
                    }
                    done = true;
                } else if c == 0 {
                    return Err(UnbalancedQuotes);
                } else {
                    current.push(c);
                }
            } else {
                match c {
                    b' ' | b'\n' | b'\r' | b'\t' | 0 => done = true,
                    b'"' => in_double = true,
                    b'\'' => in_single = true,
                    _ => current.push(c),
                }
            }
            if at(i) != 0 {
                i += 1;
            }
        }
        args.push(Bytes::from(current));
    }
}

/// C's `isspace` in the "C" locale.
fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

fn is_hex(b: u8) -> bool {
    b.is_ascii_hexdigit()
}

fn hex(b: u8) -> u8 {
    match b {
        b'0'..=b'9' => b - b'0',
        b'a'..=b'f' => b - b'a' + 10,
        _ => b - b'A' + 10,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(line: &str) -> Result<Vec<String>, UnbalancedQuotes> {
        split_inline(line.as_bytes()).map(|args| args.iter().map(|a| String::from_utf8_lossy(a).into_owned()).collect())
    }

    #[test]
    fn plain_words_and_blanks() {
        assert_eq!(split("set a b").unwrap(), ["set", "a", "b"]);
        assert_eq!(split("  get\tkey  ").unwrap(), ["get", "key"]);
        assert!(split("").unwrap().is_empty());
        assert!(split(" \t ").unwrap().is_empty());
    }

    #[test]
    fn double_quote_escapes() {
        assert_eq!(split(r#"echo "a\x41\n\q""#).unwrap(), ["echo", "aA\nq"]);
        assert_eq!(split(r#"echo "\t\r\b\a\\\"""#).unwrap(), ["echo", "\t\r\u{8}\u{7}\\\""]);
        assert_eq!(split(r#"echo "\x4""#).unwrap(), ["echo", "x4"]);
        assert_eq!(split(r#"echo """#).unwrap(), ["echo", ""]);
        assert_eq!(split(r#"echo "a b"  c"#).unwrap(), ["echo", "a b", "c"]);
    }

    #[test]
    fn quote_inside_a_word_opens_a_quoted_part() {
        assert_eq!(split(r#"echo fo"o bar""#).unwrap(), ["echo", "foo bar"]);
    }

    #[test]
    fn single_quotes() {
        assert_eq!(split(r"echo 'a\'b'").unwrap(), ["echo", "a'b"]);
        assert_eq!(split(r"echo 'a\nb'").unwrap(), ["echo", "a\\nb"]);
    }

    #[test]
    fn unbalanced_quotes() {
        for line in [r#"set a "b"#, r#"set a "b"c"#, "set a 'b", "set a 'b'c", r#"x "\"#] {
            assert_eq!(split(line), Err(UnbalancedQuotes), "{line}");
        }
    }

    #[test]
    fn nul_ends_the_line() {
        assert_eq!(split_inline(b"echo a\0b c").unwrap(), vec![Bytes::from("echo"), Bytes::from("a")]);
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        let alphabet = [b'"', b'\'', b'\\', b'x', b'4', b' ', b'a', 0, 0xff];
        // Every 4-byte string over the alphabet: exercises every look-ahead edge.
        for n in 0..alphabet.len().pow(4) {
            let mut line = Vec::new();
            let mut k = n;
            for _ in 0..4 {
                line.push(alphabet[k % alphabet.len()]);
                k /= alphabet.len();
            }
            let _ = split_inline(&line);
        }
    }
}
