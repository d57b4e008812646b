//! The `INFO` text and the read-only `CONFIG GET` view.

use std::fmt::Write;
use std::sync::atomic::Ordering;

use bytes::Bytes;

use super::ConnContext;

/// The Redis version Seshat reports for client compatibility: clients gate
/// features on it, and Seshat implements the 7.2 semantics of its commands.
pub const REDIS_COMPAT_VERSION: &str = "7.2.4";

fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1).and_then(|p| p.parse::<u64>().ok()))
        .map_or(0, |pages| pages * 4096)
}

/// Redis's `bytesToHuman`: `512B`, `1.50K`, `37.43M`, `2.00G`.
fn human_bytes(n: u64) -> String {
    const UNITS: [(&str, u64); 4] = [("P", 1 << 50), ("T", 1 << 40), ("G", 1 << 30), ("M", 1 << 20)];
    match UNITS.iter().find(|(_, size)| n >= *size) {
        Some((unit, size)) => format!("{:.2}{unit}", n as f64 / *size as f64),
        None if n >= 1024 => format!("{:.2}K", n as f64 / 1024.0),
        None => format!("{n}B"),
    }
}

/// Renders `INFO [section ...]`.
pub fn render(ctx: &ConnContext, args: &[Bytes]) -> String {
    let wanted: Vec<String> = args[1..].iter().map(|a| String::from_utf8_lossy(a).to_ascii_lowercase()).collect();
    let all = wanted.is_empty() || wanted.iter().any(|w| w == "all" || w == "everything" || w == "default");
    let want = |s: &str| all || wanted.iter().any(|w| w == s);
    let node = ctx.kv.node();
    let m = node.metrics();
    let mut out = String::new();
    if want("server") {
        let up = ctx.started.elapsed().as_secs();
        let _ = write!(
            out,
            "# Server\r\nredis_version:{REDIS_COMPAT_VERSION}\r\nseshat_version:{}\r\nredis_mode:standalone\r\n\
             os:{} {}\r\narch_bits:64\r\nprocess_id:{}\r\ntcp_port:{}\r\nuptime_in_seconds:{up}\r\nuptime_in_days:{}\r\n\r\n",
            env!("CARGO_PKG_VERSION"),
            std::env::consts::OS,
            std::env::consts::ARCH,
            std::process::id(),
            ctx.resp_port,
            up / 86400
        );
    }
    if want("clients") {
        let _ = write!(
            out,
            "# Clients\r\nconnected_clients:{}\r\nmaxclients:{}\r\nblocked_clients:0\r\n\r\n",
            ctx.clients().len(),
            ctx.max_clients
        );
    }
    if want("memory") {
        let rss = rss_bytes();
        let human = human_bytes(rss);
        let _ = write!(
            out,
            "# Memory\r\nused_memory:{rss}\r\nused_memory_human:{human}\r\nused_memory_rss:{rss}\r\n\
             used_memory_rss_human:{human}\r\nmaxmemory:0\r\n\r\n"
        );
    }
    if want("persistence") {
        let log = node.log_status();
        let _ = write!(
            out,
            "# Persistence\r\nloading:0\r\naof_enabled:1\r\nseshat_log_fsyncs:{}\r\nseshat_log_entries_synced:{}\r\nseshat_disk_full:{}\r\n\r\n",
            log.fsyncs.load(Ordering::Relaxed),
            log.entries_synced.load(Ordering::Relaxed),
            u8::from(log.disk_full.load(Ordering::Relaxed))
        );
    }
    if want("stats") {
        let _ = write!(
            out,
            "# Stats\r\ntotal_connections_received:{}\r\ntotal_commands_processed:{}\r\n\r\n",
            ctx.metrics.connections_total.get(),
            ctx.metrics.commands.total()
        );
    }
    if want("replication") {
        let leader = node.leader();
        if m.state.is_leader() {
            let followers = m.membership_config.membership().nodes().count().saturating_sub(1);
            let _ = write!(out, "# Replication\r\nrole:master\r\nconnected_slaves:{followers}\r\n\r\n");
        } else {
            let (host, port) = leader
                .as_ref()
                .and_then(|(_, a)| a.as_ref())
                .and_then(|a| a.resp_addr.rsplit_once(':').map(|(h, p)| (h.to_string(), p.to_string())))
                .unwrap_or_default();
            let link = if leader.is_some() { "up" } else { "down" };
            let _ = write!(
                out,
                "# Replication\r\nrole:slave\r\nmaster_host:{host}\r\nmaster_port:{port}\r\nmaster_link_status:{link}\r\n\r\n"
            );
        }
    }
    if want("raft") {
        let membership = m.membership_config.membership();
        let voters: Vec<String> = membership.voter_ids().map(|i| i.to_string()).collect();
        let learners: Vec<String> = membership.learner_ids().map(|i| i.to_string()).collect();
        let idx = |l: Option<u64>| l.map_or("-1".to_string(), |i| i.to_string());
        let _ = write!(
            out,
            "# Raft\r\nraft_node_id:{}\r\nraft_state:{:?}\r\nraft_term:{}\r\nraft_leader_id:{}\r\nraft_last_log_index:{}\r\n\
             raft_commit_index:{}\r\nraft_applied_index:{}\r\nraft_snapshot_index:{}\r\nraft_voters:{}\r\nraft_learners:{}\r\n\
             read_consistency:{}\r\n\r\n",
            node.id(),
            m.state,
            m.current_term,
            m.current_leader.map_or("none".to_string(), |l| l.to_string()),
            idx(m.last_log_index),
            idx(m.local_committed.map(|l| l.index)),
            idx(m.last_applied.map(|l| l.index)),
            idx(m.snapshot.map(|l| l.index)),
            voters.join(","),
            learners.join(","),
            ctx.kv.config().read_consistency.as_str(),
        );
    }
    if want("keyspace") {
        out.push_str("# Keyspace\r\n");
        let (keys, expires) = {
            let sm = ctx.kv.node().state_machine().read();
            (sm.store.len(), sm.store.keys_with_ttl())
        };
        if keys > 0 {
            let _ = write!(out, "db0:keys={keys},expires={expires},avg_ttl=0\r\n");
        }
        out.push_str("\r\n");
    }
    out
}

