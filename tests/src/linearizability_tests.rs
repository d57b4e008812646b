//! The checker's own tests. A green chaos run means something only if the
//! checker demonstrably rejects bad histories, so most tests here are
//! known-bad histories, and a brute-force oracle cross-checks random ones.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::*;
use crate::checker::check_key;
use crate::history::{Call, Operation, Outcome, Ret};
use crate::register::RegisterModel;

/// Builds one key's history in a compact notation.
#[derive(Default, Clone)]
struct H {
    ops: Vec<Operation>,
}

impl H {
    fn ok(mut self, client: u32, call: Call, from: u64, to: u64, ret: Ret) -> Self {
        self.ops.push(Operation {
            client,
            key: "k".into(),
            call,
            invoked: from,
            outcome: Outcome::Ok { completed: to, ret },
        });
        self
    }
    fn fail(mut self, client: u32, call: Call, from: u64, to: u64) -> Self {
        self.ops.push(Operation {
            client,
            key: "k".into(),
            call,
            invoked: from,
            outcome: Outcome::Fail { completed: to, error: "CLUSTERDOWN".into() },
        });
        self
    }
    fn unknown(mut self, client: u32, call: Call, from: u64) -> Self {
        self.ops.push(Operation {
            client,
            key: "k".into(),
            call,
            invoked: from,
            outcome: Outcome::Unknown { error: "timeout".into() },
        });
        self
    }
    fn set(self, c: u32, v: i64, from: u64, to: u64) -> Self {
        self.ok(c, Call::Set(v), from, to, Ret::Ok)
    }
    fn get(self, c: u32, v: Option<i64>, from: u64, to: u64) -> Self {
        self.ok(c, Call::Get, from, to, Ret::Value(v))
    }
    fn incr(self, c: u32, v: i64, from: u64, to: u64) -> Self {
        self.ok(c, Call::Incr, from, to, Ret::Int(v))
    }
    fn assert_linearizable(&self) {
        let r = check_key("k", &self.ops, Limits::default());
        assert!(r.verdict.is_linearizable(), "expected linearizable: {:?}", r.verdict);
    }
    fn assert_violation(&self) {
        let r = check_key("k", &self.ops, Limits::default());
        assert!(matches!(r.verdict, Verdict::NotLinearizable(_)), "expected a violation: {:?}", r.verdict);
        assert!(r.detail.contains("cannot be linearized next"), "{}", r.detail);
    }
}

#[test]
fn empty_and_sequential_histories_are_linearizable() {
    H::default().assert_linearizable();
    H::default()
        .get(0, None, 0, 1)
        .set(0, 1, 2, 3)
        .get(1, Some(1), 4, 5)
        .set(1, 2, 6, 7)
        .get(0, Some(2), 8, 9)
        .assert_linearizable();
}

#[test]
fn concurrent_read_may_see_old_or_new_value() {
    let base = || H::default().set(0, 1, 0, 1).set(0, 2, 10, 20);
    base().get(1, Some(1), 12, 15).assert_linearizable();
    base().get(1, Some(2), 12, 15).assert_linearizable();
    // Two sequential reads during the write: new then old is impossible.
    base().get(1, Some(2), 11, 13).get(2, Some(1), 14, 16).assert_violation();
    base().get(1, Some(1), 11, 13).get(2, Some(2), 14, 16).assert_linearizable();
}

#[test]
fn stale_read_is_rejected() {
    H::default().set(0, 1, 0, 1).set(0, 2, 2, 3).get(1, Some(1), 4, 5).assert_violation();
}

#[test]
fn lost_write_is_rejected() {
    H::default().set(0, 1, 0, 10).get(1, None, 20, 30).assert_violation();
    H::default().set(0, 1, 0, 10).set(1, 2, 0, 10).get(2, Some(1), 20, 30).get(2, Some(2), 31, 40).assert_violation();
}

#[test]
fn read_of_never_written_value_is_rejected() {
    H::default().set(0, 1, 0, 10).get(1, Some(99), 5, 30).assert_violation();
    H::default().ok(0, Call::Get, 0, 1, Ret::Garbage("hello".into())).assert_violation();
}

#[test]
fn non_monotonic_reads_across_clients_are_rejected() {
    // A write in flight for a long time: once one client saw the new value,
    // a later read by another client cannot see the old one.
    H::default().set(0, 1, 0, 100).get(1, Some(1), 10, 20).get(2, None, 30, 40).assert_violation();
    // Same reads, but overlapping: fine.
    H::default().set(0, 1, 0, 100).get(1, Some(1), 10, 35).get(2, None, 30, 40).assert_linearizable();
}

