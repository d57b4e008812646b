//! Per-connection state and the connection-level commands, which never touch
//! the replicated data: PING ECHO HELLO AUTH SELECT QUIT RESET COMMAND INFO
//! CONFIG TIME, and CLIENT (in `client_command`).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;

use super::kill_switch::KillSwitch;
use super::{info, ConnContext};
use crate::commands;
use crate::kv::now_ms;
use crate::resp::{Frame, Protocol};

/// What `CLIENT LIST` / `CLIENT INFO` show about a connection.
#[derive(Debug, Clone)]
pub struct ClientInfo {
    /// Connection id.
    pub id: u64,
    /// Peer address.
    pub addr: SocketAddr,
    /// This server's end of the connection.
    pub laddr: Option<SocketAddr>,
    /// The socket's file descriptor.
    pub fd: i32,
    /// Name set by `CLIENT SETNAME` / `HELLO … SETNAME`.
    pub name: String,
    /// Library name and version from `CLIENT SETINFO`.
    pub lib: (String, String),
    /// Thrown by `CLIENT KILL` from another connection, or at shutdown:
    /// closes this one.
    pub kill: KillSwitch,
    /// When the connection was accepted.
    pub created: Instant,
    /// Protocol in use.
    pub protocol: Protocol,
    /// What the connection is doing, shared with the registry's copy.
    pub activity: Arc<Activity>,
}

/// What a connection is doing, kept up to date without a lock: every command
/// costs two relaxed stores, so that `CLIENT LIST` shows each connection's
/// last command and idle time, which the registry's copy of [`ClientInfo`]
/// (refreshed only by connection commands) could not.
#[derive(Debug)]
pub struct Activity {
    /// Unix milliseconds of the last command; 0 before the first.
    last_ms: AtomicU64,
    /// The last command, as a [`commands::command_id`]; 0 before the first.
    cmd: AtomicU32,
    /// Commands queued since `MULTI`, or -1 outside a transaction.
    multi: AtomicI64,
    /// Keys named by the `WATCH`es in force (a repeated key counts each time).
    watched: AtomicU32,
}

impl Default for Activity {
    fn default() -> Self {
        Activity {
            last_ms: AtomicU64::new(0),
            cmd: AtomicU32::new(0),
            multi: AtomicI64::new(-1),
            watched: AtomicU32::new(0),
        }
    }
}

impl Activity {
    /// Records a command (a [`commands::command_id`]) run at `now_ms`.
    pub fn command(&self, id: u32, now_ms: u64) {
        self.cmd.store(id, Ordering::Relaxed);
        self.last_ms.store(now_ms, Ordering::Relaxed);
    }

    /// Records the transaction state: commands queued (`None` outside
    /// `MULTI`) and keys watched.
    pub fn transaction(&self, queued: Option<usize>, watched: usize) {
        self.multi.store(queued.map_or(-1, |n| n as i64), Ordering::Relaxed);
        self.watched.store(u32::try_from(watched).unwrap_or(u32::MAX), Ordering::Relaxed);
    }
}

impl ClientInfo {
    /// The connection's `CLIENT LIST` / `CLIENT INFO` line.
    pub(super) fn render(&self) -> String {
        let activity = &self.activity;
        let age = self.created.elapsed().as_secs();
        let idle = match activity.last_ms.load(Ordering::Relaxed) {
            0 => age,
            last => now_ms().saturating_sub(last) / 1000,
        };
        let multi = activity.multi.load(Ordering::Relaxed);
        let cmd = commands::command_name(activity.cmd.load(Ordering::Relaxed)).unwrap_or("NULL");
        format!(
            "id={} addr={} laddr={} fd={} name={} age={age} idle={idle} flags={} db=0 sub=0 psub=0 ssub=0 \
             multi={multi} watch={} qbuf=0 qbuf-free=0 argv-mem=0 multi-mem=0 rbs=0 rbp=0 obl=0 oll=0 omem=0 \
             tot-mem=0 events=r cmd={cmd} user=default redir=-1 resp={} lib-name={} lib-ver={}",
            self.id,
            self.addr,
            self.laddr.map(|a| a.to_string()).unwrap_or_default(),
            self.fd,
            self.name,
            if multi >= 0 { "x" } else { "N" },
            activity.watched.load(Ordering::Relaxed),
            match self.protocol {
                Protocol::Resp2 => 2,
                Protocol::Resp3 => 3,
            },
            self.lib.0,
            self.lib.1
        )
    }
}

