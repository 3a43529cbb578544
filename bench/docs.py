"""Generates the figures in README.md and docs/*.md from the recorded run.

    python -m bench.docs            # rewrite every marked region from bench/results/recorded.json
    python -m bench.docs --check    # exit 1, naming the regions, if any differs from the record

A region is the text between ``<!-- bench:NAME -->`` and ``<!-- /bench -->`` in a Markdown
file; NAME is a key of ``REGIONS``. Everything between the markers is replaced, so a
figure in a region cannot drift from the JSON it was measured into; figures belong in the
docs only inside such regions.
"""

import argparse
import math
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.goals import goals
from bench.report import TABLES_BY_KEY, cell, median_of, table, usable
from bench.report import Column as C

ROOT = Path(__file__).resolve().parents[1]
RECORDED = ROOT / "bench" / "results" / "recorded.json"
REGION = re.compile(r"(<!-- bench:(?P<name>[a-z0-9_]+) -->\n?)(?P<body>.*?)(<!-- /bench -->)", re.S)

Results = dict[str, Any]


def files() -> list[Path]:
    """The Markdown files whose regions are generated."""
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def source(results: Results) -> str:
    """The line under each region naming the run it came from."""
    meta = results["meta"]
    short = " — a short run (see docs/performance.md)" if meta.get("short_run") else ""
    return f"*From `{meta['command']}`, {meta['started'][:10]}{short}.*"


def run_line(results: Results) -> str:
    """What was run, where and how, and whether it is a full recording."""
    meta, info = results["meta"], results["machine"]
    lines = [
        f"Recorded by `{meta['command']}` at commit `{meta['commit'][:12]}`, {meta['started']}: "
        f"{info['cpus']} cores ({info['cpu_model'] or 'unknown CPU'}), Python {info['python']}, "
        f"Linux {info['kernel']}; load average {info['load_avg']} before and "
        f"{info.get('load_avg_after')} after; {meta['seconds']:,.0f} s in all. Every figure is the "
        f"median of {meta['runs']} runs of {meta['seconds_per_measurement']:g} s, with the range "
        "(min–max) in brackets."
    ]
    if meta.get("short_run"):
        lines += [
            "",
            f"**This is a short run** ({meta['short_run']}), made on a machine shared with other "
            "work: it shows that every benchmark runs and what it records, not what the systems "
            "can do. The full recording is `python -m bench --record` on a quiet machine, then "
            "`python -m bench.docs`.",
        ]
    return "\n".join(lines)


def _leaf(results: Results, workload: str) -> dict[str, Any]:
    result = results["workloads"].get(workload, {}).get("switchroom")
    if not usable(result):
        raise KeyError(f"the record has no {workload} figures for Switchroom")
    return result


def _m(leaf: dict[str, Any], get: Callable[[dict[str, Any]], Any]) -> float:
    value = median_of(get, leaf)
    if value is None:
        raise KeyError("a figure is missing from the record")
    return value


def _figure(leaf: dict[str, Any], key: str, fmt: str = "{:,.0f}") -> str:
    return cell(C(key, lambda r: r[key], fmt), leaf)


LAYER_ROWS = (
    ("memory pairs/s, batched", "memory layer, batches of 100 (pairs/s)"),
    ("redis pairs/s, one at a time", "Redis, one message at a time (pairs/s)"),
    ("redis pairs/s, batched", "Redis, batches of 100, one process (pairs/s)"),
    ("redis pairs/s, batched, 2 processes", "Redis, batches of 100, two processes (pairs/s)"),
    ("redis group deliveries/s (group of 1,000)", "Redis group send, group of 1,000 (deliveries/s)"),
    ("redis group loss %", "Redis group send, lost %"),
    ("redis request+reply/s in one process, remote only", "request+reply in one process, remote only (/s)"),
    (
        "redis commands (incl. in scripts) per request+reply, remote only",
        "Redis commands per request+reply, remote only",
    ),
    ("redis request+reply/s in one process, local-and-remote", "the same in local-and-remote mode (/s)"),
    (
        "redis commands (incl. in scripts) per request+reply, local-and-remote",
        "Redis commands per request+reply, local-and-remote",
    ),
    ("redis-benchmark LPUSH req/s", "`redis-benchmark` LPUSH, unpipelined (req/s)"),
    ("redis-benchmark RPOP req/s", "`redis-benchmark` RPOP, unpipelined (req/s)"),
)


