//! The command table: one entry per command, sorted by name, carrying what
//! COMMAND reports (Redis 7 metadata) and the command's argument parser.

use super::{bits, keys, parse_connection, strings, ParseFn};

/// Who executes a command.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum CommandKind {
    /// The connection layer (PING, HELLO, AUTH, COMMAND, INFO ...).
    Connection,
    /// A read of the local store.
    Read,
    /// A replicated write.
    Write,
}

/// A Redis 7 key specification (COMMAND INFO / DOCS), begin-search by index and
/// find-keys by range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeySpec {
    /// Access flags such as `RW`, `access`, `update`.
    pub flags: &'static [&'static str],
    /// Index of the first key.
    pub begin_index: i32,
    /// Last key relative to the first (-1: up to the last argument).
    pub last_key: i32,
    /// Distance between keys.
    pub key_step: i32,
}

impl KeySpec {
    const fn one(flags: &'static [&'static str]) -> KeySpec {
        KeySpec { flags, begin_index: 1, last_key: 0, key_step: 1 }
    }

    const fn all(flags: &'static [&'static str], key_step: i32) -> KeySpec {
        KeySpec { flags, begin_index: 1, last_key: -1, key_step }
    }
}

/// One command's metadata, as Redis 7 describes it.
#[derive(Debug)]
pub struct CommandSpec {
    /// Lower-case name (`container|sub` for subcommands).
    pub name: &'static str,
    /// Redis arity: positive = exact argument count, negative = at least.
    pub arity: i32,
    /// Command flags (`write`, `readonly`, `fast`, `denyoom` ...).
    pub flags: &'static [&'static str],
    /// Index of the first key argument (0: none).
    pub first_key: i32,
    /// Index of the last key argument (negative: from the end).
    pub last_key: i32,
    /// Step between key arguments.
    pub step: i32,
    /// Who executes it.
    pub kind: CommandKind,
    /// ACL categories (`@read`, `@string` ...).
    pub acl_categories: &'static [&'static str],
    /// Command tips (`nondeterministic_output` ...).
    pub tips: &'static [&'static str],
    /// Key specifications.
    pub key_specs: &'static [KeySpec],
    /// One-line description (COMMAND DOCS).
    pub summary: &'static str,
    /// First Redis version with the command.
    pub since: &'static str,
    /// Documentation group (`string`, `generic`, `connection`, `server`).
    pub group: &'static str,
    /// Time complexity text.
    pub complexity: &'static str,
    /// Subcommands of a container command, sorted by name.
    pub subcommands: &'static [CommandSpec],
    pub(crate) parse: ParseFn,
}

/// Commands are identified by their (unique) name.
impl PartialEq for CommandSpec {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}

impl Eq for CommandSpec {}

impl CommandSpec {
    /// The subcommand named `name` (case-insensitive), for container commands.
    pub fn subcommand(&self, name: &[u8]) -> Option<&'static CommandSpec> {
        self.subcommands.iter().find(|sub| {
            let short = sub.name.split_once('|').map_or(sub.name, |(_, s)| s);
            short.as_bytes().eq_ignore_ascii_case(name)
        })
    }

    /// True for commands that change data.
    pub fn is_write(&self) -> bool {
        self.kind == CommandKind::Write
    }

    /// Indices of the key arguments in a request of `argc` arguments.
    pub fn key_positions(&self, argc: usize) -> impl Iterator<Item = usize> {
        let first = self.first_key.max(0) as usize;
        let last = if self.last_key < 0 { argc as i64 + i64::from(self.last_key) } else { i64::from(self.last_key) };
        let last = usize::try_from(last).unwrap_or(0).min(argc.saturating_sub(1));
        let step = self.step.max(1) as usize;
        // first_key 0: the command has no key arguments.
        let end = if first == 0 { 0 } else { last + 1 };
        (first..end).step_by(step)
    }
}

/// Finds a command by name, case-insensitively, without allocating
/// (binary search over the sorted table).
pub fn lookup(name: &[u8]) -> Option<&'static CommandSpec> {
    TABLE
        .binary_search_by(|spec| spec.name.bytes().cmp(name.iter().map(u8::to_ascii_lowercase)))
        .ok()
        .map(|i| &TABLE[i])
}

/// Every top-level command, sorted by name.
pub fn table() -> &'static [CommandSpec] {
    TABLE
}

/// A command (and, for container commands, its subcommand) as a small
/// number, for bookkeeping that must not lock: `CLIENT LIST`'s `cmd` field is
/// stored per request in an atomic. `None` for a spec not in the table.
pub fn command_id(spec: &'static CommandSpec, sub: Option<&'static CommandSpec>) -> Option<u32> {
    let top = TABLE.binary_search_by(|s| s.name.cmp(spec.name)).ok()?;
    let sub = sub.and_then(|sub| spec.subcommands.iter().position(|s| std::ptr::eq(s, sub))).map_or(0, |i| i + 1);
    Some(((top as u32 + 1) << 8) | sub as u32)
}