#[test]
fn failed_writes_never_take_effect() {
    H::default().fail(0, Call::Set(2), 0, 1).get(1, Some(2), 5, 6).assert_violation();
    H::default().fail(0, Call::Set(2), 0, 1).get(1, None, 5, 6).assert_linearizable();
}

#[test]
fn indeterminate_write_may_explain_a_read() {
    // Timed-out write invoked before the read: it may have taken effect.
    H::default().set(0, 1, 0, 1).unknown(1, Call::Set(2), 5).get(2, Some(2), 20, 30).assert_linearizable();
    // ... or never: reading the old value stays fine.
    H::default()
        .set(0, 1, 0, 1)
        .unknown(1, Call::Set(2), 5)
        .get(2, Some(1), 20, 30)
        .get(2, Some(1), 40, 50)
        .assert_linearizable();
}

#[test]
fn indeterminate_write_cannot_act_before_its_invocation() {
    H::default().set(0, 1, 0, 1).get(2, Some(2), 20, 30).unknown(1, Call::Set(2), 50).assert_violation();
}

#[test]
fn indeterminate_write_takes_effect_at_most_once() {
    // 2 observed, then 1 again: no pending write of 1 exists, so impossible.
    H::default()
        .set(0, 1, 0, 1)
        .unknown(1, Call::Set(2), 2)
        .get(2, Some(2), 10, 11)
        .get(2, Some(1), 20, 21)
        .assert_violation();
}

#[test]
fn counter_increments() {
    H::default().incr(0, 1, 0, 1).incr(1, 2, 2, 3).get(2, Some(2), 4, 5).assert_linearizable();
    // Lost update: two increments both returned 1.
    H::default().incr(0, 1, 0, 10).incr(1, 1, 0, 10).assert_violation();
    // Increment results out of real-time order.
    H::default().incr(0, 2, 0, 1).incr(1, 1, 2, 3).assert_violation();
    // Acked increments not reflected in a later read.
    H::default().incr(0, 1, 0, 1).incr(0, 2, 2, 3).get(1, Some(1), 4, 5).assert_violation();
}

#[test]
fn indeterminate_increments() {
    // One acked, two timed out: a later read may see 1, 2 or 3 but not 4.
    for seen in 1..=3 {
        H::default()
            .incr(0, 1, 0, 1)
            .unknown(1, Call::Incr, 2)
            .unknown(2, Call::Incr, 2)
            .get(3, Some(seen), 10, 11)
            .assert_linearizable();
    }
    H::default()
        .incr(0, 1, 0, 1)
        .unknown(1, Call::Incr, 2)
        .unknown(2, Call::Incr, 2)
        .get(3, Some(4), 10, 11)
        .assert_violation();
    // Reads going backwards are not excused by timeouts.
    H::default()
        .unknown(1, Call::Incr, 0)
        .unknown(2, Call::Incr, 0)
        .get(3, Some(2), 10, 11)
        .get(3, Some(1), 12, 13)
        .assert_violation();
}

#[test]
fn many_identical_timeouts_stay_cheap() {
    // 60 pending INCR timeouts would be 2^60 subsets without twin reduction.
    let mut h = H::default();
    for c in 0..60 {
        h = h.unknown(c, Call::Incr, c as u64);
    }
    let h = h.get(99, Some(37), 100, 101).get(99, Some(59), 102, 103);
    let r = check_key("k", &h.ops, Limits { max_states: 100_000, ..Limits::default() });
    assert!(r.verdict.is_linearizable(), "{:?}", r.verdict);
    h.get(99, Some(61), 104, 105).assert_violation();
}

