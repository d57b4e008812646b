//! Model-based test: random operation sequences applied to the store and to a
//! deliberately naive model (a BTreeMap, no packing, no indexes) must give the
//! same replies and the same contents; two stores applying the same sequence
//! must write identical snapshots.

use std::collections::BTreeMap;

use bytes::Bytes;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::{assert_consistent, snapshot};
use crate::resp::Frame;
use crate::store::*;

#[derive(Default)]
struct Model {
    data: BTreeMap<Vec<u8>, (Vec<u8>, Option<u64>)>,
    clock: u64,
}

fn expired(ttl: Option<u64>, now: u64) -> bool {
    ttl.is_some_and(|at| at <= now)
}

fn deadline(at: i64, now: u64) -> Option<u64> {
    u64::try_from(at).ok().filter(|&at| at > now)
}

impl Model {
    fn live(&mut self, key: &[u8], now: u64) -> Option<(Vec<u8>, Option<u64>)> {
        if self.data.get(key).is_some_and(|(_, ttl)| expired(*ttl, now)) {
            self.data.remove(key);
        }
        self.data.get(key).cloned()
    }

    fn apply(&mut self, op: &Operation) -> Frame {
        let now = op.at_ms.max(self.clock);
        self.clock = now;
        let bulk = |v: Option<&(Vec<u8>, Option<u64>)>| v.map_or(Frame::Null, |(v, _)| Frame::bulk_copy(v));
        match &op.cmd {
            WriteCmd::Set { key, value, cond, ttl, get } => {
                let old = self.live(key, now);
                let reply = if *get { bulk(old.as_ref()) } else { Frame::ok() };
                let blocked = match cond {
                    SetCondition::Always => false,
                    SetCondition::IfAbsent => old.is_some(),
                    SetCondition::IfPresent => old.is_none(),
                };
                if blocked {
                    return if *get { reply } else { Frame::Null };
                }
                let ttl = match ttl {
                    SetTtl::Clear => None,
                    SetTtl::Keep => old.and_then(|(_, t)| t),
                    SetTtl::At(at) => match deadline(*at, now) {
                        None => {
                            self.data.remove(&key[..]);
                            return reply;
                        }
                        some => some,
                    },
                };
                self.data.insert(key.to_vec(), (value.to_vec(), ttl));
                reply
            }
            WriteCmd::MSetNx { pairs } => {
                if pairs.iter().any(|(k, _)| self.live(k, now).is_some()) {
                    return Frame::Integer(0);
                }
                for (k, v) in pairs {
                    self.data.insert(k.to_vec(), (v.to_vec(), None));
                }
                Frame::Integer(1)
            }
            WriteCmd::GetDel { key } => {
                let old = self.live(key, now);
                self.data.remove(&key[..]);
                bulk(old.as_ref())
            }
            WriteCmd::IncrBy { key, delta } => {
                let old = self.live(key, now);
                let (n, ttl) = match &old {
                    None => (0, None),
                    Some((v, ttl)) => match std::str::from_utf8(v).ok().and_then(|s| s.parse::<i64>().ok()) {
                        Some(n) if n.to_string().as_bytes() == v.as_slice() => (n, *ttl),
                        _ => return Frame::error("ERR value is not an integer or out of range"),
                    },
                };
                let Some(n) = n.checked_add(*delta) else {
                    return Frame::error("ERR increment or decrement would overflow");
                };
                self.data.insert(key.to_vec(), (n.to_string().into_bytes(), ttl));
                Frame::Integer(n)
            }
            WriteCmd::SetRange { key, offset, value, max_len } => {
                let old = self.live(key, now);
                if value.is_empty() {
                    return Frame::Integer(old.map_or(0, |(v, _)| v.len() as i64));
                }
                let end = *offset as usize + value.len();
                if end as u64 > *max_len {
                    return Frame::error(format!("ERR value too large: {end} bytes (max {max_len})"));
                }
                let (mut v, ttl) = old.unwrap_or_default();
                if v.len() < end {
                    v.resize(end, 0);
                }
                v[*offset as usize..end].copy_from_slice(value);
                let len = v.len() as i64;
                self.data.insert(key.to_vec(), (v, ttl));
                Frame::Integer(len)
            }
            WriteCmd::Del { keys } => {
                let mut n = 0;
                for key in keys {
                    if self.live(key, now).is_some() {
                        self.data.remove(&key[..]);
                        n += 1;
                    }
                }
                Frame::Integer(n)
            }
            WriteCmd::Expire { key, at_ms, cond } => {
                let Some((v, current)) = self.live(key, now) else {
                    return Frame::Integer(0);
                };
                let at = i128::from(*at_ms);
                let current_wide = current.map(i128::from);
                let blocked = cond.nx && current.is_some()
                    || cond.xx && current.is_none()
                    || cond.gt && current_wide.is_none_or(|c| at <= c)
                    || cond.lt && current_wide.is_some_and(|c| at >= c);
                if blocked {
                    return Frame::Integer(0);
                }
                match deadline(*at_ms, now) {
                    None => self.data.remove(&key[..]),
                    some => self.data.insert(key.to_vec(), (v, some)),
                };
                Frame::Integer(1)
            }
            WriteCmd::Persist { key } => match self.live(key, now) {
                Some((v, Some(_))) => {
                    self.data.insert(key.to_vec(), (v, None));
                    Frame::Integer(1)
                }
                _ => Frame::Integer(0),
            },
            WriteCmd::Rename { src, dst, nx } => {
                let Some(entry) = self.live(src, now) else {
                    return Frame::error("ERR no such key");
                };
                if src == dst {
                    return if *nx { Frame::Integer(0) } else { Frame::ok() };
                }
                if *nx && self.live(dst, now).is_some() {
                    return Frame::Integer(0);
                }
                self.data.remove(&src[..]);
                self.data.insert(dst.to_vec(), entry);
                if *nx {
                    Frame::Integer(1)
                } else {
                    Frame::ok()
                }
            }
            WriteCmd::ExpireKeys { keys } => {
                let mut n = 0;
                for key in keys {
                    if self.data.get(&key[..]).is_some_and(|(_, ttl)| expired(*ttl, now)) {
                        self.data.remove(&key[..]);
                        n += 1;
                    }
                }
                Frame::Integer(n)
            }
            WriteCmd::FlushAll => {
                self.data.clear();
                Frame::ok()
            }
            other => unreachable!("the generator does not produce {other:?}"),
        }
    }
}

