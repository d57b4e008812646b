//! The register workload: many concurrent clients, each on its own real
//! connection to some node, doing single-key operations over a small key
//! set, recording every invocation and completion in a [`History`].
//!
//! Three key classes, so that each check is as sharp as it can be:
//! - `reg` keys: `GET`, `SET`, `SET .. GET` and a `MULTI`/`EXEC` swap with
//!   unique values. The checker can prune unobserved timeouts exactly on
//!   these, and a final read names the write it comes from (lost-write check).
//! - `cas` keys: `GET`, `SET`, `SET NX`, `SET XX`, `DEL`: conditional writes.
//! - `ctr` keys: `INCR`, `GET` and optimistic increments through `WATCH`:
//!   the final value bounds the acknowledged increments exactly, and an
//!   increment `WATCH` let through on a stale read shows as a violation.
//!
//! Error classification (the only place where the harness trusts the server):
//! an error reply whose code is in [`WorkloadConfig::definite_errors`] means
//! "not applied" ([`Outcome::Fail`]); anything else — other errors, timeouts,
//! broken connections — is [`Outcome::Unknown`]. The server documents
//! `CLUSTERDOWN` (refused before proposing) and `MISCONF` (disk full, refused
//! before proposing) as definite and `TRYAGAIN` as indeterminate.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Value as RValue};
use tokio::task::JoinHandle;

use crate::history::{Call, ClientId, Clock, History, Operation, Outcome, Recorder, Ret, Value};

/// Which operations a key receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyClass {
    /// `GET` / `SET` / `SET .. GET`.
    Register,
    /// `GET` / `SET` / `SET NX` / `SET XX` / `DEL`.
    Conditional,
    /// `INCR` / `GET`.
    Counter,
}

impl KeyClass {
    /// The class of a key made by [`WorkloadConfig::keys`].
    pub fn of(key: &str) -> Option<KeyClass> {
        match key.rsplit(':').nth(1)? {
            "reg" => Some(KeyClass::Register),
            "cas" => Some(KeyClass::Conditional),
            "ctr" => Some(KeyClass::Counter),
            _ => None,
        }
    }
}

/// Workload parameters.
#[derive(Debug, Clone)]
pub struct WorkloadConfig {
    /// Concurrent clients (one connection each at a time).
    pub clients: usize,
    /// Number of `reg` keys.
    pub registers: usize,
    /// Number of `cas` keys.
    pub conditionals: usize,
    /// Number of `ctr` keys.
    pub counters: usize,
    /// Prefix of every key; make it unique per run so keys start absent.
    pub key_prefix: String,
    /// Give up on a reply after this long (the op becomes unknown).
    pub op_timeout: Duration,
    /// Connection establishment timeout.
    pub connect_timeout: Duration,
    /// Error codes meaning "definitely not applied".
    pub definite_errors: Vec<String>,
    /// Back-off after an error or timeout (keeps leaderless windows from
    /// flooding the history with thousands of failed operations).
    pub error_backoff: Duration,
    /// Upper bound of a random pause between a client's operations.
    pub think: Duration,
    /// Seed of the clients' random choices.
    pub seed: u64,
}

impl Default for WorkloadConfig {
    fn default() -> Self {
        Self {
            clients: 10,
            registers: 4,
            conditionals: 2,
            counters: 2,
            key_prefix: format!("w{}", std::process::id()),
            op_timeout: Duration::from_secs(3),
            connect_timeout: Duration::from_secs(2),
            definite_errors: vec!["CLUSTERDOWN".into(), "MISCONF".into()],
            error_backoff: Duration::from_millis(100),
            think: Duration::from_millis(5),
            seed: 1,
        }
    }
}

impl WorkloadConfig {
    /// Every key of the run.
    pub fn keys(&self) -> Vec<String> {
        let p = &self.key_prefix;
        let mut keys = Vec::new();
        keys.extend((0..self.registers).map(|i| format!("{p}:reg:{i}")));
        keys.extend((0..self.conditionals).map(|i| format!("{p}:cas:{i}")));
        keys.extend((0..self.counters).map(|i| format!("{p}:ctr:{i}")));
        keys
    }
}

/// Live counters of a running workload.
#[derive(Debug, Default)]
pub struct Progress {
    /// Operations recorded.
    pub ops: AtomicU64,
    /// Of which acknowledged.
    pub ok: AtomicU64,
}

/// A workload whose clients are running; [`RunningWorkload::stop`] ends it.
pub struct RunningWorkload {
    stop: Arc<AtomicBool>,
    tasks: Vec<JoinHandle<()>>,
    recorder: Recorder,
    progress: Arc<Progress>,
}