/// The full name (`get`, `client|list`) of a [`command_id`].
pub fn command_name(id: u32) -> Option<&'static str> {
    let top = TABLE.get(((id >> 8) as usize).checked_sub(1)?)?;
    match (id & 0xFF) as usize {
        0 => Some(top.name),
        sub => top.subcommands.get(sub - 1).map(|s| s.name),
    }
}

use CommandKind::{Connection, Read, Write};

const RO: &[&str] = &["readonly"];
const RO_FAST: &[&str] = &["readonly", "fast"];
const W: &[&str] = &["write"];
const W_FAST: &[&str] = &["write", "fast"];
const W_OOM: &[&str] = &["write", "denyoom"];
const W_OOM_FAST: &[&str] = &["write", "denyoom", "fast"];
const CONN_FAST: &[&str] = &["noscript", "loading", "stale", "fast", "no_auth", "allow_busy"];
const LOADING_STALE: &[&str] = &["loading", "stale"];
const LOADING_STALE_FAST: &[&str] = &["loading", "stale", "fast"];
const SUB: &[&str] = &["noscript", "loading", "stale"];
const SUB_ADMIN: &[&str] = &["admin", "noscript", "loading", "stale"];

const STR_READ_FAST: &[&str] = &["@read", "@string", "@fast"];
const STR_READ_SLOW: &[&str] = &["@read", "@string", "@slow"];
const STR_WRITE_FAST: &[&str] = &["@write", "@string", "@fast"];
const STR_WRITE_SLOW: &[&str] = &["@write", "@string", "@slow"];
const KS_READ_FAST: &[&str] = &["@keyspace", "@read", "@fast"];
const KS_READ_SLOW: &[&str] = &["@keyspace", "@read", "@slow"];
const KS_WRITE_FAST: &[&str] = &["@keyspace", "@write", "@fast"];
const KS_WRITE_SLOW: &[&str] = &["@keyspace", "@write", "@slow"];
const BITMAP_READ_FAST: &[&str] = &["@read", "@bitmap", "@fast"];
const BITMAP_READ_SLOW: &[&str] = &["@read", "@bitmap", "@slow"];
const BITMAP_WRITE_SLOW: &[&str] = &["@write", "@bitmap", "@slow"];
const KS_DANGEROUS: &[&str] = &["@keyspace", "@write", "@slow", "@dangerous"];
const CONN_CAT: &[&str] = &["@fast", "@connection"];
const TX_FLAGS: &[&str] = &["noscript", "loading", "stale", "fast", "allow_busy"];
const TX_FAST: &[&str] = &["@fast", "@transaction"];
const SLOW_CONN: &[&str] = &["@slow", "@connection"];
const ADMIN_CONN: &[&str] = &["@admin", "@slow", "@dangerous", "@connection"];

const RO_ACCESS: &[KeySpec] = &[KeySpec::one(&["RO", "access"])];
const RO_ONLY: &[KeySpec] = &[KeySpec::one(&["RO"])];
const RW_UPDATE: &[KeySpec] = &[KeySpec::one(&["RW", "access", "update"])];
const RW_NOACCESS: &[KeySpec] = &[KeySpec::one(&["RW", "update"])];
const OW_UPDATE: &[KeySpec] = &[KeySpec::one(&["OW", "update"])];

/// Defaults for the fields most entries leave alone.
const BASE: CommandSpec = CommandSpec {
    name: "",
    arity: 0,
    flags: &[],
    first_key: 0,
    last_key: 0,
    step: 0,
    kind: Connection,
    acl_categories: &[],
    tips: &[],
    key_specs: &[],
    summary: "",
    since: "1.0.0",
    group: "generic",
    complexity: "O(1)",
    subcommands: &[],
    parse: parse_connection,
};

/// A string command on one key (argument 1).
const STRING_KEY: CommandSpec = CommandSpec { first_key: 1, last_key: 1, step: 1, group: "string", ..BASE };
/// A bitmap command on one key (argument 1).
const BITMAP_KEY: CommandSpec = CommandSpec { first_key: 1, last_key: 1, step: 1, group: "bitmap", ..BASE };
/// A keyspace command on one key (argument 1).
const GENERIC_KEY: CommandSpec = CommandSpec { first_key: 1, last_key: 1, step: 1, ..BASE };
/// A connection-group command handled by the connection layer.
const CONNECTION: CommandSpec = CommandSpec { group: "connection", acl_categories: CONN_CAT, ..BASE };
/// MULTI, EXEC, DISCARD, WATCH, UNWATCH: handled by the connection layer.
const TRANSACTION: CommandSpec = CommandSpec { group: "transactions", ..BASE };

