//! Command errors with Redis's exact reply texts.

use bytes::Bytes;

use crate::resp::Frame;

/// An error reply. `Display` is the text after the `ERR ` / `WRONGTYPE ` code;
/// [`CommandError::to_frame`] is the full reply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    /// Unknown command name.
    #[error("unknown command '{name}', with args beginning with: {args}")]
    UnknownCommand {
        /// The name as sent (at most 128 bytes, lossy UTF-8).
        name: String,
        /// The first arguments, each as `'arg' ` (128 bytes in all at most).
        args: String,
    },
    /// Unknown subcommand of a container command (CLIENT, CONFIG, COMMAND).
    #[error("unknown subcommand '{sub}'. Try {cmd} HELP.")]
    UnknownSubcommand {
        /// The container name, upper case.
        cmd: String,
        /// The subcommand as sent.
        sub: String,
    },
    /// Argument count does not match the command's arity.
    #[error("wrong number of arguments for '{name}' command")]
    WrongArity {
        /// Lower-case command name, `container|sub` for subcommands.
        name: String,
    },
    /// Malformed options.
    #[error("syntax error")]
    Syntax,
    /// SETBIT / GETBIT offset not an integer in 0 ..= 2^32 - 1.
    #[error("bit offset is not an integer or out of range")]
    BitOffset,
    /// SETBIT value other than 0 or 1.
    #[error("bit is not an integer or out of range")]
    BitValue,
    /// BITPOS bit other than 0 or 1.
    #[error("The bit argument must be 1 or 0.")]
    BitArgument,
    /// BITOP NOT with other than one source.
    #[error("BITOP NOT must be called with a single source key.")]
    BitopNotArity,
    /// COPY of a key onto itself.
    #[error("source and destination objects are the same")]
    SameObject,
    /// An integer argument outside the 32-bit range Redis reads it into.
    #[error("value is out of range, value must between -2147483648 and 2147483647")]
    NotInt32,
    /// A database other than 0 (Seshat has one).
    #[error("DB index is out of range")]
    DbIndexOutOfRange,
    /// An integer argument or value is not a valid `i64`.
    #[error("value is not an integer or out of range")]
    NotInteger,
    /// A float argument or value is not valid.
    #[error("value is not a valid float")]
    NotFloat,
    /// A TTL that is not positive or overflows.
    #[error("invalid expire time in '{cmd}' command")]
    InvalidExpire {
        /// Lower-case command name.
        cmd: &'static str,
    },
    /// INCR & co. would overflow `i64`.
    #[error("increment or decrement would overflow")]
    IncrOverflow,
    /// `DECRBY key -9223372036854775808`.
    #[error("decrement would overflow")]
    DecrOverflow,
    /// INCRBYFLOAT result is not finite.
    #[error("increment would produce NaN or Infinity")]
    NanOrInfinity,
    /// The key holds another type.
    #[error("Operation against a key holding the wrong kind of value")]
    WrongType,
    /// RENAME of a missing key.
    #[error("no such key")]
    NoSuchKey,
    /// Negative SETRANGE offset.
    #[error("offset is out of range")]
    OffsetOutOfRange,
    /// SCAN cursor is not an unsigned integer.
    #[error("invalid cursor")]
    InvalidCursor,
    /// Unknown EXPIRE option.
    #[error("Unsupported option {0}")]
    UnsupportedOption(String),
    /// NX combined with XX, GT or LT.
    #[error("NX and XX, GT or LT options at the same time are not compatible")]
    ExpireNxConflict,
    /// GT combined with LT.
    #[error("GT and LT options at the same time are not compatible")]
    ExpireGtLtConflict,
    /// Seshat limit: key longer than `--max-key-bytes`.
    #[error("key too large: {size} bytes (max {max})")]
    KeyTooLarge {
        /// Key length.
        size: usize,
        /// Configured maximum.
        max: usize,
    },
    /// Seshat limit: value longer than `--max-value-bytes` (also a value grown
    /// past it by APPEND / SETRANGE).
    #[error("value too large: {size} bytes (max {max})")]
    ValueTooLarge {
        /// Value length.
        size: usize,
        /// Configured maximum.
        max: usize,
    },
    /// COMMAND GETKEYS of an unknown command.
    #[error("Invalid command specified")]
    InvalidCommandSpecified,
    /// COMMAND GETKEYS with arguments that do not fit the command's arity.
    #[error("Invalid number of arguments specified for command")]
    InvalidArgumentCount,
    /// COMMAND GETKEYS of a command without key arguments.
    #[error("The command has no key arguments")]
    NoKeyArguments,
}

