"""Load client for etcd with redis-benchmark's shape: C concurrent clients, each
with one request outstanding at a time, N requests in total, random 16-byte keys
from a key space, fixed-size values; prints one JSON line (rps, p50, p99 in ms).

It speaks etcd's native gRPC API (`etcdserverpb.KV/Put` and `/Range`, the
calls etcd's own `benchmark` tool and every etcd client make). Debian ships no
etcd `benchmark` binary, and `etcdctl check perf` runs a fixed, rate-limited
load profile rather than a fixed concurrency, so neither can be driven like
redis-benchmark. The HTTP/JSON gateway is not used for load: inside etcd it
re-dials the gRPC server, which would charge etcd for a second hop it never
pays in production.

The two protobuf messages are encoded by hand (field numbers from etcd's
rpc.proto: PutRequest{1 key, 2 value}, RangeRequest{1 key}); a reply's body is
not decoded, only its status is checked (grpcio raises on any non-OK status).
A Range with no `serializable` flag is linearizable (ReadIndex), as Seshat's GET.

Run with `python3 -m harness.etcd_load --help` from bench/.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time

import grpc


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _field_bytes(num: int, data: bytes) -> bytes:
    # wire type 2 (length-delimited)
    return _varint(num << 3 | 2) + _varint(len(data)) + data


def put_request(key: bytes, value: bytes) -> bytes:
    return _field_bytes(1, key) + _field_bytes(2, value)


def range_request(key: bytes) -> bytes:
    return _field_bytes(1, key)


METHODS = {"put": "/etcdserverpb.KV/Put", "get": "/etcdserverpb.KV/Range"}


async def run(endpoints: list[str], op: str, clients: int, conns: int, total: int,
              keyspace: int, value_size: int) -> dict:
    # Each channel its own subchannel pool: otherwise grpcio shares one TCP
    # connection among channels to the same target and `conns` would be a lie.
    opts = [("grpc.use_local_subchannel_pool", 1)]
    channels = [grpc.aio.insecure_channel(endpoints[i % len(endpoints)], options=opts)
                for i in range(conns)]
    stubs = [ch.unary_unary(METHODS[op]) for ch in channels]
    for ch in channels:
        await asyncio.wait_for(ch.channel_ready(), 10)
    value = b"x" * value_size
    latencies: list[int] = []
    remaining = total
    errors = 0

    async def client(i: int) -> None:
        nonlocal remaining, errors
        call = stubs[i % conns]
        rnd = random.Random(i)
        while remaining > 0:
            remaining -= 1
            key = b"key:%012d" % rnd.randrange(keyspace)
            req = put_request(key, value) if op == "put" else range_request(key)
            t0 = time.perf_counter_ns()
            try:
                await call(req, timeout=10)
            except grpc.aio.AioRpcError:
                errors += 1
                continue
            latencies.append(time.perf_counter_ns() - t0)

    start = time.perf_counter()
    await asyncio.gather(*(client(i) for i in range(clients)))
    elapsed = time.perf_counter() - start
    for ch in channels:
        await ch.close()
    latencies.sort()

    def pct(p: float) -> float:
        if not latencies:
            return float("nan")
        return latencies[min(len(latencies) - 1, int(p / 100 * len(latencies)))] / 1e6

    return {"rps": len(latencies) / elapsed, "p50_ms": pct(50), "p99_ms": pct(99),
            "requests": len(latencies), "errors": errors, "seconds": elapsed}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--endpoints", required=True, help="comma-separated host:port")
    ap.add_argument("--op", choices=sorted(METHODS), required=True)
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--conns", type=int, default=0, help="gRPC connections (default: clients)")
    ap.add_argument("-n", "--requests", type=int, default=10000)
    ap.add_argument("--keyspace", type=int, default=100000)
    ap.add_argument("--value-size", type=int, default=32)
    a = ap.parse_args(argv)
    res = asyncio.run(run(a.endpoints.split(","), a.op, a.clients, a.conns or a.clients,
                          a.requests, a.keyspace, a.value_size))
    print(json.dumps(res))
    return 1 if res["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
