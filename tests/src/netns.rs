//! A private network of test hosts built from Linux network namespaces, so that
//! partitions are real: packets between hosts are dropped by the kernel.
//!
//! Topology of lab `N` (N in 1..=250, claimed per lab so concurrent test
//! processes never collide):
//!
//! ```text
//!   root namespace: bridge sslabN, 10.77.N.1/24   <- the test process (clients) lives here
//!     ├─ veth sslabNv0 <-> eth0 in netns sslabN-h0, 10.77.N.10/24
//!     ├─ veth sslabNv1 <-> eth0 in netns sslabN-h1, 10.77.N.11/24
//!     └─ ...
//! ```
//!
//! The namespaces have no route beyond their /24, so nothing they run can reach
//! any address outside the lab. Partitions are `iptables` DROP rules *inside*
//! each host's namespace, between host addresses only: the test's clients on
//! the bridge address keep reaching every host (as in Jepsen, clients see both
//! sides of a split). [`NetLab::set_link`] cuts a host off completely instead.
//!
//! Everything created is removed on drop; a lab left behind by a killed test
//! process is reclaimed by the next [`NetLab::create`] (its owner pid is dead).

use std::fs;
use std::io::Write;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::Command;

/// Where labs record their owner pid (claiming a lab = creating its file).
const CLAIM_DIR: &str = "/run/seshat-netlab";

