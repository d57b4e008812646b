"""Failover time: SIGKILL the Seshat leader while clients write, and time until
the first write acknowledged after the kill. Median over the trials.

The killed leader must stay down, as a lost machine does: `seshat local`
restarts a dead node within a few hundred ms, and a restarted leader whose vote
is committed resumes leadership in its old term (openraft restores it at
startup), often before the followers' election timeout — which would time the
restart, not a failover. So the supervisor (`seshat local` itself) is SIGSTOPped
for the kill and the measurement, then SIGCONTinued to restart the node.

Clock: t0 is taken just before kill(2) of the leader's pid; a write counts only
if it was sent after t0 and answered OK. Probers (two connections to each
surviving node, through which followers forward to whichever node leads)
retry at once on an error reply and reconnect after a short timeout, so the
measured time is election plus the first commit, plus at most a few ms of
probing granularity. Background load (redis-benchmark SETs on a survivor)
keeps the cluster busy as the kill happens."""

from __future__ import annotations

import os
import signal
import statistics
import threading
import time
from collections.abc import Callable

from . import resp
from .procs import Proc
from .systems import HOST, Seshat, http_json

PROBE_TIMEOUT = 0.25  # s: a request unanswered this long is abandoned and resent
TRIAL_DEADLINE = 30.0  # s: no write by then fails the trial


def measure(seshat: Seshat, trials: int, load_clients: int, log: Callable[[str], None]) -> dict:
    """Runs `trials` kill-the-leader trials on a running 3-node `seshat`."""
    trials_out: list[dict] = []
    for t in range(trials):
        seshat.wait_healthy(120)
        (_, _), leader = seshat.leader()
        pids = seshat.node_pids()
        if len(pids) != seshat.nodes:
            raise RuntimeError(f"expected {seshat.nodes} node processes, found {pids}")
        survivors = [i for i in range(seshat.nodes) if i != leader]
        load = Proc(
            "failover-load",
            [
                "redis-benchmark",
                "-h",
                HOST,
                "-p",
                str(seshat.resp_base + survivors[0]),
                "-t",
                "set",
                "-c",
                str(load_clients),
                "-n",
                "1000000000",
                "-d",
                "32",
                "-r",
                "100000",
                "-q",
            ],
            seshat.workdir / "failover-load.log",
        )
        supervisor = seshat.procs[0].pid
        try:
            _await_write(seshat, survivors)
            time.sleep(0.5)  # the load is flowing through the leader now
            os.kill(supervisor, signal.SIGSTOP)
            r = _kill_and_time(seshat, leader, pids[leader], survivors)
        finally:
            os.kill(supervisor, signal.SIGCONT)
            load.stop(signal.SIGKILL, grace=0)
        trials_out.append(r)
        elected = "?" if r["leader_s"] is None else f"{r['leader_s'] * 1000:.0f} ms"
        log(
            f"  failover trial {t + 1}/{trials}: killed node {leader} (pid {pids[leader]}); "
            f"new leader named after {elected}, first write after {r['write_s'] * 1000:.0f} ms; "
            f"probers saw {r['probe_errors']}"
        )
    times = [r["write_s"] for r in trials_out]
    elected_s = [r["leader_s"] for r in trials_out if r["leader_s"] is not None]
    return {
        "trials_s": times,
        "median_s": statistics.median(times),
        "max_s": max(times),
        "leader_median_s": statistics.median(elected_s) if elected_s else None,
        "trials": trials_out,
        "load_clients": load_clients,
    }


def _await_write(seshat: Seshat, nodes: list[int]) -> None:
    for i in nodes:
        with resp.Conn(HOST, seshat.resp_base + i) as c:
            if c.call("SET", "failover:ready", "1") != "OK":
                raise RuntimeError(f"node {i} refused a write before the kill")


def _kill_and_time(seshat: Seshat, leader: int, leader_pid: int, survivors: list[int]) -> dict:
    """Kills the leader; returns seconds to the first acknowledged write, seconds
    until a survivor names a new leader on GET /leader (the election part of
    it), and what the probers were told meanwhile."""
    done = threading.Event()
    first_ok: list[float] = []
    new_leader: list[float] = []
    seen: dict[str, int] = {}
    lock = threading.Lock()
    old_addr = f"{HOST}:{seshat.resp_base + leader}"

    def note(what: str) -> None:
        with lock:
            seen[what] = seen.get(what, 0) + 1

    def prober(port: int, stagger: float) -> None:
        time.sleep(stagger)
        conn: resp.Conn | None = None
        n = 0
        while not done.is_set() and time.monotonic() - t0 < TRIAL_DEADLINE:
            try:
                if conn is None:
                    conn = resp.Conn(HOST, port, timeout=PROBE_TIMEOUT)
                n += 1
                sent = time.monotonic()
                reply = conn.call("SET", f"failover:{port}:{n}", "x")
                if reply == "OK" and sent > t0:
                    with lock:
                        first_ok.append(time.monotonic())
                    done.set()
            except resp.RespError as e:
                note(str(e).split(" ")[0])  # -CLUSTERDOWN / -TRYAGAIN: no leader yet
                time.sleep(0.002)
            except (OSError, ConnectionError) as e:
                note(type(e).__name__)
                if conn is not None:
                    conn.close()
                conn = None
                time.sleep(0.002)
        if conn is not None:
            conn.close()

    def watcher() -> None:
        while not done.is_set() and not new_leader:
            for i in survivors:
                try:
                    addr = http_json(seshat.http_url(i, "/leader"), timeout=0.2).get(
                        "leader_resp_addr"
                    )
                except OSError:
                    continue
                if addr and addr != old_addr:
                    new_leader.append(time.monotonic())
                    return
            time.sleep(0.005)

    threads = [
        threading.Thread(target=prober, args=(seshat.resp_base + i, k * 0.001), daemon=True)
        for i in survivors
        for k in range(2)
    ]
    threads.append(threading.Thread(target=watcher, daemon=True))
    t0 = time.monotonic()
    os.kill(leader_pid, signal.SIGKILL)
    for th in threads:
        th.start()
    for th in threads:
        th.join(TRIAL_DEADLINE + 5)
    if not first_ok:
        raise RuntimeError(
            f"no write succeeded within {TRIAL_DEADLINE:.0f}s of killing the leader "
            f"(probers saw {seen})"
        )
    return {
        "write_s": min(first_ok) - t0,
        "leader_s": new_leader[0] - t0 if new_leader else None,
        "probe_errors": seen,
    }
