"""The systems under test, each started on free loopback ports in a temp dir of
its own and stopped (process groups killed) by `stop()`."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from . import resp
from .procs import Proc, StartError, all_descendants, free_ports, kill_pid, tail, wait_until

HOST = "127.0.0.1"


def http_json(url: str, body: bytes | None = None, timeout: float = 2.0):
    req = urllib.request.Request(url, data=body, method="POST" if body is not None else "GET")
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return json.loads(r.read())


def http_ok(url: str, timeout: float = 1.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status == 200
    except OSError:
        return False


@dataclass
class System:
    """Common shape: a label, a kind ("resp" or "etcd"), a work dir, processes."""

    label: str
    workdir: Path
    procs: list[Proc] = field(default_factory=list)
    kind: str = "resp"

    def start(self) -> None:
        raise NotImplementedError

    def server_pids(self) -> list[int]:
        """Every process of the running system (for memory and CPU figures)."""
        raise NotImplementedError

    def stop(self) -> None:
        for p in reversed(self.procs):
            p.stop()
        self.procs.clear()

    def version(self) -> str:
        return ""

    def start_retrying(self, attempts: int = 3) -> None:
        """start(), again on fresh ports and a wiped work dir when a port turned
        out taken: ports are picked free, but another process on this machine
        may bind one between our pick and the server's bind."""
        for attempt in range(1, attempts + 1):
            try:
                self.start()
                return
            except StartError:
                in_use = any("already in use" in tail(p.log_path, 200).lower() for p in self.procs)
                self.stop()
                if not in_use or attempt == attempts:
                    raise
                shutil.rmtree(self.workdir, ignore_errors=True)


@dataclass
class Redis(System):
    """A single redis-server; `fsync=True`: appendonly yes, appendfsync always;
    else no persistence at all (save "" appendonly no)."""

    fsync: bool = False
    port: int = 0

    def start(self) -> None:
        self.port = free_ports(1)[0]
        data = self.workdir / "data"
        data.mkdir(parents=True, exist_ok=True)
        persist = (
            ["--appendonly", "yes", "--appendfsync", "always"]
            if self.fsync
            else ["--appendonly", "no"]
        )
        argv = [
            "redis-server",
            "--port",
            str(self.port),
            "--bind",
            HOST,
            "--dir",
            str(data),
            "--save",
            "",
            "--daemonize",
            "no",
            "--protected-mode",
            "no",
            *persist,
        ]
        p = Proc(self.label, argv, self.workdir / "redis.log")
        self.procs.append(p)
        wait_until(f"{self.label} PING", lambda: resp.ping(HOST, self.port), 30, [p])

    @property
    def resp_addr(self) -> tuple[str, int]:
        return HOST, self.port

    def server_pids(self) -> list[int]:
        return [p.pid for p in self.procs]

    def version(self) -> str:
        return resp.info(HOST, self.port, "server").get("redis_version", "?")


