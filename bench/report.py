"""Turns recorded results into Markdown tables: every figure as the median of its runs with
the range (min–max) beside it, and on the comparison tables Switchroom's headline figure
divided by each system's (medians).

A result holds its measurements as ``{"runs": [run, run, ...]}``; a table says which of
them are its rows (``variants``) and what to read off each run (``columns``).
"""

import math
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Getter = Callable[[dict[str, Any]], Any]
Leaf = dict[str, Any]


@dataclass(frozen=True)
class Column:
    """One column: what to read off each run, and how to show it. ``count`` columns show in
    how many runs the value was true ("1 of 3") instead of a median."""

    label: str
    get: Getter
    fmt: str = "{:,.0f}"
    count: bool = False


@dataclass(frozen=True)
class Table:
    """How to show one table: its workload, its rows per system, columns and headline
    (``None``: no ratio column). ``relative_to`` names a variant that every row of the same
    system is compared with (headline medians, in %) instead of Switchroom with the other
    systems; ``only`` limits the table to those systems (the others are not mentioned)."""

    key: str
    workload: str
    title: str
    variants: Callable[[dict[str, Any]], list[tuple[str, Leaf]]]
    columns: tuple[Column, ...]
    headline: Getter | None = None
    higher_is_better: bool = True
    note: Callable[[dict[str, dict[str, Any]], dict[str, str]], str] | None = None
    relative_to: str | None = None
    only: tuple[str, ...] | None = None


def spread(values: list[float]) -> dict[str, float]:
    """The median and range of ``values``."""
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def _values(get: Getter, leaf: Leaf) -> list[Any]:
    out = []
    for run in leaf.get("runs", []):
        try:
            value = get(run)
        except (KeyError, TypeError, ZeroDivisionError):
            value = None
        if value is None or (isinstance(value, float) and math.isnan(value)):
            continue
        out.append(value)
    return out


def median_of(get: Getter, leaf: Leaf) -> float | None:
    """The median over a leaf's runs of ``get``, or None when no run has it."""
    values = _values(get, leaf)
    return statistics.median(values) if values else None


def cell(column: Column, leaf: Leaf) -> str:
    """``median (min–max)`` over the runs; one value alone when there was one run."""
    values = _values(column.get, leaf)
    if column.count:
        runs = len(leaf.get("runs", []))
        return f"{sum(bool(v) for v in values)} of {runs}" if runs else "–"
    if not values:
        return "–"
    low, mid, high = min(values), statistics.median(values), max(values)
    text = column.fmt.format(mid)
    if low != high:
        text += f" ({column.fmt.format(low)}–{column.fmt.format(high)})"
    return text


def _total_cpu(run: dict[str, Any]) -> float | None:
    cpu = run.get("cpu_pct")
    return sum(v for k, v in cpu.items() if k != "load") if cpu else None


def _single(result: dict[str, Any]) -> list[tuple[str, Leaf]]:
    return [("", result)]


def _closed_http(result: dict[str, Any]) -> list[tuple[str, Leaf]]:
    return [
        (f"{key.split('_')[1]} worker{'s' * (key != 'workers_1')}", leaf)
        for key, leaf in result.items()
        if key.startswith("workers_")
    ]


def _paced(unit: str) -> Callable[[dict[str, Any]], list[tuple[str, Leaf]]]:
    def variants(result: dict[str, Any]) -> list[tuple[str, Leaf]]:
        return [
            (f"{leaf['share_of_max']} % of max: {leaf[f'offered_{unit}']:,.0f}/s", leaf)
            for key, leaf in result.items()
            if key.startswith("rate_")
        ]

    return variants


def _steps(result: dict[str, Any]) -> list[tuple[str, Leaf]]:
    return [(f"{step['offered_dps']:,}/s offered", step) for step in result["steps"]]


def _email(result: dict[str, Any]) -> list[tuple[str, Leaf]]:
    """Each row says its load generator: the suite's clients, or smtp-source when it ran
    (a run recorded before the runs named their generator was the suite's)."""
    rows = [
        ("small, switchroom email, suite's clients", result["small"]),
        ("small, aiosmtpd Sink (no-op), suite's clients", result["sink"]),
    ]
    if "small_smtp_source" in result:
        rows += [
            ("small, switchroom email, smtp-source", result["small_smtp_source"]),
            ("small, aiosmtpd Sink (no-op), smtp-source", result["sink_smtp_source"]),
        ]
    return [*rows, ("1 MB attachment, switchroom email, suite's clients", result["large"])]


