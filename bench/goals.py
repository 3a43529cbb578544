"""The performance goals, checked against the recorded run.

Each goal compares a median of the record with a target (a ratio of medians measured in
the same run where the goal is relative), so the table in docs/performance.md says
"reached" or "not reached" from the same numbers as the tables above it.
"""

import statistics
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bench.report import Column, cell, median_of

Results = dict[str, Any]
Run = dict[str, Any]


@dataclass(frozen=True)
class Goal:
    """One goal: a figure read off the record, its target, and how to show it."""

    label: str
    figure: Callable[[Results], float]
    target: float
    at_most: bool
    shown: Callable[[Results], str]
    fmt: str


def _leaf(results: Results, workload: str, system: str, variant: str | None = None) -> dict[str, Any]:
    result = results["workloads"].get(workload, {}).get(system)
    if not result or "error" in result or "skipped" in result:
        raise KeyError(f"the record has no {workload} figures for {system}")
    return result[variant] if variant else result


def _median(leaf: dict[str, Any], key: str) -> float:
    value = median_of(lambda run: run[key], leaf)
    if value is None:
        raise KeyError(f"the record has no {key!r}")
    return value


def _ratio(workload: str, variant: str, key: str, ours: str, theirs: str) -> Callable[[Results], float]:
    def figure(results: Results) -> float:
        mine = _median(_leaf(results, workload, ours, variant), key)
        return mine / _median(_leaf(results, workload, theirs, variant), key)

    return figure


def _plain(workload: str, variant: str | None, key: str) -> Callable[[Results], float]:
    return lambda results: _median(_leaf(results, workload, "switchroom", variant), key)


def _cell(
    workload: str, system: str, variant: str | None, key: str, fmt: str, unit: str
) -> Callable[[Results], str]:
    def shown(results: Results) -> str:
        leaf = _leaf(results, workload, system, variant)
        return cell(Column(key, lambda run: run[key], fmt), leaf) + unit

    return shown


def _paced(workload: str, unit: str) -> Callable[[Results], str]:
    def shown(results: Results) -> str:
        leaf = _leaf(results, workload, "switchroom", "rate_50")
        p99 = cell(Column("p99", lambda run: run["p99_ms"], "{:,.1f}"), leaf)
        p50 = cell(Column("p50", lambda run: run["p50_ms"], "{:,.1f}"), leaf)
        return f"p99 {p99} ms, p50 {p50} ms at {leaf[f'offered_{unit}']:,.0f}/s"

    return shown


def _memory(results: Results) -> str:
    leaf = _leaf(results, "memory", "switchroom")
    sockets = _median(leaf, "sockets")
    return (
        cell(Column("KB", lambda run: run["kb_per_socket"], "{:,.1f}"), leaf)
        + f" KB at {sockets:,.0f} sockets"
    )


def _to_native(app: str) -> Callable[[Results], float]:
    """An ASGI 3 app's echo rate over the native App's, medians of the same runs."""

    def figure(results: Results) -> float:
        leaf = _leaf(results, "asgi3_echo", "switchroom")
        rate = {name: median_of(lambda run, n=name: run[n]["mps"], leaf) for name in (app, "native App")}
        if not rate[app] or not rate["native App"]:
            raise KeyError(f"the record has no echo rate for {app}")
        return rate[app] / rate["native App"]

    return figure


def _asgi3_cell(app: str) -> Callable[[Results], str]:
    def shown(results: Results) -> str:
        leaf = _leaf(results, "asgi3_echo", "switchroom")
        mine = cell(Column(app, lambda run: run[app]["mps"]), leaf)
        native = cell(Column("native", lambda run: run["native App"]["mps"]), leaf)
        return f"{mine} msg/s against the native App's {native}"

    return shown


def _email_ratio(suffix: str) -> Callable[[Results], float]:
    """The median of the per-run ratios of one load generator's pairs (``small`` and
    ``sink`` with ``suffix``): each run measures the two servers in turn."""

    def ratio(results: Results) -> float:
        email = _leaf(results, "email", "switchroom")
        if "small" + suffix not in email:
            raise KeyError("not in the record (smtp-source did not run)")
        pairs = zip(email["small" + suffix]["runs"], email["sink" + suffix]["runs"], strict=True)
        return statistics.median(ours["cpu"] / sink["cpu"] for ours, sink in pairs)

    return ratio


