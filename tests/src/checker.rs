//! Checks a recorded [`History`] of register operations for linearizability,
//! key by key, and explains any violation in terms of the client operations.
//!
//! Linearizability is local (Herlihy & Wing): a history of single-key
//! operations is linearizable iff each key's sub-history is. So each key is
//! checked on its own, in parallel, with the bounded search of
//! [`crate::linearizability`].

use std::collections::HashSet;
use std::fmt;
use std::time::{Duration, Instant};

use crate::history::{Call, History, Operation, Outcome, Ret, Value};
use crate::linearizability::{check, Entry, Limits, Verdict};
use crate::register::{RegisterModel, RegisterState};

/// The verdict for one key.
#[derive(Debug, Clone)]
pub struct KeyReport {
    /// The key.
    pub key: String,
    /// Operations that entered the search (failed ops and non-ok reads are dropped).
    pub ops: usize,
    /// Of those, how many had an unknown outcome.
    pub unknown: usize,
    /// The search's answer.
    pub verdict: Verdict<RegisterState>,
    /// Human-readable explanation of a violation (empty otherwise).
    pub detail: String,
    /// Search time.
    pub elapsed: Duration,
    /// The key's operations as recorded, kept only when the verdict is not
    /// [`Verdict::Linearizable`], so that the history can be saved and
    /// checked again with other limits.
    pub history: Vec<Operation>,
}

/// The verdicts for every key of a history.
#[derive(Debug, Clone, Default)]
pub struct CheckReport {
    /// One report per key, sorted by key.
    pub keys: Vec<KeyReport>,
}

impl CheckReport {
    /// Keys proven non-linearizable.
    pub fn violations(&self) -> impl Iterator<Item = &KeyReport> {
        self.keys.iter().filter(|k| matches!(k.verdict, Verdict::NotLinearizable(_)))
    }

    /// Keys whose search hit its limits.
    pub fn undecided(&self) -> impl Iterator<Item = &KeyReport> {
        self.keys.iter().filter(|k| matches!(k.verdict, Verdict::Unknown { .. }))
    }

    /// True when every key was proven linearizable.
    pub fn is_linearizable(&self) -> bool {
        self.keys.iter().all(|k| k.verdict.is_linearizable())
    }

    /// Total operations that entered the search.
    pub fn ops(&self) -> usize {
        self.keys.iter().map(|k| k.ops).sum()
    }
}

impl fmt::Display for CheckReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let v = self.violations().count();
        let u = self.undecided().count();
        writeln!(
            f,
            "{} keys, {} ops checked: {} linearizable, {} violations, {} undecided",
            self.keys.len(),
            self.ops(),
            self.keys.len() - v - u,
            v,
            u
        )?;
        for k in self.keys.iter().filter(|k| !k.verdict.is_linearizable()) {
            match &k.verdict {
                Verdict::Unknown { states, reason } => {
                    writeln!(f, "  key {}: UNDECIDED ({reason}, {states} states)", k.key)?
                }
                _ => writeln!(f, "  key {}: VIOLATION\n{}", k.key, k.detail)?,
            }
        }
        Ok(())
    }
}

/// Check every key of `history` with `limits` per key.
pub fn check_history(history: &History, limits: Limits) -> CheckReport {
    let groups = history.by_key();
    let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1).min(groups.len().max(1));
    let mut keys: Vec<KeyReport> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let groups = &groups;
                s.spawn(move || {
                    groups
                        .iter()
                        .skip(t)
                        .step_by(threads)
                        .map(|(key, ops)| check_key(key, ops, limits))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles.into_iter().flat_map(|h| h.join().expect("checker thread panicked")).collect()
    });
    keys.sort_by(|a, b| a.key.cmp(&b.key));
    CheckReport { keys }
}

/// Check one key's operations (any order) from an absent initial value.
pub fn check_key(key: &str, ops: &[Operation], limits: Limits) -> KeyReport {
    let started = Instant::now();
    let kept: Vec<&Operation> = ops.iter().filter(|o| enters_search(o)).collect();
    let mut entries: Vec<Entry<Call, Ret>> = kept.iter().map(|o| to_entry(o)).collect();
    merge_unknown_increments(&mut entries);
    let model = RegisterModel::default();

    // Pass 1: drop unknown writes whose value nobody ever observed.
    // Unobserved timeouts are the main source of search blow-up.
    // "Yes" is always sound: a linearization of the rest extends to the whole
    // history by placing the dropped operations at the end, where nothing
    // observes them. "No" is sound too when no call on the key depends on the
    // key's state other than by returning its value (only GET, SET, SET..GET):
    // then in any linearization the state a dropped write leaves is never
    // observed before the next write replaces it (an observation would name
    // its unique value), so removing it preserves legality.
    let observed = observed_values(&entries);
    merge_unobserved_values(&mut entries, &observed);
    let value_only =
        entries.iter().all(|e| matches!(e.input, Call::Get | Call::Set(_) | Call::SetGet(_) | Call::TxSwap(_)));
    let pruned: Vec<usize> = (0..entries.len())
        .filter(|&i| {
            let e = &entries[i];
            let droppable = e.output.is_none() && e.input.written_value().is_some_and(|v| !observed.contains(&v));
            !droppable
        })
        .collect();
    let mut verdict = Verdict::Unknown { states: 0, reason: "not run".into() };
    if pruned.len() < entries.len() {
        let sub: Vec<_> = pruned.iter().map(|&i| entries[i].clone()).collect();
        verdict = match check(&model, &sub, limits) {
            // Indices in a counterexample must point into `entries`.
            Verdict::NotLinearizable(mut cx) if value_only => {
                cx.linearized.iter_mut().for_each(|i| *i = pruned[*i]);
                cx.stuck = pruned[cx.stuck];
                Verdict::NotLinearizable(cx)
            }
            v => v,
        };
    }
    // Pass 2: the full history, unless pass 1 already decided.
    let decided = verdict.is_linearizable() || (value_only && matches!(verdict, Verdict::NotLinearizable(_)));
    if !decided {
        verdict = check(&model, &entries, limits);
    }
    let detail = match &verdict {
        Verdict::NotLinearizable(cx) => explain(&kept, cx),
        _ => String::new(),
    };
    KeyReport {
        key: key.to_owned(),
        ops: entries.len(),
        unknown: kept.iter().filter(|o| matches!(o.outcome, Outcome::Unknown { .. })).count(),
        history: if verdict.is_linearizable() { Vec::new() } else { ops.to_vec() },
        verdict,
        detail,
        elapsed: started.elapsed(),
    }
}

