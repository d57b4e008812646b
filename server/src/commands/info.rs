//! The COMMAND command, rendered from the command table (Redis 7 formats).

use bytes::Bytes;

use super::glob::glob_match;
use super::table::{lookup, table, CommandSpec, KeySpec};
use super::CommandError;
use crate::resp::Frame;

const HELP: &[&str] = &[
    "COMMAND <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "(no subcommand)",
    "    Return details about all Redis commands.",
    "COUNT",
    "    Return the total number of commands in this Redis server.",
    "LIST",
    "    Return a list of all commands in this Redis server.",
    "INFO [<command-name> ...]",
    "    Return details about multiple Redis commands.",
    "    If no command names are given, documentation details for all",
    "    commands are returned.",
    "DOCS [<command-name> ...]",
    "    Return documentation details about multiple Redis commands.",
    "    If no command names are given, documentation details for all",
    "    commands are returned.",
    "GETKEYS <full-command>",
    "    Return the keys from a full Redis command.",
    "HELP",
    "    Prints this help.",
];

/// Executes COMMAND with its full argument list (`args[0]` is `COMMAND`):
/// no subcommand, COUNT, LIST [FILTERBY ACLCAT c | PATTERN p | MODULE m],
/// INFO [name ...], DOCS [name ...], GETKEYS cmd [arg ...], HELP.
/// Names may be `container|sub`. Maps render as RESP3 maps or flat RESP2 arrays.
pub fn command_reply(args: &[Bytes]) -> Frame {
    match reply(args) {
        Ok(frame) => frame,
        Err(err) => err.to_frame(),
    }
}

fn reply(args: &[Bytes]) -> Result<Frame, CommandError> {
    let Some(sub) = args.get(1) else {
        return Ok(Frame::Array(table().iter().map(info).collect()));
    };
    let command = lookup(b"command").expect("COMMAND is in the table");
    let spec = command.subcommand(sub).ok_or_else(|| CommandError::unknown_subcommand(args))?;
    let argc = args.len();
    let arity_ok =
        if spec.arity >= 0 { argc == spec.arity as usize } else { argc >= spec.arity.unsigned_abs() as usize };
    if !arity_ok {
        return Err(CommandError::WrongArity { name: spec.name.to_owned() });
    }
    let names = &args[2..];
    Ok(match spec.name {
        "command|count" => Frame::Integer(table().len() as i64),
        "command|help" => Frame::Array(HELP.iter().map(|line| Frame::simple(*line)).collect()),
        "command|info" if names.is_empty() => Frame::Array(table().iter().map(info).collect()),
        "command|info" => Frame::Array(names.iter().map(|n| find(n).map_or(Frame::Null, info)).collect()),
        "command|docs" if names.is_empty() => Frame::Map(table().iter().map(|s| (name(s), docs(s))).collect()),
        "command|docs" => Frame::Map(names.iter().filter_map(|n| find(n)).map(|s| (name(s), docs(s))).collect()),
        "command|list" => list(names)?,
        _ => getkeys(names)?,
    })
}

/// A command or `container|sub` subcommand by name.
fn find(name: &[u8]) -> Option<&'static CommandSpec> {
    match name.iter().position(|&b| b == b'|') {
        None => lookup(name),
        Some(bar) => lookup(&name[..bar])?.subcommand(&name[bar + 1..]),
    }
}

fn name(spec: &CommandSpec) -> Frame {
    Frame::Bulk(Bytes::from_static(spec.name.as_bytes()))
}

