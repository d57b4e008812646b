//! After the faults: read every key back from every node, then check that no
//! acknowledged write was lost, independently of the linearizability search.
//!
//! The final reads are appended to the history, so the checker also judges
//! them; the lost-write check here is a second, simpler argument that needs no
//! search and gives a direct count ("0 lost acknowledged writes"):
//!
//! - counter keys: with `A` acknowledged and `U` unknown `INCR`s, the final
//!   value `f` must satisfy `A <= f <= A + U`;
//! - register keys: the final value names the write it came from (values are
//!   unique). Any acknowledged write invoked after that write *completed* must
//!   come after it in every linearization, so the final value could not be
//!   the origin's: that acknowledged write was lost. A final value that no
//!   write produced is a phantom.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::history::{Call, ClientId, Clock, History, Operation, Outcome, Ret, Timestamp, Value};
use crate::wait::{poll, TimedOut};
use crate::workload::{connect, execute, KeyClass, WorkloadConfig};

/// First client id used for final reads (node `i` reads as `FINAL_CLIENT + i`).
pub const FINAL_CLIENT: ClientId = 1_000_000;

/// Read every key on every node (linearizable `GET`s, retried until they
/// succeed or `timeout`), record the reads into `history`, and return each
/// key's value as read on the first node.
pub async fn final_reads(
    cfg: &WorkloadConfig,
    targets: &[String],
    clock: Clock,
    history: &mut History,
    timeout: Duration,
) -> Result<BTreeMap<String, Option<Value>>, TimedOut> {
    let mut finals = BTreeMap::new();
    for (n, addr) in targets.iter().enumerate() {
        let client = FINAL_CLIENT + n as ClientId;
        for key in cfg.keys() {
            let what = format!("final GET {key} on {addr}");
            let op = poll(timeout, &what, || async {
                let mut c = connect(addr, cfg.connect_timeout).await.ok()?;
                let op = execute(&mut c, cfg, client, &key, Call::Get, clock).await;
                matches!(op.outcome, Outcome::Ok { .. }).then_some(op)
            })
            .await?;
            if let Outcome::Ok { ret: Ret::Value(v), .. } = &op.outcome {
                finals.entry(key.clone()).or_insert(*v);
            }
            history.push(op);
        }
    }
    Ok(finals)
}

/// Result of the lost-write check.
#[derive(Debug, Clone, Default)]
pub struct LostWrites {
    /// Keys whose final value was checked.
    pub keys: usize,
    /// Acknowledged effective writes (including `INCR`s) considered.
    pub acked: usize,
    /// One line per lost acknowledged write (or lost increments on a counter).
    pub lost: Vec<String>,
    /// One line per final value that no write produced.
    pub phantom: Vec<String>,
}

impl LostWrites {
    /// True when nothing was lost and nothing appeared from nowhere.
    pub fn is_clean(&self) -> bool {
        self.lost.is_empty() && self.phantom.is_empty()
    }
}

/// Check the final values against the acknowledged writes of `history`.
pub fn check_lost_writes(history: &History, finals: &BTreeMap<String, Option<Value>>) -> LostWrites {
    let mut report = LostWrites::default();
    for (key, ops) in history.by_key() {
        let Some(&fin) = finals.get(&key) else {
            continue;
        };
        report.keys += 1;
        match KeyClass::of(&key) {
            Some(KeyClass::Counter) => check_counter(&key, &ops, fin, &mut report),
            Some(_) => check_register(&key, &ops, fin, &mut report),
            None => {}
        }
    }
    report
}

fn check_counter(key: &str, ops: &[Operation], fin: Option<Value>, r: &mut LostWrites) {
    // A WATCH increment that EXEC refused added nothing.
    let incrs = ops.iter().filter(|o| matches!(o.call, Call::Incr | Call::WatchIncr) && effective(o));
    let acked = incrs.clone().filter(|o| matches!(o.outcome, Outcome::Ok { .. })).count();
    let unknown = incrs.filter(|o| matches!(o.outcome, Outcome::Unknown { .. })).count();
    r.acked += acked;
    let f = fin.unwrap_or(0);
    if f < acked as Value {
        r.lost.push(format!("{key}: final {f} < {acked} acknowledged INCRs"));
    }
    if f > (acked + unknown) as Value {
        r.phantom.push(format!("{key}: final {f} > {acked} acknowledged + {unknown} unknown INCRs"));
    }
}

