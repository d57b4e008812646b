//! Pod DNS names for the run: a marked block in `/etc/hosts`.
//!
//! There is no cluster DNS here. glibc's resolver (which the operator, the servers and
//! the test clients all use through `getaddrinfo`) reads `/etc/hosts` on every lookup,
//! so a block of lines we own there is the smallest faithful stand-in for the records
//! CoreDNS serves for a headless Service: `<hostname>.<subdomain>.<ns>.svc.<domain>`
//! and its search-path short forms.
//!
//! Invariants:
//! - only the lines between our own `BEGIN`/`END` markers (tagged with this run's id)
//!   are ever written; everything else in the file is preserved byte for byte, so other
//!   processes' edits made during the run survive;
//! - the block is removed on [`HostsFile::restore`] and on `Drop`, so a panicking test
//!   leaves the file as it found it (the e2e script strips stale blocks of killed runs).
//!
//! The file is rewritten in place (write, then truncate to the new length) rather than
//! renamed over, because `/etc/hosts` is often a bind mount that cannot be replaced.

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::io::{self, Seek, SeekFrom, Write};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Marker prefix of every block this module writes (`scripts/e2e-k8s` greps for it).
pub const MARKER: &str = "seshat-e2e";

/// The owned block of a hosts file: entries keyed by an owner (a pod uid).
pub struct HostsFile {
    path: PathBuf,
    run_id: String,
    /// owner → (ip, names). A BTreeMap so the block's order is deterministic.
    entries: Mutex<BTreeMap<String, (IpAddr, Vec<String>)>>,
}

impl HostsFile {
    /// Manages the block tagged `run_id` in the file at `path` (normally `/etc/hosts`).
    /// Fails early when the file is not writable (not root), instead of at the first pod.
    pub fn open(path: &Path, run_id: &str) -> io::Result<Self> {
        OpenOptions::new().append(true).open(path)?;
        let hosts = Self { path: path.to_owned(), run_id: run_id.to_owned(), entries: Mutex::new(BTreeMap::new()) };
        hosts.rewrite(&BTreeMap::new())?;
        Ok(hosts)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, (IpAddr, Vec<String>)>> {
        // Replaced wholesale under the lock; a panic elsewhere cannot tear it.
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Maps `names` to `ip` on behalf of `owner` (replacing that owner's previous entry).
    pub fn set(&self, owner: &str, ip: IpAddr, names: Vec<String>) -> io::Result<()> {
        let mut entries = self.lock();
        entries.insert(owner.to_owned(), (ip, names));
        self.rewrite(&entries)
    }

    /// Removes `owner`'s entry, if any.
    pub fn remove(&self, owner: &str) -> io::Result<()> {
        let mut entries = self.lock();
        if entries.remove(owner).is_some() {
            self.rewrite(&entries)?;
        }
        Ok(())
    }

    /// Removes the whole block.
    pub fn restore(&self) -> io::Result<()> {
        let mut entries = self.lock();
        entries.clear();
        strip_file(&self.path, &self.begin(), &self.end())
    }

    fn begin(&self) -> String {
        format!("# BEGIN {MARKER} {}", self.run_id)
    }

    fn end(&self) -> String {
        format!("# END {MARKER} {}", self.run_id)
    }

    fn rewrite(&self, entries: &BTreeMap<String, (IpAddr, Vec<String>)>) -> io::Result<()> {
        let current = std::fs::read_to_string(&self.path)?;
        let mut text = strip_block(&current, &self.begin(), &self.end());
        if !entries.is_empty() {
            if !text.is_empty() && !text.ends_with('\n') {
                text.push('\n');
            }
            text.push_str(&self.begin());
            text.push('\n');
            for (ip, names) in entries.values() {
                text.push_str(&format!("{ip} {}\n", names.join(" ")));
            }
            text.push_str(&self.end());
            text.push('\n');
        }
        write_in_place(&self.path, &text)
    }
}

impl Drop for HostsFile {
    fn drop(&mut self) {
        if let Err(e) = self.restore() {
            eprintln!("could not restore {}: {e}", self.path.display());
        }
    }
}

/// `text` without the lines from `begin` to `end` (inclusive).
pub fn strip_block(text: &str, begin: &str, end: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut inside = false;
    for line in text.split_inclusive('\n') {
        let bare = line.trim_end_matches(['\n', '\r']);
        if bare == begin {
            inside = true;
        } else if inside && bare == end {
            inside = false;
        } else if !inside {
            out.push_str(line);
        }
    }
    out
}

fn strip_file(path: &Path, begin: &str, end: &str) -> io::Result<()> {
    let current = std::fs::read_to_string(path)?;
    let stripped = strip_block(&current, begin, end);
    if stripped != current {
        write_in_place(path, &stripped)?;
    }
    Ok(())
}

/// Writes `text` over the file's start, then cuts it to length: readers never see an
/// empty file (the unchanged prefix — the original entries — is always intact).
fn write_in_place(path: &Path, text: &str) -> io::Result<()> {
    let mut f = OpenOptions::new().write(true).open(path)?;
    f.seek(SeekFrom::Start(0))?;
    f.write_all(text.as_bytes())?;
    f.set_len(text.len() as u64)?;
    f.sync_data()
}

/// The names CoreDNS serves for a pod with `hostname` in headless Service `subdomain`:
/// the FQDN and the short forms a pod's search path (`<ns>.svc.<domain>`, `svc.<domain>`,
/// `<domain>`) would complete.
pub fn pod_names(hostname: &str, subdomain: &str, namespace: &str, domain: &str) -> Vec<String> {
    let base = format!("{hostname}.{subdomain}");
    vec![
        format!("{base}.{namespace}.svc.{domain}"),
        format!("{base}.{namespace}.svc"),
        format!("{base}.{namespace}"),
        base,
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_is_added_replaced_and_stripped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hosts");
        std::fs::write(&path, "127.0.0.1 localhost\n").unwrap();
        let hosts = HostsFile::open(&path, "t1").unwrap();
        let ip: IpAddr = "198.18.0.10".parse().unwrap();
        hosts.set("uid-a", ip, pod_names("kv-0", "kv-headless", "ns", "cluster.local")).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("127.0.0.1 localhost\n# BEGIN seshat-e2e t1\n"), "{text}");
        assert!(text.contains("198.18.0.10 kv-0.kv-headless.ns.svc.cluster.local kv-0.kv-headless.ns.svc"));
        // Another writer's line appended meanwhile survives our rewrites.
        std::fs::write(&path, format!("{text}10.0.0.1 other\n")).unwrap();
        hosts.set("uid-b", "198.18.0.11".parse().unwrap(), vec!["kv-1".into()]).unwrap();
        hosts.remove("uid-a").unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("10.0.0.1 other\n") && text.contains("198.18.0.11 kv-1\n"));
        assert!(!text.contains("198.18.0.10"));
        drop(hosts);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "127.0.0.1 localhost\n10.0.0.1 other\n");
    }
}
