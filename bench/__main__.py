"""The side-by-side suite: Switchroom against the original stack, today's Channels and the
ceiling, on this machine, in one run.

    python -m bench --quick                      # every system, short runs (~3 minutes)
    python -m bench                              # full runs
    python -m bench --systems switchroom,original --workloads http,echo

Each system runs in its own virtualenv under ``.cache/venvs`` (built on first use, see
bench/venvs.py) with its own private Redis; the load always comes from separate processes
on 127.0.0.1. Prints the machine, then one table per workload with every system's figures
and Switchroom's ratio to each; the whole result is also written as JSON.
"""

import argparse
import json
import shutil
import sys
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import workloads
from bench.measure import machine
from bench.report import report
from bench.systems import ROOT, SYSTEMS, System
from bench.venvs import DEFAULT_CACHE

WORKLOADS = ("http", "echo", "broadcast", "memory", "layer", "email", "slack")
SWITCHROOM_ONLY = {"email", "slack"}


def _names(
    text: str, known: tuple[str, ...] | list[str], what: str, parser: argparse.ArgumentParser
) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in known]
    if unknown:
        parser.error(f"unknown {what}: {', '.join(unknown)} (choose from {', '.join(known)})")
    return names


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="short runs: 2 s each, fewer rates and sockets")
    parser.add_argument("--systems", default=",".join(SYSTEMS), help="comma-separated systems to run")
    parser.add_argument("--workloads", default=",".join(WORKLOADS), help="comma-separated workloads to run")
    parser.add_argument("--seconds", type=float, help="seconds of load per measurement (default 10, quick 2)")
    parser.add_argument("--rates", help="broadcast group sends/s, comma-separated (default 5,10,25,50,100)")
    parser.add_argument("--idle-sockets", type=int, help="sockets the memory workload opens (default 2000)")
    parser.add_argument(
        "--python-load", action="store_true", help="drive HTTP with Python even if wrk exists"
    )
    parser.add_argument(
        "--json", type=Path, help="where to write the results (default bench/results/<time>.json)"
    )
    parser.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE, help="where the virtualenvs live")
    args = parser.parse_args(argv)
    args.systems = _names(args.systems, list(SYSTEMS), "systems", parser)
    args.workloads = _names(args.workloads, WORKLOADS, "workloads", parser)
    args.seconds = args.seconds or (2.0 if args.quick else 10.0)
    default_rates = "10,100" if args.quick else "5,10,25,50,100"
    args.rates = tuple(int(r) for r in (args.rates or default_rates).split(","))
    args.idle_sockets = args.idle_sockets or (500 if args.quick else 2000)
    args.argv = sys.argv[1:] if argv is None else argv
    return args


def run_one(args: argparse.Namespace, workload: str, system: System) -> dict[str, Any]:
    """One workload on one system; a failure is recorded and the suite goes on."""
    if workload in system.skips:
        return {"skipped": "no layer, so nothing to broadcast across processes"}
    if workload in SWITCHROOM_ONLY and system.name != "switchroom":
        return {"skipped": "does not speak this protocol"}
    try:
        if workload == "http":
            use_wrk = shutil.which("wrk") is not None and not args.python_load
            return workloads.http_hello(system, args.seconds, use_wrk, (1,) if args.quick else (1, 2))
        if workload == "echo":
            return workloads.websocket_echo(system, args.seconds)
        if workload == "broadcast":
            return workloads.broadcast(system, args.seconds, args.rates)
        if workload == "memory":
            return workloads.idle_memory(system, args.idle_sockets)
        if workload == "layer":
            return workloads.layer_ops(system, args.seconds)
        if workload == "email":
            return workloads.email_ingest(args.seconds, 10 if args.quick else 20)
        return workloads.slack_round_trip(args.seconds, 50 if args.quick else 100)
    except Exception as exc:
        traceback.print_exc()
        return {"error": f"{type(exc).__name__}: {exc}"}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    systems = [SYSTEMS[name](args.cache_dir) for name in args.systems]
    started = time.monotonic()
    for system in systems:
        system.prepare()
    prepared = time.monotonic() - started
    info = machine()
    print(
        f"machine: {info['cpus']} cores ({info['cpu_model']}), load {info['load_avg']}, "
        f"Python {info['python']}; virtualenvs ready in {prepared:.0f} s",
        flush=True,
    )
    results: dict[str, Any] = {
        "meta": {
            "command": " ".join(["python -m bench", *args.argv]),
            "started": datetime.now(UTC).isoformat(),
        },
        "machine": info,
        "labels": {s.name: s.label for s in systems},
        "workloads": {},
    }
    for workload in args.workloads:
        for system in systems:
            print(f"{workload}: {system.label} ...", flush=True)
            result = run_one(args, workload, system)
            results["workloads"].setdefault(workload, {})[system.name] = result
    results["meta"]["seconds"] = round(time.monotonic() - started, 1)
    results["machine"]["load_avg_after"] = machine()["load_avg"]
    print()
    print(report(results))
    print()
    print(
        f"load average before {info['load_avg']}, after {results['machine']['load_avg_after']}; "
        f"{results['meta']['seconds']:.0f} s in all"
    )
    path = args.json or ROOT / "bench" / "results" / f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2))
    print(f"results written to {path}")
    failed = [
        f"{w}/{s}"
        for w, by_system in results["workloads"].items()
        for s, r in by_system.items()
        if "error" in r
    ]
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
