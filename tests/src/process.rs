//! One server process under test: spawn, SIGKILL, SIGSTOP/SIGCONT, RSS, logs.
//!
//! Invariant: a [`NodeProcess`] owns its child; dropping it kills and reaps
//! the process, so no test can leak a server, whatever path it fails on.

use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};

/// A running (or paused) server process.
#[derive(Debug)]
pub struct NodeProcess {
    child: Child,
    paused: bool,
    log: PathBuf,
}

impl NodeProcess {
    /// Spawn `cmd` with stdout and stderr appended to `log`.
    pub fn spawn(mut cmd: Command, log: &Path) -> io::Result<Self> {
        let out = OpenOptions::new().create(true).append(true).open(log)?;
        let err = out.try_clone()?;
        let child = cmd.stdin(Stdio::null()).stdout(Stdio::from(out)).stderr(Stdio::from(err)).spawn()?;
        Ok(Self { child, paused: false, log: log.to_owned() })
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// True while SIGSTOPped by [`Self::pause`].
    pub fn is_paused(&self) -> bool {
        self.paused
    }

    /// The exit status, if the process has exited (reaps it).
    pub fn try_exit(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    fn signal(&self, sig: libc::c_int) -> io::Result<()> {
        // SAFETY: kill(2) with a pid we own (our unreaped child, so the pid
        // cannot have been recycled) and a valid signal number.
        if unsafe { libc::kill(self.child.id() as libc::pid_t, sig) } == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }

    /// SIGSTOP: the process freezes mid-whatever, sockets stay open.
    pub fn pause(&mut self) -> io::Result<()> {
        self.signal(libc::SIGSTOP)?;
        self.paused = true;
        Ok(())
    }

    /// SIGCONT after [`Self::pause`].
    pub fn resume(&mut self) -> io::Result<()> {
        self.signal(libc::SIGCONT)?;
        self.paused = false;
        Ok(())
    }

    /// SIGKILL and reap: no shutdown path of the server runs.
    pub fn kill9(mut self) -> io::Result<ExitStatus> {
        self.kill_and_reap()
    }

    /// SIGTERM, then SIGKILL if it has not exited within `grace`.
    pub fn terminate(mut self, grace: std::time::Duration) -> io::Result<ExitStatus> {
        if self.paused {
            self.resume()?;
        }
        self.signal(libc::SIGTERM)?;
        let deadline = std::time::Instant::now() + grace;
        while std::time::Instant::now() < deadline {
            if let Some(s) = self.child.try_wait()? {
                return Ok(s);
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        self.kill_and_reap()
    }

    fn kill_and_reap(&mut self) -> io::Result<ExitStatus> {
        // SIGKILL works on stopped processes too; no SIGCONT needed.
        match self.child.kill() {
            Ok(()) => {}
            // Already exited: still reap below.
            Err(e) if e.kind() == io::ErrorKind::InvalidInput => {}
            Err(e) => return Err(e),
        }
        self.child.wait()
    }

    /// Resident set size in KiB, from `/proc/PID/status` (`VmRSS`).
    pub fn rss_kib(&self) -> io::Result<u64> {
        rss_kib(self.pid())
    }

    /// The log file this process writes to.
    pub fn log_path(&self) -> &Path {
        &self.log
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        let _ = self.kill_and_reap();
    }
}

/// `VmRSS` of any process, in KiB.
pub fn rss_kib(pid: u32) -> io::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| io::Error::other("no VmRSS line"))
}

/// The last `lines` lines of a log file (for failure reports).
pub fn tail(path: &Path, lines: usize) -> String {
    let Ok(mut f) = File::open(path) else {
        return format!("<no log at {}>", path.display());
    };
    use std::io::{Read, Seek, SeekFrom};
    // Read at most the last 64 KiB: logs of long runs are large.
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = f.seek(SeekFrom::Start(len.saturating_sub(64 * 1024)));
    let mut buf = String::new();
    let _ = f.read_to_string(&mut buf);
    let all: Vec<&str> = buf.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pause_resume_kill_and_rss() {
        let dir = tempfile::tempdir().unwrap();
        let mut cmd = Command::new("sleep");
        cmd.arg("30");
        let mut p = NodeProcess::spawn(cmd, &dir.path().join("log")).unwrap();
        assert!(p.rss_kib().unwrap() > 0);
        p.pause().unwrap();
        // Field 3 of /proc/PID/stat is the state: T = stopped. Signal
        // delivery is asynchronous, so poll for it.
        let stat = format!("/proc/{}/stat", p.pid());
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            let state = std::fs::read_to_string(&stat).unwrap();
            if state.split_whitespace().nth(2) == Some("T") {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "never stopped: {state}");
            std::thread::yield_now();
        }
        p.resume().unwrap();
        assert!(p.try_exit().is_none());
        let status = p.kill9().unwrap();
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(libc::SIGKILL));
    }
}
