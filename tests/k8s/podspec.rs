//! Pure translations of a container spec into a local process: `$(VAR)` expansion,
//! the listen-address and mount-path substitutions, the argv, and probe targets.
//!
//! The substitutions, and why they are needed when pods are processes on one host:
//! - **binary**: the image's entrypoint (or `command[0]`) becomes the `seshat-node`
//!   test binary, the same program as `seshat`, whatever the image tag says;
//! - **listen addresses**: in a pod, `0.0.0.0:PORT` means "every address of *this
//!   pod's* network namespace". Here every pod shares the host's, and all replicas use
//!   the same ports, so an unspecified host (`0.0.0.0:` or `[::]:`) inside any argument
//!   or env value is replaced by the pod IP — each pod binds only its own address;
//! - **mount paths**: a path at or under a `volumeMount`'s `mountPath` (in an argument's
//!   value or an env value) is rewritten to the host directory backing that volume (the
//!   PV's `hostPath` for a PVC, a per-pod directory for `emptyDir`, Secret and ConfigMap
//!   volumes). The longest matching mount wins, as with real mounts.

use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{Container, Probe};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

/// Kubernetes' `$(VAR)` expansion (`expansion.go`): `$(NAME)` becomes the value when
/// `lookup` knows `NAME` and stays literal otherwise; `$$` is an escaped `$`.
pub fn expand(input: &str, lookup: &dyn Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(inner) = after.strip_prefix('(') {
            match inner.find(')') {
                Some(close) => {
                    let name = &inner[..close];
                    match lookup(name) {
                        Some(v) => out.push_str(&v),
                        None => {
                            out.push_str("$(");
                            out.push_str(name);
                            out.push(')');
                        }
                    }
                    rest = &inner[close + 1..];
                }
                None => {
                    // Unterminated reference: kept verbatim.
                    out.push_str("$(");
                    rest = inner;
                }
            }
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// Replaces an unspecified listen host (`0.0.0.0:` / `[::]:`) by `pod_ip`.
pub fn rewrite_listen(value: &str, pod_ip: &str) -> String {
    value.replace("0.0.0.0:", &format!("{pod_ip}:")).replace("[::]:", &format!("{pod_ip}:"))
}

/// A volume mount as the host sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostMount {
    /// `mountPath` inside the container.
    pub mount_path: String,
    /// Directory on the host backing it.
    pub host_dir: PathBuf,
}

/// Rewrites a path under one of `mounts` to the host (longest mount first). `value` may
/// be a bare path or a `--flag=path` argument.
pub fn rewrite_paths(value: &str, mounts: &[HostMount]) -> String {
    let (prefix, path) = match value.split_once('=') {
        Some((flag, v)) if flag.starts_with('-') => (format!("{flag}="), v),
        _ => (String::new(), value),
    };
    let best = mounts
        .iter()
        .filter(|m| path == m.mount_path || path.starts_with(&format!("{}/", m.mount_path.trim_end_matches('/'))))
        .max_by_key(|m| m.mount_path.len());
    match best {
        Some(m) => {
            let rel = path[m.mount_path.len()..].trim_start_matches('/');
            let host = if rel.is_empty() { m.host_dir.clone() } else { m.host_dir.join(rel) };
            format!("{prefix}{}", host.display())
        }
        None => value.to_owned(),
    }
}

/// The process argv: `binary`, then `command[1..]` (when `command` overrides the
/// entrypoint), then `args`, each expanded with `lookup` and both substitutions applied.
pub fn argv(
    container: &Container,
    binary: &Path,
    lookup: &dyn Fn(&str) -> Option<String>,
    pod_ip: &str,
    mounts: &[HostMount],
) -> Vec<String> {
    let command = container.command.clone().unwrap_or_default();
    let args = container.args.clone().unwrap_or_default();
    let mut out = vec![binary.display().to_string()];
    for raw in command.iter().skip(1).chain(args.iter()) {
        let expanded = expand(raw, lookup);
        out.push(rewrite_paths(&rewrite_listen(&expanded, pod_ip), mounts));
    }
    out
}

/// What a probe checks, resolved against the container's named ports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeTarget {
    /// `GET http://<podIP>:port<path>`, success on 200–399.
    Http {
        /// Port number.
        port: u16,
        /// Request path.
        path: String,
    },
    /// A TCP connect to `<podIP>:port`.
    Tcp {
        /// Port number.
        port: u16,
    },
}

/// Timing of a probe, with Kubernetes' defaults for unset fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeSpec {
    /// What to check.
    pub target: ProbeTarget,
    /// `initialDelaySeconds` (default 0).
    pub initial_delay_s: u64,
    /// `periodSeconds` (default 10).
    pub period_s: u64,
    /// `timeoutSeconds` (default 1).
    pub timeout_s: u64,
    /// `successThreshold` (default 1).
    pub success_threshold: u32,
    /// `failureThreshold` (default 3).
    pub failure_threshold: u32,
}