#[test]
fn conditional_writes() {
    // Two SET NX on an absent key cannot both succeed.
    H::default()
        .ok(0, Call::SetNx(1), 0, 10, Ret::Applied(true))
        .ok(1, Call::SetNx(2), 0, 10, Ret::Applied(true))
        .assert_violation();
    H::default()
        .ok(0, Call::SetNx(1), 0, 10, Ret::Applied(true))
        .ok(1, Call::SetNx(2), 0, 10, Ret::Applied(false))
        .get(2, Some(1), 11, 12)
        .assert_linearizable();
    // SET XX on an absent key cannot apply.
    H::default().ok(0, Call::SetXx(1), 0, 1, Ret::Applied(true)).assert_violation();
    // Two swaps cannot both see the same previous value.
    H::default()
        .set(0, 1, 0, 1)
        .ok(1, Call::SetGet(2), 2, 10, Ret::Value(Some(1)))
        .ok(2, Call::SetGet(3), 2, 10, Ret::Value(Some(1)))
        .assert_violation();
    H::default()
        .set(0, 1, 0, 1)
        .ok(1, Call::SetGet(2), 2, 10, Ret::Value(Some(1)))
        .ok(2, Call::SetGet(3), 2, 10, Ret::Value(Some(2)))
        .get(0, Some(3), 11, 12)
        .assert_linearizable();
    // DEL then SET NX; DEL reports what it removed.
    H::default()
        .set(0, 1, 0, 1)
        .ok(0, Call::Del, 2, 3, Ret::Applied(true))
        .ok(1, Call::SetNx(5), 4, 5, Ret::Applied(true))
        .ok(1, Call::Del, 6, 7, Ret::Applied(false))
        .assert_violation();
    // A timed-out SET NX can explain a later failed SET NX.
    H::default().unknown(0, Call::SetNx(1), 0).ok(1, Call::SetNx(2), 5, 6, Ret::Applied(false)).assert_linearizable();
}

#[test]
fn search_limits_yield_unknown_not_a_hang() {
    // Many concurrent unknown writes observed by many reads in scrambled
    // order: exponential without luck. A tiny state budget must stop it.
    let mut h = H::default();
    for v in 0..24 {
        h = h.unknown(v as u32, Call::Set(v), 0);
    }
    for (i, v) in [3, 17, 5, 11, 2, 23, 8, 0, 19, 7, 13, 1].iter().enumerate() {
        h = h.get(99, Some(*v), 10 + 2 * i as u64, 11 + 2 * i as u64);
    }
    h = h.get(99, Some(1000), 100, 101);
    let entries: Vec<_> = h.ops.iter().map(crate::checker::to_entry).collect();
    let tight = Limits { max_states: 50, timeout: Duration::from_secs(5) };
    let v = check(&RegisterModel::default(), &entries, tight);
    assert!(matches!(v, Verdict::Unknown { .. }), "{v:?}");
    let quick = Limits { max_states: 10_000_000, timeout: Duration::from_millis(200) };
    let v = check(&RegisterModel::default(), &entries, quick);
    assert!(matches!(v, Verdict::Unknown { .. }), "{v:?}");
    // The checker proper prunes the 12 unobserved timeouts (GET/SET-only key)
    // and finds the violation (1000 was never written) with a small budget.
    let r = check_key("k", &h.ops, Limits::default());
    assert!(matches!(r.verdict, Verdict::NotLinearizable(_)), "{:?}", r.verdict);
    // A conditional write disables the "no" side of pruning: then the full
    // search runs and, with this budget, cannot decide.
    let h = h.ok(98, Call::SetNx(5000), 200, 201, Ret::Applied(false));
    let r = check_key("k", &h.ops, Limits { max_states: 10_000, ..tight });
    assert!(matches!(r.verdict, Verdict::Unknown { .. }), "{:?}", r.verdict);
}

/// Brute-force oracle: try every order that respects real time, each
/// unknown operation either placed somewhere after its invocation or left out.
fn brute_force(entries: &[Entry<Call, Ret>]) -> bool {
    fn go(entries: &[Entry<Call, Ret>], done: &mut Vec<bool>, state: Option<i64>) -> bool {
        let pending: Vec<usize> = (0..entries.len()).filter(|&i| !done[i]).collect();
        // Finished when every remaining op may be left out (unknown outcome).
        if pending.iter().all(|&i| entries[i].ret.is_none()) {
            return true;
        }
        // An op may go next only if no pending op completed before it was invoked.
        let min_ret = pending.iter().filter_map(|&i| entries[i].ret).min().unwrap_or(u64::MAX);
        for &i in &pending {
            let e = &entries[i];
            if e.call > min_ret {
                continue;
            }
            if let Some(s) = RegisterModel::default().step(&state, &e.input, e.output.as_ref()) {
                done[i] = true;
                let ok = go(entries, done, s);
                done[i] = false;
                if ok {
                    return true;
                }
            }
        }
        false
    }
    go(entries, &mut vec![false; entries.len()], None)
}