def layer_parts(results: Results) -> str:
    leaf = _leaf(results, "layer_parts")
    lines = ["| workload | figure |", "|---|---|"]
    for key, label in LAYER_ROWS:
        fmt = "{:,.1f}" if "commands" in key or "%" in key else "{:,.0f}"
        lines.append(f"| {label} | {_figure(leaf, key, fmt)} |")
    return "\n".join(lines)


DURABLE_ROWS = (
    ("memory layer, batches of 100", "memory pairs/s, batched", "memory at-least-once pairs/s, batched"),
    (
        "Redis, one at a time",
        "redis pairs/s, one at a time",
        "redis at-least-once pairs/s, one at a time",
    ),
    ("Redis, batches of 100", "redis pairs/s, batched", "redis at-least-once pairs/s, batched"),
    (
        "Redis with AOF (`appendfsync everysec`), batches of 100",
        "redis (AOF) pairs/s, batched",
        "redis (AOF) at-least-once pairs/s, batched",
    ),
)


def durable(results: Results) -> str:
    leaf = _leaf(results, "layer_parts")
    lines = ["| workload | at most once (pairs/s) | at least once (pairs/s) | ratio |", "|---|---|---|---|"]
    for label, most, least in DURABLE_ROWS:
        ratio = C("ratio", lambda r, a=least, b=most: r[a] / r[b], "{:,.2f}")
        lines.append(f"| {label} | {_figure(leaf, most)} | {_figure(leaf, least)} | {cell(ratio, leaf)} |")
    return "\n".join(lines)


def _shard_leaf(results: Results, shards: int) -> dict[str, Any]:
    leaf = _leaf(results, "scaling")
    return {"runs": [row for run in leaf["runs"] for row in run if row["shards"] == shards]}


def scaling(results: Results) -> str:
    counts = sorted({row["shards"] for run in _leaf(results, "scaling")["runs"] for row in run})
    lines = [
        "| shards | pairs/s | Redis µs per pair | group deliveries/s | Redis µs per delivery |",
        "|---|---|---|---|---|",
    ]
    for count in counts:
        leaf = _shard_leaf(results, count)
        cells = [
            _figure(leaf, "pairs/s"),
            _figure(leaf, "redis µs per pairs message", "{:,.1f}"),
            _figure(leaf, "group deliveries/s"),
            _figure(leaf, "redis µs per group message", "{:,.1f}"),
        ]
        lines.append(f"| {count} | " + " | ".join(cells) + " |")
    fan = _leaf(results, "fanout")
    sockets = fan["runs"][0]["sockets"]
    lines += [
        "",
        "| one `switchroom http` process fanning a group out to its sockets | figure |",
        "|---|---|",
        f"| sockets in the group | {sockets:,} |",
        f"| deliveries/s | {_figure(fan, 'dps')} |",
        f"| delivered of those the layer reached | {_figure(fan, 'delivered')} of "
        f"{_figure(fan, 'layer_reached')} (skipped: {_figure(fan, 'layer_skipped')}) |",
        f"| server CPU per delivery (µs) | {_figure(fan, 'us_per_delivery', '{:,.1f}')} |",
        f"| server memory per idle WebSocket (KB) | {_figure(fan, 'kb_per_socket', '{:,.1f}')} |",
        f"| server RSS with no sockets (MB) | {cell(C('MB', lambda r: r['rss_empty_kb'] / 1024), fan)} |",
    ]
    return "\n".join(lines)


SOCKETS = 1_000_000
BROADCASTS = 100_000
GROUP = 10
HEADROOM = 0.6
PING_EVERY = 20.0
CORES_PER_MACHINE = 8


