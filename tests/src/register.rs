//! The sequential specification of one Redis string key used as a register.
//!
//! The linearizability checker asks one question of it: "from this state, can
//! this call have produced this reply, and what is the state afterwards?". The
//! answers follow Redis semantics exactly for the subset the workload uses.

use crate::history::{Call, Ret, Value};
use crate::linearizability::Model;

/// State of one key: `None` when absent, else its integer value.
pub type RegisterState = Option<Value>;

/// The register model: `GET`, `SET`, `SET .. GET`, `SET .. NX`, `SET .. XX`,
/// `INCR` and `DEL` on a single key whose values are integers.
#[derive(Debug, Clone, Copy, Default)]
pub struct RegisterModel {
    /// The key's state before the history starts (the workload uses fresh
    /// keys, so normally `None`).
    pub initial: RegisterState,
}

impl Model for RegisterModel {
    type State = RegisterState;
    type Input = Call;
    type Output = Ret;

    fn init(&self) -> RegisterState {
        self.initial
    }

    fn step(&self, state: &RegisterState, call: &Call, ret: Option<&Ret>) -> Option<RegisterState> {
        // `expect(r)`: the reply must equal `r` when it is known at all.
        let expect = |r: Ret| ret.is_none_or(|got| *got == r);
        match *call {
            Call::Get => expect(Ret::Value(*state)).then_some(*state),
            Call::Set(v) => expect(Ret::Ok).then_some(Some(v)),
            Call::SetGet(v) | Call::TxSwap(v) => expect(Ret::Value(*state)).then_some(Some(v)),
            Call::SetNx(v) => {
                let applies = state.is_none();
                expect(Ret::Applied(applies)).then_some(if applies { Some(v) } else { *state })
            }
            Call::SetXx(v) => {
                let applies = state.is_some();
                expect(Ret::Applied(applies)).then_some(if applies { Some(v) } else { *state })
            }
            Call::Incr => {
                // Redis refuses to overflow (`-ERR increment or decrement would
                // overflow`) and leaves the key as it was; such a call never
                // returns an integer, so only the unknown-reply case remains.
                match state.unwrap_or(0).checked_add(1) {
                    Some(n) => expect(Ret::Int(n)).then_some(Some(n)),
                    None => ret.is_none().then_some(*state),
                }
            }
            Call::Del => expect(Ret::Applied(state.is_some())).then_some(None),
            // WATCH makes EXEC run only on the value the GET read, so an
            // applied increment adds one to the state at EXEC; a refused one
            // (which a write to another key of the same stamp slot may also
            // cause) changes nothing.
            Call::WatchIncr => match ret {
                Some(Ret::Applied(false)) => Some(*state),
                _ => {
                    let n = state.unwrap_or(0).checked_add(1)?;
                    expect(Ret::Int(n)).then_some(Some(n))
                }
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(s: RegisterState, c: Call, r: Option<Ret>) -> Option<RegisterState> {
        RegisterModel::default().step(&s, &c, r.as_ref())
    }

    #[test]
    fn reads_must_match_state() {
        assert_eq!(step(Some(3), Call::Get, Some(Ret::Value(Some(3)))), Some(Some(3)));
        assert_eq!(step(Some(3), Call::Get, Some(Ret::Value(Some(4)))), None);
        assert_eq!(step(None, Call::Get, Some(Ret::Value(None))), Some(None));
        assert_eq!(step(None, Call::Get, Some(Ret::Ok)), None, "wrong reply type");
    }

    #[test]
    fn conditional_writes_follow_existence() {
        assert_eq!(step(None, Call::SetNx(5), Some(Ret::Applied(true))), Some(Some(5)));
        assert_eq!(step(Some(1), Call::SetNx(5), Some(Ret::Applied(true))), None);
        assert_eq!(step(Some(1), Call::SetNx(5), Some(Ret::Applied(false))), Some(Some(1)));
        assert_eq!(step(Some(1), Call::SetXx(5), Some(Ret::Applied(true))), Some(Some(5)));
        assert_eq!(step(None, Call::SetXx(5), Some(Ret::Applied(false))), Some(None));
        assert_eq!(step(Some(1), Call::SetGet(5), Some(Ret::Value(Some(1)))), Some(Some(5)));
        assert_eq!(step(Some(1), Call::SetGet(5), Some(Ret::Value(None))), None);
    }

    #[test]
    fn incr_and_del() {
        assert_eq!(step(None, Call::Incr, Some(Ret::Int(1))), Some(Some(1)));
        assert_eq!(step(Some(9), Call::Incr, Some(Ret::Int(10))), Some(Some(10)));
        assert_eq!(step(Some(9), Call::Incr, Some(Ret::Int(9))), None);
        assert_eq!(step(Some(i64::MAX), Call::Incr, Some(Ret::Int(0))), None);
        assert_eq!(step(Some(2), Call::Del, Some(Ret::Applied(true))), Some(None));
        assert_eq!(step(None, Call::Del, Some(Ret::Applied(true))), None);
    }

    #[test]
    fn transactions_swap_and_increment_only_on_what_they_read() {
        assert_eq!(step(Some(1), Call::TxSwap(5), Some(Ret::Value(Some(1)))), Some(Some(5)));
        assert_eq!(step(Some(1), Call::TxSwap(5), Some(Ret::Value(Some(2)))), None);
        assert_eq!(step(Some(4), Call::WatchIncr, Some(Ret::Int(5))), Some(Some(5)));
        // An increment EXEC ran on a stale read: a lost update.
        assert_eq!(step(Some(5), Call::WatchIncr, Some(Ret::Int(5))), None);
        assert_eq!(step(Some(5), Call::WatchIncr, Some(Ret::Applied(false))), Some(Some(5)));
        assert_eq!(step(None, Call::WatchIncr, None), Some(Some(1)));
    }

    #[test]
    fn unknown_replies_accept_any_output_but_still_change_state() {
        assert_eq!(step(Some(1), Call::SetNx(5), None), Some(Some(1)));
        assert_eq!(step(None, Call::SetNx(5), None), Some(Some(5)));
        assert_eq!(step(Some(1), Call::Incr, None), Some(Some(2)));
    }

    #[test]
    fn garbage_is_never_accepted() {
        let g = Some(Ret::Garbage("x".into()));
        for c in [Call::Get, Call::Set(1), Call::SetGet(1), Call::Incr, Call::Del, Call::TxSwap(1), Call::WatchIncr] {
            assert_eq!(step(Some(1), c, g.clone()), None, "{c}");
        }
    }
}
