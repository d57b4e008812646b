//! A linearizability checker: Wing & Gong's search with Lowe's just-in-time
//! linearization and memoisation of `(linearized set, model state)`, the
//! algorithm of Porcupine and Knossos' `linear` checker.
//!
//! Given the operations on one object, each with an invocation time, an
//! optional completion time and an optional reply, the checker searches for a
//! total order that (a) respects real time — if A completed before B was
//! invoked, A comes first — and (b) is a legal run of the sequential [`Model`].
//!
//! How the search works: all invocation and completion events are laid out in
//! time order in a doubly linked list. Walking from the front, an invocation is
//! a candidate to be linearized next: if the model accepts it from the current
//! state and the resulting `(linearized bitset, state)` was never seen, it is
//! pushed on a stack and lifted (with its completion) out of the list, and the
//! walk restarts from the front. Reaching a *completion* at the front means the
//! operation completed without being linearized: every order tried so far is
//! dead, so the search pops the last choice and tries the next candidate. An
//! empty list is a linearization; backtracking with an empty stack proves there
//! is none. Memoisation makes revisiting a configuration free, which keeps the
//! search near linear on well-behaved histories.
//!
//! The memo holds a 128-bit fingerprint of the linearized set, not the set: a
//! sum of per-operation random keys (Zobrist hashing), updated in O(1) as an
//! operation is linearized or undone. Copying and hashing the bitset itself
//! would make every step O(n) and every memo entry n/8 bytes: 6 KiB each for a
//! 50,000-operation key, which is what long chaos runs record. A collision
//! can only make the search skip a configuration it has not seen, so it can
//! turn "linearizable" into a false "not linearizable", never the reverse; at
//! the search's state bound the chance is below 2^-80.
//!
//! Operations with an unknown outcome (timeouts, lost connections) complete at
//! +infinity with any reply: they may take effect anywhere after invocation.
//! Placing one at the very end, after every observation, is the same as "never
//! took effect", so no separate optional-operation mechanism is needed.
//!
//! The search is NP-complete in general, so it is bounded: past a number of
//! memoised states or a deadline the verdict is [`Verdict::Unknown`], never a hang.

use std::collections::{HashMap, HashSet};
use std::fmt::Debug;
use std::hash::Hash;
use std::time::{Duration, Instant};

use crate::history::Timestamp;

/// A sequential specification.
pub trait Model {
    /// The object's state. Hashed into the memo table.
    type State: Clone + Eq + Hash + Debug;
    /// What an operation asks for.
    type Input: Clone + Eq + Hash + Debug;
    /// What an operation returned.
    type Output: Clone + Debug;

    /// The state before any operation.
    fn init(&self) -> Self::State;

    /// Apply `input` to `state`. `output` is the observed reply, `None` when it
    /// is unknown (then any reply is acceptable). Returns the new state, or
    /// `None` when the model cannot produce that reply from that state.
    fn step(&self, state: &Self::State, input: &Self::Input, output: Option<&Self::Output>) -> Option<Self::State>;
}

/// One operation as the checker sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry<I, O> {
    /// What was asked.
    pub input: I,
    /// The observed reply; `None` when unknown.
    pub output: Option<O>,
    /// Invocation time.
    pub call: Timestamp,
    /// Completion time; `None` when the operation never (knowably) completed.
    pub ret: Option<Timestamp>,
}

/// Bounds on one search.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Give up after memoising this many configurations (bounds memory).
    pub max_states: usize,
    /// Give up after this much wall time.
    pub timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self { max_states: 2_000_000, timeout: Duration::from_secs(60) }
    }
}

/// Where the search got stuck when it proved a history non-linearizable: the
/// deepest partial linearization it found, and the operation it could not fit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Counterexample<S> {
    /// Indices (into the checked slice) of the deepest partial linearization, in order.
    pub linearized: Vec<usize>,
    /// The model state after that partial linearization.
    pub state: S,
    /// The operation that completed without any legal place in that order.
    pub stuck: usize,
}

