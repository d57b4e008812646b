"""The load generators: redis-benchmark for the RESP servers, etcd-load (in
etcd-load/, a Rust gRPC client of the same shape) for etcd. Both: C clients with
one request (or pipeline) in flight each, N requests, random keys key:%012d
(16 bytes) from a key space, fixed-size values."""

from __future__ import annotations

import csv
import io
import json
import math
import subprocess
from dataclasses import dataclass
from pathlib import Path

from .procs import run_tool

BENCH_DIR = Path(__file__).resolve().parent.parent
ETCD_LOAD_DIR = BENCH_DIR / "etcd-load"
ETCD_LOAD_BIN = ETCD_LOAD_DIR / "target" / "release" / "etcd-load"


class LoadError(RuntimeError):
    """A benchmark run failed (tool error, error replies, nothing measured)."""


@dataclass(frozen=True)
class Workload:
    """One measured point: operation, concurrent clients, pipeline depth."""

    op: str  # "set" or "get"
    clients: int
    pipeline: int = 1

    @property
    def label(self) -> str:
        p = f" P={self.pipeline}" if self.pipeline > 1 else ""
        return f"{self.op.upper()} c={self.clients}{p}"


@dataclass
class CpuCost:
    """CPU time per operation, in microseconds, over one run."""

    servers_us: float  # every process of the system under test, summed
    busiest_us: float  # the one process that used the most (Seshat's and etcd's leader)
    client_us: float  # the load generator

    def to_json(self) -> dict:
        return {
            "servers_us": self.servers_us,
            "busiest_us": self.busiest_us,
            "client_us": self.client_us,
        }


@dataclass
class Result:
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    cpu: CpuCost | None = None  # None when a server process exited before the run ended

    def to_json(self) -> dict:
        out = {
            "rps": self.rps,
            "p50_ms": self.p50_ms,
            "p99_ms": self.p99_ms,
            "requests": self.requests,
        }
        if self.cpu:
            out["cpu"] = self.cpu.to_json()
        return out


# What redis-benchmark 7 prints when the server answers errors or drops a client.
_REDIS_BENCHMARK_ERRORS = (
    "Error from server",
    "replied with error",
    "Could not connect",
    "Server closed the connection",
    "Error:",
)


def redis_benchmark(
    host: str, port: int, w: Workload, requests: int, value_size: int, keyspace: int, timeout: float
) -> Result:
    """One redis-benchmark run; its --csv line has rps and p50/p99 in ms.
    It exits 0 even when the server answers with errors (it prints them and
    counts them as requests), so any error text fails the run here."""
    argv = [
        "redis-benchmark",
        "-h",
        host,
        "-p",
        str(port),
        "-t",
        w.op,
        "-c",
        str(w.clients),
        "-n",
        str(requests),
        "-P",
        str(w.pipeline),
        "-d",
        str(value_size),
        "-r",
        str(keyspace),
        "--csv",
    ]
    rc, out, err = run_tool("redis-benchmark", argv, timeout)
    text = out + err
    if rc != 0 or any(m in text for m in _REDIS_BENCHMARK_ERRORS):
        raise LoadError(f"redis-benchmark failed (rc {rc}): {' '.join(argv)}\n{text[-2000:]}")
    rows = [r for r in csv.DictReader(io.StringIO(out)) if r.get("test") == w.op.upper()]
    if not rows:
        raise LoadError(f"redis-benchmark printed no {w.op.upper()} row:\n{text[-2000:]}")
    r = rows[0]
    return Result(float(r["rps"]), float(r["p50_latency_ms"]), float(r["p99_latency_ms"]), requests)


def etcd_load(
    endpoint: str,
    w: Workload,
    requests: int,
    value_size: int,
    keyspace: int,
    timeout: float,
    sequential: bool = False,
) -> Result:
    """One etcd-load run (put = SET, linearizable range = GET)."""
    if w.pipeline != 1:
        raise LoadError("etcd has no request pipelining; no counterpart of -P")
    op = {"set": "put", "get": "get"}[w.op]
    argv = [
        str(ETCD_LOAD_BIN),
        "--endpoints",
        endpoint,
        "--op",
        op,
        "--clients",
        str(w.clients),
        "-n",
        str(requests),
        "--value-size",
        str(value_size),
        "--keyspace",
        str(keyspace),
    ]
    if sequential:
        argv.append("--sequential")
    rc, out, err = run_tool("etcd-load", argv, timeout)
    if rc != 0:
        raise LoadError(f"etcd-load failed (rc {rc}): {' '.join(argv)}\n{(out + err)[-2000:]}")
    j = json.loads(out.strip().splitlines()[-1])
    if not j["requests"] or math.isnan(j["p50_ms"]):
        raise LoadError(f"etcd-load measured nothing: {out}")
    return Result(j["rps"], j["p50_ms"], j["p99_ms"], j["requests"])


def ensure_etcd_load(log) -> Path:
    """Builds etcd-load (release) if its binary is missing or older than its source."""
    src = [
        ETCD_LOAD_DIR / "Cargo.toml",
        ETCD_LOAD_DIR / "Cargo.lock",
        *(ETCD_LOAD_DIR / "src").glob("*.rs"),
    ]
    newest = max(p.stat().st_mtime for p in src if p.exists())
    if ETCD_LOAD_BIN.exists() and ETCD_LOAD_BIN.stat().st_mtime >= newest:
        return ETCD_LOAD_BIN
    log(f"building {ETCD_LOAD_BIN.relative_to(BENCH_DIR)} (cargo build --release --locked) ...")
    subprocess.run(
        [
            "cargo",
            "build",
            "--release",
            "--locked",
            "--quiet",
            "--manifest-path",
            str(ETCD_LOAD_DIR / "Cargo.toml"),
        ],
        check=True,
    )
    return ETCD_LOAD_BIN