#[rustfmt::skip]
static TABLE: &[CommandSpec] = &[
    CommandSpec { name: "append", arity: 3, flags: W_OOM_FAST, kind: Write, acl_categories: STR_WRITE_FAST, key_specs: &[KeySpec::one(&["RW", "insert"])], summary: "Append a value to a key", since: "2.0.0", parse: strings::append, ..STRING_KEY },
    CommandSpec { name: "auth", arity: -2, flags: CONN_FAST, summary: "Authenticate to the server", complexity: "O(N) where N is the number of passwords defined for the user", ..CONNECTION },
    CommandSpec { name: "bitcount", arity: -2, flags: RO, kind: Read, acl_categories: BITMAP_READ_SLOW, key_specs: RO_ACCESS, summary: "Count set bits in a string", since: "2.6.0", complexity: "O(N)", parse: bits::bitcount, ..BITMAP_KEY },
    CommandSpec { name: "bitop", arity: -4, flags: W_OOM, first_key: 2, last_key: -1, step: 1, kind: Write, acl_categories: BITMAP_WRITE_SLOW, key_specs: &[KeySpec { begin_index: 2, ..KeySpec::one(&["OW", "update"]) }, KeySpec { begin_index: 3, ..KeySpec::all(&["RO", "access"], 1) }], summary: "Perform bitwise operations between strings", since: "2.6.0", complexity: "O(N)", parse: bits::bitop, group: "bitmap", ..BASE },
    CommandSpec { name: "bitpos", arity: -3, flags: RO, kind: Read, acl_categories: BITMAP_READ_SLOW, key_specs: RO_ACCESS, summary: "Find first bit set or clear in a string", since: "2.8.7", complexity: "O(N)", parse: bits::bitpos, ..BITMAP_KEY },
    CommandSpec { name: "client", arity: -2, acl_categories: &["@slow"], summary: "A container for client connection commands", since: "2.4.0", complexity: "Depends on subcommand.", subcommands: CLIENT_SUBCOMMANDS, ..CONNECTION },
    CommandSpec { name: "command", arity: -1, flags: LOADING_STALE, acl_categories: SLOW_CONN, tips: &["nondeterministic_output_order"], summary: "Get array of Redis command details", since: "2.8.13", group: "server", complexity: "O(N) where N is the total number of Redis commands", subcommands: COMMAND_SUBCOMMANDS, ..CONNECTION },
    CommandSpec { name: "config", arity: -2, acl_categories: &["@slow"], summary: "A container for server configuration commands", since: "2.0.0", group: "server", complexity: "Depends on subcommand.", subcommands: CONFIG_SUBCOMMANDS, ..CONNECTION },
    CommandSpec { name: "copy", arity: -3, flags: W_OOM, last_key: 2, kind: Write, acl_categories: KS_WRITE_SLOW, key_specs: &[KeySpec::one(&["RO", "access"]), KeySpec { begin_index: 2, ..KeySpec::one(&["OW", "update"]) }], summary: "Copy a key", since: "6.2.0", complexity: "O(N) worst case for collections, where N is the number of nested items. O(1) for string values.", parse: keys::copy, ..GENERIC_KEY },
    CommandSpec { name: "dbsize", arity: 1, flags: RO_FAST, kind: Read, acl_categories: KS_READ_FAST, tips: &["request_policy:all_shards", "response_policy:agg_sum"], summary: "Return the number of keys in the selected database", group: "server", parse: keys::dbsize, ..BASE },
    CommandSpec { name: "decr", arity: 2, flags: W_OOM_FAST, kind: Write, acl_categories: STR_WRITE_FAST, key_specs: RW_UPDATE, summary: "Decrement the integer value of a key by one", parse: strings::incr_family, ..STRING_KEY },
    CommandSpec { name: "decrby", arity: 3, flags: W_OOM_FAST, kind: Write, acl_categories: STR_WRITE_FAST, key_specs: RW_UPDATE, summary: "Decrement the integer value of a key by the given number", parse: strings::incr_family, ..STRING_KEY },
    CommandSpec { name: "del", arity: -2, flags: W, last_key: -1, kind: Write, acl_categories: KS_WRITE_SLOW, tips: &["request_policy:multi_shard", "response_policy:agg_sum"], key_specs: &[KeySpec::all(&["RM", "delete"], 1)], summary: "Delete a key", complexity: "O(N) where N is the number of keys that will be removed.", parse: keys::del, ..GENERIC_KEY },
    CommandSpec { name: "discard", arity: 1, flags: TX_FLAGS, acl_categories: TX_FAST, summary: "Discard all commands issued after MULTI", since: "2.0.0", complexity: "O(N), when N is the number of queued commands", ..TRANSACTION },
    CommandSpec { name: "echo", arity: 2, flags: LOADING_STALE_FAST, summary: "Echo the given string", ..CONNECTION },
    CommandSpec { name: "exec", arity: 1, flags: &["noscript", "loading", "stale", "skip_slowlog"], acl_categories: &["@slow", "@transaction"], summary: "Execute all commands issued after MULTI", since: "1.2.0", complexity: "Depends on commands in the transaction", ..TRANSACTION },
    CommandSpec { name: "exists", arity: -2, flags: RO_FAST, last_key: -1, kind: Read, acl_categories: KS_READ_FAST, tips: &["request_policy:multi_shard", "response_policy:agg_sum"], key_specs: &[KeySpec::all(&["RO"], 1)], summary: "Determine if a key exists", complexity: "O(N) where N is the number of keys to check.", parse: keys::exists, ..GENERIC_KEY },
    CommandSpec { name: "expire", arity: -3, flags: W_FAST, kind: Write, acl_categories: KS_WRITE_FAST, key_specs: RW_NOACCESS, summary: "Set a key's time to live in seconds", parse: keys::expire, ..GENERIC_KEY },
    CommandSpec { name: "expireat", arity: -3, flags: W_FAST, kind: Write, acl_categories: KS_WRITE_FAST, key_specs: RW_NOACCESS, summary: "Set the expiration for a key as a UNIX timestamp", since: "1.2.0", parse: keys::expire, ..GENERIC_KEY },
    CommandSpec { name: "expiretime", arity: 2, flags: RO_FAST, kind: Read, acl_categories: KS_READ_FAST, key_specs: RO_ACCESS, summary: "Get the expiration Unix timestamp for a key", since: "7.0.0", parse: keys::ttl, ..GENERIC_KEY },
    CommandSpec { name: "flushall", arity: -1, flags: W, kind: Write, acl_categories: KS_DANGEROUS, tips: &["request_policy:all_shards", "response_policy:all_succeeded"], summary: "Remove all keys from all databases", group: "server", complexity: "O(N) where N is the total number of keys in all databases", parse: keys::flush, ..BASE },
    CommandSpec { name: "flushdb", arity: -1, flags: W, kind: Write, acl_categories: KS_DANGEROUS, tips: &["request_policy:all_shards", "response_policy:all_succeeded"], summary: "Remove all keys from the current database", group: "server", complexity: "O(N) where N is the number of keys in the selected database", parse: keys::flush, ..BASE },
    CommandSpec { name: "get", arity: 2, flags: RO_FAST, kind: Read, acl_categories: STR_READ_FAST, key_specs: RO_ACCESS, summary: "Get the value of a key", parse: strings::get, ..STRING_KEY },
    CommandSpec { name: "getbit", arity: 3, flags: RO_FAST, kind: Read, acl_categories: BITMAP_READ_FAST, key_specs: RO_ACCESS, summary: "Returns the bit value at offset in the string value stored at key", since: "2.2.0", parse: bits::getbit, ..BITMAP_KEY },
    CommandSpec { name: "getdel", arity: 2, flags: W_FAST, kind: Write, acl_categories: STR_WRITE_FAST, key_specs: &[KeySpec::one(&["RW", "access", "delete"])], summary: "Get the value of a key and delete the key", since: "6.2.0", parse: strings::getdel, ..STRING_KEY },
    CommandSpec { name: "getex", arity: -2, flags: W_FAST, kind: Write, acl_categories: STR_WRITE_FAST, key_specs: RW_UPDATE, summary: "Get the value of a key and optionally set its expiration", since: "6.2.0", parse: strings::getex, ..STRING_KEY },
    CommandSpec { name: "getrange", arity: 4, flags: RO, kind: Read, acl_categories: STR_READ_SLOW, key_specs: RO_ACCESS, summary: "Get a substring of the string stored at a key", since: "2.4.0", complexity: "O(N) where N is the length of the returned string.", parse: strings::getrange, ..STRING_KEY },
    CommandSpec { name: "getset", arity: 3, flags: W_OOM_FAST, kind: Write, acl_categories: STR_WRITE_FAST, key_specs: RW_UPDATE, summary: "Set the string value of a key and return its old value", parse: strings::getset, ..STRING_KEY },
    CommandSpec { name: "hello", arity: -1, flags: CONN_FAST, summary: "Handshake with Redis", since: "6.0.0", ..CONNECTION },
    CommandSpec { name: "incr", arity: 2, flags: W_OOM_FAST, kind: Write, acl_categories: STR_WRITE_FAST, key_specs: RW_UPDATE, summary: "Increment the integer value of a key by one", parse: strings::incr_family, ..STRING_KEY },
    CommandSpec { name: "incrby", arity: 3, flags: W_OOM_FAST, kind: Write, acl_categories: STR_WRITE_FAST, key_specs: RW_UPDATE, summary: "Increment the integer value of a key by the given amount", parse: strings::incr_family, ..STRING_KEY },
    CommandSpec { name: "incrbyfloat", arity: 3, flags: W_OOM_FAST, kind: Write, acl_categories: STR_WRITE_FAST, key_specs: RW_UPDATE, summary: "Increment the float value of a key by the given amount", since: "2.6.0", parse: strings::incrbyfloat, ..STRING_KEY },
    CommandSpec { name: "info", arity: -1, flags: LOADING_STALE, acl_categories: &["@slow", "@dangerous"], tips: &["nondeterministic_output"], summary: "Get information and statistics about the server", group: "server", ..CONNECTION },
    CommandSpec { name: "keys", arity: 2, flags: RO, kind: Read, acl_categories: &["@keyspace", "@read", "@slow", "@dangerous"], tips: &["request_policy:all_shards", "nondeterministic_output_order"], summary: "Find all keys matching the given pattern", complexity: "O(N) with N being the number of keys in the database", parse: keys::keys, ..BASE },
    CommandSpec { name: "memory", arity: -2, acl_categories: &["@slow"], summary: "A container for memory diagnostics commands", since: "4.0.0", group: "server", complexity: "Depends on subcommand.", subcommands: MEMORY_SUBCOMMANDS, parse: keys::memory, kind: Read, ..BASE },
    CommandSpec { name: "mget", arity: -2, flags: RO_FAST, last_key: -1, kind: Read, acl_categories: STR_READ_FAST, tips: &["request_policy:multi_shard"], key_specs: &[KeySpec::all(&["RO", "access"], 1)], summary: "Get the values of all the given keys", complexity: "O(N) where N is the number of keys to retrieve.", parse: strings::mget, ..STRING_KEY },
    CommandSpec { name: "mset", arity: -3, flags: W_OOM, last_key: -1, step: 2, kind: Write, acl_categories: STR_WRITE_SLOW, tips: &["request_policy:multi_shard", "response_policy:all_succeeded"], key_specs: &[KeySpec::all(&["OW", "update"], 2)], summary: "Set multiple keys to multiple values", since: "1.0.1", complexity: "O(N) where N is the number of keys to set.", parse: strings::mset, ..STRING_KEY },
    CommandSpec { name: "msetnx", arity: -3, flags: W_OOM, last_key: -1, step: 2, kind: Write, acl_categories: STR_WRITE_SLOW, tips: &["request_policy:multi_shard", "response_policy:agg_min"], key_specs: &[KeySpec::all(&["OW", "insert"], 2)], summary: "Set multiple keys to multiple values, only if none of the keys exist", since: "1.0.1", complexity: "O(N) where N is the number of keys to set.", parse: strings::mset, ..STRING_KEY },
    CommandSpec { name: "multi", arity: 1, flags: TX_FLAGS, acl_categories: TX_FAST, summary: "Mark the start of a transaction block", since: "1.2.0", ..TRANSACTION },
    CommandSpec { name: "persist", arity: 2, flags: W_FAST, kind: Write, acl_categories: KS_WRITE_FAST, key_specs: RW_NOACCESS, summary: "Remove the expiration from a key", since: "2.2.0", parse: keys::persist, ..GENERIC_KEY },
    CommandSpec { name: "pexpire", arity: -3, flags: W_FAST, kind: Write, acl_categories: KS_WRITE_FAST, key_specs: RW_NOACCESS, summary: "Set a key's time to live in milliseconds", since: "2.6.0", parse: keys::expire, ..GENERIC_KEY },
    CommandSpec { name: "pexpireat", arity: -3, flags: W_FAST, kind: Write, acl_categories: KS_WRITE_FAST, key_specs: RW_NOACCESS, summary: "Set the expiration for a key as a UNIX timestamp specified in milliseconds", since: "2.6.0", parse: keys::expire, ..GENERIC_KEY },
    CommandSpec { name: "pexpiretime", arity: 2, flags: RO_FAST, kind: Read, acl_categories: KS_READ_FAST, key_specs: RO_ACCESS, summary: "Get the expiration Unix timestamp for a key in milliseconds", since: "7.0.0", parse: keys::ttl, ..GENERIC_KEY },
    CommandSpec { name: "ping", arity: -1, flags: &["fast"], tips: &["request_policy:all_shards", "response_policy:all_succeeded"], summary: "Ping the server", ..CONNECTION },
    CommandSpec { name: "psetex", arity: 4, flags: W_OOM, kind: Write, acl_categories: STR_WRITE_SLOW, key_specs: OW_UPDATE, summary: "Set the value and expiration in milliseconds of a key", since: "2.6.0", parse: strings::setex, ..STRING_KEY },
    CommandSpec { name: "pttl", arity: 2, flags: RO_FAST, kind: Read, acl_categories: KS_READ_FAST, tips: &["nondeterministic_output"], key_specs: RO_ACCESS, summary: "Get the time to live for a key in milliseconds", since: "2.6.0", parse: keys::ttl, ..GENERIC_KEY },
    CommandSpec { name: "quit", arity: -1, flags: CONN_FAST, summary: "Close the connection", ..CONNECTION },
    CommandSpec { name: "randomkey", arity: 1, flags: RO, kind: Read, acl_categories: KS_READ_SLOW, tips: &["request_policy:all_shards", "nondeterministic_output"], summary: "Return a random key from the keyspace", parse: keys::randomkey, ..BASE },
    CommandSpec { name: "rename", arity: 3, flags: W, last_key: 2, kind: Write, acl_categories: KS_WRITE_SLOW, key_specs: &[KeySpec::one(&["RW", "access", "delete"]), KeySpec { begin_index: 2, ..KeySpec::one(&["OW", "update"]) }], summary: "Rename a key", parse: keys::rename, ..GENERIC_KEY },
    CommandSpec { name: "renamenx", arity: 3, flags: W_FAST, last_key: 2, kind: Write, acl_categories: KS_WRITE_FAST, key_specs: &[KeySpec::one(&["RW", "access", "delete"]), KeySpec { begin_index: 2, ..KeySpec::one(&["OW", "insert"]) }], summary: "Rename a key, only if the new key does not exist", parse: keys::rename, ..GENERIC_KEY },
    CommandSpec { name: "reset", arity: 1, flags: CONN_FAST, summary: "Reset the connection", since: "6.2.0", ..CONNECTION },
    CommandSpec { name: "scan", arity: -2, flags: RO, kind: Read, acl_categories: KS_READ_SLOW, tips: &["nondeterministic_output", "request_policy:special"], summary: "Incrementally iterate the keys space", since: "2.8.0", complexity: "O(1) for every call. O(N) for a complete iteration.", parse: keys::scan, ..BASE },
    CommandSpec { name: "select", arity: 2, flags: LOADING_STALE_FAST, summary: "Change the selected database for the current connection", ..CONNECTION },
    CommandSpec { name: "set", arity: -3, flags: W_OOM, kind: Write, acl_categories: STR_WRITE_SLOW, key_specs: &[KeySpec::one(&["RW", "access", "update", "variable_flags"])], summary: "Set the string value of a key", parse: strings::set, ..STRING_KEY },
    CommandSpec { name: "setbit", arity: 4, flags: W_OOM, kind: Write, acl_categories: BITMAP_WRITE_SLOW, key_specs: RW_UPDATE, summary: "Sets or clears the bit at offset in the string value stored at key", since: "2.2.0", parse: bits::setbit, ..BITMAP_KEY },
    CommandSpec { name: "setex", arity: 4, flags: W_OOM, kind: Write, acl_categories: STR_WRITE_SLOW, key_specs: OW_UPDATE, summary: "Set the value and expiration of a key", since: "2.0.0", parse: strings::setex, ..STRING_KEY },
    CommandSpec { name: "setnx", arity: 3, flags: W_OOM_FAST, kind: Write, acl_categories: STR_WRITE_FAST, key_specs: &[KeySpec::one(&["OW", "insert"])], summary: "Set the value of a key, only if the key does not exist", parse: strings::setnx, ..STRING_KEY },
    CommandSpec { name: "setrange", arity: 4, flags: W_OOM, kind: Write, acl_categories: STR_WRITE_SLOW, key_specs: RW_NOACCESS, summary: "Overwrite part of a string at key starting at the specified offset", since: "2.2.0", complexity: "O(M) with M being the length of the value argument.", parse: strings::setrange, ..STRING_KEY },
    CommandSpec { name: "strlen", arity: 2, flags: RO_FAST, kind: Read, acl_categories: STR_READ_FAST, key_specs: RO_ONLY, summary: "Get the length of the value stored in a key", since: "2.2.0", parse: strings::strlen, ..STRING_KEY },
    CommandSpec { name: "substr", arity: 4, flags: RO, kind: Read, acl_categories: STR_READ_SLOW, key_specs: RO_ACCESS, summary: "Get a substring of the string stored at a key", complexity: "O(N) where N is the length of the returned string.", parse: strings::getrange, ..STRING_KEY },
    CommandSpec { name: "time", arity: 1, flags: LOADING_STALE_FAST, acl_categories: &["@fast"], tips: &["nondeterministic_output"], summary: "Return the current server time", since: "2.6.0", group: "server", ..CONNECTION },
    CommandSpec { name: "touch", arity: -2, flags: RO_FAST, last_key: -1, kind: Read, acl_categories: KS_READ_FAST, tips: &["request_policy:multi_shard", "response_policy:agg_sum"], key_specs: &[KeySpec::all(&["RO"], 1)], summary: "Alters the last access time of a key(s). Returns the number of existing keys specified.", since: "3.2.1", complexity: "O(N) where N is the number of keys that will be touched.", parse: keys::exists, ..GENERIC_KEY },
    CommandSpec { name: "ttl", arity: 2, flags: RO_FAST, kind: Read, acl_categories: KS_READ_FAST, tips: &["nondeterministic_output"], key_specs: RO_ACCESS, summary: "Get the time to live for a key in seconds", parse: keys::ttl, ..GENERIC_KEY },
    CommandSpec { name: "type", arity: 2, flags: RO_FAST, kind: Read, acl_categories: KS_READ_FAST, key_specs: RO_ONLY, summary: "Determine the type stored at key", parse: keys::type_of, ..GENERIC_KEY },
    CommandSpec { name: "unlink", arity: -2, flags: W_FAST, last_key: -1, kind: Write, acl_categories: KS_WRITE_FAST, tips: &["request_policy:multi_shard", "response_policy:agg_sum"], key_specs: &[KeySpec::all(&["RM", "delete"], 1)], summary: "Delete a key asynchronously in another thread. Otherwise it is just as DEL, but non blocking.", since: "4.0.0", complexity: "O(1) for each key removed regardless of its size.", parse: keys::del, ..GENERIC_KEY },
    CommandSpec { name: "unwatch", arity: 1, flags: TX_FLAGS, acl_categories: TX_FAST, summary: "Forget about all watched keys", since: "2.2.0", ..TRANSACTION },
    CommandSpec { name: "watch", arity: -2, flags: TX_FLAGS, first_key: 1, last_key: -1, step: 1, acl_categories: TX_FAST, key_specs: &[KeySpec::all(&["RO"], 1)], summary: "Monitor changes to keys to determine execution of the MULTI/EXEC block", since: "2.2.0", complexity: "O(1) for every key.", ..TRANSACTION },
];