/// An operation that changed (or may have changed) the key.
fn effective(op: &Operation) -> bool {
    match &op.outcome {
        Outcome::Fail { .. } => false,
        Outcome::Unknown { .. } => op.call.is_mutation(),
        // Conditional writes that report "not applied" changed nothing.
        Outcome::Ok { ret, .. } => op.call.is_mutation() && *ret != Ret::Applied(false),
    }
}

fn check_register(key: &str, ops: &[Operation], fin: Option<Value>, r: &mut LostWrites) {
    let writes: Vec<&Operation> = ops.iter().filter(|o| effective(o)).collect();
    let acked: Vec<&Operation> = writes.iter().copied().filter(|o| matches!(o.outcome, Outcome::Ok { .. })).collect();
    r.acked += acked.len();
    let end = |o: &Operation| o.outcome.completed().unwrap_or(Timestamp::MAX);
    // The origin's completion: the latest time the final state can date from.
    let origin_end: Timestamp = match fin {
        Some(v) => match writes.iter().find(|o| o.call.written_value() == Some(v)) {
            Some(o) => end(o),
            None => {
                r.phantom.push(format!("{key}: final value {v} was never written"));
                return;
            }
        },
        // Absent: the last DEL to finish is the origin; without any DEL it is
        // the initial state, which precedes every write.
        None => match writes.iter().filter(|o| o.call == Call::Del).map(|o| end(o)).max() {
            Some(t) => t,
            None => {
                for w in &acked {
                    r.lost.push(format!("{key}: acknowledged {w} but the key is absent"));
                }
                return;
            }
        },
    };
    for w in acked.iter().filter(|w| w.invoked > origin_end) {
        r.lost.push(format!(
            "{key}: acknowledged {w} but the final value {} comes from an earlier write",
            fin.map_or("nil".into(), |v| v.to_string())
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(key: &str, call: Call, from: u64, outcome: Outcome) -> Operation {
        Operation { client: 0, key: key.into(), call, invoked: from, outcome }
    }
    fn ok(completed: u64, ret: Ret) -> Outcome {
        Outcome::Ok { completed, ret }
    }
    fn unknown() -> Outcome {
        Outcome::Unknown { error: "t".into() }
    }

    #[test]
    fn counters_bound_the_final_value() {
        let mut h = History::new();
        h.push(op("p:ctr:0", Call::Incr, 0, ok(1, Ret::Int(1))));
        h.push(op("p:ctr:0", Call::Incr, 2, ok(3, Ret::Int(2))));
        h.push(op("p:ctr:0", Call::Incr, 4, unknown()));
        let check = |f| check_lost_writes(&h, &BTreeMap::from([("p:ctr:0".to_string(), f)]));
        assert!(check(Some(2)).is_clean());
        assert!(check(Some(3)).is_clean());
        assert_eq!(check(Some(1)).lost.len(), 1);
        assert_eq!(check(None).lost.len(), 1);
        assert_eq!(check(Some(4)).phantom.len(), 1);
    }

    #[test]
    fn registers_detect_lost_and_phantom_writes() {
        let mut h = History::new();
        h.push(op("p:reg:0", Call::Set(1), 0, ok(1, Ret::Ok)));
        h.push(op("p:reg:0", Call::Set(2), 2, ok(3, Ret::Ok)));
        h.push(op("p:reg:0", Call::Set(3), 2, unknown()));
        h.push(op("p:reg:0", Call::SetNx(4), 5, ok(6, Ret::Applied(false))));
        let check = |f| check_lost_writes(&h, &BTreeMap::from([("p:reg:0".to_string(), f)]));
        assert!(check(Some(2)).is_clean());
        assert!(check(Some(3)).is_clean(), "the unknown write may have won");
        // 1 completed before SET 2 was invoked: SET 2 was lost.
        assert_eq!(check(Some(1)).lost.len(), 1);
        assert_eq!(check(None).lost.len(), 2);
        // SET NX 4 reported "not applied": its value cannot be final.
        assert_eq!(check(Some(4)).phantom.len(), 1);
        assert_eq!(check(Some(9)).phantom.len(), 1);
    }

    #[test]
    fn deletes_can_be_the_origin_of_an_absent_key() {
        let mut h = History::new();
        h.push(op("p:cas:0", Call::Set(1), 0, ok(1, Ret::Ok)));
        h.push(op("p:cas:0", Call::Del, 2, ok(3, Ret::Applied(true))));
        let check = |f| check_lost_writes(&h, &BTreeMap::from([("p:cas:0".to_string(), f)]));
        assert!(check(None).is_clean());
        // 1 finished before the DEL started: reading 1 back means the DEL was lost.
        assert_eq!(check(Some(1)).lost.len(), 1);
    }
}
