"""The results: one table (every workload x system: ops/s, p50, p99, and
Seshat's ratio to each other system with the target where one is set),
failover and memory lines, the machine, and a throughput-vs-clients plot."""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path

SYSTEMS = ["seshat", "redis-fsync", "redis-nopersist", "etcd"]

# (workload label, compared system, minimum Seshat / that system) — issue 5's targets.
TARGETS = [
    ("SET c=50", "redis-fsync", 1.0),
    ("SET c=50", "etcd", 3.0),
    ("GET c=50", "redis-nopersist", 0.8),
    ("SET c=50 P=16", "redis-nopersist", 0.25),
]
FAILOVER_TARGET_S = 1.0
MEMORY_TARGET_RATIO = 1.5
# Background CPU use (fraction of all CPUs) above which a run is flagged busy.
BUSY_THRESHOLD = 0.15

DESCRIPTIONS = {
    "seshat": "Seshat, 3 nodes (`seshat local --nodes 3`), fsync on, linearizable reads; "
    "clients on the leader",
    "redis-fsync": "Redis, 1 node, `appendonly yes appendfsync always`",
    "redis-nopersist": 'Redis, 1 node, `save "" appendonly no`',
    "etcd": "etcd, 3 members; gRPC Put / linearizable Range via `etcd-load` "
    "(clients on the leader, one HTTP/2 connection)",
}


def _fmt_rps(x: float | None) -> str:
    return "—" if x is None else f"{x:,.0f}"


def _fmt_ms(x: float | None) -> str:
    return "—" if x is None or math.isnan(x) else f"{x:.3f}"


def target_checks(results: dict) -> list[dict]:
    """Every target with its measured ratio and whether it is met (None: not measured)."""
    tp = results.get("throughput", {})
    checks = []
    for label, other, minimum in TARGETS:
        s = tp.get("seshat", {}).get(label)
        o = tp.get(other, {}).get(label)
        ratio = s["rps"] / o["rps"] if s and o and o["rps"] else None
        checks.append(
            {
                "what": f"{label}: seshat ÷ {other}",
                "ratio": ratio,
                "target": f"≥ {minimum:g}×",
                "met": None if ratio is None else ratio >= minimum,
            }
        )
    fo = results.get("failover")
    checks.append(
        {
            "what": "failover median (s)",
            "ratio": fo and fo["median_s"],
            "target": f"< {FAILOVER_TARGET_S:g} s",
            "met": None if not fo else fo["median_s"] < FAILOVER_TARGET_S,
        }
    )
    mem = results.get("memory", {})
    sm, rm = mem.get("seshat"), mem.get("redis")
    ratio = sm["bytes_per_key"] / rm["bytes_per_key"] if sm and rm else None
    checks.append(
        {
            "what": "memory per key: seshat RSS ÷ redis used_memory",
            "ratio": ratio,
            "target": f"≤ {MEMORY_TARGET_RATIO:g}×",
            "met": None if ratio is None else ratio <= MEMORY_TARGET_RATIO,
        }
    )
    return checks


def main_table(results: dict, workloads: list[str]) -> str:
    """One markdown table: a row per (workload, system)."""
    tp = results.get("throughput", {})
    targets = {(label, other): m for label, other, m in TARGETS}
    lines = [
        "| workload | system | ops/s | p50 ms | p99 ms | seshat ÷ this | target |",
        "|---|---|--:|--:|--:|--:|---|",
    ]
    for label in workloads:
        s = tp.get("seshat", {}).get(label)
        for name in SYSTEMS:
            if name not in tp:
                continue
            r = tp[name].get(label)
            ratio = target = ""
            if name != "seshat" and r and s and r["rps"]:
                ratio = f"{s['rps'] / r['rps']:.2f}×"
            if (label, name) in targets:
                m = targets[(label, name)]
                met = "" if not ratio else (" met" if s["rps"] / r["rps"] >= m else " **missed**")
                target = f"≥ {m:g}×{met}"
            if r is None:
                why = "n/a (no pipelining)" if name == "etcd" and "P=" in label else "failed"
                lines.append(f"| {label} | {name} | {why} | | | | {target} |")
                continue
            lines.append(
                f"| {label} | {name} | {_fmt_rps(r['rps'])} | {_fmt_ms(r['p50_ms'])} "
                f"| {_fmt_ms(r['p99_ms'])} | {ratio} | {target} |"
            )
    return "\n".join(lines)