#[rustfmt::skip]
static CLIENT_SUBCOMMANDS: &[CommandSpec] = &[
    CommandSpec { name: "client|getname", arity: 2, flags: SUB, acl_categories: SLOW_CONN, summary: "Get the current connection name", since: "2.6.9", ..CONNECTION },
    CommandSpec { name: "client|help", arity: 2, flags: LOADING_STALE, acl_categories: SLOW_CONN, summary: "Show helpful text about the different subcommands", since: "5.0.0", ..CONNECTION },
    CommandSpec { name: "client|id", arity: 2, flags: SUB, acl_categories: SLOW_CONN, summary: "Returns the client ID for the current connection", since: "5.0.0", ..CONNECTION },
    CommandSpec { name: "client|info", arity: 2, flags: SUB, acl_categories: SLOW_CONN, tips: &["nondeterministic_output"], summary: "Returns information about the current client connection.", since: "6.2.0", ..CONNECTION },
    CommandSpec { name: "client|kill", arity: -3, flags: SUB_ADMIN, acl_categories: ADMIN_CONN, summary: "Kill the connection of a client", since: "2.4.0", complexity: "O(N) where N is the number of client connections", ..CONNECTION },
    CommandSpec { name: "client|list", arity: -2, flags: SUB_ADMIN, acl_categories: ADMIN_CONN, tips: &["nondeterministic_output"], summary: "Get the list of client connections", since: "2.4.0", complexity: "O(N) where N is the number of client connections", ..CONNECTION },
    CommandSpec { name: "client|setinfo", arity: 4, flags: SUB, acl_categories: SLOW_CONN, tips: &["request_policy:all_nodes", "response_policy:all_succeeded"], summary: "Set client or connection specific info", since: "7.2.0", ..CONNECTION },
    CommandSpec { name: "client|setname", arity: 3, flags: SUB, acl_categories: SLOW_CONN, summary: "Set the current connection name", since: "2.6.9", ..CONNECTION },
];

