//! Argument helpers shared by the command parsers.

use bytes::Bytes;

use super::{CommandError, Limits};
use crate::resp::num::{parse_f64, parse_i64};

/// Case-insensitive comparison of an argument with an option name.
pub(super) fn is(arg: &[u8], option: &str) -> bool {
    arg.eq_ignore_ascii_case(option.as_bytes())
}

/// An integer argument (`string2ll` rules).
pub(super) fn integer(arg: &[u8]) -> Result<i64, CommandError> {
    parse_i64(arg).ok_or(CommandError::NotInteger)
}

/// A float argument (`string2ld` rules).
pub(super) fn float(arg: &[u8]) -> Result<f64, CommandError> {
    parse_f64(arg).ok_or(CommandError::NotFloat)
}

/// A value argument within the size limit. Returns a new handle to the same
/// bytes (reference count only, no copy).
pub(super) fn value(arg: &Bytes, limits: &Limits) -> Result<Bytes, CommandError> {
    if arg.len() > limits.max_value_bytes {
        return Err(CommandError::ValueTooLarge { size: arg.len(), max: limits.max_value_bytes });
    }
    Ok(arg.clone())
}

/// The leader's clock as a signed Unix-ms timestamp.
pub(super) fn now_i64(now_ms: u64) -> i64 {
    i64::try_from(now_ms).unwrap_or(i64::MAX)
}

/// Unit of a TTL argument.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Unit {
    Seconds,
    Millis,
}

/// Converts a SET / GETEX / SETEX TTL argument into an absolute Unix-ms time,
/// like Redis's `getExpireMillisecondsOrReply`: the number must be positive and
/// neither the unit conversion nor adding `now` (for relative TTLs) may overflow.
pub(super) fn ttl_deadline(
    arg: &[u8],
    unit: Unit,
    relative: bool,
    now_ms: u64,
    cmd: &'static str,
) -> Result<i64, CommandError> {
    let n = integer(arg)?;
    let invalid = CommandError::InvalidExpire { cmd };
    if n <= 0 {
        return Err(invalid);
    }
    let ms = match unit {
        Unit::Seconds => n.checked_mul(1000).ok_or(invalid.clone())?,
        Unit::Millis => n,
    };
    if relative {
        ms.checked_add(now_i64(now_ms)).ok_or(invalid)
    } else {
        Ok(ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_deadline_rules() {
        let now = 1_000_000;
        assert_eq!(ttl_deadline(b"10", Unit::Seconds, true, now, "set"), Ok(1_010_000));
        assert_eq!(ttl_deadline(b"10", Unit::Millis, true, now, "set"), Ok(1_000_010));
        assert_eq!(ttl_deadline(b"10", Unit::Seconds, false, now, "set"), Ok(10_000));
        assert_eq!(
            ttl_deadline(b"0", Unit::Seconds, true, now, "set"),
            Err(CommandError::InvalidExpire { cmd: "set" })
        );
        assert_eq!(
            ttl_deadline(b"-5", Unit::Millis, false, now, "set"),
            Err(CommandError::InvalidExpire { cmd: "set" })
        );
        assert_eq!(ttl_deadline(b"x", Unit::Millis, false, now, "set"), Err(CommandError::NotInteger));
        let huge = (i64::MAX / 1000 + 1).to_string();
        assert_eq!(
            ttl_deadline(huge.as_bytes(), Unit::Seconds, false, now, "setex"),
            Err(CommandError::InvalidExpire { cmd: "setex" })
        );
        let max = i64::MAX.to_string();
        assert_eq!(
            ttl_deadline(max.as_bytes(), Unit::Millis, true, now, "set"),
            Err(CommandError::InvalidExpire { cmd: "set" })
        );
        assert_eq!(ttl_deadline(max.as_bytes(), Unit::Millis, false, now, "set"), Ok(i64::MAX));
    }
}
