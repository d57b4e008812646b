//! Parsers of the string commands.

use bytes::Bytes;

use super::args::{float, integer, is, ttl_deadline, value, Unit};
use super::read::ReadCmd;
use super::{CommandError, CommandSpec, Limits, Parsed};
use crate::store::{GetExTtl, SetCondition, SetTtl, WriteCmd};

type Result = std::result::Result<Parsed, CommandError>;

pub(super) fn get(_: &'static CommandSpec, args: &[Bytes], _: &Limits, _: u64) -> Result {
    Ok(Parsed::Read(ReadCmd::Get { key: args[1].clone() }))
}

pub(super) fn strlen(_: &'static CommandSpec, args: &[Bytes], _: &Limits, _: u64) -> Result {
    Ok(Parsed::Read(ReadCmd::StrLen { key: args[1].clone() }))
}

pub(super) fn mget(_: &'static CommandSpec, args: &[Bytes], _: &Limits, _: u64) -> Result {
    Ok(Parsed::Read(ReadCmd::MGet { keys: args[1..].to_vec() }))
}

pub(super) fn getrange(_: &'static CommandSpec, args: &[Bytes], _: &Limits, _: u64) -> Result {
    let (start, end) = (integer(&args[2])?, integer(&args[3])?);
    Ok(Parsed::Read(ReadCmd::GetRange { key: args[1].clone(), start, end }))
}

/// The TTL option of SET (EX, PX, EXAT, PXAT) before validation.
#[derive(Clone, Copy)]
struct TtlOption<'a> {
    unit: Unit,
    relative: bool,
    arg: &'a [u8],
}

/// SET key value \[NX | XX\] \[GET\] \[EX s | PX ms | EXAT ts | PXAT ts-ms | KEEPTTL\]
///
/// Option rules follow Redis's `parseExtendedStringArgumentsOrReply`: NX/XX
/// exclude each other, KEEPTTL and the four TTL forms exclude each other (one
/// form may repeat, the last wins), a TTL form needs its argument. Syntax is
/// checked over all options before the TTL number is.
pub(super) fn set(_: &'static CommandSpec, args: &[Bytes], limits: &Limits, now_ms: u64) -> Result {
    let value = value(&args[2], limits)?;
    let (mut nx, mut xx, mut get, mut keep_ttl) = (false, false, false, false);
    let mut ttl: Option<TtlOption<'_>> = None;
    let mut i = 3;
    while i < args.len() {
        let opt = &args[i];
        let next = args.get(i + 1);
        // A TTL form conflicts with KEEPTTL and with the *other* TTL forms.
        let ttl_form = |unit, relative| ttl.is_none_or(|t| t.unit == unit && t.relative == relative) && !keep_ttl;
        if is(opt, "nx") && !xx {
            nx = true;
        } else if is(opt, "xx") && !nx {
            xx = true;
        } else if is(opt, "get") {
            get = true;
        } else if is(opt, "keepttl") && ttl.is_none() {
            keep_ttl = true;
        } else if let Some((unit, relative)) = ttl_keyword(opt).filter(|&(u, r)| ttl_form(u, r) && next.is_some()) {
            ttl = Some(TtlOption { unit, relative, arg: next.expect("checked") });
            i += 1;
        } else {
            return Err(CommandError::Syntax);
        }
        i += 1;
    }
    let ttl = match ttl {
        Some(t) => SetTtl::At(ttl_deadline(t.arg, t.unit, t.relative, now_ms, "set")?),
        None if keep_ttl => SetTtl::Keep,
        None => SetTtl::Clear,
    };
    let cond = if nx {
        SetCondition::IfAbsent
    } else if xx {
        SetCondition::IfPresent
    } else {
        SetCondition::Always
    };
    Ok(Parsed::Write(WriteCmd::Set { key: args[1].clone(), value, cond, ttl, get }))
}

/// EX / PX / EXAT / PXAT → (unit, relative).
fn ttl_keyword(opt: &[u8]) -> Option<(Unit, bool)> {
    if is(opt, "ex") {
        Some((Unit::Seconds, true))
    } else if is(opt, "px") {
        Some((Unit::Millis, true))
    } else if is(opt, "exat") {
        Some((Unit::Seconds, false))
    } else if is(opt, "pxat") {
        Some((Unit::Millis, false))
    } else {
        None
    }
}

/// SETEX key seconds value, PSETEX key milliseconds value.
pub(super) fn setex(spec: &'static CommandSpec, args: &[Bytes], limits: &Limits, now_ms: u64) -> Result {
    let unit = if spec.name == "psetex" { Unit::Millis } else { Unit::Seconds };
    let value = value(&args[3], limits)?;
    let at = ttl_deadline(&args[2], unit, true, now_ms, spec.name)?;
    Ok(Parsed::Write(WriteCmd::Set {
        key: args[1].clone(),
        value,
        cond: SetCondition::Always,
        ttl: SetTtl::At(at),
        get: false,
    }))
}