def scaling_model(results: Results) -> str:
    """The 1M-socket model, from the recorded per-delivery costs (medians)."""
    fan = _leaf(results, "fanout")
    us_delivery = _m(fan, lambda r: r["us_per_delivery"])
    kb_socket = _m(fan, lambda r: r["kb_per_socket"])
    base_mb = _m(fan, lambda r: r["rss_empty_kb"]) / 1024
    redis_us = _m(_shard_leaf(results, 1), lambda r: r["redis µs per group message"])
    rr = _m(_leaf(results, "layer_parts"), lambda r: r["redis request+reply/s in one process, remote only"])
    deliveries = BROADCASTS * GROUP
    per_core = 1e6 / us_delivery
    servers = math.ceil(deliveries / (per_core * HEADROOM))
    socket_gb = SOCKETS * kb_socket / 1024 / 1024
    base_gb = servers * base_mb / 1024
    redis_cores = deliveries * redis_us / 1e6
    shards = max(1, math.ceil(redis_cores / HEADROOM))
    workers = max(1, math.ceil(BROADCASTS / (rr * HEADROOM)))
    machines = math.ceil(servers / CORES_PER_MACHINE)
    rows = [
        (
            "server CPU",
            f"{deliveries:,} deliveries/s × {us_delivery:,.1f} µs, at {HEADROOM:.0%} of a core each "
            f"({per_core:,.0f} deliveries/s per core)",
            f"**{servers:,} server processes** (cores)",
        ),
        (
            "server memory",
            f"{SOCKETS:,} sockets × {kb_socket:,.1f} KB, plus {base_mb:,.0f} MB per process",
            f"{socket_gb:,.1f} GB + {base_gb:,.1f} GB ≈ **{socket_gb + base_gb:,.0f} GB**",
        ),
        ("sockets per server", f"{SOCKETS:,} ÷ {servers:,}", f"~{SOCKETS // servers:,} each"),
        (
            "Redis CPU",
            f"{deliveries:,} deliveries/s × {redis_us:,.1f} µs (one shard's cost per group delivery)",
            f"{redis_cores:,.1f} cores → **{shards} shards** at ≤ {HEADROOM:.0%} each",
        ),
        (
            "workers",
            f"{BROADCASTS:,} group sends/s at the one-process request+reply rate ({rr:,.0f}/s), "
            f"at {HEADROOM:.0%}",
            f"**{workers} worker processes** for the layer work, plus the application's own",
        ),
        (
            "keepalive",
            f"{SOCKETS:,} sockets pinged every {PING_EVERY:g} s",
            f"{SOCKETS / PING_EVERY:,.0f} pings/s across all servers",
        ),
    ]
    lines = ["| part | arithmetic | need |", "|---|---|---|"]
    lines += [f"| {a} | {b} | {c} |" for a, b, c in rows]
    lines += [
        "",
        f"So roughly: **{machines} machines of {CORES_PER_MACHINE} cores** for the interface servers "
        f"({servers} processes, ~{socket_gb + base_gb:,.0f} GB RAM in all), {shards} Redis shards, and "
        f"{workers} worker processes for the layer work plus whatever the application's own logic costs.",
    ]
    return "\n".join(lines)


def tls(results: Results) -> str:
    leaf = _leaf(results, "tls")
    return (
        f"layer {_figure(leaf, 'tls')} send+receive pairs/s over TLS against "
        f"{_figure(leaf, 'plain')} plain, same run (ratio {_figure(leaf, 'tls_over_plain', '{:,.2f}')}; "
        "`python -m bench.tls`, through the test suite's TLS proxy)"
    )


def email_cpu(results: Results) -> str:
    """The email server's CPU per small message against the no-op Sink's, run by run, for
    each load generator that ran."""
    result = _leaf(results, "email")
    texts = []
    for suffix, generator in (("", "the suite's clients"), ("_smtp_source", "smtp-source")):
        if "small" + suffix not in result:
            continue
        ours, sink = result["small" + suffix], result["sink" + suffix]
        pairs = {
            "runs": [{"ratio": a["cpu"] / b["cpu"]} for a, b in zip(ours["runs"], sink["runs"], strict=True)]
        }
        texts.append(
            f"with {generator} as the load, server CPU per small message "
            f"{_figure(ours, 'cpu', '{:,.2f}')} ms against the no-op server's "
            f"{_figure(sink, 'cpu', '{:,.2f}')} ms: "
            f"{_figure(pairs, 'ratio', '{:,.2f}')}× (median and range of {len(pairs['runs'])} runs, "
            "each pair in turn)"
        )
    if "small_smtp_source" not in result:
        skipped = (result.get("smtp_source") or {}).get("skipped", "not part of that run")
        texts.append(f"smtp-source did not run ({skipped})")
    return "; ".join(texts)


