"""Processes the harness starts: each in its own process group, all of them
killed (group-wide, SIGKILL as a last resort) when the harness exits, whatever
the reason (normal end, exception, Ctrl-C, SIGTERM)."""

from __future__ import annotations

import contextlib
import ctypes
import os
import resource
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path

# Every process group this harness started and has not reaped yet. The cleanup in
# run.py walks it on any exit, so no server outlives the harness.
_LIVE: dict[int, Proc] = {}


class StartError(RuntimeError):
    """A system did not come up (process exited, or not ready in time)."""


class Proc:
    """A child process in a process group of its own, logging to a file."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        log: Path,
        cwd: Path | None = None,
        env: dict[str, str] | None = None,
    ):
        self.name = name
        self.argv = list(argv)
        self.log_path = log
        log.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(log, "ab")
        # start_new_session: a group of its own, so one killpg reaches the process
        # and anything it forks, and a Ctrl-C in the terminal reaches only us
        # (we then stop the children in order instead of racing their handlers).
        self.popen = subprocess.Popen(
            self.argv,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            env=env,
            start_new_session=True,
            # Safe: processes are started from the main thread while no other runs.
            preexec_fn=_die_with_parent,  # noqa: PLW1509
        )
        self.pid = self.popen.pid
        _LIVE[self.pid] = self

    def alive(self) -> bool:
        return self.popen.poll() is None

    def check_alive(self) -> None:
        """Raises StartError with the log tail if the process has exited."""
        if not self.alive():
            raise StartError(
                f"{self.name} exited with {self.popen.returncode}; log tail:\n{tail(self.log_path)}"
            )

    def stop(self, sig: int = signal.SIGTERM, grace: float = 10.0) -> None:
        """Sends `sig` to the process (not the group, so it can stop its own
        children in order), waits up to `grace`, then SIGKILLs the whole group."""
        try:
            if self.alive():
                os.kill(self.pid, sig)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.popen.wait(grace)
        finally:
            self.kill_group()

    def kill_group(self) -> None:
        """SIGKILLs every process still in the group, and every descendant that
        moved to a group of its own (seshat local puts each node in its own
        group), then reaps the leader."""
        descendants = all_descendants(self.pid)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)
        for pid in descendants:
            kill_pid(pid)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(5)
        _LIVE.pop(self.pid, None)
        self._log.close()


_libc = ctypes.CDLL(None, use_errno=True)
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In the child before exec: SIGKILL it if the harness dies (even by SIGKILL,
    when no finally block runs). Linux-only, as the rest of this harness."""
    _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def kill_all() -> None:
    """SIGKILLs every process group still live (the last line of cleanup)."""
    for p in list(_LIVE.values()):
        p.kill_group()


def kill_pid(pid: int, sig: int = signal.SIGKILL) -> None:
    """Signals one process, ignoring one that is already gone."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError as e:
        return f"(no log: {e})"


def free_ports(n: int, host: str = "127.0.0.1", consecutive: bool = False) -> list[int]:
    """Returns n ports that were free a moment ago (bind to port 0 and release).
    With consecutive=True they are base, base+1, ... (Seshat local's layout)."""
    for _ in range(200):
        if consecutive:
            base = _one_free_port(host)
            if base + n >= 65535:
                continue
            if all(_port_free(host, base + i) for i in range(n)):
                return [base + i for i in range(n)]
        else:
            socks = []
            try:
                for _i in range(n):
                    s = socket.socket()
                    s.bind((host, 0))
                    socks.append(s)
                return [s.getsockname()[1] for s in socks]
            finally:
                for s in socks:
                    s.close()
    raise StartError(f"no {n} free {'consecutive ' if consecutive else ''}ports on {host}")


def _one_free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _port_free(host: str, port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind((host, port))
            return True
        except OSError:
            return False


def wait_until(
    what: str,
    cond: Callable[[], bool],
    timeout: float,
    procs: Sequence[Proc] = (),
    every: float = 0.05,
) -> None:
    """Polls cond() until true; raises StartError after `timeout` seconds or as
    soon as one of `procs` exits (a crashed server never becomes ready)."""
    deadline = time.monotonic() + timeout
    last_err: Exception | None = None
    while time.monotonic() < deadline:
        for p in procs:
            p.check_alive()
        try:
            if cond():
                return
        except Exception as e:
            last_err = e
        time.sleep(every)
    raise StartError(
        f"timed out after {timeout:.0f}s waiting for {what}"
        + (f" (last error: {last_err})" if last_err else "")
    )


def child_pids(pid: int) -> list[int]:
    """Direct children of `pid` (all threads), from /proc."""
    out: list[int] = []
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                out.extend(int(x) for x in f.read().split())
    except OSError:
        pass
    return out


def all_descendants(pid: int) -> list[int]:
    """Every descendant of `pid` (children, their children, ...)."""
    out, todo = [], [pid]
    while todo:
        kids = child_pids(todo.pop())
        out.extend(kids)
        todo.extend(kids)
    return out


def rss_bytes(pid: int) -> int:
    """Resident set size of a process (VmRSS)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


_CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system, every thread, live or exited) a running process
    has used so far, from /proc/<pid>/stat (resolution: one clock tick, 10 ms on Linux
    with the usual USER_HZ of 100)."""
    # Field 2, the command name, may hold spaces and parentheses: split after it.
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    utime, stime = int(fields[11]), int(fields[12])  # stat fields 14 and 15
    return (utime + stime) / _CLK_TCK


def reaped_children_cpu_seconds() -> float:
    """CPU time (user + system) of every child this process has waited for: the
    difference across one `run_tool` call is that tool's CPU time."""
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def run_tool(name: str, argv: Sequence[str], timeout: float) -> tuple[int, str, str]:
    """Runs a client tool (redis-benchmark, etcd-load) in a group of its own,
    killed on timeout or on any exception here; returns (rc, stdout, stderr)."""
    p = subprocess.Popen(
        list(argv),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
        preexec_fn=_die_with_parent,  # noqa: PLW1509 - see Proc
    )
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _killpg(p)
        raise RuntimeError(
            f"{name} did not finish within {timeout:.0f}s: {' '.join(argv)}"
        ) from None
    except BaseException:
        _killpg(p)
        raise
    return p.returncode, out.decode(errors="replace"), err.decode(errors="replace")


def _killpg(p: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(p.pid, signal.SIGKILL)
    p.wait()