/// Per-connection state.
#[derive(Debug)]
pub struct Session {
    /// Public view (also in the shared client registry).
    pub info: ClientInfo,
    /// True once `AUTH` succeeded (or when no password is required).
    pub authenticated: bool,
    /// True when this connection carries commands forwarded by a follower.
    pub forwarded: bool,
    /// Set by `QUIT`: close after replying.
    pub quit: bool,
}

pub(super) fn arg_str(b: &Bytes) -> String {
    String::from_utf8_lossy(b).into_owned()
}

pub(super) fn eq(a: &Bytes, b: &str) -> bool {
    a.eq_ignore_ascii_case(b.as_bytes())
}

pub(super) fn wrong_arity(name: &str) -> Frame {
    Frame::Error(format!("ERR wrong number of arguments for '{name}' command"))
}

impl Session {
    /// A session for a new connection from `addr` to `laddr` on socket `fd`.
    pub fn new(id: u64, addr: SocketAddr, laddr: Option<SocketAddr>, fd: i32, needs_auth: bool) -> Self {
        Session {
            info: ClientInfo {
                id,
                addr,
                laddr,
                fd,
                name: String::new(),
                lib: (String::new(), String::new()),
                kill: KillSwitch::default(),
                created: Instant::now(),
                protocol: Protocol::Resp2,
                activity: Arc::default(),
            },
            authenticated: !needs_auth,
            forwarded: false,
            quit: false,
        }
    }

    /// Commands allowed before authentication.
    pub fn allowed_unauthenticated(name: &str) -> bool {
        matches!(name, "auth" | "hello" | "quit" | "reset")
    }

    /// Runs a connection-level command.
    pub fn execute(&mut self, ctx: &ConnContext, name: &str, args: &[Bytes]) -> Frame {
        match name {
            "ping" => match args.len() {
                1 => Frame::Simple("PONG".into()),
                2 => Frame::Bulk(args[1].clone()),
                _ => wrong_arity("ping"),
            },
            "echo" => match args.len() {
                2 => Frame::Bulk(args[1].clone()),
                _ => wrong_arity("echo"),
            },
            "hello" => self.hello(ctx, args),
            "auth" => self.auth(ctx, args),
            "client" => self.client(ctx, args),
            "select" => match args.len() {
                2 => match arg_str(&args[1]).parse::<i64>() {
                    Ok(0) => Frame::ok(),
                    Ok(_) => Frame::Error("ERR DB index is out of range".into()),
                    Err(_) => Frame::Error("ERR value is not an integer or out of range".into()),
                },
                _ => wrong_arity("select"),
            },
            "quit" => {
                self.quit = true;
                Frame::ok()
            }
            "reset" => {
                self.info.protocol = Protocol::Resp2;
                self.info.name.clear();
                self.authenticated = ctx.requirepass.is_none();
                Frame::Simple("RESET".into())
            }
            "command" => commands::command_reply(args),
            "info" => Frame::Verbatim { format: *b"txt", text: Bytes::from(info::render(ctx, args)) },
            "config" => self.config(ctx, args),
            // Only MEMORY HELP gets here; MEMORY USAGE is a read.
            "memory" => Frame::Array(MEMORY_HELP.iter().map(|line| Frame::Simple((*line).into())).collect()),
            "time" => {
                let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
                Frame::Array(vec![
                    Frame::Bulk(Bytes::from(now.as_secs().to_string())),
                    Frame::Bulk(Bytes::from(now.subsec_micros().to_string())),
                ])
            }
            other => Frame::Error(format!("ERR unknown command '{other}'")),
        }
    }

    fn check_password(&mut self, ctx: &ConnContext, user: Option<&Bytes>, pass: &Bytes) -> Result<(), Frame> {
        let user_ok = user.is_none_or(|u| eq(u, "default"));
        let Some(expected) = &ctx.requirepass else {
            // As Redis: the default user then takes any password when named,
            // and there is no other user.
            return match (user, user_ok) {
                (None, _) => Err(Frame::Error(
                    "ERR AUTH <password> called without any password configured for the default user. \
                     Are you sure your configuration is correct?"
                        .into(),
                )),
                (Some(_), true) => Ok(()),
                (Some(_), false) => Err(wrong_pass()),
            };
        };
        if user_ok && pass.as_ref() == expected.as_bytes() {
            self.authenticated = true;
            Ok(())
        } else {
            Err(wrong_pass())
        }
    }