/// Longest command name / argument text echoed in an unknown-command error.
const ECHO_LIMIT: usize = 128;

impl CommandError {
    /// The reply frame: `-ERR <text>`, or `-WRONGTYPE <text>`.
    pub fn to_frame(&self) -> Frame {
        let code = match self {
            CommandError::WrongType => "WRONGTYPE",
            _ => "ERR",
        };
        Frame::Error(format!("{code} {self}"))
    }

    /// The unknown-command error for `args`, formatted like Redis: the name and
    /// then `'arg' ` for the first arguments while the list is under 128 bytes.
    pub fn unknown_command(args: &[Bytes]) -> CommandError {
        let name = args.first().map(|n| lossy(n, ECHO_LIMIT)).unwrap_or_default();
        let mut list = String::new();
        for arg in args.iter().skip(1) {
            if list.len() >= ECHO_LIMIT {
                break;
            }
            let room = ECHO_LIMIT - list.len();
            list.push('\'');
            list.push_str(&lossy(arg, room));
            list.push_str("' ");
        }
        CommandError::UnknownCommand { name, args: list }
    }

    /// The unknown-subcommand error for `args` (`args[0]` container, `args[1]` sub).
    pub fn unknown_subcommand(args: &[Bytes]) -> CommandError {
        let cmd = args.first().map(|c| lossy(c, usize::MAX).to_ascii_uppercase()).unwrap_or_default();
        let sub = args.get(1).map(|s| lossy(s, ECHO_LIMIT)).unwrap_or_default();
        CommandError::UnknownSubcommand { cmd, sub }
    }
}

/// At most `limit` bytes of `bytes` as text (cut on a char boundary).
fn lossy(bytes: &[u8], limit: usize) -> String {
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(limit)]).into_owned();
    if text.len() <= limit {
        return text;
    }
    let mut end = limit;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<Bytes> {
        list.iter().map(|a| Bytes::copy_from_slice(a.as_bytes())).collect()
    }

    fn text(err: CommandError) -> String {
        err.to_frame().as_error().unwrap().to_owned()
    }

    #[test]
    fn redis_texts() {
        assert_eq!(
            text(CommandError::unknown_command(&args(&["foo", "a", "b"]))),
            "ERR unknown command 'foo', with args beginning with: 'a' 'b' "
        );
        assert_eq!(
            text(CommandError::unknown_command(&args(&["foo"]))),
            "ERR unknown command 'foo', with args beginning with: "
        );
        assert_eq!(
            text(CommandError::unknown_subcommand(&args(&["command", "foo"]))),
            "ERR unknown subcommand 'foo'. Try COMMAND HELP."
        );
        assert_eq!(
            text(CommandError::WrongArity { name: "get".into() }),
            "ERR wrong number of arguments for 'get' command"
        );
        assert_eq!(text(CommandError::WrongType), "WRONGTYPE Operation against a key holding the wrong kind of value");
        assert_eq!(text(CommandError::InvalidExpire { cmd: "set" }), "ERR invalid expire time in 'set' command");
        assert_eq!(text(CommandError::KeyTooLarge { size: 257, max: 256 }), "ERR key too large: 257 bytes (max 256)");
        assert_eq!(text(CommandError::UnsupportedOption("FOO".into())), "ERR Unsupported option FOO");
    }

    #[test]
    fn unknown_command_echo_is_bounded() {
        let long = "x".repeat(300);
        let err = CommandError::unknown_command(&args(&[&long, &long, &long]));
        let CommandError::UnknownCommand { name, args } = err else { unreachable!() };
        assert_eq!(name.len(), 128);
        assert_eq!(args, format!("'{}' ", "x".repeat(128)));
        let many: Vec<&str> = std::iter::once("foo").chain(std::iter::repeat_n("abcdefghij", 40)).collect();
        let CommandError::UnknownCommand { args, .. } = CommandError::unknown_command(&self::args(&many)) else {
            unreachable!()
        };
        assert_eq!(args.len(), 130); // ten `'abcdefghij' ` groups (13 bytes each) reach 128
    }
}