impl RunningWorkload {
    /// Live counters.
    pub fn progress(&self) -> &Progress {
        &self.progress
    }

    /// Stop every client (in-flight operations finish or time out) and return the history.
    pub async fn stop(mut self) -> History {
        self.stop.store(true, Ordering::Relaxed);
        for t in std::mem::take(&mut self.tasks) {
            let _ = t.await;
        }
        self.recorder.snapshot()
    }
}

impl Drop for RunningWorkload {
    /// A workload abandoned on an error path stops its clients too.
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Start `cfg.clients` clients against `targets` (RESP `host:port`s), all
/// recording against `clock`.
pub fn start(cfg: &WorkloadConfig, targets: &[String], clock: Clock) -> RunningWorkload {
    let stop = Arc::new(AtomicBool::new(false));
    let recorder = Recorder::new();
    let progress = Arc::new(Progress::default());
    let cfg = Arc::new(cfg.clone());
    let targets: Arc<Vec<String>> = Arc::new(targets.to_vec());
    let tasks = (0..cfg.clients)
        .map(|c| {
            let client = Client {
                id: c as ClientId,
                cfg: cfg.clone(),
                targets: targets.clone(),
                clock,
                recorder: recorder.clone(),
                progress: progress.clone(),
                rng: StdRng::seed_from_u64(cfg.seed.wrapping_mul(1_000_003).wrapping_add(c as u64)),
                seq: 0,
            };
            tokio::spawn(client.run(stop.clone()))
        })
        .collect();
    RunningWorkload { stop, tasks, recorder, progress }
}

/// Open a connection to `addr` within `timeout`.
pub async fn connect(addr: &str, timeout: Duration) -> redis::RedisResult<MultiplexedConnection> {
    let client = redis::Client::open(format!("redis://{addr}/"))?;
    // The response timeout is enforced per operation by the caller, so that
    // a timeout can be recorded with its own completion semantics.
    let cfg = AsyncConnectionConfig::new().set_connection_timeout(timeout);
    client.get_multiplexed_async_connection_with_config(&cfg).await
}

struct Client {
    id: ClientId,
    cfg: Arc<WorkloadConfig>,
    targets: Arc<Vec<String>>,
    clock: Clock,
    recorder: Recorder,
    progress: Arc<Progress>,
    rng: StdRng,
    seq: i64,
}

impl Client {
    async fn run(mut self, stop: Arc<AtomicBool>) {
        let keys = self.cfg.keys();
        let mut conn: Option<MultiplexedConnection> = None;
        while !stop.load(Ordering::Relaxed) {
            let Some(c) = conn.as_mut() else {
                let addr = &self.targets[self.rng.random_range(0..self.targets.len())];
                match connect(addr, self.cfg.connect_timeout).await {
                    Ok(c) => conn = Some(c),
                    Err(_) => tokio::time::sleep(self.cfg.error_backoff).await,
                }
                continue;
            };
            let key = &keys[self.rng.random_range(0..keys.len())];
            let call = self.pick_call(KeyClass::of(key).expect("workload key"));
            let op = execute(c, &self.cfg, self.id, key, call, self.clock).await;
            let failed = !matches!(op.outcome, Outcome::Ok { .. });
            // After a timeout or transport error the connection's state is
            // unknown (a late reply could be matched to the next request):
            // never reuse it.
            if matches!(op.outcome, Outcome::Unknown { .. }) {
                conn = None;
            }
            self.progress.ops.fetch_add(1, Ordering::Relaxed);
            if !failed {
                self.progress.ok.fetch_add(1, Ordering::Relaxed);
            }
            self.recorder.record(op);
            let pause = if failed {
                // A follower with no leader answers instantly: re-pick a node sometimes.
                if self.rng.random_bool(0.3) {
                    conn = None;
                }
                self.cfg.error_backoff
            } else {
                self.cfg.think.mul_f64(self.rng.random::<f64>())
            };
            if !pause.is_zero() {
                tokio::time::sleep(pause).await;
            }
        }
    }

    /// A value no other write of this run uses: client id in the high bits.
    fn unique(&mut self) -> Value {
        self.seq += 1;
        ((self.id as i64 + 1) << 32) | self.seq
    }

