//! Pod IPs: one address per pod incarnation, added to the loopback interface.
//!
//! Why not `127.x.y.z`: the API server refuses loopback (and link-local) addresses in
//! Endpoints, so the endpoints controller could never publish such a pod behind a
//! Service. The pool is `198.18.0.0/15` instead (RFC 2544 benchmarking space: routable
//! syntax, never assigned on real networks), each address added as a `/32` on `lo`, so
//! it is reachable only from this machine, exactly like a loopback address.
//!
//! Every pod incarnation gets a fresh address, as a real CNI would: a restarted pod
//! comes back at a new IP, which the servers must pick up through DNS.
//!
//! Invariant: every address this pool added is removed again, on [`IpPool::release`],
//! or on `Drop` for the ones still held (the e2e script removes the range's leftovers of
//! a killed run).

use std::collections::BTreeSet;
use std::io;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Mutex;

/// First address of the pool's range.
pub const POOL_BASE: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 0);
/// Size of the range (`/15`).
pub const POOL_SIZE: u32 = 1 << 17;

/// Allocates pod IPs and keeps them configured on `lo` while they are held.
pub struct IpPool {
    state: Mutex<PoolState>,
    /// Every address added is also appended here (see `container::record`).
    record: PathBuf,
}

struct PoolState {
    next: u32,
    held: BTreeSet<Ipv4Addr>,
}

impl IpPool {
    /// A pool handing out addresses from `POOL_BASE + first` on, recording each in `record`.
    pub fn new(first: u32, record: PathBuf) -> Self {
        Self { state: Mutex::new(PoolState { next: first.max(1), held: BTreeSet::new() }), record }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, PoolState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A fresh address, configured on `lo`. Skips addresses that are somehow already
    /// configured (a leftover of a killed run), so two pods never share one.
    pub fn allocate(&self) -> io::Result<Ipv4Addr> {
        for _ in 0..64 {
            let ip = {
                let mut st = self.lock();
                let offset = st.next % POOL_SIZE;
                st.next = st.next.wrapping_add(1);
                // .0 and .255 of each /24 look odd in logs; skip them.
                if offset % 256 == 0 || offset % 256 == 255 {
                    continue;
                }
                Ipv4Addr::from(u32::from(POOL_BASE) + offset)
            };
            match ip_addr("add", ip) {
                Ok(()) => {
                    super::container::record(&self.record, ip);
                    self.lock().held.insert(ip);
                    return Ok(ip);
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
        }
        Err(io::Error::other("no free pod IP after 64 attempts"))
    }

    /// Removes `ip` from `lo`.
    pub fn release(&self, ip: Ipv4Addr) -> io::Result<()> {
        if self.lock().held.remove(&ip) {
            ip_addr("del", ip)?;
        }
        Ok(())
    }
}

impl Drop for IpPool {
    fn drop(&mut self) {
        let held = std::mem::take(&mut self.lock().held);
        for ip in held {
            if let Err(e) = ip_addr("del", ip) {
                eprintln!("could not remove pod IP {ip} from lo: {e}");
            }
        }
    }
}

/// `ip addr add|del IP/32 dev lo`.
fn ip_addr(verb: &str, ip: Ipv4Addr) -> io::Result<()> {
    let out = Command::new("ip").args(["addr", verb, &format!("{ip}/32"), "dev", "lo"]).output()?;
    if out.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    let kind = if stderr.contains("File exists") { io::ErrorKind::AlreadyExists } else { io::ErrorKind::Other };
    Err(io::Error::new(kind, format!("ip addr {verb} {ip}/32 dev lo: {}", stderr.trim())))
}

/// Checks that addresses can be added to `lo` (root with CAP_NET_ADMIN), so the suite
/// fails at start with a clear message instead of at the first pod.
pub fn preflight() -> io::Result<()> {
    let probe = Ipv4Addr::from(u32::from(POOL_BASE) + POOL_SIZE - 2);
    match ip_addr("add", probe) {
        Ok(()) => ip_addr("del", probe),
        // A leftover of a killed run: proves the capability too.
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => ip_addr("del", probe),
        Err(e) => Err(e),
    }
}