fn random_op(rng: &mut StdRng, clock: &mut u64, store: &Store) -> Operation {
    const KEYS: [&str; 6] = ["a", "b", "c", "counter", "long-key-name-0123456789", ""];
    let key = |rng: &mut StdRng| Bytes::from_static(KEYS[rng.random_range(0..KEYS.len())].as_bytes());
    let value = |rng: &mut StdRng| match rng.random_range(0..4) {
        0 => Bytes::from(rng.random_range(-5i64..5).to_string()),
        1 => Bytes::new(),
        2 => Bytes::from(vec![b'x'; rng.random_range(1..80)]),
        _ => Bytes::from_static(b"9223372036854775807"),
    };
    // Time mostly advances, sometimes jumps back (a new leader with a slower clock).
    *clock = if rng.random_bool(0.05) { clock.saturating_sub(50) } else { *clock + rng.random_range(0..20) };
    let at = |rng: &mut StdRng, clock: u64| clock as i64 + rng.random_range(-10i64..60);
    let cmd = match rng.random_range(0..13) {
        0 | 1 => WriteCmd::Set {
            key: key(rng),
            value: value(rng),
            cond: [SetCondition::Always, SetCondition::IfAbsent, SetCondition::IfPresent][rng.random_range(0..3)],
            ttl: [SetTtl::Clear, SetTtl::Keep, SetTtl::At(at(rng, *clock))][rng.random_range(0..3)],
            get: rng.random_bool(0.5),
        },
        2 => WriteCmd::MSetNx { pairs: vec![(key(rng), value(rng)), (key(rng), value(rng))] },
        3 => WriteCmd::GetDel { key: key(rng) },
        4 => WriteCmd::IncrBy { key: key(rng), delta: [1, -1, i64::MAX, i64::MIN][rng.random_range(0..4)] },
        5 => WriteCmd::SetRange { key: key(rng), offset: rng.random_range(0..40), value: value(rng), max_len: 64 },
        6 => WriteCmd::Del { keys: vec![key(rng), key(rng)] },
        7 => WriteCmd::Expire {
            key: key(rng),
            at_ms: at(rng, *clock),
            cond: ExpireCondition {
                nx: rng.random_bool(0.2),
                xx: rng.random_bool(0.2),
                gt: rng.random_bool(0.2),
                lt: rng.random_bool(0.2),
            },
        },
        8 => WriteCmd::Persist { key: key(rng) },
        9 => WriteCmd::Rename { src: key(rng), dst: key(rng), nx: rng.random_bool(0.5) },
        10 => WriteCmd::ExpireKeys { keys: store.expired_keys(*clock, 3) },
        11 if rng.random_bool(0.1) => WriteCmd::FlushAll,
        _ => WriteCmd::ExpireKeys { keys: vec![key(rng)] },
    };
    Operation { at_ms: *clock, cmd }
}