fn random_entries(rng: &mut StdRng, n: usize) -> Vec<Entry<Call, Ret>> {
    (0..n)
        .map(|_| {
            let call = rng.random_range(0..20u64);
            let len = rng.random_range(0..8u64);
            let v = rng.random_range(1..4i64);
            let input = match rng.random_range(0..6) {
                0 | 1 => Call::Get,
                2 => Call::Set(v),
                3 => Call::Incr,
                4 => Call::SetNx(v),
                _ => Call::SetGet(v),
            };
            let unknown = input.is_mutation() && rng.random_bool(0.2);
            let out = match input {
                Call::Get | Call::SetGet(_) => Ret::Value(rng.random_bool(0.8).then(|| rng.random_range(1..5))),
                Call::Set(_) => Ret::Ok,
                Call::Incr => Ret::Int(rng.random_range(1..5)),
                _ => Ret::Applied(rng.random_bool(0.5)),
            };
            Entry { input, output: (!unknown).then_some(out), call, ret: (!unknown).then_some(call + len) }
        })
        .collect()
}

/// Runs 4,000 random cases, each giving the history the oracle judges and the
/// checker's answer for it, and asserts that they agree. Both answers must
/// occur often, or the test proves little.
fn assert_agrees_with_brute_force(
    seed: u64,
    mut case: impl FnMut(&mut StdRng, usize) -> (Vec<Entry<Call, Ret>>, bool),
) {
    let mut rng = StdRng::seed_from_u64(seed);
    let (mut yes, mut no) = (0, 0);
    for round in 0..4000 {
        let (entries, got) = case(&mut rng, round);
        let expected = brute_force(&entries);
        assert_eq!(got, expected, "round {round}: {entries:#?}");
        if expected {
            yes += 1
        } else {
            no += 1
        }
    }
    assert!(yes > 400 && no > 400, "yes={yes} no={no}");
}

#[test]
fn agrees_with_brute_force_on_random_small_histories() {
    assert_agrees_with_brute_force(0x5e5a7, |rng, _| {
        let n = rng.random_range(1..7);
        let entries = random_entries(rng, n);
        let got = check(&RegisterModel::default(), &entries, Limits::default());
        assert!(!matches!(got, Verdict::Unknown { .. }));
        (entries, got.is_linearizable())
    });
}

#[test]
fn histories_generated_from_a_sequential_execution_are_linearizable() {
    // Run a real register sequentially at random linearization points, then
    // widen every operation's interval around its point at random.
    let mut rng = StdRng::seed_from_u64(7);
    for _ in 0..50 {
        let mut state: Option<i64> = None;
        let mut ops = Vec::new();
        let mut next_value = 1;
        for i in 0..300u64 {
            let point = i * 10 + 5;
            let call = match rng.random_range(0..5) {
                0 | 1 => Call::Get,
                2 => {
                    next_value += 1;
                    Call::Set(next_value)
                }
                3 => Call::Incr,
                _ => Call::Del,
            };
            let before = state;
            let m = RegisterModel { initial: None };
            // Compute the reply the real register would give.
            let ret = match call {
                Call::Get => Ret::Value(before),
                Call::Set(_) => Ret::Ok,
                Call::Incr => Ret::Int(before.unwrap_or(0) + 1),
                _ => Ret::Applied(before.is_some()),
            };
            state = m.step(&before, &call, Some(&ret)).expect("consistent");
            let from = point - rng.random_range(0..40).min(point);
            let to = point + rng.random_range(0..40);
            let outcome = if call.is_mutation() && rng.random_bool(0.05) {
                Outcome::Unknown { error: "t".into() }
            } else {
                Outcome::Ok { completed: to, ret }
            };
            ops.push(Operation { client: (i % 7) as u32, key: "k".into(), call, invoked: from, outcome });
        }
        let r = check_key("k", &ops, Limits::default());
        assert!(r.verdict.is_linearizable(), "{:?}\n{}", r.verdict, r.detail);
    }
}

/// Operation `i` of a random history: a write times out one time in three,
/// else it completes within 8 ticks with `ret`.
fn random_op(rng: &mut StdRng, i: usize, call: Call, invoked: u64, ret: Ret) -> Operation {
    let outcome = if call.is_mutation() && rng.random_bool(0.35) {
        Outcome::Unknown { error: "timeout".into() }
    } else {
        Outcome::Ok { completed: invoked + rng.random_range(0..8u64), ret }
    };
    Operation { client: i as u32, key: "k".into(), call, invoked, outcome }
}

