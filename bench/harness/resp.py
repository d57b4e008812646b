"""A minimal RESP2 client: enough for readiness probes, INFO, the failover
prober and the pipelined loader (redis-benchmark does the timed load)."""

from __future__ import annotations

import socket


class RespError(Exception):
    """An error reply (`-ERR ...`) from the server."""


def encode(*args: bytes | str | int) -> bytes:
    """One command as a RESP multibulk."""
    parts = [b"*%d\r\n" % len(args)]
    for a in args:
        if isinstance(a, str):
            a = a.encode()
        elif isinstance(a, int):
            a = str(a).encode()
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

    def __enter__(self) -> "Conn":
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
            self.buf = self.buf[self.pos:]
            self.pos = 0
        self.buf += chunk

    def _line(self) -> bytes:
        while True:
            end = self.buf.find(b"\r\n", self.pos)
            if end >= 0:
                line = self.buf[self.pos:end]
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
            data = self.buf[self.pos:self.pos + n]
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


def load_keys(host: str, port: int, count: int, value_size: int, batch: int = 2000) -> None:
    """SETs key:%012d (16-byte keys) for i in [0, count) with `value_size`-byte
    values, pipelined `batch` at a time on one connection; every reply must be OK."""
    value = b"v" * value_size
    with Conn(host, port, timeout=60.0) as c:
        for start in range(0, count, batch):
            end = min(count, start + batch)
            c.send_raw(b"".join(encode(b"SET", b"key:%012d" % i, value)
                                for i in range(start, end)))
            for _ in range(end - start):
                r = c.read_reply()
                if r != "OK":
                    raise RespError(f"SET replied {r!r}")