#[test]
fn store_agrees_with_naive_model_and_replicas_agree() {
    for seed in 0..40 {
        let mut rng = StdRng::seed_from_u64(seed);
        let (mut store, mut replica, mut model) = (Store::new(), Store::new(), Model::default());
        let mut clock = 1000;
        for step in 0..400 {
            let op = random_op(&mut rng, &mut clock, &store);
            let want = model.apply(&op);
            let got = store.apply(&op);
            assert_eq!(got, want, "seed {seed} step {step}: {op:?}");
            assert_eq!(replica.apply(&op), got);
            if step % 20 != 0 {
                continue; // comparing whole contents every step is slow in debug builds
            }
            let now = model.clock;
            let contents: BTreeMap<Vec<u8>, (Vec<u8>, Option<u64>)> =
                store.iter(now).map(|e| (e.key().to_vec(), (e.as_string().unwrap().to_vec(), e.expire_at()))).collect();
            let live: BTreeMap<_, _> = model
                .data
                .iter()
                .filter(|(_, (_, ttl))| !expired(*ttl, now))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            assert_eq!(contents, live, "seed {seed} step {step}");
        }
        assert_consistent(&store);
        assert_eq!(snapshot(&store), snapshot(&replica), "replicas must write identical snapshots");
    }
}

/// Leaves of a (possibly nested) batch reply, in write order.
fn flatten(reply: Frame, out: &mut Vec<Frame>) {
    match reply {
        Frame::Array(parts) => parts.into_iter().for_each(|part| flatten(part, out)),
        other => out.push(other),
    }
}

#[test]
fn nested_batches_apply_exactly_like_their_writes_one_by_one() {
    // Batches longer than the prefetch window, whose writes delete, rename and
    // re-create keys that are already prefetched: prefetching must not change
    // a reply or a byte of state.
    for seed in 0..20 {
        let mut rng = StdRng::seed_from_u64(seed);
        let (mut one_by_one, mut batched) = (Store::new(), Store::new());
        let mut clock = 1000;
        let mut want = Vec::new();
        let mut outer = Vec::new();
        for _ in 0..12 {
            let mut inner = Vec::new();
            for _ in 0..rng.random_range(1..12) {
                let op = random_op(&mut rng, &mut clock, &one_by_one);
                want.push(one_by_one.apply(&op));
                inner.push(op);
            }
            let at_ms = inner[0].at_ms;
            outer.push(Operation { at_ms, cmd: WriteCmd::Batch { ops: inner } });
        }
        let at_ms = outer[0].at_ms;
        let mut got = Vec::new();
        flatten(batched.apply(&Operation { at_ms, cmd: WriteCmd::Batch { ops: outer } }), &mut got);
        assert_eq!(got, want, "seed {seed}");
        assert_consistent(&batched);
        assert_eq!(snapshot(&batched), snapshot(&one_by_one), "seed {seed}");
    }
}