GOALS = (
    Goal(
        "HTTP hello, closed loop, against the ceiling",
        _ratio("http", "workers_1", "rps", "switchroom", "ceiling"),
        0.25,
        False,
        _cell("http", "switchroom", "workers_1", "rps", "{:,.0f}", " req/s"),
        "{:.2f}×",
    ),
    Goal(
        "HTTP hello at half the maximum rate: p99",
        lambda results: _median(_leaf(results, "http", "switchroom", "rate_50"), "p99_ms"),
        20.0,
        True,
        _paced("http", "rps"),
        "{:.1f} ms",
    ),
    Goal(
        "WebSocket echo, closed loop, against the ceiling",
        _ratio("echo", "closed", "mps", "switchroom", "ceiling"),
        0.25,
        False,
        _cell("echo", "switchroom", "closed", "mps", "{:,.0f}", " msg/s"),
        "{:.2f}×",
    ),
    Goal(
        "WebSocket echo, closed loop, against Channels 4",
        _ratio("echo", "closed", "mps", "switchroom", "channels4"),
        1.5,
        False,
        _cell("echo", "channels4", "closed", "mps", "{:,.0f}", " msg/s for Channels 4"),
        "{:.2f}×",
    ),
    Goal(
        "WebSocket echo at half the maximum rate: p99",
        lambda results: _median(_leaf(results, "echo", "switchroom", "rate_50"), "p99_ms"),
        15.0,
        True,
        _paced("echo", "mps"),
        "{:.1f} ms",
    ),
    Goal(
        "Idle WebSocket: server memory per socket",
        _plain("memory", None, "kb_per_socket"),
        8.0,
        True,
        _memory,
        "{:.1f} KB",
    ),
    Goal(
        "Redis commands per HTTP request",
        _plain("http", "workers_1", "redis_per_unit"),
        4.0,
        True,
        _cell("http", "switchroom", "workers_1", "redis_per_unit", "{:,.1f}", " per request, closed loop"),
        "{:.1f}",
    ),
    Goal(
        "`switchroom up` in one process, HTTP hello, against the ceiling",
        _ratio("http", "workers_1", "rps", "switchroom-up", "ceiling"),
        0.4,
        False,
        _cell("http", "switchroom-up", "workers_1", "rps", "{:,.0f}", " req/s"),
        "{:.2f}×",
    ),
    *(
        Goal(
            f"WebSocket echo through {app} against the native `App`",
            _to_native(app),
            0.8,
            False,
            _asgi3_cell(app),
            "{:.0%}",
        )
        for app in ("ASGI 3 (bare)", "ASGI 3 (Starlette)")
    ),
    Goal(
        "Email: server CPU per small message against aiosmtpd's no-op Sink",
        _email_ratio(""),
        1.5,
        True,
        _cell("email", "switchroom", "small", "cpu", "{:,.2f}", " ms per message"),
        "{:.2f}×",
    ),
    Goal(
        "Email: the same with Postfix's smtp-source as the load (above: the suite's SMTP clients)",
        _email_ratio("_smtp_source"),
        1.5,
        True,
        _cell("email", "switchroom", "small_smtp_source", "cpu", "{:,.2f}", " ms per message"),
        "{:.2f}×",
    ),
)


def goals(results: Results) -> str:
    """The goals table: each figure, its target and whether the record reaches it."""
    lines = ["| goal | in the record | measured | target | reached? |", "|---|---|---|---|---|"]
    for goal in GOALS:
        try:
            value, shown = goal.figure(results), goal.shown(results)
        except KeyError as exc:
            lines.append(f"| {goal.label} | {exc.args[0]} | – | – | – |")
            continue
        sign = "≤" if goal.at_most else "≥"
        met = value <= goal.target if goal.at_most else value >= goal.target
        lines.append(
            f"| {goal.label} | {shown} | **{goal.fmt.format(value)}** "
            f"| {sign} {goal.fmt.format(goal.target)} | {'yes' if met else 'no'} |"
        )
    return "\n".join(lines)