# The workloads whose CPU cost the report breaks down: those the targets compare.
CPU_WORKLOADS = ["SET c=50", "GET c=50", "SET c=50 P=16"]


def _fmt_us(x: float | None) -> str:
    return "—" if x is None else f"{x:.1f}"


def cpu_table(results: dict, nproc: int | None) -> str:
    """CPU µs per operation by system for the targets' workloads, with the
    throughput the machine's cores would allow if nothing else ran."""
    tp = results.get("throughput", {})
    lines = [
        "| workload | system | servers µs/op | busiest process | load generator µs/op "
        "| cores allow ops/s | measured ops/s |",
        "|---|---|--:|--:|--:|--:|--:|",
    ]
    rows = 0
    for label in CPU_WORKLOADS:
        for name in SYSTEMS:
            r = tp.get(name, {}).get(label)
            cpu = r and r.get("cpu")
            if not cpu:
                continue
            total = cpu["servers_us"] + cpu["client_us"]
            bound = _fmt_rps(nproc * 1e6 / total) if nproc and total > 0 else "—"
            lines.append(
                f"| {label} | {name} | {_fmt_us(cpu['servers_us'])} | {_fmt_us(cpu['busiest_us'])} "
                f"| {_fmt_us(cpu['client_us'])} | {bound} | {_fmt_rps(r['rps'])} |"
            )
            rows += 1
    return "\n".join(lines) if rows else ""


def other_lines(results: dict) -> str:
    out = []
    fo = results.get("failover")
    if fo:
        trials = ", ".join(f"{t * 1000:.0f}" for t in fo["trials_s"])
        out.append(
            f"**Failover** (SIGKILL the leader under {fo['load_clients']}-client SET "
            "load, the killed node kept down → first acknowledged write): median "
            f"**{fo['median_s'] * 1000:.0f} ms**, max {fo['max_s'] * 1000:.0f} ms over "
            f"{len(fo['trials_s'])} trial(s) ({trials} ms)"
            + (
                f"; a survivor named the new leader after {fo['leader_median_s'] * 1000:.0f} ms "
                "(median): the election is nearly all of it."
                if fo.get("leader_median_s") is not None
                else "."
            )
        )
    mem = results.get("memory", {})
    sm, rm = mem.get("seshat"), mem.get("redis")
    if sm:
        per_node = ", ".join(
            f"{n['rss_after'] / 2**20:.0f} MiB ({n['bytes_per_key']:.0f} B/key)"
            for n in sm["nodes"]
        )
        out.append(
            f"**Memory**, {sm['keys']:,} keys (16-byte keys, {sm['value_size']}-byte "
            f"values): Seshat RSS per node after load {per_node}; max "
            f"**{sm['bytes_per_key']:.0f} B/key**."
            + (
                f" The load got {sm['retryable_errors']:,} retryable error replies "
                "(CLUSTERDOWN/TRYAGAIN), re-sent."
                if sm.get("retryable_errors")
                else ""
            )
        )
    if rm:
        out.append(
            f"Redis `used_memory` for the same load: **{rm['bytes_per_key']:.0f} B/key** "
            f"(RSS {rm['rss_bytes_per_key']:.0f} B/key)."
        )
    return "\n\n".join(out)


def targets_table(results: dict) -> str:
    lines = ["| target | measured | required | |", "|---|--:|---|---|"]
    for c in target_checks(results):
        v = "—" if c["ratio"] is None else f"{c['ratio']:.2f}"
        met = "not measured" if c["met"] is None else ("met" if c["met"] else "**missed**")
        lines.append(f"| {c['what']} | {v} | {c['target']} | {met} |")
    return "\n".join(lines)


def machine_table(m: dict) -> str:
    return "\n".join(["| | |", "|---|---|"] + [f"| {k} | {v} |" for k, v in m.items()])


def busy_note(results: dict) -> str:
    """A warning when other work shared the CPUs: every absolute number is then
    lower than on an idle machine, and the ratios are noisier. Judged from the
    CPU use sampled just before each system started, while the harness ran
    nothing (results from before that sample existed carry no warning)."""
    samples = [x for v in results.get("background_busy", {}).values() for x in v]
    if not samples or max(samples) <= BUSY_THRESHOLD:
        return ""
    return (
        f"**The machine was busy:** {max(samples):.0%} of its CPUs were in use by other "
        f"work just before a system started (median {statistics.median(samples):.0%}), "
        "so absolute numbers are depressed and ratios noisier than on an idle machine."
    )


