"""Turns the suite's results into one Markdown table per workload: each system's absolute
figures, and on every row Switchroom's headline figure divided by that system's."""

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Getter = Callable[[dict[str, Any]], float | None]


@dataclass(frozen=True)
class Column:
    label: str
    get: Getter
    fmt: str = "{:,.0f}"


@dataclass(frozen=True)
class Table:
    """How to show one workload: its variants (rows per system), columns and headline."""

    key: str
    title: str
    variants: Callable[[dict[str, Any]], list[tuple[str, dict[str, Any]]]]
    columns: tuple[Column, ...]
    headline: Getter
    higher_is_better: bool = True


def _total_cpu(run: dict[str, Any]) -> float | None:
    cpu = run.get("cpu_pct")
    return sum(v for k, v in cpu.items() if k != "load") if cpu else None


def _single(result: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [("", result)]


def _workers(result: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [(f"{key.split('_')[1]} worker{'s' * (key != 'workers_1')}", run) for key, run in result.items()]


def _steps(result: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [(f"{step['offered_dps']:,}/s offered", step) for step in result["steps"]]


def _errors(run: dict[str, Any]) -> float:
    return run.get("errors", 0) + run.get("non_2xx", 0)


TABLES = (
    Table(
        "http",
        "HTTP hello: requests/s (higher is better)",
        _workers,
        (
            Column("req/s", lambda r: r["rps"]),
            Column("p50 ms", lambda r: r["p50_ms"], "{:,.1f}"),
            Column("p99 ms", lambda r: r["p99_ms"], "{:,.1f}"),
            Column("errors", _errors),
            Column("Redis cmds/req", lambda r: r.get("redis_per_unit"), "{:,.1f}"),
            Column("CPU % (stack)", _total_cpu),
        ),
        lambda r: r["rps"],
    ),
    Table(
        "echo",
        "WebSocket echo, 50 sockets: round trips/s (higher is better)",
        _single,
        (
            Column("msg/s", lambda r: r["mps"]),
            Column("p50 ms", lambda r: r["p50_ms"], "{:,.1f}"),
            Column("p99 ms", lambda r: r["p99_ms"], "{:,.1f}"),
            Column("sockets closed", lambda r: r["closed"]),
            Column("Redis cmds/msg", lambda r: r.get("redis_per_unit"), "{:,.1f}"),
            Column("CPU % (stack)", _total_cpu),
        ),
        lambda r: r["mps"],
    ),
    Table(
        "broadcast",
        "Broadcast, 200 sockets over 2 server processes: deliveries/s (higher is better)",
        _steps,
        (
            Column("deliveries/s", lambda r: r["dps"]),
            Column("lost %", lambda r: r["lost_pct"], "{:,.2f}"),
            Column("p50 ms", lambda r: r["p50_ms"], "{:,.1f}"),
            Column("p99 ms", lambda r: r["p99_ms"], "{:,.1f}"),
            Column("sockets closed", lambda r: r["sockets_closed"]),
            Column("CPU % (stack)", _total_cpu),
        ),
        lambda r: r["dps"],
    ),
    Table(
        "memory",
        "Idle WebSockets: KB of server RSS per socket (lower is better)",
        _single,
        (
            Column("sockets", lambda r: r["sockets"]),
            Column("KB/socket", lambda r: r["kb_per_socket"], "{:,.1f}"),
            Column("RSS before KB", lambda r: r["rss_before_kb"]),
            Column("RSS after KB", lambda r: r["rss_after_kb"]),
        ),
        lambda r: r["kb_per_socket"],
        higher_is_better=False,
    ),
    Table(
        "layer",
        "Layer send+receive pairs/s, one client process (higher is better; the ceiling row is "
        "redis-benchmark RPOP requests/s)",
        _single,
        (
            Column("one at a time", lambda r: r["one_at_a_time"]),
            Column("batched (100)", lambda r: r["batched"]),
        ),
        lambda r: r["batched"],
    ),
    Table(
        "email",
        "Email ingest: small messages from concurrent SMTP client processes",
        _single,
        (
            Column("accepted msg/s", lambda r: r["rate"]),
            Column("p50 ms", lambda r: r["p50"], "{:,.1f}"),
            Column("p99 ms", lambda r: r["p99"], "{:,.1f}"),
            Column("451 answers", lambda r: r["refused"]),
            Column("server CPU ms/msg", lambda r: r["cpu"], "{:,.2f}"),
        ),
        lambda r: r["rate"],
    ),
    Table(
        "slack",
        "Slack event round trip through the stand-in",
        _single,
        (
            Column("events/s", lambda r: r["rate"]),
            Column("p50 ms", lambda r: r["p50_ms"], "{:,.1f}"),
            Column("p99 ms", lambda r: r["p99_ms"], "{:,.1f}"),
            Column("lost", lambda r: r["lost"]),
        ),
        lambda r: r["rate"],
    ),
)


def _cell(column: Column, run: dict[str, Any]) -> str:
    try:
        value = column.get(run)
    except (KeyError, TypeError):
        value = None
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return column.fmt.format(value)


def _ratio(table: Table, ours: dict[str, Any] | None, theirs: dict[str, Any]) -> str:
    """Switchroom's headline ÷ this system's, for the same variant; "–" when either is missing."""
    if ours is None:
        return "–"
    try:
        a, b = table.headline(ours), table.headline(theirs)
    except (KeyError, TypeError):
        return "–"
    if not b or a is None or math.isnan(a) or math.isnan(b):
        return "–"
    return f"{a / b:.2f}×"


def render(table: Table, by_system: dict[str, dict[str, Any]], labels: dict[str, str]) -> str:
    """One workload's table; a system that failed gets a row saying why, skipped ones a note."""
    header = ["system", "", *(c.label for c in table.columns), "Switchroom ÷ this"]
    lines = [f"### {table.title}", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    ours = dict(table.variants(by_system["switchroom"])) if _usable(by_system.get("switchroom")) else {}
    skipped = []
    for name, result in by_system.items():
        if "skipped" in result:
            skipped.append(f"{labels[name]} ({result['skipped']})")
            continue
        if not _usable(result):
            reason = result.get("error") or "not run"
            lines.append(f"| {labels[name]} | {reason.splitlines()[0][:80]} |" + " |" * (len(header) - 2))
            continue
        for variant, run in table.variants(result):
            cells = [_cell(c, run) for c in table.columns]
            lines.append(
                "| "
                + " | ".join([labels[name], variant, *cells, _ratio(table, ours.get(variant), run)])
                + " |"
            )
    if skipped:
        lines += ["", "Not run: " + "; ".join(skipped) + "."]
    return "\n".join(lines)


def _usable(result: dict[str, Any] | None) -> bool:
    return bool(result) and "error" not in result and "skipped" not in result  # type: ignore[operator]


def lossless(by_system: dict[str, dict[str, Any]], labels: dict[str, str]) -> str:
    """The highest offered broadcast rate each system delivered without losing anything."""
    parts = [
        f"{labels[name]} {result['highest_lossless_dps']:,}/s"
        for name, result in by_system.items()
        if _usable(result)
    ]
    return "Highest offered rate with 0 lost: " + "; ".join(parts) if parts else ""


def report(results: dict[str, Any]) -> str:
    """Every workload that was run, in the suite's order, as Markdown."""
    labels = results["labels"]
    out = []
    for table in TABLES:
        by_system = results["workloads"].get(table.key)
        if not by_system:
            continue
        out.append(render(table, by_system, labels))
        if table.key == "broadcast":
            out.append(lossless(by_system, labels))
    return "\n\n".join(out)