/// The result of checking one object's history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict<S> {
    /// A linearization exists.
    Linearizable,
    /// No linearization exists.
    NotLinearizable(Counterexample<S>),
    /// The search hit its [`Limits`]; nothing is known.
    Unknown {
        /// Configurations memoised before giving up.
        states: usize,
        /// Which limit was hit.
        reason: String,
    },
}

impl<S> Verdict<S> {
    /// True for [`Verdict::Linearizable`].
    pub fn is_linearizable(&self) -> bool {
        matches!(self, Verdict::Linearizable)
    }
}

/// Sentinel for "no node" in the event list.
const NIL: usize = usize::MAX;

/// The event list: node 0 is the head sentinel; node `1 + 2i` is the call of
/// operation `i` and `2 + 2i` its return. Invariant: `next`/`prev` of a lifted
/// node keep their old values, which is what lets `unlift` reinsert it in O(1)
/// (dancing links) — valid because lifts and unlifts nest like a stack.
struct EventList {
    next: Vec<usize>,
    prev: Vec<usize>,
}

impl EventList {
    fn build<I, O>(entries: &[Entry<I, O>]) -> Self {
        // Sort key: (time, kind) with calls (0) before returns (1) at equal
        // times, which treats touching intervals as concurrent — the
        // conservative reading, since the clock cannot order them.
        let mut events: Vec<(Timestamp, u8, usize)> = Vec::with_capacity(entries.len() * 2);
        for (i, e) in entries.iter().enumerate() {
            events.push((e.call, 0, 1 + 2 * i));
            events.push((e.ret.unwrap_or(Timestamp::MAX), 1, 2 + 2 * i));
        }
        events.sort_unstable();
        let n = entries.len() * 2 + 1;
        let mut next = vec![NIL; n];
        let mut prev = vec![NIL; n];
        let mut last = 0;
        for &(_, _, node) in &events {
            next[last] = node;
            prev[node] = last;
            last = node;
        }
        Self { next, prev }
    }

    fn unlink(&mut self, node: usize) {
        let (p, n) = (self.prev[node], self.next[node]);
        self.next[p] = n;
        if n != NIL {
            self.prev[n] = p;
        }
    }

    fn relink(&mut self, node: usize) {
        let (p, n) = (self.prev[node], self.next[node]);
        self.next[p] = node;
        if n != NIL {
            self.prev[n] = node;
        }
    }

    /// Remove operation `op`'s call and return.
    fn lift(&mut self, op: usize) {
        self.unlink(1 + 2 * op);
        self.unlink(2 + 2 * op);
    }

    /// Undo [`Self::lift`] (in reverse order, as dancing links require).
    fn unlift(&mut self, op: usize) {
        self.relink(2 + 2 * op);
        self.relink(1 + 2 * op);
    }
}

/// A fixed-size bitset over operation indices.
struct Bits(Vec<u64>);

impl Bits {
    fn new(n: usize) -> Self {
        Self(vec![0; n.div_ceil(64)])
    }
    fn set(&mut self, i: usize) {
        self.0[i / 64] |= 1 << (i % 64);
    }
    fn clear(&mut self, i: usize) {
        self.0[i / 64] &= !(1 << (i % 64));
    }
    fn get(&self, i: usize) -> bool {
        self.0[i / 64] & (1 << (i % 64)) != 0
    }
}

/// The fingerprint of a set of operations: the wrapping sum of its members'
/// keys. Keys are 128-bit outputs of SplitMix64 (two per index), fixed so
/// that runs are reproducible.
struct Fingerprint {
    keys: Vec<u128>,
    value: u128,
}

impl Fingerprint {
    fn new(n: usize) -> Self {
        let mut seed: u64 = 0x5e5a_7c4e_c0de_2026;
        let mut next = || {
            seed = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = seed;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        };
        let keys = (0..n).map(|_| (u128::from(next()) << 64) | u128::from(next())).collect();
        Self { keys, value: 0 }
    }
    fn add(&mut self, op: usize) {
        self.value = self.value.wrapping_add(self.keys[op]);
    }
    fn remove(&mut self, op: usize) {
        self.value = self.value.wrapping_sub(self.keys[op]);
    }
}