/// A random one-key history of the register and conditional classes, with
/// unique written values (as the workload's) and reads that name them.
fn random_unique_value_ops(rng: &mut StdRng, n: usize) -> Vec<Operation> {
    (0..n)
        .map(|i| {
            let invoked = rng.random_range(0..20u64);
            let v = i as i64 + 1;
            let call = match rng.random_range(0..8) {
                0 | 1 => Call::Get,
                2 => Call::Set(v),
                3 => Call::SetGet(v),
                4 => Call::SetNx(v),
                5 => Call::SetXx(v),
                6 => Call::TxSwap(v),
                _ => Call::Del,
            };
            // Reads name a value some op of the history writes, or nothing.
            let read = rng.random_bool(0.8).then(|| rng.random_range(1..=n as i64));
            let ret = match call {
                Call::Get | Call::SetGet(_) | Call::TxSwap(_) => Ret::Value(read),
                Call::Set(_) => Ret::Ok,
                _ => Ret::Applied(rng.random_bool(0.5)),
            };
            random_op(rng, i, call, invoked, ret)
        })
        .collect()
}

/// A random one-key counter history: `GET`, `INCR` and optimistic increments
/// with small replies, some of them timeouts.
fn random_counter_ops(rng: &mut StdRng, n: usize) -> Vec<Operation> {
    (0..n)
        .map(|i| {
            let invoked = rng.random_range(0..20u64);
            let (call, ret) = match rng.random_range(0..3) {
                0 => (Call::Get, Ret::Value(rng.random_bool(0.8).then(|| rng.random_range(1..5)))),
                1 => (Call::Incr, Ret::Int(rng.random_range(1..5))),
                _ if rng.random_bool(0.3) => (Call::WatchIncr, Ret::Applied(false)),
                _ => (Call::WatchIncr, Ret::Int(rng.random_range(1..5))),
            };
            random_op(rng, i, call, invoked, ret)
        })
        .collect()
}

#[test]
fn checker_preprocessing_agrees_with_brute_force() {
    // `check_key` drops and renames unobserved unknown writes, and renames
    // unknown optimistic increments, before searching; the oracle sees the
    // raw history.
    assert_agrees_with_brute_force(0xb0_7d, |rng, round| {
        let n = rng.random_range(1..8);
        let ops = if round % 2 == 0 { random_unique_value_ops(rng, n) } else { random_counter_ops(rng, n) };
        let entries = ops.iter().map(crate::checker::to_entry).collect();
        (entries, check_key("k", &ops, Limits::default()).verdict.is_linearizable())
    });
}

#[test]
fn unobserved_timeouts_on_a_conditional_key_stay_cheap() {
    // 40 timed-out SETs nobody read, on a key with conditional writes, where
    // they cannot be dropped: one of them must explain why SET NX did not
    // apply. With distinct values they are 2^40 subsets; with their values
    // merged they are twins.
    let mut h = H::default();
    for v in 0..40 {
        h = h.unknown(v as u32, Call::Set(v), v as u64);
    }
    let h = h.ok(98, Call::SetNx(1000), 100, 101, Ret::Applied(false)).ok(98, Call::Del, 102, 103, Ret::Applied(true));
    let r = check_key("k", &h.ops, Limits { max_states: 10_000, ..Limits::default() });
    assert!(r.verdict.is_linearizable(), "{:?}", r.verdict);
    assert_eq!(r.unknown, 40);
    // After the DEL nothing is left to delete: only a still-pending SET
    // could make a second DEL apply, and one can.
    h.clone().ok(98, Call::Del, 104, 105, Ret::Applied(true)).assert_linearizable();
    // SET NX 1000 did not apply, so 1000 can never be read.
    h.get(98, Some(1000), 104, 105).assert_violation();
}

#[test]
fn unknown_optimistic_increments_are_twins_of_unknown_incrs() {
    let mut h = H::default();
    for c in 0..30 {
        let call = if c % 2 == 0 { Call::Incr } else { Call::WatchIncr };
        h = h.unknown(c, call, c as u64);
    }
    let h = h.get(99, Some(17), 100, 101).get(99, Some(29), 102, 103);
    let tight = Limits { max_states: 300, ..Limits::default() };
    let r = check_key("k", &h.ops, tight);
    assert!(r.verdict.is_linearizable(), "{:?}", r.verdict);
    // Proving a violation visits every configuration: 31 counts of applied
    // increments, not 16 x 16 pairs of counts of each kind.
    let h = h.get(99, Some(31), 104, 105);
    let r = check_key("k", &h.ops, tight);
    assert!(matches!(r.verdict, Verdict::NotLinearizable(_)), "{:?}", r.verdict);
}