def _email_generators(by_system: dict[str, dict[str, Any]], labels: dict[str, str]) -> str:
    """Which load generators produced the email rows, and why smtp-source did not, if not."""
    result = by_system.get("switchroom") or {}
    if not usable(result):
        return ""
    used = sorted(
        {
            run["load"]
            for leaf in result.values()
            if isinstance(leaf, dict)
            for run in leaf.get("runs", [])
            if isinstance(run, dict) and "load" in run
        }
    )
    text = "Load generators: " + "; ".join(used) + "." if used else ""
    skipped = (result.get("smtp_source") or {}).get("skipped")
    if skipped:
        text += f" smtp-source not run: {skipped}."
    return text.strip()


def _errors(run: dict[str, Any]) -> float:
    return run.get("errors", 0) + run.get("non_2xx", 0)


def _generators(by_system: dict[str, dict[str, Any]], labels: dict[str, str]) -> str:
    used = sorted(
        {
            leaf["load"]
            for result in by_system.values()
            if isinstance(result, dict)
            for leaf in result.values()
            if isinstance(leaf, dict) and "load" in leaf
        }
    )
    return "Load generator: " + "; ".join(used) + "." if used else ""


def _lossless(by_system: dict[str, dict[str, Any]], labels: dict[str, str]) -> str:
    parts = [
        f"{labels.get(name, name)} {result['highest_lossless_dps']:,}/s"
        for name, result in by_system.items()
        if usable(result) and "highest_lossless_dps" in result
    ]
    return "Highest offered rate with 0 lost in every run: " + "; ".join(parts) + "." if parts else ""


def _apps(result: dict[str, Any]) -> list[tuple[str, Leaf]]:
    """Each app of a run that measures several side by side, as its own row."""
    return [
        (name, {"runs": [run[name] for run in result["runs"] if name in run]}) for name in result["apps"]
    ]


def _chat(result: dict[str, Any]) -> list[tuple[str, Leaf]]:
    return [(f"{result['lines']} lines into a room of {result['sockets']}", result)]


def relative(table: "Table", result: dict[str, Any]) -> dict[str, float | None]:
    """Each variant's headline median ÷ that of ``table.relative_to``, in the same result."""
    assert table.headline is not None and table.relative_to is not None
    leaves = dict(table.variants(result))
    base = median_of(table.headline, leaves[table.relative_to]) if table.relative_to in leaves else None
    out: dict[str, float | None] = {}
    for variant, leaf in leaves.items():
        value = median_of(table.headline, leaf)
        out[variant] = value / base if value is not None and base else None
    return out


def _percent(share: float) -> str:
    return f"{share * 100:,.0f} %"


# The goal for ASGI 3 apps: their echo at least this share of the native App's, same run.
ASGI3_GOAL = 0.8


def _asgi3_goal(by_system: dict[str, dict[str, Any]], labels: dict[str, str]) -> str:
    """The sockets, and whether each ASGI 3 app reached the goal against the native echo."""
    result = by_system.get("switchroom") or {}
    if not usable(result):
        return ""
    spec = TABLES_BY_KEY["asgi3_echo"]
    verdicts = []
    for name, share in relative(spec, result).items():
        if name == spec.relative_to:
            continue
        if share is None:
            verdicts.append(f"{name} not measured")
        else:
            verdicts.append(f"{name} {_percent(share)}, {'met' if share >= ASGI3_GOAL else '**not met**'}")
    return (
        f"{result['sockets']} sockets per app. Goal: an ASGI 3 app's echo at least "
        f"{_percent(ASGI3_GOAL)} of the native `App`'s in the same run (ratio of medians): "
        f"{'; '.join(verdicts)}."
    )


CPU = Column("CPU % (stack)", _total_cpu)
P50 = Column("p50 ms", lambda r: r["p50_ms"], "{:,.1f}")
P99 = Column("p99 ms", lambda r: r["p99_ms"], "{:,.1f}")

