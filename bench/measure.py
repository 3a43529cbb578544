"""What the benchmarks read off processes and Redis: RSS, CPU time, latency percentiles,
Redis's own command counters and the machine's description."""

import contextlib
import math
import os
import platform
import resource
import time
from pathlib import Path
from typing import Any

import redis


def rss_kb(pid: int) -> int:
    """Resident set size of ``pid`` in KB, from /proc/PID/status."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for process {pid}")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time ``pid`` has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def descendants(pid: int) -> list[int]:
    """``pid`` and every process below it (a server that forks its workers counts as one)."""
    found = [pid]
    for current in found:
        for task in Path(f"/proc/{current}/task").glob("*/children"):
            found += [int(child) for child in task.read_text().split()]
    return found


def tree_cpu_seconds(pid: int) -> float:
    """CPU time of ``pid`` and its descendants; processes gone meanwhile count as 0."""
    total = 0.0
    for member in descendants(pid):
        with contextlib.suppress(FileNotFoundError, ProcessLookupError):
            total += cpu_seconds(member)
    return total


def percentile(values: list[float], q: float) -> float:
    """The nearest-rank ``q`` percentile (0–100) of ``values``; NaN when empty."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = max(0, min(len(ordered) - 1, math.ceil(q / 100 * len(ordered)) - 1))
    return ordered[index]


def summary_ms(latencies: list[float]) -> dict[str, float]:
    """p50 and p99 of latencies given in seconds, in milliseconds."""
    return {"p50_ms": percentile(latencies, 50) * 1000, "p99_ms": percentile(latencies, 99) * 1000}


def raise_nofile(wanted: int) -> None:
    """Raise this process's open-files soft limit to ``wanted`` (capped at the hard limit)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, wanted), hard))


def redis_calls(port: int) -> dict[str, int]:
    """Redis's own per-command call counters, minus the commands this measuring makes."""
    client = redis.Redis(port=port)
    try:
        stats = client.info("commandstats")
    finally:
        client.close()
    return {
        name.removeprefix("cmdstat_"): int(value["calls"])
        for name, value in stats.items()
        if not name.startswith(("cmdstat_info", "cmdstat_client", "cmdstat_hello"))
    }


def calls_between(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    """Commands run between two ``redis_calls`` snapshots, by name, most first."""
    diff = {name: after[name] - before.get(name, 0) for name in after}
    return dict(sorted(((k, v) for k, v in diff.items() if v), key=lambda kv: -kv[1]))


class CpuMeter:
    """CPU each named process (with its children) uses from now until ``percent()``, in % of one core."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids
        self.start = time.perf_counter()
        self.before = {name: tree_cpu_seconds(pid) for name, pid in pids.items()}

    def percent(self) -> dict[str, int]:
        elapsed = time.perf_counter() - self.start
        return {
            name: round((tree_cpu_seconds(pid) - self.before[name]) / elapsed * 100)
            for name, pid in self.pids.items()
        }


def machine() -> dict[str, Any]:
    """Cores, load average, CPU model and Python: printed with every run so noisy runs show."""
    model = ""
    with open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "load_avg": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(),
        "kernel": platform.release(),
    }