#[rustfmt::skip]
static MEMORY_SUBCOMMANDS: &[CommandSpec] = &[
    CommandSpec { name: "memory|help", arity: 2, flags: LOADING_STALE, acl_categories: &["@slow"], summary: "Show helpful text about the different subcommands", since: "4.0.0", group: "server", ..CONNECTION },
    CommandSpec { name: "memory|usage", arity: -3, flags: RO, kind: Read, acl_categories: &["@read", "@slow"], key_specs: &[KeySpec { begin_index: 2, ..KeySpec::one(&["RO"]) }], summary: "Estimate the memory usage of a key", since: "4.0.0", group: "server", complexity: "O(N) where N is the number of samples.", first_key: 2, last_key: 2, step: 1, parse: keys::memory, ..BASE },
];

#[rustfmt::skip]
static CONFIG_SUBCOMMANDS: &[CommandSpec] = &[
    CommandSpec { name: "config|get", arity: -3, flags: SUB_ADMIN, acl_categories: &["@admin", "@slow", "@dangerous"], summary: "Get the values of configuration parameters", since: "2.0.0", group: "server", complexity: "O(N) when N is the number of configuration parameters provided", ..CONNECTION },
    CommandSpec { name: "config|help", arity: 2, flags: LOADING_STALE, acl_categories: &["@slow"], summary: "Show helpful text about the different subcommands", since: "5.0.0", group: "server", ..CONNECTION },
];