/// The parameters `CONFIG GET` can see, with their current values.
pub fn config_params(ctx: &ConnContext) -> Vec<(String, String)> {
    let cfg = ctx.kv.config();
    let p = |k: &str, v: String| (k.to_string(), v);
    vec![
        p("databases", "1".into()),
        p("maxclients", ctx.max_clients.to_string()),
        p("maxmemory", "0".into()),
        p("appendonly", "yes".into()),
        p("appendfsync", "always".into()),
        p("save", String::new()),
        p("timeout", "0".into()),
        p("port", ctx.resp_port.to_string()),
        p("proto-max-bulk-len", ctx.decoder_limits.max_bulk_len.to_string()),
        p("requirepass", if ctx.requirepass.is_some() { "<set>".into() } else { String::new() }),
        p("seshat-read-consistency", cfg.read_consistency.as_str().into()),
        p("seshat-follower-mode", format!("{:?}", ctx.follower_mode).to_ascii_lowercase()),
        p("seshat-max-key-bytes", cfg.limits.max_key_bytes.to_string()),
        p("seshat-max-value-bytes", cfg.limits.max_value_bytes.to_string()),
        p("seshat-write-timeout-ms", cfg.write_timeout.as_millis().to_string()),
    ]
}

#[cfg(test)]
mod tests {
    use super::human_bytes;

    #[test]
    fn sizes_read_as_redis_prints_them() {
        assert_eq!(human_bytes(0), "0B");
        assert_eq!(human_bytes(1023), "1023B");
        assert_eq!(human_bytes(1536), "1.50K");
        assert_eq!(human_bytes(39_247_872), "37.43M");
        assert_eq!(human_bytes(3 << 30), "3.00G");
    }
}