/// Rewrites every written value that no reply names to one shared value.
///
/// Sound when no call on the key computes with its value (no `INCR`): the
/// model then uses a state only to compare it with a reply or to test whether
/// the key exists, and no reply names any of these values, so a history and
/// its rewrite accept exactly the same orders. What it buys: timed-out writes
/// of unobserved values become identical calls, which the search treats as
/// interchangeable twins (`linearizability::twins`), and states that differ
/// only in an unobserved value become one memo entry. On a key with
/// conditional writes, where the unobserved timeouts cannot simply be dropped
/// (they decide whether a later `SET NX` applies), `u` of them cost `u + 1`
/// configurations instead of `2^u`.
fn merge_unobserved_values(entries: &mut [Entry<Call, Ret>], observed: &HashSet<Value>) {
    if entries.iter().any(|e| matches!(e.input, Call::Incr | Call::WatchIncr)) {
        return;
    }
    let named = |v: Value| observed.contains(&v) || entries.iter().any(|e| e.input.written_value() == Some(v));
    let Some(shared) = [Value::MIN, Value::MIN + 1].into_iter().find(|&v| !named(v)) else {
        return;
    };
    for e in entries.iter_mut() {
        e.input = match e.input {
            Call::Set(v) if !observed.contains(&v) => Call::Set(shared),
            Call::SetGet(v) if !observed.contains(&v) => Call::SetGet(shared),
            Call::SetNx(v) if !observed.contains(&v) => Call::SetNx(shared),
            Call::SetXx(v) if !observed.contains(&v) => Call::SetXx(shared),
            Call::TxSwap(v) if !observed.contains(&v) => Call::TxSwap(shared),
            other => other,
        };
    }
}

/// Treats an unknown-outcome optimistic increment as an unknown `INCR`. Both
/// add one when they take effect (a refused `EXEC` is the same as taking
/// effect never, which placing it last already covers), so they are
/// interchangeable twins (see `linearizability::twins`), and `u` pending
/// `INCR`s plus `w` pending increments cost `u + w + 1` configurations instead of
/// `(u + 1)(w + 1)`.
fn merge_unknown_increments(entries: &mut [Entry<Call, Ret>]) {
    for e in entries.iter_mut().filter(|e| e.output.is_none() && e.ret.is_none() && e.input == Call::WatchIncr) {
        e.input = Call::Incr;
    }
}

/// Failed operations had no effect and non-ok reads observed nothing: neither
/// constrains the search, so both are left out.
fn enters_search(op: &Operation) -> bool {
    match op.outcome {
        Outcome::Ok { .. } => true,
        Outcome::Fail { .. } => false,
        Outcome::Unknown { .. } => op.call.is_mutation(),
    }
}

pub(crate) fn to_entry(op: &Operation) -> Entry<Call, Ret> {
    let (output, ret) = match &op.outcome {
        Outcome::Ok { completed, ret } => (Some(ret.clone()), Some(*completed)),
        // Only Ok and Unknown reach here (see `enters_search`).
        Outcome::Fail { completed, .. } => (None, Some(*completed)),
        Outcome::Unknown { .. } => (None, None),
    };
    Entry { input: op.call, output, call: op.invoked, ret }
}

/// Every value some reply revealed. An `INCR` reply `n` reveals that `n - 1`
/// was the value before it.
fn observed_values(entries: &[Entry<Call, Ret>]) -> HashSet<Value> {
    let mut seen = HashSet::new();
    for e in entries {
        match e.output {
            Some(Ret::Value(Some(v))) => {
                seen.insert(v);
            }
            Some(Ret::Int(n)) => {
                seen.insert(n.wrapping_sub(1));
            }
            _ => {}
        }
    }
    seen
}

/// Render a counterexample: the deepest partial linearization found, and the
/// operation that could not be placed after it, with its concurrent operations.
fn explain(ops: &[&Operation], cx: &crate::linearizability::Counterexample<RegisterState>) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let shown = cx.linearized.len().saturating_sub(8);
    let _ = writeln!(
        s,
        "    deepest partial linearization ({} ops, last {} shown), state after it: {:?}",
        cx.linearized.len(),
        cx.linearized.len() - shown,
        cx.state
    );
    for &i in &cx.linearized[shown..] {
        let _ = writeln!(s, "      {}", ops[i]);
    }
    let stuck = ops[cx.stuck];
    let _ = writeln!(s, "    cannot be linearized next: {stuck}");
    let end = stuck.outcome.completed().unwrap_or(u64::MAX);
    let concurrent: Vec<_> = ops
        .iter()
        .filter(|o| !std::ptr::eq(**o, stuck))
        .filter(|o| o.invoked <= end && o.outcome.completed().unwrap_or(u64::MAX) >= stuck.invoked)
        .take(12)
        .collect();
    let _ = writeln!(s, "    operations concurrent with it ({} shown):", concurrent.len());
    for o in concurrent {
        let _ = writeln!(s, "      {o}");
    }
    s
}