/// Why a lab could not be built or changed.
#[derive(Debug, thiserror::Error)]
pub enum NetnsError {
    /// The environment cannot host a lab (not root, missing tools): tests skip.
    #[error("network namespaces unavailable: {0}")]
    Unavailable(String),
    /// A command failed.
    #[error("`{cmd}` failed: {stderr}")]
    Command {
        /// The command line.
        cmd: String,
        /// Its standard error.
        stderr: String,
    },
    /// Every lab id is in use by a live process.
    #[error("no free lab id in 1..=250")]
    Exhausted,
    /// Filesystem error on the claim file.
    #[error("claim file: {0}")]
    Io(#[from] std::io::Error),
}

/// One test host: a namespace with one interface on the lab bridge.
#[derive(Debug, Clone)]
pub struct NetHost {
    /// Namespace name (`ip netns exec <ns> ...`).
    pub ns: String,
    /// Host-side veth name (on the bridge).
    pub veth: String,
    /// The host's address.
    pub ip: Ipv4Addr,
}

/// A lab: bridge, hosts, and the firewall rule letting bridged traffic through.
#[derive(Debug)]
pub struct NetLab {
    id: u8,
    bridge: String,
    hosts: Vec<NetHost>,
    claim: PathBuf,
}

/// Run a command, mapping a non-zero exit to [`NetnsError::Command`].
fn run(program: &str, args: &[&str]) -> Result<(), NetnsError> {
    let out =
        Command::new(program).args(args).output().map_err(|e| NetnsError::Unavailable(format!("{program}: {e}")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(NetnsError::Command {
            cmd: format!("{program} {}", args.join(" ")),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        })
    }
}

/// Best-effort variant of [`run`] for cleanup paths, where a missing object is fine.
fn run_quiet(program: &str, args: &[&str]) {
    let _ = Command::new(program)
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status();
}

fn pid_alive(pid: u32) -> bool {
    PathBuf::from(format!("/proc/{pid}")).exists()
}

impl NetLab {
    /// `Ok` when labs can be built here; otherwise the reason, for a skip message.
    pub fn available() -> Result<(), NetnsError> {
        // SAFETY: geteuid has no preconditions and cannot fail.
        if unsafe { libc::geteuid() } != 0 {
            return Err(NetnsError::Unavailable("not running as root".into()));
        }
        for tool in ["ip", "iptables"] {
            if Command::new(tool).arg("--version").output().is_err() {
                return Err(NetnsError::Unavailable(format!("`{tool}` not found")));
            }
        }
        Ok(())
    }

    /// Build a lab with `hosts` hosts.
    pub fn create(hosts: usize) -> Result<Self, NetnsError> {
        Self::available()?;
        fs::create_dir_all(CLAIM_DIR)?;
        let id = Self::claim()?;
        let mut lab = NetLab {
            id,
            bridge: format!("sslab{id}"),
            hosts: Vec::new(),
            claim: PathBuf::from(format!("{CLAIM_DIR}/{id}.pid")),
        };
        // From here on, Drop undoes whatever part was built.
        lab.build_bridge()?;
        for _ in 0..hosts {
            lab.add_host()?;
        }
        Ok(lab)
    }

    /// Claim the lowest free lab id, reclaiming ids whose owner died.
    fn claim() -> Result<u8, NetnsError> {
        let me = std::process::id();
        for id in 1..=250u8 {
            let path = PathBuf::from(format!("{CLAIM_DIR}/{id}.pid"));
            match fs::OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(mut f) => {
                    write!(f, "{me}")?;
                    Self::remove_objects(id, 64);
                    return Ok(id);
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let owner = fs::read_to_string(&path).ok().and_then(|s| s.trim().parse().ok());
                    // An empty file may be a claim being written right now: leave it.
                    if let Some(pid) = owner {
                        if !pid_alive(pid) {
                            Self::remove_objects(id, 64);
                            let _ = fs::remove_file(&path);
                        }
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(NetnsError::Exhausted)
    }

    /// Delete lab `id`'s namespaces, bridge and firewall rule (best effort).
    fn remove_objects(id: u8, max_hosts: usize) {
        for i in 0..max_hosts {
            let ns = format!("sslab{id}-h{i}");
            if PathBuf::from(format!("/run/netns/{ns}")).exists() {
                // Deleting the namespace deletes its veth end, and with it the peer.
                run_quiet("ip", &["netns", "del", &ns]);
            }
        }
        let bridge = format!("sslab{id}");
        run_quiet("ip", &["link", "del", &bridge]);
        // The rule may be present more than once if a previous owner crashed mid-build.
        for _ in 0..4 {
            run_quiet("iptables", &["-D", "FORWARD", "-i", &bridge, "-o", &bridge, "-j", "ACCEPT"]);
        }
    }

    fn build_bridge(&mut self) -> Result<(), NetnsError> {
        let b = self.bridge.clone();
        run("ip", &["link", "add", &b, "type", "bridge"])?;
        run("ip", &["addr", "add", &format!("{}/24", self.gateway_ip()), "dev", &b])?;
        run("ip", &["link", "set", &b, "up"])?;
        // With br_netfilter loaded (Docker loads it), frames between bridge
        // ports traverse the FORWARD chain, whose policy Docker sets to DROP.
        run("iptables", &["-I", "FORWARD", "-i", &b, "-o", &b, "-j", "ACCEPT"])?;
        Ok(())
    }

    /// Add one more host; returns its index.
    pub fn add_host(&mut self) -> Result<usize, NetnsError> {
        let i = self.hosts.len();
        if i >= 64 {
            return Err(NetnsError::Unavailable("at most 64 hosts per lab".into()));
        }
        let id = self.id;
        let host = NetHost {
            ns: format!("sslab{id}-h{i}"),
            veth: format!("sslab{id}v{i}"),
            ip: Ipv4Addr::new(10, 77, id, 10 + i as u8),
        };
        let peer = format!("sslab{id}p{i}");
        run("ip", &["netns", "add", &host.ns])?;
        // Recorded now so that Drop removes the namespace even if a step below fails.
        self.hosts.push(host.clone());
        run("ip", &["link", "add", &host.veth, "type", "veth", "peer", "name", &peer])?;
        run("ip", &["link", "set", &peer, "netns", &host.ns])?;
        run("ip", &["link", "set", &host.veth, "master", &self.bridge])?;
        run("ip", &["link", "set", &host.veth, "up"])?;
        let ns = host.ns.as_str();
        run("ip", &["-n", ns, "link", "set", &peer, "name", "eth0"])?;
        run("ip", &["-n", ns, "addr", "add", &format!("{}/24", host.ip), "dev", "eth0"])?;
        run("ip", &["-n", ns, "link", "set", "eth0", "up"])?;
        run("ip", &["-n", ns, "link", "set", "lo", "up"])?;
        Ok(i)
    }

    /// This lab's id (the third octet of its subnet).
    pub fn id(&self) -> u8 {
        self.id
    }

    /// The hosts, by index.
    pub fn hosts(&self) -> &[NetHost] {
        &self.hosts
    }

    /// Host `i`.
    pub fn host(&self, i: usize) -> &NetHost {
        &self.hosts[i]
    }

    /// The bridge's address: where the test process's traffic comes from.
    pub fn gateway_ip(&self) -> Ipv4Addr {
        Ipv4Addr::new(10, 77, self.id, 1)
    }

    /// A command that runs `program` inside host `i`'s namespace. `ip netns
    /// exec` execs the program, so the child's pid is the program's pid and
    /// signals sent to it (SIGKILL, SIGSTOP) reach the program itself.
    pub fn command(&self, i: usize, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.hosts[i].ns]).arg(program);
        c
    }

    /// Split the hosts into `groups`: hosts in different groups can no longer
    /// exchange packets (silently dropped, as a real partition does). Hosts not
    /// listed in any group are cut off from every other host. Replaces any
    /// previous partition.
    pub fn partition(&self, groups: &[Vec<usize>]) -> Result<(), NetnsError> {
        self.heal()?;
        let group_of = |h: usize| groups.iter().position(|g| g.contains(&h));
        for (i, host) in self.hosts.iter().enumerate() {
            for (j, other) in self.hosts.iter().enumerate() {
                let same = i == j || (group_of(i).is_some() && group_of(i) == group_of(j));
                if same {
                    continue;
                }
                let ip = other.ip.to_string();
                let ns = host.ns.as_str();
                run("ip", &["netns", "exec", ns, "iptables", "-A", "INPUT", "-s", &ip, "-j", "DROP"])?;
                run("ip", &["netns", "exec", ns, "iptables", "-A", "OUTPUT", "-d", &ip, "-j", "DROP"])?;
            }
        }
        Ok(())
    }

    /// Remove every partition rule (links cut by [`Self::set_link`] stay cut).
    pub fn heal(&self) -> Result<(), NetnsError> {
        for host in &self.hosts {
            run("ip", &["netns", "exec", &host.ns, "iptables", "-F", "INPUT"])?;
            run("ip", &["netns", "exec", &host.ns, "iptables", "-F", "OUTPUT"])?;
        }
        Ok(())
    }

    /// Bring host `i`'s link down (unreachable by everyone, clients included) or up.
    pub fn set_link(&self, i: usize, up: bool) -> Result<(), NetnsError> {
        let state = if up { "up" } else { "down" };
        run("ip", &["link", "set", &self.hosts[i].veth, state])
    }

    /// Run `f` on a new thread whose network namespace is host `i`'s: sockets
    /// it opens live inside that host. For probing connectivity in tests.
    pub fn in_host<T: Send + 'static>(&self, i: usize, f: impl FnOnce() -> T + Send + 'static) -> std::io::Result<T> {
        let path = format!("/run/netns/{}", self.hosts[i].ns);
        std::thread::spawn(move || {
            let file = fs::File::open(&path)?;
            use std::os::fd::AsRawFd;
            // SAFETY: setns on a valid namespace fd only changes this thread's
            // network namespace; the thread ends when `f` returns.
            if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(f())
        })
        .join()
        .map_err(|_| std::io::Error::other("thread in namespace panicked"))?
    }
}

impl Drop for NetLab {
    fn drop(&mut self) {
        Self::remove_objects(self.id, self.hosts.len());
        let _ = fs::remove_file(&self.claim);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::net::{TcpListener, TcpStream};
    use std::time::Duration;

    fn lab(n: usize) -> Option<NetLab> {
        match NetLab::create(n) {
            Ok(l) => Some(l),
            Err(NetnsError::Unavailable(why)) => {
                eprintln!("SKIP: {why}");
                None
            }
            Err(e) => panic!("{e}"),
        }
    }

    /// Listen inside host `i` on port 9000 and answer one byte per connection.
    fn serve(lab: &NetLab, i: usize) {
        let ip = lab.host(i).ip;
        let listener = lab.in_host(i, move || TcpListener::bind((ip, 9000))).unwrap().unwrap();
        std::thread::spawn(move || {
            for s in listener.incoming().flatten() {
                let mut s = s;
                let _ = std::io::Write::write_all(&mut s, b"x");
            }
        });
    }

    fn reach(to: Ipv4Addr) -> bool {
        let addr = (to, 9000).into();
        match TcpStream::connect_timeout(&addr, Duration::from_millis(500)) {
            Ok(mut s) => {
                s.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
                let mut b = [0u8; 1];
                s.read_exact(&mut b).is_ok()
            }
            Err(_) => false,
        }
    }

    fn reach_from(lab: &NetLab, from: usize, to: usize) -> bool {
        let ip = lab.host(to).ip;
        lab.in_host(from, move || reach(ip)).unwrap()
    }

    #[test]
    fn hosts_reach_each_other_until_partitioned() {
        let Some(lab) = lab(3) else { return };
        for i in 0..3 {
            serve(&lab, i);
        }
        for i in 0..3 {
            assert!(reach(lab.host(i).ip), "client -> h{i}");
            for j in 0..3 {
                assert!(reach_from(&lab, i, j), "h{i} -> h{j}");
            }
        }
        lab.partition(&[vec![0, 1], vec![2]]).unwrap();
        assert!(reach_from(&lab, 0, 1));
        assert!(!reach_from(&lab, 0, 2));
        assert!(!reach_from(&lab, 2, 1));
        assert!(reach(lab.host(2).ip), "clients still reach the minority");
        lab.heal().unwrap();
        assert!(reach_from(&lab, 2, 0));
        lab.set_link(1, false).unwrap();
        assert!(!reach(lab.host(1).ip));
        lab.set_link(1, true).unwrap();
        // The bridge port needs a moment to forward again: poll with a deadline.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !reach(lab.host(1).ip) {
            assert!(std::time::Instant::now() < deadline, "link did not come back");
        }
    }

    #[test]
    fn drop_removes_everything() {
        let Some(lab) = lab(2) else { return };
        let (bridge, ns) = (lab.bridge.clone(), lab.host(1).ns.clone());
        drop(lab);
        assert!(!PathBuf::from(format!("/run/netns/{ns}")).exists());
        let out = Command::new("ip").args(["link", "show", &bridge]).output().unwrap();
        assert!(!out.status.success(), "bridge {bridge} still exists");
    }
}
