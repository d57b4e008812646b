"""Memory per key: load K keys (16-byte key:%012d, 32-byte values) into a fresh
system and compare what it holds afterwards with what it held before.

Seshat: RSS of each node process (what the machine pays, allocator overhead and
Raft log buffers included), measured once every node has applied the load.
Redis: `used_memory` from INFO memory (what the target compares against), and
its RSS for reference."""

from __future__ import annotations

import time
from collections.abc import Callable

from . import resp
from .procs import rss_bytes, wait_until
from .systems import HOST, Redis, Seshat, http_json


def seshat_memory(seshat: Seshat, keys: int, value_size: int, log: Callable[[str], None]) -> dict:
    """`seshat` must be freshly started (empty)."""
    pids = seshat.node_pids()
    before = [rss_bytes(p) for p in pids]
    host, port = seshat.resp_addr
    t0 = time.monotonic()
    retried = resp.load_keys(host, port, keys, value_size)
    load_s = time.monotonic() - t0
    if retried:
        log(f"  seshat: the load got {retried} retryable error replies (CLUSTERDOWN/TRYAGAIN)")
    _wait_applied(seshat)
    with resp.Conn(host, port) as c:
        dbsize = c.call("DBSIZE")
    if dbsize != keys:
        raise RuntimeError(f"seshat DBSIZE {dbsize} after loading {keys} keys")
    after = [rss_bytes(p) for p in pids]
    nodes = [
        {"rss_before": b, "rss_after": a, "bytes_per_key": (a - b) / keys}
        for b, a in zip(before, after, strict=True)
    ]
    log(
        f"  seshat: loaded {keys} keys in {load_s:.1f}s; RSS per node after: "
        + ", ".join(f"{n['rss_after'] / 2**20:.0f} MiB" for n in nodes)
    )
    return {
        "keys": keys,
        "value_size": value_size,
        "load_seconds": load_s,
        "nodes": nodes,
        "retryable_errors": retried,
        "bytes_per_key": max(n["bytes_per_key"] for n in nodes),
    }


def _wait_applied(seshat: Seshat) -> None:
    """Every node has applied what the leader has committed."""
    _, leader = seshat.leader()

    def caught_up() -> bool:
        target = http_json(seshat.http_url(leader, "/cluster"))["committed"] or 0
        return all(
            (http_json(seshat.http_url(i, "/cluster"))["last_applied"] or 0) >= target
            for i in range(seshat.nodes)
        )

    wait_until("every seshat node applied the load", caught_up, 120, seshat.procs, every=0.2)


def redis_memory(redis: Redis, keys: int, value_size: int, log: Callable[[str], None]) -> dict:
    """`redis` must be freshly started (empty)."""
    before = resp.info(HOST, redis.port, "memory")
    t0 = time.monotonic()
    resp.load_keys(HOST, redis.port, keys, value_size)
    load_s = time.monotonic() - t0
    after = resp.info(HOST, redis.port, "memory")
    used = int(after["used_memory"]) - int(before["used_memory"])
    rss = int(after["used_memory_rss"]) - int(before["used_memory_rss"])
    log(
        f"  {redis.label}: loaded {keys} keys in {load_s:.1f}s; used_memory "
        f"+{used / 2**20:.1f} MiB, RSS +{rss / 2**20:.1f} MiB"
    )
    return {
        "keys": keys,
        "value_size": value_size,
        "load_seconds": load_s,
        "used_memory_delta": used,
        "rss_delta": rss,
        "bytes_per_key": used / keys,
        "rss_bytes_per_key": rss / keys,
    }