pub(super) fn setnx(_: &'static CommandSpec, args: &[Bytes], limits: &Limits, _: u64) -> Result {
    Ok(Parsed::Write(WriteCmd::SetNx { key: args[1].clone(), value: value(&args[2], limits)? }))
}

/// GETSET key value = SET key value GET.
pub(super) fn getset(_: &'static CommandSpec, args: &[Bytes], limits: &Limits, _: u64) -> Result {
    Ok(Parsed::Write(WriteCmd::Set {
        key: args[1].clone(),
        value: value(&args[2], limits)?,
        cond: SetCondition::Always,
        ttl: SetTtl::Clear,
        get: true,
    }))
}

pub(super) fn getdel(_: &'static CommandSpec, args: &[Bytes], _: &Limits, _: u64) -> Result {
    Ok(Parsed::Write(WriteCmd::GetDel { key: args[1].clone() }))
}

/// GETEX key [EX s | PX ms | EXAT ts | PXAT ts-ms | PERSIST]. Without options
/// it changes nothing and is executed as a GET (no log entry).
pub(super) fn getex(_: &'static CommandSpec, args: &[Bytes], _: &Limits, now_ms: u64) -> Result {
    let mut persist = false;
    let mut ttl: Option<TtlOption<'_>> = None;
    let mut i = 2;
    while i < args.len() {
        let opt = &args[i];
        let next = args.get(i + 1);
        let form_ok =
            |unit, relative| !persist && ttl.is_none_or(|t: TtlOption<'_>| t.unit == unit && t.relative == relative);
        if is(opt, "persist") && ttl.is_none() {
            persist = true;
        } else if let Some((unit, relative)) = ttl_keyword(opt).filter(|&(u, r)| form_ok(u, r) && next.is_some()) {
            ttl = Some(TtlOption { unit, relative, arg: next.expect("checked") });
            i += 1;
        } else {
            return Err(CommandError::Syntax);
        }
        i += 1;
    }
    let key = args[1].clone();
    let ttl = match ttl {
        Some(t) => match ttl_deadline(t.arg, t.unit, t.relative, now_ms, "getex") {
            Ok(at) => GetExTtl::At(at),
            Err(error) => return Ok(Parsed::Read(ReadCmd::GetExRejected { key, error })),
        },
        None if persist => GetExTtl::Persist,
        None => return Ok(Parsed::Read(ReadCmd::Get { key })),
    };
    Ok(Parsed::Write(WriteCmd::GetEx { key, ttl }))
}

/// MSET / MSETNX key value [key value ...].
pub(super) fn mset(spec: &'static CommandSpec, args: &[Bytes], limits: &Limits, _: u64) -> Result {
    if args.len() % 2 == 0 {
        return Err(CommandError::WrongArity { name: spec.name.to_owned() });
    }
    let pairs = args[1..]
        .chunks_exact(2)
        .map(|pair| Ok((pair[0].clone(), value(&pair[1], limits)?)))
        .collect::<std::result::Result<Vec<_>, CommandError>>()?;
    Ok(Parsed::Write(if spec.name == "msetnx" { WriteCmd::MSetNx { pairs } } else { WriteCmd::MSet { pairs } }))
}

/// INCR, DECR, INCRBY, DECRBY.
pub(super) fn incr_family(spec: &'static CommandSpec, args: &[Bytes], _: &Limits, _: u64) -> Result {
    let delta = match spec.name {
        "incr" => 1,
        "decr" => -1,
        "incrby" => integer(&args[2])?,
        _ => {
            let n = integer(&args[2])?;
            n.checked_neg().ok_or(CommandError::DecrOverflow)?
        }
    };
    Ok(Parsed::Write(WriteCmd::IncrBy { key: args[1].clone(), delta }))
}

pub(super) fn incrbyfloat(_: &'static CommandSpec, args: &[Bytes], _: &Limits, _: u64) -> Result {
    Ok(Parsed::Write(WriteCmd::IncrByFloat { key: args[1].clone(), delta: float(&args[2])? }))
}

pub(super) fn append(_: &'static CommandSpec, args: &[Bytes], limits: &Limits, _: u64) -> Result {
    Ok(Parsed::Write(WriteCmd::Append {
        key: args[1].clone(),
        value: value(&args[2], limits)?,
        max_len: limits.max_value_bytes as u64,
    }))
}

/// SETRANGE key offset value.
pub(super) fn setrange(_: &'static CommandSpec, args: &[Bytes], limits: &Limits, _: u64) -> Result {
    let offset = integer(&args[2])?;
    let offset = u64::try_from(offset).map_err(|_| CommandError::OffsetOutOfRange)?;
    Ok(Parsed::Write(WriteCmd::SetRange {
        key: args[1].clone(),
        offset,
        value: value(&args[3], limits)?,
        max_len: limits.max_value_bytes as u64,
    }))
}