PRESENCE_ROWS = (
    ("join (`track`), µs per call, one at a time", "join_us", "{:,.0f}"),
    ("join, round trips to Redis per call", "join_round_trips", "{:,.2f}"),
    ("join, Redis commands per call (inside scripts too)", "join_commands", "{:,.1f}"),
    ("leave (`untrack`), µs per call, one at a time", "leave_us", "{:,.0f}"),
    ("leave, round trips to Redis per call", "leave_round_trips", "{:,.2f}"),
    ("leave, Redis commands per call (inside scripts too)", "leave_commands", "{:,.1f}"),
    ("`list` of a group of 10,000 members, ms (median of 5 calls)", "list_ms", "{:,.1f}"),
    ("churn of 1,000 joins/s: presence messages per watcher per s", "messages_per_watcher_per_s", "{:,.1f}"),
    ("the same, every change flushed at once: times more messages", "fewer_messages_batched", "{:,.1f}"),
)


def presence(results: Results) -> str:
    leaf = _leaf(results, "presence")
    lines = ["| figure | value |", "|---|---|"]
    lines += [f"| {label} | {_figure(leaf, key, fmt)} |" for label, key, fmt in PRESENCE_ROWS]
    return "\n".join(lines)


def _table(key: str) -> Callable[[Results], str]:
    def region(results: Results) -> str:
        text = table(key, results)
        if not text:
            raise KeyError(f"the record has no {TABLES_BY_KEY[key].workload} figures")
        return text

    return region


REGIONS: dict[str, Callable[[Results], str]] = {
    "run": run_line,
    **{
        key: _table(key)
        for key in (
            "http",
            "http_paced",
            "echo",
            "echo_paced",
            "broadcast",
            "memory",
            "layer",
            "email",
            "slack",
            "asgi3_echo",
            "asgi3_chat",
        )
    },
    "layer_parts": layer_parts,
    "durable": durable,
    "scaling": scaling,
    "scaling_model": scaling_model,
    "tls": tls,
    "email_cpu": email_cpu,
    "presence": presence,
    "goals": goals,
}
INLINE = {"tls", "email_cpu"}  # regions inside a table cell or a sentence: no source line, no line breaks


def render(name: str, results: Results) -> str:
    """The text of region ``name``, ending in a newline."""
    if name not in REGIONS:
        raise KeyError(f"unknown region {name!r} (known: {', '.join(REGIONS)})")
    try:
        body = REGIONS[name](results)
    except KeyError as exc:
        body = f"*Not in the recorded run: {exc.args[0]}; `python -m bench --record` measures it.*"
    if name in INLINE:
        return body
    if name != "run":
        body += "\n\n" + source(results)
    return body + "\n"


def rewrite(text: str, results: Results) -> str:
    """``text`` with every region replaced by what the record gives."""

    def replace(match: re.Match[str]) -> str:
        return match.group(1) + render(match.group("name"), results) + match.group(4)

    return REGION.sub(replace, text)


def run(results: Results, check: bool) -> list[str]:
    """Rewrite (or, with ``check``, compare) every file; the regions that differed."""
    stale = []
    for path in files():
        text = path.read_text()
        new = rewrite(text, results)
        if new == text:
            continue
        old_regions = {m.group("name"): m.group("body") for m in REGION.finditer(text)}
        for m in REGION.finditer(new):
            if old_regions.get(m.group("name")) != m.group("body"):
                stale.append(f"{path.relative_to(ROOT)}: {m.group('name')}")
        if not check:
            path.write_text(new)
    return stale


def main(argv: list[str] | None = None) -> int:
    import json

    parser = argparse.ArgumentParser(
        prog="python -m bench.docs", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if a region is stale")
    parser.add_argument("--results", type=Path, default=RECORDED, help="the recorded results JSON")
    args = parser.parse_args(argv)
    results = json.loads(args.results.read_text())
    stale = run(results, args.check)
    for region in stale:
        print(f"{'stale' if args.check else 'rewrote'}: {region}")
    if args.check and stale:
        print("run `python -m bench.docs` to regenerate them from the record", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
