//! Parsers of the keyspace commands.

use bytes::Bytes;

use super::args::{integer, is, now_i64};
use super::read::{ReadCmd, TtlUnit};
use super::{CommandError, CommandSpec, Limits, Parsed};
use crate::resp::num::parse_u64;
use crate::store::{ExpireCondition, WriteCmd};

type Result = std::result::Result<Parsed, CommandError>;

/// SCAN's COUNT when none is given (Redis's default).
const DEFAULT_SCAN_COUNT: usize = 10;

/// DEL / UNLINK key [key ...].
pub(super) fn del(_: &'static CommandSpec, args: &[Bytes], _: &Limits, _: u64) -> Result {
    Ok(Parsed::Write(WriteCmd::Del { keys: args[1..].to_vec() }))
}

/// COPY source destination \[DB destination-db\] \[REPLACE\]: Seshat has one
/// database, so `DB` accepts only 0.
pub(super) fn copy(_: &'static CommandSpec, args: &[Bytes], _: &Limits, _: u64) -> Result {
    let mut replace = false;
    let mut i = 3;
    while i < args.len() {
        if is(&args[i], "replace") {
            replace = true;
        } else if is(&args[i], "db") && i + 1 < args.len() {
            let db = i32::try_from(integer(&args[i + 1])?).map_err(|_| CommandError::NotInt32)?;
            if db != 0 {
                return Err(CommandError::DbIndexOutOfRange);
            }
            i += 1;
        } else {
            return Err(CommandError::Syntax);
        }
        i += 1;
    }
    if args[1] == args[2] {
        return Err(CommandError::SameObject);
    }
    Ok(Parsed::Write(WriteCmd::Copy { src: args[1].clone(), dst: args[2].clone(), replace }))
}

/// EXISTS / TOUCH key [key ...] (TOUCH's access time has no meaning here).
pub(super) fn exists(_: &'static CommandSpec, args: &[Bytes], _: &Limits, _: u64) -> Result {
    Ok(Parsed::Read(ReadCmd::Exists { keys: args[1..].to_vec() }))
}

pub(super) fn type_of(_: &'static CommandSpec, args: &[Bytes], _: &Limits, _: u64) -> Result {
    Ok(Parsed::Read(ReadCmd::Type { key: args[1].clone() }))
}

/// `MEMORY USAGE key [SAMPLES count]`, a read, with Redis's checks in Redis's
/// order: the options are validated before the key is looked up. `MEMORY
/// HELP` is a static text the connection layer answers.
pub(super) fn memory(spec: &'static CommandSpec, args: &[Bytes], limits: &Limits, _: u64) -> Result {
    let sub = spec.subcommand(&args[1]).ok_or_else(|| CommandError::unknown_subcommand(args))?;
    super::check_arity(sub, args.len(), sub.name)?;
    if sub.name == "memory|help" {
        return Ok(Parsed::Connection(spec));
    }
    super::check_key_sizes(sub, args, limits)?;
    for option in args[3..].chunks(2) {
        match option {
            [name, count] if is(name, "samples") => {
                if integer(count)? < 0 {
                    return Err(CommandError::Syntax);
                }
            }
            _ => return Err(CommandError::Syntax),
        }
    }
    Ok(Parsed::Read(ReadCmd::MemoryUsage { key: args[2].clone() }))
}

pub(super) fn persist(_: &'static CommandSpec, args: &[Bytes], _: &Limits, _: u64) -> Result {
    Ok(Parsed::Write(WriteCmd::Persist { key: args[1].clone() }))
}

pub(super) fn keys(_: &'static CommandSpec, args: &[Bytes], _: &Limits, _: u64) -> Result {
    Ok(Parsed::Read(ReadCmd::Keys { pattern: args[1].clone() }))
}

pub(super) fn randomkey(_: &'static CommandSpec, _: &[Bytes], _: &Limits, _: u64) -> Result {
    Ok(Parsed::Read(ReadCmd::RandomKey))
}

pub(super) fn dbsize(_: &'static CommandSpec, _: &[Bytes], _: &Limits, _: u64) -> Result {
    Ok(Parsed::Read(ReadCmd::DbSize))
}