def markdown(results: dict, workloads: list[str], png_name: str | None) -> str:
    meta = results["meta"]
    parts = [
        f"# Seshat benchmark — {meta['mode']} run, {meta['started']}",
        f"Command: `{meta['command']}` ({meta['duration_s']:.0f} s)."
        + (
            " **Smoke mode: tiny runs that show the harness works; the numbers mean nothing.**"
            if meta["mode"] == "smoke"
            else ""
        ),
        "Systems, started one at a time on this machine on loopback:\n\n"
        + "\n".join(
            f"- **{k}**: {v}"
            for k, v in DESCRIPTIONS.items()
            if k in results.get("throughput", {}) or k in meta["systems"]
        ),
        f"Every client: {meta['value_size']}-byte values, random 16-byte keys from a "
        f"{meta['keyspace']:,}-key space (preloaded); RESP systems driven by "
        "`redis-benchmark`, etcd by `bench/etcd-load`. Each number is the median of "
        f"{meta['reps']} round(s), each system started afresh per round; "
        + (f"runs sized to ~{meta['seconds']:g} s." if meta["seconds"] else "fixed-size runs."),
        busy_note(results),
        "## Targets\n\n" + targets_table(results),
        "## Throughput and latency\n\n" + main_table(results, workloads),
    ]
    cpu = cpu_table(results, results.get("machine", {}).get("nproc"))
    if cpu:
        parts.append(
            "## CPU per operation\n\n"
            "CPU time (user + system, all threads, from `/proc`) that the system's "
            "processes and the load generator used during each run, divided by its "
            "requests; medians over the rounds. The servers and the load generator "
            "share the machine's cores, so ops/s can reach at most cores × 10⁶ ÷ "
            "(servers + load generator µs/op); the gap to it is time the cores sat "
            "idle (processes waiting on fsync or on one another) or ran other work "
            "(kernel threads, other tenants). A slow minute on a shared machine raises "
            "these figures as well as lowering ops/s: compare a system's figure with the "
            "load generator's in the same row, which ran the same program throughout."
            "\n\n" + cpu
        )
    extra = other_lines(results)
    if extra:
        parts.append("## Failover and memory\n\n" + extra)
    if png_name:
        parts.append(f"## Throughput vs clients\n\n![throughput vs clients]({png_name})")
    if results.get("errors"):
        parts.append("## Errors\n\n" + "\n".join(f"- {e}" for e in results["errors"]))
    parts.append("## Machine\n\n" + machine_table(results["machine"]))
    return "\n\n".join(p for p in parts if p) + "\n"


def plot(results: dict, path: Path) -> None:
    """Throughput (log scale) vs clients, SET and GET side by side, a line per system."""
    # Imported here: only a run that got this far needs matplotlib (and its start-up cost).
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    tp = results.get("throughput", {})
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5), sharey=True)
    for ax, op in zip(axes, ["set", "get"], strict=True):
        for name in SYSTEMS:
            pts = sorted(
                (r["clients"], r["rps"])
                for r in tp.get(name, {}).values()
                if r["op"] == op and r["pipeline"] == 1
            )
            if pts:
                # A fixed colour per system, whichever systems a run has.
                color = f"C{SYSTEMS.index(name)}"
                ax.plot([p[0] for p in pts], [p[1] for p in pts], "o-", color=color, label=name)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ticks = sorted({r["clients"] for s in tp.values() for r in s.values()})
        ax.set_xticks(ticks, [str(t) for t in ticks])
        ax.minorticks_off()
        ax.set_xlabel("concurrent clients")
        ax.set_title(f"{op.upper()} (no pipelining)")
        ax.grid(True, which="major", alpha=0.3)
    axes[0].set_ylabel("ops/s")
    axes[0].legend()
    m = results["machine"]
    fig.suptitle(
        f"{results['meta']['mode']} run {results['meta']['started']} — {m['nproc']} CPU {m['cpu']}",
        fontsize=9,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_json(results: dict, path: Path) -> None:
    path.write_text(json.dumps(results, indent=2, default=str) + "\n")