    fn pick_call(&mut self, class: KeyClass) -> Call {
        let r = self.rng.random_range(0..100);
        match class {
            KeyClass::Register => match r {
                0..50 => Call::Get,
                50..75 => Call::Set(self.unique()),
                75..90 => Call::SetGet(self.unique()),
                _ => Call::TxSwap(self.unique()),
            },
            KeyClass::Conditional => match r {
                0..40 => Call::Get,
                40..55 => Call::Set(self.unique()),
                55..75 => Call::SetNx(self.unique()),
                75..90 => Call::SetXx(self.unique()),
                _ => Call::Del,
            },
            KeyClass::Counter => match r {
                0..45 => Call::Incr,
                45..65 => Call::WatchIncr,
                _ => Call::Get,
            },
        }
    }
}

/// The RESP command for a call, if it is one command (the transactions are
/// several).
pub fn command(key: &str, call: Call) -> Option<redis::Cmd> {
    let mut c;
    match call {
        Call::Get => {
            c = redis::cmd("GET");
            c.arg(key);
        }
        Call::Set(v) => {
            c = redis::cmd("SET");
            c.arg(key).arg(v);
        }
        Call::SetGet(v) => {
            c = redis::cmd("SET");
            c.arg(key).arg(v).arg("GET");
        }
        Call::SetNx(v) => {
            c = redis::cmd("SET");
            c.arg(key).arg(v).arg("NX");
        }
        Call::SetXx(v) => {
            c = redis::cmd("SET");
            c.arg(key).arg(v).arg("XX");
        }
        Call::Incr => {
            c = redis::cmd("INCR");
            c.arg(key);
        }
        Call::Del => {
            c = redis::cmd("DEL");
            c.arg(key);
        }
        Call::TxSwap(_) | Call::WatchIncr => return None,
    }
    Some(c)
}

/// A call's requests and its reply, or the error and whether a request that
/// could change the key was sent before it.
async fn send(conn: &mut MultiplexedConnection, key: &str, call: Call) -> Result<RValue, (redis::RedisError, bool)> {
    match call {
        Call::TxSwap(v) => {
            // A WATCH an earlier optimistic increment left behind (its GET
            // failed) would make this EXEC answer nil, as in Redis.
            redis::cmd("UNWATCH").query_async::<()>(conn).await.map_err(|e| (e, false))?;
            let mut tx = redis::pipe();
            tx.atomic().cmd("GET").arg(key).cmd("SET").arg(key).arg(v);
            tx.query_async::<RValue>(conn).await.map_err(|e| (e, true))
        }
        Call::WatchIncr => {
            let unsent = |e| (e, false);
            redis::cmd("WATCH").arg(key).query_async::<()>(conn).await.map_err(unsent)?;
            let read: Option<Value> = redis::cmd("GET").arg(key).query_async(conn).await.map_err(unsent)?;
            let next = read.unwrap_or(0).checked_add(1).unwrap_or(Value::MAX);
            let mut tx = redis::pipe();
            tx.atomic().cmd("SET").arg(key).arg(next);
            match tx.query_async::<RValue>(conn).await {
                // The new value, for the model: EXEC itself replies [OK].
                Ok(RValue::Array(items)) if matches!(items[..], [RValue::Okay]) => Ok(RValue::Int(next)),
                Ok(other) => Ok(other),
                Err(e) => Err((e, true)),
            }
        }
        single => {
            let cmd = command(key, single).expect("every other call is one command");
            cmd.query_async::<RValue>(conn).await.map_err(|e| (e, true))
        }
    }
}

/// Run one call on `conn` and classify the result.
pub async fn execute(
    conn: &mut MultiplexedConnection,
    cfg: &WorkloadConfig,
    client: ClientId,
    key: &str,
    call: Call,
    clock: Clock,
) -> Operation {
    let invoked = clock.now();
    let res = tokio::time::timeout(cfg.op_timeout, send(conn, key, call)).await;
    let completed = clock.now();
    let outcome = match res {
        Err(_) => Outcome::Unknown { error: format!("no reply within {:?}", cfg.op_timeout) },
        Ok(Ok(v)) => Outcome::Ok { completed, ret: decode(call, v) },
        // WATCH or its GET failed: EXEC was never sent.
        Ok(Err((e, false))) => Outcome::Fail { completed, error: e.to_string() },
        Ok(Err((e, true))) => classify_error(&e, completed, &cfg.definite_errors),
    };
    Operation { client, key: key.to_owned(), call, invoked, outcome }
}

/// Map a reply to what the model understands; anything unexpected is [`Ret::Garbage`].
pub fn decode(call: Call, v: RValue) -> Ret {
    let garbage = |v: &RValue| Ret::Garbage(format!("{v:?}"));
    let int_of = |b: &[u8]| std::str::from_utf8(b).ok().and_then(|s| s.parse::<Value>().ok());
    match (call, &v) {
        (Call::Get | Call::SetGet(_), RValue::Nil) => Ret::Value(None),
        (Call::Get | Call::SetGet(_), RValue::BulkString(b)) => {
            int_of(b).map_or_else(|| garbage(&v), |n| Ret::Value(Some(n)))
        }
        (Call::Set(_), RValue::Okay) => Ret::Ok,
        (Call::Set(_), RValue::SimpleString(s)) if s == "OK" => Ret::Ok,
        (Call::SetNx(_) | Call::SetXx(_), RValue::Okay) => Ret::Applied(true),
        (Call::SetNx(_) | Call::SetXx(_), RValue::Nil) => Ret::Applied(false),
        (Call::Incr, RValue::Int(n)) => Ret::Int(*n),
        (Call::Del, RValue::Int(0)) => Ret::Applied(false),
        (Call::Del, RValue::Int(1)) => Ret::Applied(true),
        (Call::TxSwap(_), RValue::Array(items)) => match &items[..] {
            [read, RValue::Okay] => match decode(Call::Get, read.clone()) {
                Ret::Value(value) => Ret::Value(value),
                _ => garbage(&v),
            },
            _ => garbage(&v),
        },
        (Call::WatchIncr, RValue::Int(n)) => Ret::Int(*n),
        (Call::WatchIncr, RValue::Nil) => Ret::Applied(false),
        _ => garbage(&v),
    }
}

/// Classify an error: a server error with a definite code is a failure,
/// everything else may or may not have taken effect.
pub fn classify_error(e: &redis::RedisError, completed: u64, definite: &[String]) -> Outcome {
    let text = e.to_string();
    match e.code() {
        Some(code) if definite.iter().any(|d| d == code) => Outcome::Fail { completed, error: text },
        _ => Outcome::Unknown { error: text },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_classes_round_trip() {
        let cfg = WorkloadConfig { key_prefix: "p:x".into(), ..Default::default() };
        let keys = cfg.keys();
        assert_eq!(keys.len(), 8);
        assert_eq!(KeyClass::of(&keys[0]), Some(KeyClass::Register));
        assert_eq!(KeyClass::of("p:x:cas:1"), Some(KeyClass::Conditional));
        assert_eq!(KeyClass::of("p:x:ctr:0"), Some(KeyClass::Counter));
        assert_eq!(KeyClass::of("other"), None);
    }

    #[test]
    fn replies_decode_strictly() {
        assert_eq!(decode(Call::Get, RValue::Nil), Ret::Value(None));
        assert_eq!(decode(Call::Get, RValue::BulkString(b"42".to_vec())), Ret::Value(Some(42)));
        assert!(matches!(decode(Call::Get, RValue::BulkString(b"4x".to_vec())), Ret::Garbage(_)));
        assert_eq!(decode(Call::SetNx(1), RValue::Nil), Ret::Applied(false));
        assert_eq!(decode(Call::Del, RValue::Int(1)), Ret::Applied(true));
        assert!(matches!(decode(Call::Del, RValue::Int(2)), Ret::Garbage(_)));
        assert!(matches!(decode(Call::Set(1), RValue::Nil), Ret::Garbage(_)));
        let swapped = RValue::Array(vec![RValue::BulkString(b"7".to_vec()), RValue::Okay]);
        assert_eq!(decode(Call::TxSwap(8), swapped), Ret::Value(Some(7)));
        assert_eq!(decode(Call::TxSwap(8), RValue::Array(vec![RValue::Nil, RValue::Okay])), Ret::Value(None));
        assert!(matches!(decode(Call::TxSwap(8), RValue::Nil), Ret::Garbage(_)));
        assert_eq!(decode(Call::WatchIncr, RValue::Nil), Ret::Applied(false));
        assert_eq!(decode(Call::WatchIncr, RValue::Int(3)), Ret::Int(3));
    }

    #[test]
    fn only_definite_codes_fail() {
        let definite = WorkloadConfig::default().definite_errors;
        let down = redis::RedisError::from((
            redis::ErrorKind::ClusterDown,
            "An error was signalled by the server",
            "no leader".to_string(),
        ));
        assert!(matches!(classify_error(&down, 5, &definite), Outcome::Fail { .. }));
        let again = redis::RedisError::from((redis::ErrorKind::TryAgain, "x"));
        assert!(matches!(classify_error(&again, 5, &definite), Outcome::Unknown { .. }));
        let io = redis::RedisError::from(std::io::Error::other("reset"));
        assert!(matches!(classify_error(&io, 5, &definite), Outcome::Unknown { .. }));
    }
}
