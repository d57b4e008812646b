//! `CLIENT` and its subcommands: naming and describing connections, listing
//! them, and closing them.

use bytes::Bytes;

use super::session::{arg_str, eq, wrong_arity, ClientInfo, Session};
use super::ConnContext;
use crate::commands::CommandError;
use crate::resp::Frame;

impl Session {
    /// `CLIENT <subcommand> ...`.
    pub(super) fn client(&mut self, ctx: &ConnContext, args: &[Bytes]) -> Frame {
        let Some(sub) = args.get(1) else { return wrong_arity("client") };
        let sub = arg_str(sub).to_ascii_lowercase();
        match (sub.as_str(), args.len()) {
            ("setname", 3) => {
                let name = arg_str(&args[2]);
                if !printable_without_spaces(&name) {
                    return Frame::Error(
                        "ERR Client names cannot contain spaces, newlines or special characters.".into(),
                    );
                }
                self.info.name = name;
                Frame::ok()
            }
            ("getname", 2) => {
                if self.info.name.is_empty() {
                    Frame::Null
                } else {
                    Frame::Bulk(Bytes::from(self.info.name.clone()))
                }
            }
            ("id", 2) => Frame::Integer(self.info.id as i64),
            ("info", 2) => Frame::Verbatim { format: *b"txt", text: Bytes::from(format!("{}\n", self.info.render())) },
            ("list", _) => match list_clients(ctx, &args[2..]) {
                Ok(clients) => {
                    let mut out = String::new();
                    for c in clients {
                        out.push_str(&c.render());
                        out.push('\n');
                    }
                    Frame::Verbatim { format: *b"txt", text: Bytes::from(out) }
                }
                Err(e) => e,
            },
            ("setinfo", 4) => {
                let attr = arg_str(&args[2]);
                let value = arg_str(&args[3]);
                let slot = match attr.to_ascii_lowercase().as_str() {
                    "lib-name" => &mut self.info.lib.0,
                    "lib-ver" => &mut self.info.lib.1,
                    _ => return Frame::Error(format!("ERR Unrecognized option '{attr}'")),
                };
                if !printable_without_spaces(&value) {
                    return Frame::Error(format!("ERR {attr} cannot contain spaces, newlines or special characters."));
                }
                *slot = value;
                Frame::ok()
            }
            ("kill", _) => self.kill(ctx, &args[2..]),
            ("help", 2) => Frame::Array(CLIENT_HELP.iter().map(|line| Frame::Simple((*line).into())).collect()),
            ("setname" | "getname" | "id" | "info" | "setinfo" | "help", _) => {
                Frame::Error(format!("ERR wrong number of arguments for 'client|{sub}' command"))
            }
            _ => Frame::Error(format!("ERR unknown subcommand '{}'. Try CLIENT HELP.", arg_str(&args[1]))),
        }
    }

    /// `CLIENT KILL addr` (the old form: `+OK`, or an error when no client has
    /// that address; it may close the caller) or `CLIENT KILL <filter> <value>
    /// ...` (the number of clients closed; the caller is spared unless
    /// `SKIPME no`). The caller is closed after its reply, like `QUIT`; any
    /// other client at once, mid-command if need be, as Redis does.
    fn kill(&mut self, ctx: &ConnContext, options: &[Bytes]) -> Frame {
        let (filter, old_form) = match options {
            [addr] => (KillFilter { addr: Some(arg_str(addr)), skip_me: false, ..KillFilter::default() }, true),
            _ => match KillFilter::parse(options) {
                Ok(filter) => (filter, false),
                Err(e) => return e,
            },
        };
        let targets: Vec<ClientInfo> =
            ctx.clients().values().filter(|c| filter.matches(c, self.info.id)).cloned().collect();
        for target in &targets {
            if target.id == self.info.id {
                self.quit = true;
            } else {
                target.kill.kill();
            }
        }
        match (old_form, targets.len()) {
            (true, 0) => Frame::Error("ERR No such client".into()),
            (true, _) => Frame::ok(),
            (false, n) => Frame::Integer(n as i64),
        }
    }
}

/// Which clients `CLIENT KILL` closes: those matching every filter given.
#[derive(Debug)]
struct KillFilter {
    id: Option<u64>,
    addr: Option<String>,
    laddr: Option<String>,
    /// False after a `TYPE` no Seshat client has (see [`is_normal_type`]).
    normal: bool,
    skip_me: bool,
}

impl Default for KillFilter {
    fn default() -> Self {
        KillFilter { id: None, addr: None, laddr: None, normal: true, skip_me: true }
    }
}

