"""A minimal RESP2 client: enough for readiness probes, INFO, the failover
prober and the pipelined loader (redis-benchmark does the timed load)."""

from __future__ import annotations

import socket
import time


class RespError(Exception):
    """An error reply (`-ERR ...`) from the server."""


def encode(*args: bytes | str | int) -> bytes:
    """One command as a RESP multibulk."""
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        a = (
            arg.encode()
            if isinstance(arg, str)
            else str(arg).encode()
            if isinstance(arg, int)
            else arg
        )
        parts.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(parts)


class Conn:
    """One blocking connection. Replies: str for +simple, int, bytes/None for
    bulk, list for arrays; error replies raise RespError."""

    def __init__(self, host: str, port: int, timeout: float = 5.0):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        self.pos = 0

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> Conn:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def call(self, *args: bytes | str | int):
        self.sock.sendall(encode(*args))
        return self.read_reply()

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _fill(self) -> None:
        chunk = self.sock.recv(1 << 20)
        if not chunk:
            raise ConnectionError("connection closed by server")
        if self.pos:
            self.buf = self.buf[self.pos :]
            self.pos = 0
        self.buf += chunk

    def _line(self) -> bytes:
        while True:
            end = self.buf.find(b"\r\n", self.pos)
            if end >= 0:
                line = self.buf[self.pos : end]
                self.pos = end + 2
                return line
            self._fill()

    def read_reply(self):
        line = self._line()
        kind, rest = line[:1], line[1:]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            raise RespError(rest.decode(errors="replace"))
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            if n < 0:
                return None
            while len(self.buf) - self.pos < n + 2:
                self._fill()
            data = self.buf[self.pos : self.pos + n]
            self.pos += n + 2
            return data
        if kind == b"*":
            n = int(rest)
            return None if n < 0 else [self.read_reply() for _ in range(n)]
        raise RespError(f"unexpected reply type {line[:40]!r}")


def info(host: str, port: int, section: str) -> dict[str, str]:
    """INFO <section> as a dict."""
    with Conn(host, port) as c:
        text = c.call("INFO", section).decode()
    out = {}
    for line in text.splitlines():
        if ":" in line and not line.startswith("#"):
            k, v = line.split(":", 1)
            out[k] = v.strip()
    return out


def ping(host: str, port: int) -> bool:
    with Conn(host, port, timeout=1.0) as c:
        return c.call("PING") == "PONG"


# Error replies that mean "not done, try again" (no leader yet, quorum wait timed
# out); re-sending a SET is harmless, so the loader retries these, as a client would.
RETRYABLE = ("CLUSTERDOWN", "TRYAGAIN")
RETRY_FOR_S = 60.0


def load_keys(host: str, port: int, count: int, value_size: int, batch: int = 2000) -> int:
    """SETs key:%012d (16-byte keys) for i in [0, count) with `value_size`-byte
    values, pipelined `batch` at a time on one connection. Keys answered with a
    retryable error are sent again (for up to RETRY_FOR_S seconds of errors);
    any other reply but OK raises. Returns how many retryable errors were seen."""
    value = b"v" * value_size
    retried = 0
    with Conn(host, port, timeout=60.0) as c:
        for start in range(0, count, batch):
            todo = list(range(start, min(count, start + batch)))
            deadline = None
            while todo:
                c.send_raw(b"".join(encode(b"SET", b"key:%012d" % i, value) for i in todo))
                failed = []
                for i in todo:
                    try:
                        r = c.read_reply()
                    except RespError as e:
                        if not str(e).startswith(RETRYABLE):
                            raise
                        failed.append(i)
                        continue
                    if r != "OK":
                        raise RespError(f"SET replied {r!r}")
                if failed:
                    retried += len(failed)
                    deadline = deadline or time.monotonic() + RETRY_FOR_S
                    if time.monotonic() > deadline:
                        raise RespError(f"{len(failed)} SETs still refused after {RETRY_FOR_S}s")
                    time.sleep(0.05)
                todo = failed
    return retried
