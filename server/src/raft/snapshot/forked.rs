//! Writing a snapshot from a forked child process, so that applies wait for
//! a `fork`, not for the whole write.
//!
//! A snapshot must be a consistent cut of the state at `last_applied`, so its
//! writer holds the state machine's read lock, and applies wait for the lock.
//! Writing 1M keys took 1.2–1.4 s here, and every write to the node stalled
//! that long: up to 1.7 s of latency under pipelined load (issue 5). Like
//! Redis's `BGSAVE`, the node instead forks while it holds the lock. The child
//! sees the state as it was at the fork, in copy-on-write pages, and writes
//! the file; the parent releases the lock as soon as `fork` returns (about
//! 2 ms for a 200 MB process here).
//!
//! What the child may do: the parent is multi-threaded, and only the forking
//! thread exists in the child, so a lock that another thread held at the
//! fork stays held there forever. The child therefore runs only the writer
//! (reads of the frozen state, `malloc`, whose locks glibc re-initialises in
//! a forked child, and file writes), reports through a pipe, and ends with
//! `_exit`, which runs no destructors or exit handlers. It logs nothing: the
//! log writer's lock may be one of those held. It dies with the thread that
//! forked it (`PR_SET_PDEATHSIG`), and signals sent to it do not run the
//! parent's handlers.
//!
//! The cost is memory: a page the parent writes while the child runs is
//! copied, so under heavy writes the node can need up to the store's size
//! again for the length of a build, as Redis does during `BGSAVE`.
//!
//! The fork has costs of its own on a busy machine: copying page tables, and
//! a page fault and a 4 KiB copy for each page the parent writes first while
//! the child runs. With 100,000 keys (a 6 MB snapshot written in ~47 ms) it
//! doubled the p99 latency of pipelined SETs on two cores (6 → 12 ms) and
//! gained nothing, so the caller forks only for large stores (see
//! `StateMachine`'s snapshot builder). Where `fork` fails (memory limits) or
//! is not available (other than Linux with glibc), the writer runs in this
//! process with the lock held.

use std::io;

