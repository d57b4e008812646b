"""What the numbers were measured on."""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import time
from pathlib import Path


def _cmd(*argv: str) -> str:
    try:
        return subprocess.run(
            argv, check=False, capture_output=True, text=True, timeout=10
        ).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return "?"


def loadavg() -> str:
    """1/5/15-minute load averages: a busy machine makes every number lower."""
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def _cpu_times() -> tuple[int, int]:
    """(busy, total) jiffies over all CPUs since boot."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return sum(fields) - idle, sum(fields)


def background_busy(seconds: float = 1.0) -> float | None:
    """Fraction of all CPUs busy over the next `seconds`, sampled while the
    harness runs nothing: other work on the machine. (The load average cannot
    say this: it still counts the system benchmarked a minute before.)"""
    try:
        b0, t0 = _cpu_times()
        time.sleep(seconds)
        b1, t1 = _cpu_times()
    except (OSError, ValueError, IndexError):
        return None
    return (b1 - b0) / (t1 - t0) if t1 > t0 else None


def describe(repo: Path, workdir: Path) -> dict:
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = "?"
    try:
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f"{kb / 2**20:.1f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    df = _cmd("df", "--output=fstype", str(workdir)).splitlines()
    rev = _cmd("git", "-C", str(repo), "rev-parse", "--short", "HEAD")
    dirty = _cmd("git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no")
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "memory": mem,
        "kernel": platform.release(),
        "os": _cmd("sh", "-c", ". /etc/os-release && echo $PRETTY_NAME"),
        "data_fs": df[-1].strip() if len(df) > 1 else "?",
        "loadavg_start": loadavg(),
        "git": rev + ("+dirty" if dirty else ""),
        "redis": _cmd("redis-server", "--version"),
        "etcd": _cmd("etcd", "--version").splitlines()[0] if shutil.which("etcd") else "absent",
        "python": platform.python_version(),
    }