#[rustfmt::skip]
static COMMAND_SUBCOMMANDS: &[CommandSpec] = &[
    CommandSpec { name: "command|count", arity: 2, flags: LOADING_STALE, acl_categories: SLOW_CONN, summary: "Get total number of Redis commands", since: "2.8.13", group: "server", ..CONNECTION },
    CommandSpec { name: "command|docs", arity: -2, flags: LOADING_STALE, acl_categories: SLOW_CONN, tips: &["nondeterministic_output_order"], summary: "Get array of specific Redis command documentation", since: "7.0.0", group: "server", complexity: "O(N) where N is the number of commands to look up", ..CONNECTION },
    CommandSpec { name: "command|getkeys", arity: -4, flags: LOADING_STALE, acl_categories: SLOW_CONN, summary: "Extract keys given a full Redis command", since: "2.8.13", group: "server", complexity: "O(N) where N is the number of arguments to the command", ..CONNECTION },
    CommandSpec { name: "command|help", arity: 2, flags: LOADING_STALE, acl_categories: SLOW_CONN, summary: "Show helpful text about the different subcommands", since: "5.0.0", group: "server", ..CONNECTION },
    CommandSpec { name: "command|info", arity: -2, flags: LOADING_STALE, acl_categories: SLOW_CONN, tips: &["nondeterministic_output_order"], summary: "Get array of specific Redis command details, or all when no argument is given.", since: "2.8.13", group: "server", complexity: "O(N) where N is the number of commands to look up", ..CONNECTION },
    CommandSpec { name: "command|list", arity: -2, flags: LOADING_STALE, acl_categories: SLOW_CONN, tips: &["nondeterministic_output_order"], summary: "Get an array of Redis command names", since: "7.0.0", group: "server", complexity: "O(N) where N is the total number of Redis commands", ..CONNECTION },
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_sorted_and_unique() {
        for pair in TABLE.windows(2) {
            assert!(pair[0].name < pair[1].name, "{} before {}", pair[0].name, pair[1].name);
        }
        for spec in TABLE {
            assert_eq!(spec.name, spec.name.to_ascii_lowercase());
            assert!(!spec.summary.is_empty(), "{} has no summary", spec.name);
        }
    }

    #[test]
    fn lookup_is_case_insensitive() {
        assert_eq!(lookup(b"GeT").unwrap().name, "get");
        assert_eq!(lookup(b"incrbyfloat").unwrap().name, "incrbyfloat");
        for spec in TABLE {
            assert_eq!(lookup(spec.name.to_uppercase().as_bytes()).unwrap().name, spec.name);
        }
        assert!(lookup(b"nosuch").is_none());
        assert!(lookup(b"").is_none());
        assert!(lookup(b"ge").is_none());
        assert!(lookup(b"gett").is_none());
    }

    #[test]
    fn kinds_match_flags() {
        // A container's kind is how its subcommands run; Redis gives
        // containers no flags of their own.
        for spec in TABLE.iter().filter(|spec| spec.subcommands.is_empty()) {
            match spec.kind {
                Write => assert!(spec.flags.contains(&"write"), "{}", spec.name),
                Read => assert!(spec.flags.contains(&"readonly"), "{}", spec.name),
                Connection => {
                    assert!(!spec.flags.contains(&"write") && !spec.flags.contains(&"readonly"))
                }
            }
        }
    }

    #[test]
    fn key_positions() {
        let positions = |name: &str, argc| lookup(name.as_bytes()).unwrap().key_positions(argc).collect::<Vec<_>>();
        assert_eq!(positions("get", 2), [1]);
        assert_eq!(positions("mget", 4), [1, 2, 3]);
        assert_eq!(positions("mset", 5), [1, 3]);
        assert_eq!(positions("rename", 3), [1, 2]);
        assert_eq!(positions("keys", 2), Vec::<usize>::new());
        assert_eq!(positions("ping", 1), Vec::<usize>::new());
    }

    #[test]
    fn command_ids_round_trip() {
        for spec in TABLE {
            assert_eq!(command_name(command_id(spec, None).unwrap()), Some(spec.name));
            for sub in spec.subcommands {
                assert_eq!(command_name(command_id(spec, Some(sub)).unwrap()), Some(sub.name));
            }
        }
        assert_eq!(command_name(0), None);
    }

    #[test]
    fn subcommands() {
        let client = lookup(b"client").unwrap();
        assert_eq!(client.subcommand(b"SETNAME").unwrap().name, "client|setname");
        assert!(client.subcommand(b"nosuch").is_none());
        assert!(lookup(b"get").unwrap().subcommand(b"x").is_none());
    }
}