/// Runs `write` against the state that `guard` holds still, then releases
/// `guard`. With `in_child`, on Linux with glibc, `write` runs in a forked
/// child and `guard` is released as soon as the child exists; otherwise, or
/// if the fork fails, `write` runs here and `guard` is released after it.
pub fn write_then_release<G>(guard: G, in_child: bool, write: impl FnOnce(&G) -> io::Result<()>) -> io::Result<()> {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if in_child {
        return match child::spawn(|| write(&guard)) {
            Ok(child) => {
                drop(guard);
                child.wait()
            }
            Err((e, write)) => {
                tracing::warn!(error = %e, "could not fork the snapshot writer; applies wait for the whole write");
                let written = write();
                drop(guard);
                written
            }
        };
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    let _ = in_child;
    let written = write(&guard);
    drop(guard);
    written
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
mod child {
    use std::fs::File;
    use std::io::{self, Read, Write};
    use std::os::fd::{FromRawFd, OwnedFd};
    use std::panic::{catch_unwind, AssertUnwindSafe};

    /// Exit codes of the child besides 0 (written).
    const FAILED: i32 = 1;
    const ORPHANED: i32 = 2;
    const PANICKED: i32 = 3;

    /// A forked writer.
    pub struct Child {
        pid: libc::pid_t,
        /// The read end of the pipe the child reports an error on.
        report: File,
    }

    /// Forks; the child runs `job` and exits. If no child could be made,
    /// `job` comes back unrun.
    pub fn spawn<F: FnOnce() -> io::Result<()>>(job: F) -> Result<Child, (io::Error, F)> {
        let mut fds = [0; 2];
        // SAFETY: pipe2 fills the two-element array with new descriptors.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
            return Err((io::Error::last_os_error(), job));
        }
        // SAFETY: both descriptors were just created and are owned by no one else.
        let (read_end, write_end) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        // SAFETY: getpid has no preconditions.
        let parent = unsafe { libc::getpid() };
        // SAFETY: the child runs only what the module docs allow and never
        // returns from `run`.
        match unsafe { libc::fork() } {
            -1 => Err((io::Error::last_os_error(), job)),
            0 => {
                drop(read_end);
                run(parent, File::from(write_end), job)
            }
            pid => {
                drop(write_end);
                Ok(Child { pid, report: File::from(read_end) })
            }
        }
    }

    fn run(parent: libc::pid_t, mut report: File, job: impl FnOnce() -> io::Result<()>) -> ! {
        // SAFETY: prctl, getppid, signal and _exit are async-signal-safe.
        unsafe {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            // The parent may have died between fork and prctl.
            if libc::getppid() != parent {
                libc::_exit(ORPHANED);
            }
            // The runtime's handlers would write to pipes the parent reads.
            libc::signal(libc::SIGTERM, libc::SIG_DFL);
            libc::signal(libc::SIGINT, libc::SIG_DFL);
        }
        // The default panic hook prints under the stderr lock, which another
        // thread may have held at the fork; the exit code reports a panic.
        std::panic::set_hook(Box::new(|_| {}));
        let code = match catch_unwind(AssertUnwindSafe(job)) {
            Ok(Ok(())) => 0,
            Ok(Err(e)) => {
                let _ = report.write_all(e.to_string().as_bytes());
                FAILED
            }
            Err(_) => PANICKED,
        };
        // SAFETY: ends the child without running the parent's destructors.
        unsafe { libc::_exit(code) }
    }

    impl Child {
        /// Waits for the child to exit; `Ok` when it wrote everything.
        pub fn wait(mut self) -> io::Result<()> {
            // The child's end closes when it exits, so this returns then.
            let mut message = String::new();
            let _ = self.report.read_to_string(&mut message);
            let mut status = 0;
            loop {
                // SAFETY: waits for our own child; `status` is a valid out-pointer.
                if unsafe { libc::waitpid(self.pid, &mut status, 0) } == self.pid {
                    break;
                }
                let e = io::Error::last_os_error();
                if e.kind() != io::ErrorKind::Interrupted {
                    return Err(e);
                }
            }
            if libc::WIFEXITED(status) {
                match libc::WEXITSTATUS(status) {
                    0 => Ok(()),
                    FAILED => Err(io::Error::other(message)),
                    ORPHANED => Err(io::Error::other("the snapshot writer's parent had gone")),
                    PANICKED => Err(io::Error::other("the snapshot writer panicked")),
                    code => Err(io::Error::other(format!("the snapshot writer exited with {code}"))),
                }
            } else {
                Err(io::Error::other(format!("the snapshot writer was killed by signal {}", libc::WTERMSIG(status))))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::RwLock;

    use super::*;

    /// Waits up to 10 s for `path` to exist.
    fn appears(path: &std::path::Path) -> bool {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !path.exists() {
            if std::time::Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        true
    }

    #[test]
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    fn the_lock_is_released_while_the_child_writes_the_state_as_held() {
        let dir = tempfile::tempdir().unwrap();
        let (out, changed) = (dir.path().join("out"), dir.path().join("changed"));
        let state = RwLock::new(vec![1u8, 2, 3]);
        let guard = state.read().unwrap();
        std::thread::scope(|s| {
            s.spawn(|| {
                state.write().unwrap().push(4);
                std::fs::write(&changed, b"").unwrap();
            });
            // The child writes only once the parent has taken the write lock
            // and changed the state: the guard was released at the fork.
            write_then_release(guard, true, |held| {
                if !appears(&changed) {
                    return Err(io::Error::other("the lock was still held"));
                }
                std::fs::write(&out, held.as_slice())
            })
            .unwrap();
        });
        assert_eq!(std::fs::read(&out).unwrap(), [1, 2, 3], "the child saw the state as it was at the fork");
        assert_eq!(*state.read().unwrap(), [1, 2, 3, 4]);
    }

    #[test]
    fn without_a_child_the_writer_runs_here_and_then_releases() {
        let state = RwLock::new(vec![1u8, 2, 3]);
        let mut seen = Vec::new();
        write_then_release(state.read().unwrap(), false, |held| {
            seen.extend_from_slice(held);
            Ok(())
        })
        .unwrap();
        assert_eq!(seen, [1, 2, 3]);
        assert!(state.try_write().is_ok());
    }

    #[test]
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    fn the_writer_runs_in_another_process() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pid");
        let state = RwLock::new(());
        write_then_release(state.read().unwrap(), true, |_| std::fs::write(&path, std::process::id().to_string()))
            .unwrap();
        let writer: u32 = std::fs::read_to_string(&path).unwrap().parse().unwrap();
        assert_ne!(writer, std::process::id());
    }

    #[test]
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    fn a_panicking_writer_is_an_error_not_a_crash() {
        let state = RwLock::new(());
        let err = write_then_release(state.read().unwrap(), true, |_| -> io::Result<()> { panic!("bug") }).unwrap_err();
        assert!(err.to_string().contains("panicked"), "{err}");
    }

    #[test]
    fn the_writers_error_comes_back() {
        let state = RwLock::new(());
        for in_child in [true, false] {
            let err = write_then_release(state.read().unwrap(), in_child, |_| Err(io::Error::other("disk on fire")))
                .unwrap_err();
            assert!(err.to_string().contains("disk on fire"), "{err}");
            assert!(state.try_write().is_ok(), "released after a failure too");
        }
    }
}