impl KillFilter {
    /// Parses `<filter> <value>` pairs left to right, failing on the first bad
    /// one with Redis's error.
    fn parse(options: &[Bytes]) -> Result<Self, Frame> {
        let mut filter = KillFilter::default();
        for pair in options.chunks(2) {
            let [name, value] = pair else { return Err(syntax_error()) };
            match arg_str(name).to_ascii_lowercase().as_str() {
                "id" => {
                    let id = arg_str(value).parse::<i64>().ok().filter(|id| *id > 0);
                    let id = id.ok_or_else(|| Frame::Error("ERR client-id should be greater than 0".into()))?;
                    filter.id = Some(id as u64);
                }
                "type" => filter.normal = is_normal_type(value)?,
                "addr" => filter.addr = Some(arg_str(value)),
                "laddr" => filter.laddr = Some(arg_str(value)),
                "user" if eq(value, "default") => {}
                "user" => return Err(Frame::Error(format!("ERR No such user '{}'", arg_str(value)))),
                "skipme" if eq(value, "yes") => filter.skip_me = true,
                "skipme" if eq(value, "no") => filter.skip_me = false,
                _ => return Err(syntax_error()),
            }
        }
        Ok(filter)
    }

    fn matches(&self, client: &ClientInfo, caller: u64) -> bool {
        self.normal
            && !(self.skip_me && client.id == caller)
            && self.id.is_none_or(|id| id == client.id)
            && self.addr.as_deref().is_none_or(|addr| addr == client.addr.to_string())
            && self.laddr.as_deref().is_none_or(|laddr| client.laddr.is_some_and(|l| l.to_string() == laddr))
    }
}

fn syntax_error() -> Frame {
    CommandError::Syntax.to_frame()
}

/// Whether `kind`, a Redis client type, is the one every Seshat client has:
/// `normal`. There are no masters, replicas or subscribers among RESP
/// connections, so those select nobody; an unknown type gets Redis's error.
fn is_normal_type(kind: &Bytes) -> Result<bool, Frame> {
    match arg_str(kind).to_ascii_lowercase().as_str() {
        "normal" => Ok(true),
        "master" | "replica" | "slave" | "pubsub" => Ok(false),
        _ => Err(Frame::Error(format!("ERR Unknown client type '{}'", arg_str(kind)))),
    }
}

/// `CLIENT HELP`: the subcommands this server implements, in Redis's wording.
const CLIENT_HELP: &[&str] = &[
    "CLIENT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "GETNAME",
    "    Return the name of the current connection.",
    "ID",
    "    Return the ID of the current connection.",
    "INFO",
    "    Return information about the current client connection.",
    "KILL <ip:port>",
    "    Kill connection made from <ip:port>.",
    "KILL <option> <value> [<option> <value> [...]]",
    "    Kill connections. Options are:",
    "    * ADDR (<ip:port>|<unixsocket>:0)",
    "      Kill connections made from the specified address",
    "    * LADDR (<ip:port>|<unixsocket>:0)",
    "      Kill connections made to specified local address",
    "    * TYPE (NORMAL|MASTER|REPLICA|PUBSUB)",
    "      Kill connections by type.",
    "    * USER <username>",
    "      Kill connections authenticated by <username>.",
    "    * SKIPME (YES|NO)",
    "      Skip killing current connection (default: yes).",
    "    * ID <client-id>",
    "      Kill connections by client id.",
    "LIST [TYPE (NORMAL|MASTER|REPLICA|PUBSUB)] [ID <id> [<id> ...]]",
    "    Return information about client connections. Every Seshat client is NORMAL.",
    "SETINFO <option> <value>",
    "    Set client meta attr. Options are:",
    "    * LIB-NAME: the client lib name.",
    "    * LIB-VER: the client lib version.",
    "SETNAME <name>",
    "    Assign the name <name> to the current connection.",
    "HELP",
    "    Print this help.",
];

/// The connections `CLIENT LIST [TYPE type | ID id ...]` shows, with Redis's
/// errors: every Seshat client is of type `normal` (there are no replicas,
/// masters or subscribers among RESP connections), and `ID` lists the clients
/// in the order asked, skipping ids that are not connected.
fn list_clients(ctx: &ConnContext, options: &[Bytes]) -> Result<Vec<ClientInfo>, Frame> {
    let clients = ctx.clients();
    match options {
        [] => {}
        [kw, kind] if eq(kw, "TYPE") => {
            if !is_normal_type(kind)? {
                return Ok(Vec::new());
            }
        }
        [kw, ids @ ..] if eq(kw, "ID") && !ids.is_empty() => {
            let mut shown = Vec::new();
            for id in ids {
                let id = arg_str(id).parse::<i64>().map_err(|_| Frame::Error("ERR Invalid client ID".into()))?;
                shown.extend(u64::try_from(id).ok().and_then(|id| clients.get(&id)).cloned());
            }
            return Ok(shown);
        }
        _ => return Err(syntax_error()),
    }
    let mut all: Vec<ClientInfo> = clients.values().cloned().collect();
    all.sort_by_key(|c| c.id);
    Ok(all)
}

/// Redis's rule for client names and library attributes: printable ASCII, no
/// spaces, so that `CLIENT LIST` stays one `key=value` field per token.
fn printable_without_spaces(s: &str) -> bool {
    s.bytes().all(|b| b > b' ' && b <= b'~')
}
