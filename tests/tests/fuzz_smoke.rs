//! Deterministic fuzz-smoke: the cargo-fuzz properties (`fuzz/src/props.rs`)
//! run under `cargo test` on the committed seed corpus, on every recorded
//! regression input, and on a fixed number of seeded mutations of the seeds.
//! It is no substitute for coverage-guided fuzzing (see `fuzz/README.md`),
//! but it keeps every property and every past finding checked in CI.

use std::path::{Path, PathBuf};

#[allow(dead_code)]
#[path = "../../fuzz/src/props.rs"]
mod props;

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz")
}

/// Every file of `fuzz/corpus/<target>` and `fuzz/regressions/<target>`.
fn inputs(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    for sub in ["corpus", "regressions"] {
        let dir = fuzz_dir().join(sub).join(target);
        for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_file() {
                let data = std::fs::read(&p).unwrap();
                out.push((p, data));
            }
        }
    }
    out.sort();
    out
}

/// xorshift64*: tiny, seeded, good enough to drive mutations.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// One libFuzzer-style mutation step: flip, insert, delete, duplicate, splice.
fn mutate(rng: &mut Rng, seeds: &[Vec<u8>], input: &mut Vec<u8>, dict: &[&[u8]]) {
    match rng.below(7) {
        0 if !input.is_empty() => {
            let i = rng.below(input.len());
            input[i] ^= 1 << rng.below(8);
        }
        1 => {
            let i = rng.below(input.len() + 1);
            input.insert(i, rng.next() as u8);
        }
        2 if !input.is_empty() => {
            let i = rng.below(input.len());
            let n = rng.below(8).min(input.len() - i);
            input.drain(i..i + n);
        }
        3 if !input.is_empty() => {
            let i = rng.below(input.len());
            let n = rng.below(16).min(input.len() - i);
            let part = input[i..i + n].to_vec();
            let at = rng.below(input.len() + 1);
            input.splice(at..at, part);
        }
        4 => {
            let other = &seeds[rng.below(seeds.len())];
            let i = rng.below(other.len() + 1);
            let at = rng.below(input.len() + 1);
            input.splice(at..at, other[i..].iter().copied().take(32));
        }
        5 => {
            let token = dict[rng.below(dict.len())];
            let at = rng.below(input.len() + 1);
            input.splice(at..at, token.iter().copied());
        }
        _ if !input.is_empty() => {
            let i = rng.below(input.len());
            input.truncate(i);
        }
        _ => input.push(b'\n'),
    }
}

fn smoke(target: &str, iterations: usize, check: fn(&[u8]), dict: &[&[u8]]) {
    let files = inputs(target);
    assert!(!files.is_empty(), "no seed corpus for {target} in {}", fuzz_dir().display());
    for (path, data) in &files {
        let r = std::panic::catch_unwind(|| check(data));
        assert!(r.is_ok(), "{target}: {} fails", path.display());
    }
    let seeds: Vec<Vec<u8>> = files.into_iter().map(|(_, d)| d).collect();
    let mut rng = Rng(0x5e5a_7f0f_u64 ^ target.len() as u64);
    for i in 0..iterations {
        let mut input = seeds[rng.below(seeds.len())].clone();
        for _ in 0..1 + rng.below(6) {
            mutate(&mut rng, &seeds, &mut input, dict);
        }
        input.truncate(4096);
        if std::panic::catch_unwind(|| check(&input)).is_err() {
            panic!("{target}: iteration {i} fails on input {:?}", String::from_utf8_lossy(&input));
        }
    }
}

#[test]
fn resp_decode_smoke() {
    let dict: &[&[u8]] = &[
        b"\r\n",
        b"*",
        b"$",
        b"*-1\r\n",
        b"$-1\r\n",
        b"*2\r\n",
        b"$3\r\nGET\r\n",
        b"\"",
        b"'",
        b"\\x",
        b"%1\r\n",
        b"~1\r\n",
        b">1\r\n",
        b"|1\r\n",
        b",nan\r\n",
        b"(1\r\n",
        b"=4\r\ntxt:\r\n",
        b"#t\r\n",
        b"_\r\n",
        b"!1\r\n",
        b"9223372036854775808",
    ];
    smoke("resp_decode", 20_000, props::resp_decode, dict);
}

#[test]
fn command_parse_smoke() {
    let dict: &[&[u8]] = &[
        b" EX ",
        b" PX ",
        b" EXAT ",
        b" PXAT ",
        b" NX",
        b" XX",
        b" GET",
        b" KEEPTTL",
        b"\nSET k ",
        b"\nGET k",
        b"\nINCR k",
        b"\nDEL k",
        b" -1",
        b" 0",
        b" 9223372036854775807",
        b" -9223372036854775808",
        b" 1e308",
        b" inf",
        b"\nEXPIRE k ",
        b"\nSETRANGE k ",
        b"\nGETRANGE k ",
        b"\nMSET ",
        b"\nRENAME ",
    ];
    smoke("command_parse", 4_000, props::command_parse, dict);
}