    fn auth(&mut self, ctx: &ConnContext, args: &[Bytes]) -> Frame {
        let r = match args.len() {
            2 => self.check_password(ctx, None, &args[1]),
            3 => self.check_password(ctx, Some(&args[1]), &args[2]),
            _ => return wrong_arity("auth"),
        };
        r.map_or_else(|e| e, |()| Frame::ok())
    }

    fn hello(&mut self, ctx: &ConnContext, args: &[Bytes]) -> Frame {
        let mut protocol = self.info.protocol;
        let mut i = 1;
        if let Some(v) = args.get(1) {
            protocol = match arg_str(v).parse::<i64>() {
                Ok(2) => Protocol::Resp2,
                Ok(3) => Protocol::Resp3,
                Ok(_) => return Frame::Error("NOPROTO unsupported protocol version".into()),
                Err(_) => return Frame::Error("ERR Protocol version is not an integer or out of range".into()),
            };
            i = 2;
        }
        let mut name = None;
        while i < args.len() {
            if eq(&args[i], "AUTH") && i + 2 < args.len() {
                if let Err(e) = self.check_password(ctx, Some(&args[i + 1]), &args[i + 2]) {
                    return e;
                }
                i += 3;
            } else if eq(&args[i], "SETNAME") && i + 1 < args.len() {
                name = Some(arg_str(&args[i + 1]));
                i += 2;
            } else {
                return Frame::Error(format!("ERR Syntax error in HELLO option '{}'", arg_str(&args[i])));
            }
        }
        if !self.authenticated {
            return Frame::Error("NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time".into());
        }
        self.info.protocol = protocol;
        if let Some(n) = name {
            self.info.name = n;
        }
        let role = if ctx.kv.node().is_leader() { "master" } else { "replica" };
        let kv = |k: &str, v: Frame| (Frame::Bulk(Bytes::from(k.to_string())), v);
        Frame::Map(vec![
            kv("server", Frame::Bulk(Bytes::from_static(b"redis"))),
            kv("version", Frame::Bulk(Bytes::from_static(info::REDIS_COMPAT_VERSION.as_bytes()))),
            kv("proto", Frame::Integer(if protocol == Protocol::Resp3 { 3 } else { 2 })),
            kv("id", Frame::Integer(self.info.id as i64)),
            kv("mode", Frame::Bulk(Bytes::from_static(b"standalone"))),
            kv("role", Frame::Bulk(Bytes::from_static(role.as_bytes()))),
            kv("modules", Frame::Array(Vec::new())),
        ])
    }

    fn config(&mut self, ctx: &ConnContext, args: &[Bytes]) -> Frame {
        let Some(sub) = args.get(1) else { return wrong_arity("config") };
        if eq(sub, "GET") {
            if args.len() < 3 {
                return Frame::Error("ERR wrong number of arguments for 'config|get' command".into());
            }
            let params = info::config_params(ctx);
            let mut out = Vec::new();
            for (k, v) in params {
                if args[2..].iter().any(|p| crate::commands::glob_match(p, k.as_bytes(), true)) {
                    out.push((Frame::Bulk(Bytes::from(k)), Frame::Bulk(Bytes::from(v))));
                }
            }
            Frame::Map(out)
        } else if eq(sub, "SET") || eq(sub, "RESETSTAT") || eq(sub, "REWRITE") {
            Frame::Error(format!(
                "ERR CONFIG {} is not supported: Seshat is configured by command-line flags (see `seshat serve --help`)",
                arg_str(sub).to_ascii_uppercase()
            ))
        } else if eq(sub, "HELP") {
            Frame::Array(vec![Frame::Simple("CONFIG GET <pattern> [<pattern> ...]".into())])
        } else {
            Frame::Error(format!("ERR unknown subcommand '{}'. Try CONFIG HELP.", arg_str(sub)))
        }
    }
}

/// `MEMORY HELP`: the subcommands this server implements, in Redis's wording.
const MEMORY_HELP: &[&str] = &[
    "MEMORY <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "USAGE <key> [SAMPLES <count>]",
    "    Return memory in bytes used by <key> and its value. Nested values are",
    "    sampled up to <count> times (default: 5, 0 means sample all).",
    "HELP",
    "    Print this help.",
];

/// Redis's reply to credentials that match no user.
fn wrong_pass() -> Frame {
    Frame::Error("WRONGPASS invalid username-password pair or user is disabled.".into())
}
