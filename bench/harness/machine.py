"""What the numbers were measured on."""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
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
