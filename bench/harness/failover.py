"""Failover time: SIGKILL the Seshat leader while clients write, and time until
the first write acknowledged after the kill. Median over the trials.

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
from typing import Callable

from . import resp
from .procs import Proc
from .systems import HOST, Seshat

PROBE_TIMEOUT = 0.25  # s: a request unanswered this long is abandoned and resent
TRIAL_DEADLINE = 30.0  # s: no write by then fails the trial


def measure(seshat: Seshat, trials: int, load_clients: int, log: Callable[[str], None]) -> dict:
    """Runs `trials` kill-the-leader trials on a running 3-node `seshat`."""
    times: list[float] = []
    for t in range(trials):
        seshat.wait_healthy(120)
        (_, _), leader = seshat.leader()
        pids = seshat.node_pids()
        if len(pids) != seshat.nodes:
            raise RuntimeError(f"expected {seshat.nodes} node processes, found {pids}")
        survivors = [i for i in range(seshat.nodes) if i != leader]
        load = Proc("failover-load", [
            "redis-benchmark", "-h", HOST, "-p", str(seshat.resp_base + survivors[0]),
            "-t", "set", "-c", str(load_clients), "-n", "1000000000", "-d", "32",
            "-r", "100000", "-q"], seshat.workdir / "failover-load.log")
        try:
            _await_write(seshat, survivors)
            time.sleep(0.5)  # the load is flowing through the leader now
            dt = _kill_and_time(seshat, pids[leader], survivors)
        finally:
            load.stop(signal.SIGKILL, grace=0)
        times.append(dt)
        log(f"  failover trial {t + 1}/{trials}: killed node {leader} (pid {pids[leader]}), "
            f"first write after {dt * 1000:.0f} ms")
    return {"trials_s": times, "median_s": statistics.median(times),
            "max_s": max(times), "load_clients": load_clients}


def _await_write(seshat: Seshat, nodes: list[int]) -> None:
    for i in nodes:
        with resp.Conn(HOST, seshat.resp_base + i) as c:
            if c.call("SET", "failover:ready", "1") != "OK":
                raise RuntimeError(f"node {i} refused a write before the kill")


def _kill_and_time(seshat: Seshat, leader_pid: int, survivors: list[int]) -> float:
    done = threading.Event()
    first_ok: list[float] = []
    lock = threading.Lock()

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
            except resp.RespError:
                time.sleep(0.002)  # -CLUSTERDOWN / -TRYAGAIN: no leader yet
            except (OSError, ConnectionError):
                if conn is not None:
                    conn.close()
                conn = None
                time.sleep(0.002)
        if conn is not None:
            conn.close()

    threads = [threading.Thread(target=prober, args=(seshat.resp_base + i, k * 0.001),
                                daemon=True)
               for i in survivors for k in range(2)]
    t0 = time.monotonic()
    os.kill(leader_pid, signal.SIGKILL)
    for th in threads:
        th.start()
    for th in threads:
        th.join(TRIAL_DEADLINE + 5)
    if not first_ok:
        raise RuntimeError(f"no write succeeded within {TRIAL_DEADLINE:.0f}s of killing "
                           f"the leader")
    return min(first_ok) - t0