TABLES = (
    Table(
        "http",
        "http",
        "HTTP hello, closed loop (64 connections): requests/s (higher is better)",
        _closed_http,
        (
            Column("req/s", lambda r: r["rps"]),
            P50,
            P99,
            Column("errors", _errors),
            Column("Redis cmds/req", lambda r: r.get("redis_per_unit"), "{:,.1f}"),
            CPU,
        ),
        lambda r: r["rps"],
        note=_generators,
    ),
    Table(
        "http_paced",
        "http",
        "HTTP hello at 50 % and 80 % of each system's median maximum, on a fixed schedule: "
        "latency from when each request was due (lower is better)",
        _paced("rps"),
        (
            Column("req/s", lambda r: r["rps"]),
            P50,
            P99,
            Column("errors", _errors),
            Column("unanswered", lambda r: r["unanswered"]),
            Column("load lag ms", lambda r: r["load_max_lag_ms"], "{:,.0f}"),
            Column("load behind", lambda r: r["load_behind"], count=True),
        ),
        note=_generators,
    ),
    Table(
        "echo",
        "echo",
        "WebSocket echo, 50 sockets, closed loop: round trips/s (higher is better)",
        lambda result: [("", result["closed"])],
        (
            Column("msg/s", lambda r: r["mps"]),
            P50,
            P99,
            Column("sockets closed", lambda r: r["closed"]),
            Column("Redis cmds/msg", lambda r: r.get("redis_per_unit"), "{:,.1f}"),
            CPU,
        ),
        lambda r: r["mps"],
    ),
    Table(
        "echo_paced",
        "echo",
        "WebSocket echo at 50 % and 80 % of each system's median maximum, on a fixed schedule: "
        "latency from when each frame was due (lower is better)",
        _paced("mps"),
        (
            Column("msg/s", lambda r: r["mps"]),
            P50,
            P99,
            Column("lost", lambda r: r["lost"]),
            Column("sockets closed", lambda r: r["closed"]),
            Column("load lag ms", lambda r: r["load_max_lag_ms"], "{:,.0f}"),
            Column("load behind", lambda r: r["load_behind"], count=True),
        ),
    ),
    Table(
        "broadcast",
        "broadcast",
        "Broadcast, 200 sockets over 2 server processes: deliveries/s (higher is better); "
        "latency from when each group send was due",
        _steps,
        (
            Column("deliveries/s", lambda r: r["dps"]),
            Column("lost %", lambda r: r["lost_pct"], "{:,.2f}"),
            Column("layer reached", lambda r: r["layer_reached"]),
            Column("layer skipped", lambda r: r["layer_skipped"]),
            Column("received", lambda r: r["received"]),
            P50,
            P99,
            Column("publisher lag ms", lambda r: r["publisher_max_lag_ms"], "{:,.0f}"),
            Column("publisher behind", lambda r: r["publisher_behind"], count=True),
            Column("sockets closed", lambda r: r["sockets_closed"]),
            CPU,
        ),
        lambda r: r["dps"],
        note=_lossless,
    ),
    Table(
        "memory",
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
        "layer",
        "Layer send+receive pairs/s, one client process (higher is better). Like for like: one "
        "call per message on every system; Switchroom's batch calls beside. The ceiling row is "
        "redis-benchmark RPOP requests/s, unpipelined and with -P 16",
        _single,
        (
            Column("one at a time", lambda r: r["one_at_a_time"]),
            Column("100 sends, 100 receives", lambda r: r["loop"]),
            Column("batch calls (100)", lambda r: r["batched"]),
        ),
        lambda r: r["loop"] if r["loop"] is not None else r["one_at_a_time"],
    ),
    Table(
        "email",
        "email",
        "Email ingest: small messages from concurrent SMTP client processes, default capacities",
        _email,
        (
            Column("accepted msg/s", lambda r: r["rate"]),
            Column("p50 ms", lambda r: r.get("p50"), "{:,.1f}"),
            Column("p99 ms", lambda r: r.get("p99"), "{:,.1f}"),
            Column("451 answers", lambda r: r.get("refused")),
            Column("server CPU ms/msg", lambda r: r["cpu"], "{:,.2f}"),
        ),
        note=_email_generators,
    ),
    Table(
        "slack",
        "slack",
        "Slack event round trip through the stand-in; latency from when each event was due",
        _single,
        (
            Column("events/s", lambda r: r["rate"]),
            P50,
            P99,
            Column("lost", lambda r: r["lost"]),
            Column("injector behind", lambda r: r.get("load_behind"), count=True),
        ),
    ),
    Table(
        "asgi3_echo",
        "asgi3_echo",
        "WebSocket echo through ASGI 3 apps beside the native `App`, closed loop, one "
        "`switchroom http` and one worker each, measured in turn in every run: round trips/s "
        "(higher is better)",
        _apps,
        (
            Column("msg/s", lambda r: r["mps"]),
            P50,
            P99,
            Column("CPU ms/msg (server + worker)", lambda r: r["cpu_ms_per_message"], "{:,.3f}"),
            Column("sockets closed", lambda r: r["closed"]),
        ),
        lambda r: r["mps"],
        note=_asgi3_goal,
        relative_to="native App",
        only=("switchroom",),
    ),
    Table(
        "asgi3_chat",
        "asgi3_chat",
        "The Channels 4 tutorial chat: one socket sends lines into a room, every socket in it "
        "receives them; Switchroom: one `switchroom http` and one `switchroom worker` with "
        "Switchroom's Channels backend; Channels 4: Daphne 4 with channels_redis 4, one process, "
        "and two sharing one listening socket with hiredis. Deliveries/s (higher is better)",
        _chat,
        (
            Column("deliveries/s", lambda r: r["deliveries_per_s"]),
            Column("delivered", lambda r: r["delivered"]),
            Column("lost", lambda r: r["lost"]),
            Column("sockets failed", lambda r: r["sockets_failed"]),
            Column("CPU ms/delivery (stack)", lambda r: r["cpu_ms_per_delivery"], "{:,.3f}"),
        ),
        lambda r: r["deliveries_per_s"],
        only=("switchroom", "channels4", "channels4x2"),
    ),
)
TABLES_BY_KEY = {table.key: table for table in TABLES}


