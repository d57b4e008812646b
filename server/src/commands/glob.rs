//! Glob-style matching for KEYS and SCAN MATCH: a port of Redis's
//! `stringmatchlen` (`*`, `?`, `[abc]`, `[^a-z]`, `\x` escapes), including its
//! protections against patterns that would backtrack exponentially.

/// Recursion depth beyond which a pattern is treated as not matching (Redis: 1000).
const MAX_NESTING: usize = 1000;

/// True when `string` matches the glob `pattern`.
///
/// `*` alone matches everything, the empty string included (KEYS and SCAN
/// special-case it in Redis); otherwise an empty string matches only an empty
/// pattern, exactly as `stringmatchlen` (so `**` does not match "").
pub fn glob_match(pattern: &[u8], string: &[u8], nocase: bool) -> bool {
    if pattern == b"*" {
        return true;
    }
    let mut skip_longer = false;
    matches(pattern, string, nocase, &mut skip_longer, 0)
}

fn fold(b: u8, nocase: bool) -> u8 {
    if nocase {
        b.to_ascii_lowercase()
    } else {
        b
    }
}

/// `pattern[p..]` against `string[s..]`. `skip_longer` records that the rest of
/// the pattern after a `*` failed to match anywhere in the rest of the string;
/// then no earlier `*` can succeed by consuming more (Redis's `skipLongerMatches`),
/// which keeps patterns like `*a*a*a*a*b` linear instead of exponential.
fn matches(pattern: &[u8], string: &[u8], nocase: bool, skip_longer: &mut bool, nesting: usize) -> bool {
    if nesting > MAX_NESTING {
        return false;
    }
    let (mut p, mut s) = (0usize, 0usize);
    while p < pattern.len() && s < string.len() {
        match pattern[p] {
            b'*' => {
                while p + 1 < pattern.len() && pattern[p + 1] == b'*' {
                    p += 1;
                }
                if p + 1 == pattern.len() {
                    return true;
                }
                while s < string.len() {
                    if matches(&pattern[p + 1..], &string[s..], nocase, skip_longer, nesting + 1) {
                        return true;
                    }
                    if *skip_longer {
                        return false;
                    }
                    s += 1;
                }
                *skip_longer = true;
                return false;
            }
            b'?' => s += 1,
            b'[' => {
                p += 1;
                let negate = pattern.get(p) == Some(&b'^');
                if negate {
                    p += 1;
                }
                let c = fold(string[s], nocase);
                let mut matched = false;
                loop {
                    match pattern.get(p) {
                        // Unterminated class: the last byte stays current, as in Redis.
                        None => {
                            p -= 1;
                            break;
                        }
                        Some(b']') => break,
                        Some(b'\\') if p + 1 < pattern.len() => {
                            p += 1;
                            if pattern[p] == string[s] {
                                matched = true;
                            }
                        }
                        Some(&start) if p + 2 < pattern.len() && pattern[p + 1] == b'-' => {
                            let (mut lo, mut hi) = (fold(start, nocase), fold(pattern[p + 2], nocase));
                            if lo > hi {
                                std::mem::swap(&mut lo, &mut hi);
                            }
                            p += 2;
                            if (lo..=hi).contains(&c) {
                                matched = true;
                            }
                        }
                        Some(&b) => {
                            if fold(b, nocase) == c {
                                matched = true;
                            }
                        }
                    }
                    p += 1;
                }
                if matched == negate {
                    return false;
                }
                s += 1;
            }
            b'\\' if p + 1 < pattern.len() => {
                p += 1;
                if fold(pattern[p], nocase) != fold(string[s], nocase) {
                    return false;
                }
                s += 1;
            }
            b => {
                if fold(b, nocase) != fold(string[s], nocase) {
                    return false;
                }
                s += 1;
            }
        }
        p += 1;
        if s == string.len() {
            while p < pattern.len() && pattern[p] == b'*' {
                p += 1;
            }
            break;
        }
    }
    p == pattern.len() && s == string.len()
}

#[cfg(test)]
mod tests {
    use super::glob_match;

    fn m(pattern: &str, string: &str) -> bool {
        glob_match(pattern.as_bytes(), string.as_bytes(), false)
    }

    #[test]
    fn redis_documented_examples() {
        for s in ["hello", "hallo", "hxllo"] {
            assert!(m("h?llo", s));
        }
        for s in ["hllo", "heeeello", "hello"] {
            assert!(m("h*llo", s));
        }
        assert!(m("h[ae]llo", "hello") && m("h[ae]llo", "hallo") && !m("h[ae]llo", "hillo"));
        assert!(m("h[^e]llo", "hallo") && m("h[^e]llo", "hbllo") && !m("h[^e]llo", "hello"));
        assert!(m("h[a-b]llo", "hallo") && m("h[a-b]llo", "hbllo") && !m("h[a-b]llo", "hcllo"));
    }

    #[test]
    fn stars_and_empties() {
        assert!(m("*", ""));
        assert!(!m("**", ""), "as Redis 7: only a lone * matches the empty key");
        assert!(m("*", "anything"));
        assert!(m("**", "x"));
        assert!(m("a*", "a"));
        assert!(m("a**", "a"));
        assert!(!m("", "a"));
        assert!(m("", ""));
        assert!(!m("?", ""));
        assert!(m("*a*b", "xxaxxb"));
        assert!(!m("*a*b", "xxaxxc"));
        assert!(m("user:*:name", "user:42:name"));
    }

    #[test]
    fn escapes_and_classes() {
        assert!(m(r"h\*llo", "h*llo") && !m(r"h\*llo", "hello"));
        assert!(m(r"a\", r"a\"));
        assert!(m(r"[\]]", "]"));
        assert!(m("[z-a]", "m")); // reversed range
        assert!(m("[abc", "c")); // unterminated class
        assert!(!m("[abc", "d"));
        let _ = m("[]", "]"); // edge class: must not panic
        assert!(!m("[", "a"));
    }

    #[test]
    fn nocase() {
        assert!(glob_match(b"H[A-Z]LLO", b"hello", true));
        assert!(!glob_match(b"H[A-Z]LLO", b"hello", false));
    }

    #[test]
    fn pathological_pattern_is_fast() {
        let pattern = "*a".repeat(30) + "b";
        let string = "a".repeat(60);
        assert!(!m(&pattern, &string));
        let deep = "*?".repeat(2000);
        assert!(!m(&deep, &"x".repeat(1000)));
    }

    #[test]
    fn arbitrary_patterns_never_panic() {
        let alphabet = [b'*', b'?', b'[', b']', b'^', b'-', b'\\', b'a', b'b'];
        let strings: [&[u8]; 4] = [b"", b"a", b"ab", b"-]"];
        for n in 0..alphabet.len().pow(5) {
            let mut pattern = Vec::new();
            let mut k = n;
            for _ in 0..5 {
                pattern.push(alphabet[k % alphabet.len()]);
                k /= alphabet.len();
            }
            for string in strings {
                let _ = glob_match(&pattern, string, false);
            }
        }
    }
}
