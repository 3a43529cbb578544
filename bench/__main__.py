"""The side-by-side suite: Switchroom against the original stack, today's Channels (as
usually deployed, and tuned) and the ceiling, on this machine, in one run; and the focused
benchmarks of Switchroom's parts.

    python -m bench --record                     # everything, 3 runs each: bench/results/recorded.json
    python -m bench --quick                      # every system, short runs
    python -m bench --systems switchroom,original --workloads http,echo

Each system runs in its own virtualenv under ``.cache/venvs`` (built on first use, see
bench/venvs.py) with its own private Redis; the load always comes from separate processes
on 127.0.0.1. Every figure is measured ``--runs`` times (3 by default); the tables show the
median and the range. ``--record`` writes the results to bench/results/recorded.json, from
which ``python -m bench.docs`` generates the figures in README.md and docs/.
"""

import argparse
import json
import signal
import subprocess
import sys
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.measure import machine
from bench.registry import Options, Workload, load
from bench.report import report
from bench.systems import ROOT, SYSTEMS, Baseline, System
from bench.venvs import DEFAULT_CACHE

RECORDED = ROOT / "bench" / "results" / "recorded.json"
# The figures the docs show come from runs this long, this many times, at the least.
FULL_SECONDS = 10.0
FULL_RUNS = 3


def _names(
    text: str, known: tuple[str, ...] | list[str], what: str, parser: argparse.ArgumentParser
) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in known]
    if unknown:
        parser.error(f"unknown {what}: {', '.join(unknown)} (choose from {', '.join(known)})")
    return names


def parse_args(argv: list[str] | None, workloads: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="short runs: 2 s each, fewer rates and sockets")
    parser.add_argument(
        "--record", action="store_true", help=f"write the results to {RECORDED.relative_to(ROOT)}"
    )
    parser.add_argument("--systems", default=",".join(SYSTEMS), help="comma-separated systems to run")
    parser.add_argument("--workloads", default=",".join(workloads), help="comma-separated workloads to run")
    parser.add_argument("--runs", type=int, default=FULL_RUNS, help="runs of each figure (default 3)")
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
    parser.add_argument(
        "--baseline",
        metavar="REF",
        help="also run Switchroom as it was at this git commit (built from git archive), for before/after",
    )
    args = parser.parse_args(argv)
    args.systems = _names(args.systems, list(SYSTEMS), "systems", parser)
    args.workloads = _names(args.workloads, workloads, "workloads", parser)
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    args.seconds = args.seconds or (2.0 if args.quick else FULL_SECONDS)
    default_rates = "10,100" if args.quick else "5,10,25,50,100"
    args.rates = tuple(int(r) for r in (args.rates or default_rates).split(","))
    args.idle_sockets = args.idle_sockets or (500 if args.quick else 2000)
    args.argv = sys.argv[1:] if argv is None else argv
    return args


def run_one(workload: Workload, system: System, options: Options) -> dict[str, Any]:
    """One workload on one system; a failure is recorded and the suite goes on."""
    if workload.systems is not None and system.name not in workload.systems:
        return {"skipped": workload.why_not}
    if workload.name in system.skips:
        return {"skipped": workload.why_not}
    started = time.monotonic()
    try:
        result = workload.run(system, options)
    except Exception as exc:
        traceback.print_exc()
        result = {"error": f"{type(exc).__name__}: {exc}"}
    result["seconds"] = round(time.monotonic() - started, 1)
    return result


def _commit() -> str:
    """The checkout's commit, marked ``-dirty`` when it has changes not committed."""

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True).stdout.strip()

    head = git("rev-parse", "HEAD")
    return head + ("-dirty" if git("status", "--porcelain", "--untracked-files=no") else "")


def short_run(meta: dict[str, Any]) -> str | None:
    """Why a run's figures are not a full recording (shorter or fewer runs), or None."""
    reasons = []
    if meta["seconds_per_measurement"] < FULL_SECONDS:
        reasons.append(f"{meta['seconds_per_measurement']:g} s per measurement, not {FULL_SECONDS:g}")
    if meta["runs"] < FULL_RUNS:
        reasons.append(f"{meta['runs']} run(s) of each figure, not {FULL_RUNS}")
    if meta["quick"]:
        reasons.append("quick mode: fewer rates, sockets and worker counts")
    return "; ".join(reasons) or None


def main(argv: list[str] | None = None) -> int:
    # Stopped by SIGTERM, unwind as on Ctrl-C so every stack stops the processes it started.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    registry = load()
    args = parse_args(argv, list(registry))
    systems = [SYSTEMS[name](args.cache_dir) for name in args.systems]
    if args.baseline:
        systems.append(Baseline(args.cache_dir, args.baseline))
    options = Options(args.seconds, args.runs, args.quick, args.rates, args.idle_sockets, args.python_load)
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
    meta: dict[str, Any] = {
        "command": " ".join(["python -m bench", *args.argv]),
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "commit": _commit(),
        "runs": args.runs,
        "seconds_per_measurement": args.seconds,
        "quick": args.quick,
    }
    meta["short_run"] = short_run(meta)
    results: dict[str, Any] = {
        "meta": meta,
        "machine": info,
        "labels": {s.name: s.label for s in systems},
        "workloads": {},
    }
    for name in args.workloads:
        for system in systems:
            print(f"{name}: {system.label} ...", flush=True)
            result = run_one(registry[name], system, options)
            results["workloads"].setdefault(name, {})[system.name] = result
    meta["seconds"] = round(time.monotonic() - started, 1)
    results["machine"]["load_avg_after"] = machine()["load_avg"]
    print()
    print(report(results))
    print()
    print(
        f"load average before {info['load_avg']}, after {results['machine']['load_avg_after']}; "
        f"{meta['seconds']:.0f} s in all"
    )
    default = ROOT / "bench" / "results" / f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    path = args.json or (RECORDED if args.record else default)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=1, sort_keys=False) + "\n")
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
