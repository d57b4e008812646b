//! Command table, argument parsing and read execution.
//!
//! [`parse`] turns a request's arguments into a typed command: a [`ReadCmd`]
//! (executed locally by [`execute_read`]), a [`WriteCmd`] (proposed to Raft and
//! applied by [`Store::apply`](crate::store::Store::apply)), or a connection
//! command the connection layer executes itself. Everything that can be checked
//! without the data is checked here (arity, syntax, integers, TTL arithmetic,
//! key/value size limits), so invalid commands never enter the log.
//!
//! Hot path: parsing never copies argument bytes; keys and values move into the
//! typed command as `Bytes` handles (a reference count, not a copy).

mod args;
pub(crate) mod bits;
mod error;
mod glob;
mod info;
mod keys;
mod read;
mod strings;
mod table;

use bytes::Bytes;

pub use crate::store::WriteCmd;
pub use error::CommandError;
pub use glob::glob_match;
pub use info::command_reply;
pub use read::{execute_read, ReadCmd, TtlUnit};
pub use table::{command_id, command_name, lookup, table, CommandKind, CommandSpec, KeySpec};

/// Size limits enforced at parse time (Seshat-specific, from the CLI).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Longest key (`--max-key-bytes`).
    pub max_key_bytes: usize,
    /// Longest value (`--max-value-bytes`), also after APPEND / SETRANGE.
    pub max_value_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_key_bytes: 256, max_value_bytes: 64 * 1024 }
    }
}

/// A parsed command.
#[derive(Debug, Clone, PartialEq)]
pub enum Parsed {
    /// Executed against the local store.
    Read(ReadCmd),
    /// Replicated through the log.
    Write(WriteCmd),
    /// Executed by the connection layer (PING, HELLO, CLIENT, COMMAND ...). The
    /// spec is the top-level command's; for container commands (CLIENT, CONFIG,
    /// COMMAND) the subcommand in `args[1]` exists and its arity was checked.
    Connection(&'static CommandSpec),
}

/// Signature of a command's argument parser (stored in its table entry).
/// Arity and key sizes are already checked when it runs.
pub(crate) type ParseFn = fn(&'static CommandSpec, &[Bytes], &Limits, u64) -> Result<Parsed, CommandError>;

/// Parses a request (`args[0]` is the command name).
///
/// `now_ms` is the leader's clock, used to turn relative TTLs (EX, PX, EXPIRE)
/// into the absolute times carried by the `WriteCmd`.
pub fn parse(args: &[Bytes], limits: &Limits, now_ms: u64) -> Result<Parsed, CommandError> {
    let spec = args.first().and_then(|name| lookup(name)).ok_or_else(|| CommandError::unknown_command(args))?;
    check_arity(spec, args.len(), spec.name)?;
    check_key_sizes(spec, args, limits)?;
    (spec.parse)(spec, args, limits, now_ms)
}

/// Redis's arity rule: positive = exactly, negative = at least `-arity` arguments
/// (the command name included).
fn check_arity(spec: &CommandSpec, argc: usize, name: &str) -> Result<(), CommandError> {
    let ok = if spec.arity >= 0 { argc == spec.arity as usize } else { argc >= spec.arity.unsigned_abs() as usize };
    if ok {
        Ok(())
    } else {
        Err(CommandError::WrongArity { name: name.to_owned() })
    }
}

/// Checks every key argument (per the spec's first/last/step) against the limit.
fn check_key_sizes(spec: &CommandSpec, args: &[Bytes], limits: &Limits) -> Result<(), CommandError> {
    for index in spec.key_positions(args.len()) {
        let size = args[index].len();
        if size > limits.max_key_bytes {
            return Err(CommandError::KeyTooLarge { size, max: limits.max_key_bytes });
        }
    }
    Ok(())
}

/// Parser of connection commands: validates the subcommand of containers.
pub(crate) fn parse_connection(
    spec: &'static CommandSpec,
    args: &[Bytes],
    _limits: &Limits,
    _now_ms: u64,
) -> Result<Parsed, CommandError> {
    // COMMAND alone is valid (arity -1); CLIENT and CONFIG need a subcommand
    // (arity -2, already checked).
    if let (false, Some(name)) = (spec.subcommands.is_empty(), args.get(1)) {
        let sub = spec.subcommand(name).ok_or_else(|| CommandError::unknown_subcommand(args))?;
        check_arity(sub, args.len(), sub.name)?;
    }
    Ok(Parsed::Connection(spec))
}

#[cfg(test)]
mod tests_bits;
#[cfg(test)]
mod tests_keys;
#[cfg(test)]
mod tests_strings;