fn port_of(container: &Container, port: &IntOrString) -> Option<u16> {
    match port {
        IntOrString::Int(n) => u16::try_from(*n).ok(),
        IntOrString::String(name) => container
            .ports
            .as_ref()?
            .iter()
            .find(|p| p.name.as_deref() == Some(name.as_str()))
            .and_then(|p| u16::try_from(p.container_port).ok()),
    }
}

/// The probe's target and timing; `None` for probes this agent cannot run (`exec`,
/// `grpc`) or whose named port does not exist.
pub fn probe_spec(container: &Container, probe: &Probe) -> Option<ProbeSpec> {
    let target = if let Some(h) = &probe.http_get {
        ProbeTarget::Http { port: port_of(container, &h.port)?, path: h.path.clone().unwrap_or_else(|| "/".into()) }
    } else if let Some(t) = &probe.tcp_socket {
        ProbeTarget::Tcp { port: port_of(container, &t.port)? }
    } else {
        return None;
    };
    let secs = |v: Option<i32>, default: u64| v.and_then(|v| u64::try_from(v).ok()).unwrap_or(default);
    let count = |v: Option<i32>, default: u32| v.and_then(|v| u32::try_from(v).ok()).unwrap_or(default).max(1);
    Some(ProbeSpec {
        target,
        initial_delay_s: secs(probe.initial_delay_seconds, 0),
        period_s: secs(probe.period_seconds, 10).max(1),
        timeout_s: secs(probe.timeout_seconds, 1).max(1),
        success_threshold: count(probe.success_threshold, 1),
        failure_threshold: count(probe.failure_threshold, 3),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{ContainerPort, HTTPGetAction};

    fn vars(name: &str) -> Option<String> {
        match name {
            "POD_NAME" => Some("kv-1".into()),
            "MODE" => Some("forward".into()),
            _ => None,
        }
    }

    #[test]
    fn expansion_follows_kubernetes() {
        assert_eq!(expand("--advertise-host=$(POD_NAME).kv-headless", &vars), "--advertise-host=kv-1.kv-headless");
        assert_eq!(expand("$(MODE)-$(MISSING)", &vars), "forward-$(MISSING)");
        assert_eq!(expand("$$(POD_NAME) costs $5", &vars), "$(POD_NAME) costs $5");
        assert_eq!(expand("$(POD_NAME", &vars), "$(POD_NAME");
    }

    #[test]
    fn listen_and_mount_substitutions() {
        assert_eq!(rewrite_listen("--http-addr=0.0.0.0:8080", "198.18.0.7"), "--http-addr=198.18.0.7:8080");
        assert_eq!(rewrite_listen("[::]:7379", "198.18.0.7"), "198.18.0.7:7379");
        let mounts = [
            HostMount { mount_path: "/var/lib/seshat".into(), host_dir: "/h/pv1".into() },
            HostMount { mount_path: "/var/lib/seshat/cache".into(), host_dir: "/h/cache".into() },
        ];
        assert_eq!(rewrite_paths("--data-dir=/var/lib/seshat/data", &mounts), "--data-dir=/h/pv1/data");
        assert_eq!(rewrite_paths("/var/lib/seshat/cache/x", &mounts), "/h/cache/x");
        assert_eq!(rewrite_paths("/var/lib/seshat", &mounts), "/h/pv1");
        assert_eq!(rewrite_paths("/var/lib/seshatx", &mounts), "/var/lib/seshatx");
        assert_eq!(rewrite_paths("--log-format=json", &mounts), "--log-format=json");
    }

    #[test]
    fn argv_substitutes_binary_and_probes_resolve_named_ports() {
        let c = Container {
            name: "seshat".into(),
            command: Some(vec!["/seshat".into(), "--quiet".into()]),
            args: Some(vec!["serve".into(), "--resp-addr=0.0.0.0:6379".into(), "--data-dir=/d/x".into()]),
            ports: Some(vec![ContainerPort { name: Some("http".into()), container_port: 8080, ..Default::default() }]),
            ..Default::default()
        };
        let mounts = [HostMount { mount_path: "/d".into(), host_dir: "/host/d".into() }];
        let v = argv(&c, Path::new("/bin/seshat-node"), &vars, "198.18.0.9", &mounts);
        assert_eq!(v, ["/bin/seshat-node", "--quiet", "serve", "--resp-addr=198.18.0.9:6379", "--data-dir=/host/d/x"]);
        let probe = Probe {
            http_get: Some(HTTPGetAction {
                path: Some("/readyz".into()),
                port: IntOrString::String("http".into()),
                ..Default::default()
            }),
            period_seconds: Some(5),
            ..Default::default()
        };
        let spec = probe_spec(&c, &probe).unwrap();
        assert_eq!(spec.target, ProbeTarget::Http { port: 8080, path: "/readyz".into() });
        assert_eq!((spec.period_s, spec.timeout_s, spec.failure_threshold), (5, 1, 3));
        let bad = Probe {
            http_get: Some(HTTPGetAction { port: IntOrString::String("nope".into()), ..Default::default() }),
            ..Default::default()
        };
        assert_eq!(probe_spec(&c, &bad), None);
    }
}