@dataclass
class Seshat(System):
    """`seshat local --nodes N`: node i on resp/http/raft base port + i."""

    binary: Path = Path("target/release/seshat")
    nodes: int = 3
    resp_base: int = 0
    http_base: int = 0
    raft_base: int = 0
    extra_args: list[str] = field(default_factory=list)

    def start(self, timeout: float = 120) -> None:
        if not self.binary.exists():
            raise StartError(f"{self.binary} missing: cargo build --release --bin seshat")
        ports = free_ports(3 * self.nodes, consecutive=True)
        self.resp_base, self.http_base, self.raft_base = ports[0 :: self.nodes][:3]
        argv = [
            str(self.binary),
            "local",
            "--nodes",
            str(self.nodes),
            "--data-dir",
            str(self.workdir / "data"),
            "--host",
            HOST,
            "--resp-port",
            str(self.resp_base),
            "--http-port",
            str(self.http_base),
            "--raft-port",
            str(self.raft_base),
        ]
        if self.extra_args:
            argv += ["--", *self.extra_args]
        p = Proc(self.label, argv, self.workdir / "local.log")
        self.procs.append(p)
        self.wait_healthy(timeout)

    def stop(self) -> None:
        # `seshat local` stops its nodes in order on SIGINT (its Ctrl-C handler);
        # the nodes are in groups of their own, so kill any straggler by pid.
        nodes = self.node_pids()
        for p in self.procs:
            p.stop(signal.SIGINT, grace=20)
        for pid in nodes:
            kill_pid(pid)
        self.procs.clear()

    def http_url(self, i: int, path: str) -> str:
        return f"http://{HOST}:{self.http_base + i}{path}"

    def wait_healthy(self, timeout: float) -> None:
        """Every node ready (member, known leader, caught up) and the leader answers PING."""

        def ready() -> bool:
            if not all(http_ok(self.http_url(i, "/readyz")) for i in range(self.nodes)):
                return False
            host, port = self.leader()[0]
            return resp.ping(host, port)

        wait_until(
            f"{self.label}: all {self.nodes} nodes ready", ready, timeout, self.procs, every=0.1
        )

    def leader(self) -> tuple[tuple[str, int], int]:
        """(leader RESP (host, port), leader node index): the leader a majority of
        the nodes report on `GET /leader` (a node restarting may report a stale one)."""
        votes: dict[str, int] = {}
        last: Exception | None = None
        for i in range(self.nodes):
            try:
                addr = http_json(self.http_url(i, "/leader"), timeout=1.0).get("leader_resp_addr")
            except OSError as e:
                last = e
                continue
            if addr:
                votes[addr] = votes.get(addr, 0) + 1
        agreed = [a for a, n in votes.items() if n > self.nodes // 2]
        if not agreed:
            raise StartError(f"{self.label}: no leader reported by a majority ({votes or last})")
        h, p = agreed[0].rsplit(":", 1)
        return (h, int(p)), int(p) - self.resp_base

    @property
    def resp_addr(self) -> tuple[str, int]:
        """The leader's RESP address: clients are pointed at the leader, as
        etcd's are, so neither pays a forwarding hop."""
        return self.leader()[0]

    def node_pids(self) -> list[int]:
        """Pids of the running `seshat serve` processes, in node order (by RESP port)."""
        by_port: dict[int, int] = {}
        for p in self.procs:
            for pid in all_descendants(p.pid):
                try:
                    argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
                except OSError:
                    continue
                if b"--resp-addr" in argv:
                    addr = argv[argv.index(b"--resp-addr") + 1].decode()
                    by_port[int(addr.rsplit(":", 1)[1])] = pid
        return [by_port[k] for k in sorted(by_port)]

    def server_pids(self) -> list[int]:
        return self.node_pids()

    def version(self) -> str:
        try:
            out = subprocess.run(
                [str(self.binary), "--version"],
                check=False,
                capture_output=True,
                text=True,
                timeout=10,
            )
            return out.stdout.strip() or out.stderr.strip()
        except OSError:
            return "?"


@dataclass
class Etcd(System):
    """A 3-member etcd cluster (one etcd process per member, own data dir)."""

    members: int = 3
    client_ports: list[int] = field(default_factory=list)
    kind: str = "etcd"

    def start(self, timeout: float = 60) -> None:
        if shutil.which("etcd") is None:
            raise StartError("etcd not installed (apt-get install etcd-server)")
        ports = free_ports(2 * self.members)
        self.client_ports, peer = ports[: self.members], ports[self.members :]
        cluster = ",".join(f"e{i}=http://{HOST}:{peer[i]}" for i in range(self.members))
        token = f"bench-{os.getpid()}-{peer[0]}"
        for i in range(self.members):
            argv = [
                "etcd",
                "--name",
                f"e{i}",
                "--data-dir",
                str(self.workdir / f"e{i}"),
                "--listen-client-urls",
                f"http://{HOST}:{self.client_ports[i]}",
                "--advertise-client-urls",
                f"http://{HOST}:{self.client_ports[i]}",
                "--listen-peer-urls",
                f"http://{HOST}:{peer[i]}",
                "--initial-advertise-peer-urls",
                f"http://{HOST}:{peer[i]}",
                "--initial-cluster",
                cluster,
                "--initial-cluster-state",
                "new",
                "--initial-cluster-token",
                token,
                "--logger",
                "zap",
                "--log-level",
                "warn",
            ]
            self.procs.append(Proc(f"{self.label}-e{i}", argv, self.workdir / f"e{i}.log"))

        def healthy() -> bool:
            return (
                all(
                    http_json(f"http://{HOST}:{p}/health").get("health") == "true"
                    for p in self.client_ports
                )
                and self.leader_index() is not None
            )

        wait_until(
            f"{self.label}: {self.members} healthy members", healthy, timeout, self.procs, every=0.1
        )

    def status(self, i: int) -> dict:
        return http_json(f"http://{HOST}:{self.client_ports[i]}/v3/maintenance/status", b"{}")

    def leader_index(self) -> int | None:
        """Index of the member that is leader (by the gRPC-gateway status call)."""
        for i in range(self.members):
            st = self.status(i)
            if st.get("leader") and st["leader"] == st.get("header", {}).get("member_id"):
                return i
        return None

    @property
    def leader_endpoint(self) -> str:
        i = self.leader_index()
        if i is None:
            raise StartError(f"{self.label}: no leader")
        return f"{HOST}:{self.client_ports[i]}"

    def server_pids(self) -> list[int]:
        return [p.pid for p in self.procs]

    def version(self) -> str:
        try:
            return http_json(f"http://{HOST}:{self.client_ports[0]}/version")["etcdserver"]
        except (OSError, KeyError):
            return "?"