/// TTL, PTTL, EXPIRETIME, PEXPIRETIME.
pub(super) fn ttl(spec: &'static CommandSpec, args: &[Bytes], _: &Limits, _: u64) -> Result {
    let unit = match spec.name {
        "ttl" => TtlUnit::Seconds,
        "pttl" => TtlUnit::Millis,
        "expiretime" => TtlUnit::AbsoluteSeconds,
        _ => TtlUnit::AbsoluteMillis,
    };
    Ok(Parsed::Read(ReadCmd::Ttl { key: args[1].clone(), unit }))
}

/// RENAME / RENAMENX src dst.
pub(super) fn rename(spec: &'static CommandSpec, args: &[Bytes], _: &Limits, _: u64) -> Result {
    Ok(Parsed::Write(WriteCmd::Rename { src: args[1].clone(), dst: args[2].clone(), nx: spec.name == "renamenx" }))
}

/// FLUSHDB / FLUSHALL [ASYNC | SYNC]: both flush synchronously (one keyspace).
pub(super) fn flush(_: &'static CommandSpec, args: &[Bytes], _: &Limits, _: u64) -> Result {
    match args.get(1) {
        None => {}
        Some(mode) if args.len() == 2 && (is(mode, "sync") || is(mode, "async")) => {}
        Some(_) => return Err(CommandError::Syntax),
    }
    Ok(Parsed::Write(WriteCmd::FlushAll))
}

/// EXPIRE / PEXPIRE / EXPIREAT / PEXPIREAT key time [NX | XX | GT | LT].
///
/// As Redis's `expireGenericCommand`: options first (unknown option, then
/// conflicts), then the number, then overflow of the unit conversion and of
/// adding the base time. Negative and past times are valid (they delete).
pub(super) fn expire(spec: &'static CommandSpec, args: &[Bytes], _: &Limits, now_ms: u64) -> Result {
    let mut cond = ExpireCondition::default();
    for opt in &args[3..] {
        if is(opt, "nx") {
            cond.nx = true;
        } else if is(opt, "xx") {
            cond.xx = true;
        } else if is(opt, "gt") {
            cond.gt = true;
        } else if is(opt, "lt") {
            cond.lt = true;
        } else {
            return Err(CommandError::UnsupportedOption(String::from_utf8_lossy(opt).into_owned()));
        }
    }
    if cond.nx && (cond.xx || cond.gt || cond.lt) {
        return Err(CommandError::ExpireNxConflict);
    }
    if cond.gt && cond.lt {
        return Err(CommandError::ExpireGtLtConflict);
    }
    let when = integer(&args[2])?;
    let invalid = CommandError::InvalidExpire { cmd: spec.name };
    let (seconds, relative) = match spec.name {
        "expire" => (true, true),
        "pexpire" => (false, true),
        "expireat" => (true, false),
        _ => (false, false),
    };
    let when = if seconds { when.checked_mul(1000).ok_or(invalid.clone())? } else { when };
    let base = if relative { now_i64(now_ms) } else { 0 };
    let at_ms = when.checked_add(base).ok_or(invalid)?;
    Ok(Parsed::Write(WriteCmd::Expire { key: args[1].clone(), at_ms, cond }))
}

/// SCAN cursor [MATCH pattern] [COUNT count] [TYPE type].
pub(super) fn scan(_: &'static CommandSpec, args: &[Bytes], _: &Limits, _: u64) -> Result {
    let cursor = parse_u64(&args[1]).ok_or(CommandError::InvalidCursor)?;
    let (mut pattern, mut count, mut type_name) = (None, DEFAULT_SCAN_COUNT, None);
    let mut i = 2;
    while i < args.len() {
        let (opt, value) = (&args[i], args.get(i + 1));
        match value {
            Some(value) if is(opt, "count") => {
                let n = integer(value)?;
                count = usize::try_from(n).ok().filter(|&n| n >= 1).ok_or(CommandError::Syntax)?;
            }
            // MATCH * matches everything: skip the matcher, as Redis does.
            Some(value) if is(opt, "match") => pattern = (value.as_ref() != b"*").then(|| value.clone()),
            Some(value) if is(opt, "type") => type_name = Some(value.clone()),
            _ => return Err(CommandError::Syntax),
        }
        i += 2;
    }
    Ok(Parsed::Read(ReadCmd::Scan { cursor, pattern, count, type_name }))
}