def usable(result: dict[str, Any] | None) -> bool:
    return bool(result) and "error" not in result and "skipped" not in result  # type: ignore[operator]


def _ratio(table: Table, ours: Leaf | None, theirs: Leaf) -> str:
    """Switchroom's headline ÷ this system's (medians), for the same variant."""
    if ours is None or table.headline is None:
        return "–"
    a, b = median_of(table.headline, ours), median_of(table.headline, theirs)
    if a is None or not b:
        return "–"
    return f"{a / b:.2f}×"


def render(table: Table, by_system: dict[str, dict[str, Any]], labels: dict[str, str]) -> str:
    """One table; a system that failed gets a row saying why, skipped ones a note."""
    if table.only is not None:
        by_system = {name: result for name, result in by_system.items() if name in table.only}
    within = table.relative_to is not None
    ratio = table.headline is not None and len(by_system) > 1 and not within
    header = ["system", "", *(c.label for c in table.columns)]
    header += [f"% of {table.relative_to} (medians)"] if within else []
    header += ["Switchroom ÷ this"] if ratio else []
    lines = [f"#### {table.title}", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    ours = dict(table.variants(by_system["switchroom"])) if usable(by_system.get("switchroom")) else {}
    skipped = []
    for name, result in by_system.items():
        label = labels.get(name, name)
        if "skipped" in result:
            skipped.append(f"{label} ({result['skipped']})")
            continue
        if not usable(result):
            reason = result.get("error") or "not run"
            lines.append(f"| {label} | {reason.splitlines()[0][:80]} |" + " |" * (len(header) - 2))
            continue
        shares = relative(table, result) if within else {}
        for variant, leaf in table.variants(result):
            cells = [cell(c, leaf) for c in table.columns]
            extra = [_ratio(table, ours.get(variant), leaf)] if ratio else []
            if within:
                share = shares.get(variant)
                extra.append("–" if share is None else _percent(share))
            lines.append("| " + " | ".join([label, variant, *cells, *extra]) + " |")
    if skipped:
        lines += ["", "Not run: " + "; ".join(skipped) + "."]
    if table.note:
        note = table.note(by_system, labels)
        if note:
            lines += ["", note]
    return "\n".join(lines)


def table(key: str, results: dict[str, Any]) -> str:
    """Table ``key`` of a results file, or an empty string when its workload was not run."""
    spec = TABLES_BY_KEY[key]
    by_system = results["workloads"].get(spec.workload)
    if not by_system:
        return ""
    return render(spec, by_system, results["labels"])


def report(results: dict[str, Any]) -> str:
    """Every table whose workload was run, in the suite's order, as Markdown."""
    return "\n\n".join(filter(None, (table(spec.key, results) for spec in TABLES)))
