"""Throughput and latency of a running system over a list of workloads: preload
the key space, calibrate each workload's request count to a target duration,
run every workload once per round; run.py starts each system afresh for each
of R rounds (so a drift of this shared machine spreads over all systems) and
reports medians."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

from . import resp
from .loadgen import CpuCost, LoadError, Result, Workload, etcd_load, redis_benchmark
from .procs import cpu_seconds, reaped_children_cpu_seconds
from .systems import System

PROBE_SECONDS = 1.0


@dataclass
class Plan:
    """How hard and how long to measure (see run.py for the smoke/full presets)."""

    workloads: list[Workload]
    reps: int
    seconds: float  # target duration of one run; 0 = no calibration, use `requests`
    requests: int  # requests per run without calibration, and the calibration probe floor
    max_requests: int
    keyspace: int
    value_size: int


def supported(system: System, plan: Plan) -> list[Workload]:
    """The plan's workloads this system can run (etcd has no pipelining)."""
    return [w for w in plan.workloads if not (system.kind == "etcd" and w.pipeline > 1)]


def sizes_for(system: System, plan: Plan) -> dict[Workload, int]:
    """Requests per run of each workload: calibrated to ~plan.seconds (the probe
    runs warm the system up), or fixed without calibration (smoke)."""
    run = _runner(system, plan)
    sizes = {}
    for w in supported(system, plan):
        # Fixed size: enough for every client to send a few pipelines.
        fixed = max(plan.requests, w.clients * w.pipeline * 2)
        sizes[w] = _calibrate(run, w, plan) if plan.seconds else fixed
    return sizes


def run_round(
    system: System,
    plan: Plan,
    sizes: dict[Workload, int],
    label: str,
    log: Callable[[str], None],
) -> dict[Workload, Result]:
    """Every workload once, in plan order, on a running (preloaded) system."""
    run = _runner(system, plan)
    out = {}
    for w in supported(system, plan):
        r = out[w] = run(w, sizes[w])
        log(
            f"  {system.label:16} {w.label:14} {label}: "
            f"{r.rps:>10.0f} ops/s  p50 {r.p50_ms:.3f} ms  p99 {r.p99_ms:.3f} ms  "
            f"(n={r.requests})"
        )
    return out


def summarize(runs: dict[Workload, list[Result]]) -> dict[str, dict]:
    """{workload label: {"rps", "p50_ms", "p99_ms" (medians), "runs": [...]}}."""
    return {w.label: _summary(w, rs) for w, rs in runs.items() if rs}


def _runner(system: System, plan: Plan) -> Callable[[Workload, int], Result]:
    def run(w: Workload, n: int, timeout: float | None = None) -> Result:
        # Generous: a run is sized for `plan.seconds`; only a hang should hit this.
        t = timeout or max(120.0, 10 * plan.seconds)
        if system.kind == "etcd":
            endpoint = system.leader_endpoint
            return _with_cpu(
                system,
                lambda: etcd_load(endpoint, w, n, plan.value_size, plan.keyspace, t),
            )
        host, port = system.resp_addr
        return _with_cpu(
            system,
            lambda: redis_benchmark(host, port, w, n, plan.value_size, plan.keyspace, t),
        )

    return run


def _with_cpu(system: System, run: Callable[[], Result]) -> Result:
    """Runs the load generator and charges the CPU time the system's processes
    and the generator used meanwhile to the run's requests: where a throughput
    ratio comes from. (A slow minute on a shared machine raises these figures
    too; the generator's, the same program for every system, is the yardstick.)"""
    pids = system.server_pids()
    try:
        before = [cpu_seconds(p) for p in pids]
    except OSError:
        return run()
    client_before = reaped_children_cpu_seconds()
    r = run()
    client = reaped_children_cpu_seconds() - client_before
    try:
        used = [cpu_seconds(p) - b for p, b in zip(pids, before, strict=True)]
    except OSError:  # a server exited mid-run: no figure rather than a wrong one
        return r
    per_op = 1e6 / r.requests
    r.cpu = CpuCost(sum(used) * per_op, max(used) * per_op, client * per_op)
    return r


def preload(system: System, plan: Plan, log: Callable[[str], None]) -> None:
    """Writes every key of the key space once, so GETs hit values of the real size."""
    t0 = time.monotonic()
    if system.kind == "etcd":
        etcd_load(
            system.leader_endpoint,
            Workload("set", 50),
            plan.keyspace,
            plan.value_size,
            plan.keyspace,
            timeout=600,
            sequential=True,
        )
    else:
        host, port = system.resp_addr
        resp.load_keys(host, port, plan.keyspace, plan.value_size)
    log(f"  {system.label}: preloaded {plan.keyspace} keys in {time.monotonic() - t0:.1f}s")


def _calibrate(run: Callable[..., Result], w: Workload, plan: Plan) -> int:
    """Probe runs (also the warm-up), grown until one lasts PROBE_SECONDS, size
    the real runs to ~plan.seconds: a probe too short to average over a few
    fsync stalls would size the runs from noise."""
    n = max(plan.requests, w.clients * w.pipeline * 20)
    while True:
        r = run(w, n)
        if r.rps <= 0:
            raise LoadError(f"{w.label}: probe measured {r.rps} ops/s")
        took = n / r.rps
        if took >= PROBE_SECONDS or n >= plan.max_requests:
            break
        n = min(plan.max_requests, int(n * min(10.0, 1.5 * PROBE_SECONDS / took)))
    return max(n, min(plan.max_requests, int(r.rps * plan.seconds)))


def _summary(w: Workload, rs: list[Result]) -> dict:
    return {
        "op": w.op,
        "clients": w.clients,
        "pipeline": w.pipeline,
        "rps": statistics.median(r.rps for r in rs),
        "p50_ms": statistics.median(r.p50_ms for r in rs),
        "p99_ms": statistics.median(r.p99_ms for r in rs),
        "cpu": _cpu_summary([r.cpu for r in rs]),
        "runs": [r.to_json() for r in rs],
    }


def _cpu_summary(costs: list[CpuCost | None]) -> dict | None:
    """Medians of each CPU figure over the runs that have one."""
    have = [c for c in costs if c]
    if not have:
        return None
    return {
        "servers_us": statistics.median(c.servers_us for c in have),
        "busiest_us": statistics.median(c.busiest_us for c in have),
        "client_us": statistics.median(c.client_us for c in have),
    }