/// For each operation, the previous unknown-outcome operation with the same
/// input (its "twin"). Twins are interchangeable: swapping two of them in any
/// linearization yields another valid one (same input, no reply to match, and
/// the earlier-invoked twin may go wherever the later one went). So the search
/// only ever linearizes the earliest-invoked remaining twin, which turns the
/// C(u, k) subsets of u pending identical timeouts (e.g. `INCR`s) into u + 1.
fn twins<I: Eq + Hash + Clone, O>(entries: &[Entry<I, O>]) -> Vec<Option<usize>> {
    let mut order: Vec<usize> = (0..entries.len()).collect();
    order.sort_by_key(|&i| (entries[i].call, i));
    let mut last: HashMap<I, usize> = HashMap::new();
    let mut twin = vec![None; entries.len()];
    for i in order {
        let e = &entries[i];
        if e.output.is_none() && e.ret.is_none() {
            twin[i] = last.insert(e.input.clone(), i);
        }
    }
    twin
}

/// Check one object's history against `model`.
pub fn check<M: Model>(model: &M, entries: &[Entry<M::Input, M::Output>], limits: Limits) -> Verdict<M::State> {
    let n = entries.len();
    let mut list = EventList::build(entries);
    let twin = twins(entries);
    let mut linearized = Bits::new(n);
    let mut fingerprint = Fingerprint::new(n);
    let mut state = model.init();
    let mut memo: HashSet<(u128, M::State)> = HashSet::new();
    // Stack of (operation, state before it).
    let mut stack: Vec<(usize, M::State)> = Vec::new();
    let mut best: Option<Counterexample<M::State>> = None;
    let started = Instant::now();
    let mut steps: u64 = 0;

    let mut node = list.next[0];
    while list.next[0] != NIL {
        steps += 1;
        if steps % 4096 == 0 && started.elapsed() > limits.timeout {
            return Verdict::Unknown { states: memo.len(), reason: format!("timeout after {:?}", limits.timeout) };
        }
        if node % 2 == 1 {
            // A call event: try to linearize this operation now.
            let op = (node - 1) / 2;
            let e = &entries[op];
            let twin_ready = twin[op].is_none_or(|t| linearized.get(t));
            let next_state = if twin_ready { model.step(&state, &e.input, e.output.as_ref()) } else { None };
            if let Some(s) = next_state {
                linearized.set(op);
                fingerprint.add(op);
                if memo.insert((fingerprint.value, s.clone())) {
                    if memo.len() > limits.max_states {
                        return Verdict::Unknown {
                            states: memo.len(),
                            reason: format!("more than {} states", limits.max_states),
                        };
                    }
                    stack.push((op, std::mem::replace(&mut state, s)));
                    list.lift(op);
                    node = list.next[0];
                    continue;
                }
                linearized.clear(op);
                fingerprint.remove(op);
            }
            node = list.next[node];
        } else {
            // A return event at this point: its operation was not linearized
            // before it completed. Remember the deepest dead end for the report.
            let stuck = (node - 2) / 2;
            if best.as_ref().is_none_or(|b| stack.len() > b.linearized.len()) {
                best = Some(Counterexample {
                    linearized: stack.iter().map(|(op, _)| *op).collect(),
                    state: state.clone(),
                    stuck,
                });
            }
            let Some((op, before)) = stack.pop() else {
                return Verdict::NotLinearizable(best.expect("set just above"));
            };
            state = before;
            linearized.clear(op);
            fingerprint.remove(op);
            list.unlift(op);
            node = list.next[1 + 2 * op];
        }
    }
    Verdict::Linearizable
}

#[cfg(test)]
#[path = "linearizability_tests.rs"]
mod tests;