fn statuses(items: &[&'static str]) -> Frame {
    Frame::Set(items.iter().map(|item| Frame::simple(*item)).collect())
}

fn bulk(text: &'static str) -> Frame {
    Frame::Bulk(Bytes::from_static(text.as_bytes()))
}

/// One COMMAND INFO entry: name, arity, flags, first/last/step, ACL categories,
/// tips, key specs, subcommands.
fn info(spec: &'static CommandSpec) -> Frame {
    Frame::Array(vec![
        name(spec),
        Frame::Integer(i64::from(spec.arity)),
        statuses(spec.flags),
        Frame::Integer(i64::from(spec.first_key)),
        Frame::Integer(i64::from(spec.last_key)),
        Frame::Integer(i64::from(spec.step)),
        statuses(spec.acl_categories),
        statuses(spec.tips),
        Frame::Array(spec.key_specs.iter().map(key_spec).collect()),
        Frame::Array(spec.subcommands.iter().map(info).collect()),
    ])
}

fn key_spec(spec: &KeySpec) -> Frame {
    let map = |pairs: Vec<(&'static str, Frame)>| Frame::Map(pairs.into_iter().map(|(k, v)| (bulk(k), v)).collect());
    map(vec![
        ("flags", statuses(spec.flags)),
        (
            "begin_search",
            map(vec![
                ("type", bulk("index")),
                ("spec", map(vec![("index", Frame::Integer(i64::from(spec.begin_index)))])),
            ]),
        ),
        (
            "find_keys",
            map(vec![
                ("type", bulk("range")),
                (
                    "spec",
                    map(vec![
                        ("lastkey", Frame::Integer(i64::from(spec.last_key))),
                        ("keystep", Frame::Integer(i64::from(spec.key_step))),
                        ("limit", Frame::Integer(0)),
                    ]),
                ),
            ]),
        ),
    ])
}

/// One COMMAND DOCS entry.
fn docs(spec: &'static CommandSpec) -> Frame {
    let mut pairs = vec![
        (bulk("summary"), bulk(spec.summary)),
        (bulk("since"), bulk(spec.since)),
        (bulk("group"), bulk(spec.group)),
        (bulk("complexity"), bulk(spec.complexity)),
    ];
    if !spec.subcommands.is_empty() {
        let subs = spec.subcommands.iter().map(|s| (name(s), docs(s))).collect();
        pairs.push((bulk("subcommands"), Frame::Map(subs)));
    }
    Frame::Map(pairs)
}

/// COMMAND LIST [FILTERBY MODULE name | ACLCAT category | PATTERN pattern].
fn list(args: &[Bytes]) -> Result<Frame, CommandError> {
    let all = table().iter().flat_map(|spec| std::iter::once(spec).chain(spec.subcommands.iter()));
    let filter: Box<dyn Fn(&CommandSpec) -> bool> = match args {
        [] => Box::new(|_| true),
        [filterby, kind, value] if filterby.eq_ignore_ascii_case(b"filterby") => {
            let value = value.clone();
            if kind.eq_ignore_ascii_case(b"aclcat") {
                Box::new(move |spec| spec.acl_categories.iter().any(|c| c.as_bytes()[1..].eq_ignore_ascii_case(&value)))
            } else if kind.eq_ignore_ascii_case(b"pattern") {
                Box::new(move |spec| glob_match(&value, spec.name.as_bytes(), true))
            } else if kind.eq_ignore_ascii_case(b"module") {
                Box::new(|_| false) // no modules
            } else {
                return Err(CommandError::Syntax);
            }
        }
        _ => return Err(CommandError::Syntax),
    };
    Ok(Frame::Array(all.filter(|spec| filter(spec)).map(name).collect()))
}

/// COMMAND GETKEYS command [arg ...]: the key arguments, per the table.
fn getkeys(argv: &[Bytes]) -> Result<Frame, CommandError> {
    let spec = lookup(&argv[0]).ok_or(CommandError::InvalidCommandSpecified)?;
    if spec.first_key == 0 {
        return Err(CommandError::NoKeyArguments);
    }
    let argc = argv.len();
    if (spec.arity > 0 && spec.arity as usize != argc) || (spec.arity < 0 && argc < spec.arity.unsigned_abs() as usize)
    {
        return Err(CommandError::InvalidArgumentCount);
    }
    Ok(Frame::Array(spec.key_positions(argc).map(|i| Frame::Bulk(argv[i].clone())).collect()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resp::{encode_to_vec, Protocol};

    fn run(list: &[&str]) -> Frame {
        let args: Vec<Bytes> = list.iter().map(|a| Bytes::copy_from_slice(a.as_bytes())).collect();
        command_reply(&args)
    }

    #[test]
    fn count_and_list() {
        assert_eq!(run(&["COMMAND", "COUNT"]), Frame::Integer(table().len() as i64));
        let Frame::Array(names) = run(&["command", "list"]) else { panic!() };
        assert!(names.contains(&Frame::bulk("get")) && names.contains(&Frame::bulk("client|setname")));
        let Frame::Array(names) = run(&["command", "list", "filterby", "pattern", "get*"]) else { panic!() };
        assert_eq!(names.len(), 6); // get getbit getdel getex getrange getset
        let Frame::Array(names) = run(&["command", "list", "FILTERBY", "ACLCAT", "connection"]) else { panic!() };
        assert!(names.contains(&Frame::bulk("ping")) && !names.contains(&Frame::bulk("get")));
        assert_eq!(run(&["command", "list", "foo"]), Frame::error("ERR syntax error"));
    }

    #[test]
    fn info_matches_redis_layout() {
        let Frame::Array(entries) = run(&["command", "info", "get", "nosuch", "client|setname"]) else { panic!() };
        assert_eq!(entries.len(), 3);
        let Frame::Array(get) = &entries[0] else { panic!() };
        assert_eq!(get.len(), 10);
        assert_eq!(get[0], Frame::bulk("get"));
        assert_eq!(get[1], Frame::Integer(2));
        assert_eq!(get[2], Frame::Set(vec![Frame::simple("readonly"), Frame::simple("fast")]));
        assert_eq!(&get[3..6], &[Frame::Integer(1), Frame::Integer(1), Frame::Integer(1)]);
        assert_eq!(entries[1], Frame::Null);
        let Frame::Array(sub) = &entries[2] else { panic!() };
        assert_eq!(sub[0], Frame::bulk("client|setname"));
        // Everything encodes in both protocols.
        let all = run(&["command"]);
        assert!(!encode_to_vec(&all, Protocol::Resp2).is_empty());
        assert!(!encode_to_vec(&all, Protocol::Resp3).is_empty());
    }

    #[test]
    fn docs() {
        let Frame::Map(docs) = run(&["command", "docs", "get", "nosuch"]) else { panic!() };
        assert_eq!(docs.len(), 1);
        assert_eq!(docs[0].0, Frame::bulk("get"));
        let Frame::Map(fields) = &docs[0].1 else { panic!() };
        assert_eq!(fields[0], (Frame::bulk("summary"), Frame::bulk("Get the value of a key")));
        let Frame::Map(all) = run(&["command", "docs"]) else { panic!() };
        assert_eq!(all.len(), table().len());
    }

    #[test]
    fn getkeys() {
        assert_eq!(
            run(&["command", "getkeys", "mset", "a", "1", "b", "2"]),
            Frame::Array(vec![Frame::bulk("a"), Frame::bulk("b")])
        );
        assert_eq!(
            run(&["command", "getkeys", "rename", "a", "b"]),
            Frame::Array(vec![Frame::bulk("a"), Frame::bulk("b")])
        );
        assert_eq!(run(&["command", "getkeys", "nosuch", "a"]), Frame::error("ERR Invalid command specified"));
        assert_eq!(run(&["command", "getkeys", "ping", "a"]), Frame::error("ERR The command has no key arguments"));
        assert_eq!(
            run(&["command", "getkeys", "get", "a", "b"]),
            Frame::error("ERR Invalid number of arguments specified for command")
        );
        assert_eq!(
            run(&["command", "getkeys", "get"]),
            Frame::error("ERR wrong number of arguments for 'command|getkeys' command")
        );
    }

    #[test]
    fn errors_and_help() {
        assert_eq!(run(&["command", "foo"]), Frame::error("ERR unknown subcommand 'foo'. Try COMMAND HELP."));
        assert_eq!(
            run(&["command", "count", "x"]),
            Frame::error("ERR wrong number of arguments for 'command|count' command")
        );
        let Frame::Array(lines) = run(&["command", "help"]) else { panic!() };
        assert!(lines.len() > 5);
    }
}
