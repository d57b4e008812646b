#!/usr/bin/env python3
"""Seshat benchmark harness: Seshat (3 nodes) vs Redis with fsync, Redis without
persistence, and a 3-member etcd, started one at a time on this machine on free
loopback ports, driven with the same concurrency and value size.

  python3 bench/run.py --smoke       # seconds: every system and phase, tiny runs
  python3 bench/run.py --full        # the real numbers (about 15 minutes)
  python3 bench/run.py --render DIR  # rewrite DIR's report from its results.json

Writes bench/results/<timestamp>/{results.md,results.json,throughput.png} and,
after a complete full run without errors, bench/results/latest.{md,png}. Exits
non-zero if any system fails to start or any benchmark errors. Every process it
starts is killed on exit, including on Ctrl-C, SIGTERM, exceptions and (through
PR_SET_PDEATHSIG) the harness being SIGKILLed. See bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(BENCH))

from harness import failover, loadgen, machine, memory, procs, report, throughput  # noqa: E402
from harness.loadgen import Workload  # noqa: E402
from harness.systems import Etcd, Redis, Seshat, System  # noqa: E402


@dataclass
class Preset:
    """How much to measure: client counts of the sweep, rounds, seconds per run
    (0: fixed `requests` per run), key space, failover trials, keys for memory."""

    clients: list[int]
    reps: int
    seconds: float
    requests: int
    max_requests: int
    keyspace: int
    failover_trials: int
    memory_keys: int


PRESETS = {
    # A "works" check for CI: every system and phase, fixed tiny request counts.
    "smoke": Preset(
        clients=[1, 10, 50, 200],
        reps=1,
        seconds=0,
        requests=400,
        max_requests=400,
        keyspace=1000,
        failover_trials=1,
        memory_keys=10_000,
    ),
    "full": Preset(
        clients=[1, 10, 50, 200],
        reps=3,
        seconds=5,
        requests=1000,
        max_requests=5_000_000,
        keyspace=100_000,
        failover_trials=10,
        memory_keys=1_000_000,
    ),
}
VALUE_SIZE = 32
PIPELINE_CLIENTS, PIPELINE_DEPTH = 50, 16
FAILOVER_LOAD_CLIENTS = 20
PHASES = ["throughput", "failover", "memory"]


def log(msg: str) -> None:
    print(msg, flush=True)


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    mode = ap.add_mutually_exclusive_group(required=True)
    mode.add_argument(
        "--smoke",
        action="store_const",
        dest="mode",
        const="smoke",
        help="tiny runs of every system and phase (CI: does it work?)",
    )
    mode.add_argument(
        "--full", action="store_const", dest="mode", const="full", help="the real measurement"
    )
    mode.add_argument(
        "--render",
        type=Path,
        metavar="DIR",
        help="only rewrite the report files of results DIR from its results.json",
    )
    ap.add_argument(
        "--systems", default=",".join(report.SYSTEMS), help="comma-separated subset of: %(default)s"
    )
    ap.add_argument(
        "--seshat-bin",
        type=Path,
        default=REPO / "target/release/seshat",
        help="seshat binary (default %(default)s, built if missing)",
    )
    ap.add_argument("--reps", type=int, help="repetitions per workload (median reported)")
    ap.add_argument("--seconds", type=float, help="target duration of one run (full mode)")
    ap.add_argument("--clients", help="client counts of the sweep, e.g. 1,10,50,200")
    ap.add_argument("--failover-trials", type=int)
    ap.add_argument("--memory-keys", type=int)
    ap.add_argument(
        "--phases",
        default=",".join(PHASES),
        help="comma-separated subset of: %(default)s (failover runs on seshat only)",
    )
    ap.add_argument("--results-dir", type=Path, default=BENCH / "results")
    ap.add_argument(
        "--no-latest", action="store_true", help="full mode: do not update results/latest.{md,png}"
    )
    ap.add_argument(
        "--workdir",
        type=Path,
        default=None,
        help="parent of the data dirs (default: the system temp dir)",
    )
    ap.add_argument(
        "--keep-workdir", action="store_true", help="keep data dirs and server logs after the run"
    )
    return ap.parse_args()


def preset_from(args: argparse.Namespace) -> Preset:
    p = PRESETS[args.mode]
    if args.reps:
        p.reps = args.reps
    if args.seconds is not None:
        p.seconds = args.seconds
    if args.clients:
        p.clients = [int(c) for c in args.clients.split(",")]
    if args.failover_trials is not None:
        p.failover_trials = args.failover_trials
    if args.memory_keys is not None:
        p.memory_keys = args.memory_keys
    return p


def workloads_for(clients: list[int]) -> list[Workload]:
    """SET at each client count, SET with pipelining, GET at each client count."""
    ws = [Workload("set", c) for c in clients]
    ws.append(Workload("set", PIPELINE_CLIENTS, PIPELINE_DEPTH))
    ws += [Workload("get", c) for c in clients]
    return ws


def check_tools(systems: list[str], seshat_bin: Path) -> None:
    """Fails fast, with the install command, when a tool is missing; builds what
    this repo builds (seshat at the default path, etcd-load)."""
    need = {"redis-server": "redis-server", "redis-benchmark": "redis-tools"}
    if "etcd" in systems:
        need["etcd"] = "etcd-server"
    missing = [pkg for tool, pkg in need.items() if shutil.which(tool) is None]
    if missing:
        raise SystemExit(f"missing tools: apt-get install -y {' '.join(sorted(set(missing)))}")
    if "seshat" in systems and not seshat_bin.exists():
        if seshat_bin != REPO / "target/release/seshat":
            raise SystemExit(f"{seshat_bin} does not exist")
        log("building target/release/seshat (cargo build --release --bin seshat) ...")
        subprocess.run(["cargo", "build", "--release", "--bin", "seshat"], cwd=REPO, check=True)
    if "etcd" in systems:
        loadgen.ensure_etcd_load(log)


def snapshot_binary(seshat_bin: Path, workdir: Path) -> Path:
    """A private copy: a rebuild of target/release during the run must not mix
    two binaries (`seshat local` respawns nodes from its own executable)."""
    copy = workdir / "bin" / "seshat"
    copy.parent.mkdir()
    shutil.copy2(seshat_bin, copy)
    return copy


def make_system(name: str, workdir: Path, seshat_bin: Path) -> System:
    d = workdir / name
    if name == "seshat":
        return Seshat(name, d, binary=seshat_bin)
    if name == "redis-fsync":
        return Redis(name, d, fsync=True)
    if name == "redis-nopersist":
        return Redis(name, d, fsync=False)
    if name == "etcd":
        return Etcd(name, d)
    raise SystemExit(f"unknown system {name!r}; choose from {report.SYSTEMS}")


def run_all(args, p: Preset, systems: list[str], workdir: Path, results: dict) -> None:
    plan = throughput.Plan(
        workloads=workloads_for(p.clients),
        reps=p.reps,
        seconds=p.seconds,
        requests=p.requests,
        max_requests=p.max_requests,
        keyspace=p.keyspace,
        value_size=VALUE_SIZE,
    )
    errors: list[str] = results["errors"]
    failed: set[str] = set()
    sizes: dict[str, dict[Workload, int]] = {}
    runs: dict[str, dict[Workload, list]] = {}
    # Rounds over systems, each started afresh per round: this machine is shared,
    # and a slow minute then costs every system one sample, not one system all.
    for rnd in range(1, p.reps + 1):
        for name in systems:
            want_tp = "throughput" in args.phases
            want_fo = name == "seshat" and "failover" in args.phases and rnd == p.reps
            if name in failed or not (want_tp or want_fo):
                continue
            log(f"\n== {name}, round {rnd}/{p.reps}: {report.DESCRIPTIONS[name]}")
            sys_ = make_system(name, workdir / f"round-{rnd}", args.seshat_bin)
            busy = machine.background_busy()
            if busy is not None:
                results["background_busy"].setdefault(name, []).append(round(busy, 3))
            try:
                t0 = time.monotonic()
                sys_.start_retrying()
                results["versions"][name] = sys_.version()
                load = machine.loadavg()
                results["loadavg"].setdefault(name, []).append(load)
                log(
                    f"  started in {time.monotonic() - t0:.1f}s ({results['versions'][name]}); "
                    f"load average {load}; CPUs busy before start "
                    f"{'?' if busy is None else f'{busy:.0%}'}"
                )
                if want_tp:
                    throughput.preload(sys_, plan, log)
                    if name not in sizes:
                        sizes[name] = throughput.sizes_for(sys_, plan)
                    got = throughput.run_round(sys_, plan, sizes[name], f"round {rnd}", log)
                    for w, r in got.items():
                        runs.setdefault(name, {}).setdefault(w, []).append(r)
                if want_fo:
                    log("  failover:")
                    results["failover"] = failover.measure(
                        sys_, p.failover_trials, FAILOVER_LOAD_CLIENTS, log
                    )
            except Exception as e:
                failed.add(name)
                errors.append(f"{name}: {e}")
                log(f"  FAILED: {e}\n{traceback.format_exc()}")
            finally:
                sys_.stop()
    for name, by_workload in runs.items():
        results["throughput"][name] = throughput.summarize(by_workload)
    if "memory" not in args.phases:
        return
    for name, fn in [("seshat", memory.seshat_memory), ("redis-nopersist", memory.redis_memory)]:
        if name not in systems:
            continue
        log(f"\n== memory: {name}, {p.memory_keys:,} keys")
        sys_ = make_system(name, workdir / "memory", args.seshat_bin)
        try:
            sys_.start_retrying()
            key = "seshat" if name == "seshat" else "redis"
            results["memory"][key] = fn(sys_, p.memory_keys, VALUE_SIZE, log)
        except Exception as e:
            errors.append(f"memory {name}: {e}")
            log(f"  FAILED: {e}\n{traceback.format_exc()}")
        finally:
            sys_.stop()


def write_results(results: dict, out: Path, results_dir: Path, latest: bool) -> None:
    """results.{json,md} and throughput.png in `out`; with `latest`, also
    results_dir/latest.{md,png} when the run was a complete, clean full run
    (latest.* is what the README shows)."""
    meta = results["meta"]
    labels = [w.label for w in workloads_for(meta["clients"])]
    out.mkdir(parents=True, exist_ok=True)
    png = out / "throughput.png"
    report.plot(results, png)
    report.write_json(results, out / "results.json")
    (out / "results.md").write_text(report.markdown(results, labels, png.name))
    log("\n" + report.main_table(results, labels))
    cpu = report.cpu_table(results, results["machine"].get("nproc"))
    if cpu:
        log("\nCPU per operation (µs):\n" + cpu)
    extra = report.other_lines(results)
    if extra:
        log("\n" + extra)
    log("\n" + report.targets_table(results))
    log(f"\nresults: {out.relative_to(REPO) if out.is_relative_to(REPO) else out}/")
    complete = set(meta.get("phases", PHASES)) == set(PHASES) and set(meta["systems"]) == set(
        report.SYSTEMS
    )
    if latest and meta["mode"] == "full" and complete and not results["errors"]:
        # latest.md sits next to latest.png, so it names that image.
        (results_dir / "latest.md").write_text(report.markdown(results, labels, "latest.png"))
        shutil.copyfile(png, results_dir / "latest.png")
        log(f"updated {results_dir}/latest.md and latest.png")


def render(args: argparse.Namespace) -> int:
    """--render DIR: the report files again from DIR/results.json (after a
    change to the report code), without measuring anything."""
    results = json.loads((args.render / "results.json").read_text())
    write_results(results, args.render, args.results_dir, latest=not args.no_latest)
    return 0


def _sigterm(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def main() -> int:
    args = parse_args()
    if args.render:
        return render(args)
    p = preset_from(args)
    systems = [s.strip() for s in args.systems.split(",") if s.strip()]
    for s in systems:
        if s not in report.SYSTEMS:
            raise SystemExit(f"unknown system {s!r}; choose from {report.SYSTEMS}")
    args.phases = [x.strip() for x in args.phases.split(",") if x.strip()]
    for x in args.phases:
        if x not in PHASES:
            raise SystemExit(f"unknown phase {x!r}; choose from {PHASES}")
    args.seshat_bin = args.seshat_bin.resolve()
    signal.signal(signal.SIGTERM, _sigterm)
    started = datetime.now(UTC)
    stamp = started.strftime("%Y%m%dT%H%M%SZ") + ("-smoke" if args.mode == "smoke" else "")
    if args.workdir:
        args.workdir.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="seshat-bench-", dir=args.workdir))
    t0 = time.monotonic()
    results: dict = {
        "meta": {
            "mode": args.mode,
            "started": started.strftime("%Y-%m-%d %H:%M UTC"),
            "command": "python3 bench/run.py " + " ".join(map(shlex.quote, sys.argv[1:])),
            "systems": systems,
            "phases": args.phases,
            "reps": p.reps,
            "seconds": p.seconds,
            "keyspace": p.keyspace,
            "value_size": VALUE_SIZE,
            "clients": p.clients,
        },
        "machine": machine.describe(REPO, workdir),
        "versions": {},
        "loadavg": {},
        "background_busy": {},
        "throughput": {},
        "memory": {},
        "errors": [],
    }
    log(f"Seshat benchmark, {args.mode} mode; data under {workdir}")
    log("machine: " + ", ".join(f"{k}={v}" for k, v in results["machine"].items()))
    rc = 0
    try:
        check_tools(systems, args.seshat_bin)
        if "seshat" in systems:
            args.seshat_bin = snapshot_binary(args.seshat_bin, workdir)
        run_all(args, p, systems, workdir, results)
        results["meta"]["duration_s"] = time.monotonic() - t0
        results["machine"]["loadavg_end"] = machine.loadavg()
        write_results(results, args.results_dir / stamp, args.results_dir, not args.no_latest)
        if results["errors"]:
            log("\nFAILED:\n" + "\n".join(f"  {e}" for e in results["errors"]))
            rc = 1
    except KeyboardInterrupt:
        log("\ninterrupted; stopping everything")
        rc = 130
    except Exception:
        log(traceback.format_exc())
        rc = 1
    finally:
        procs.kill_all()
        if args.keep_workdir or rc not in (0, 130):
            # Failed: keep the servers' logs for the post-mortem (path printed).
            if rc:
                log(f"data dirs and logs kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    log(f"done in {time.monotonic() - t0:.0f}s, exit {rc}")
    return rc


if __name__ == "__main__":
    sys.exit(main())
