"""The record's registry: every benchmark ``python -m bench`` can run and record, by name.

A benchmark module registers a function taking one system and the run's options and
returning plain data (numbers, lists, dicts); the suite calls it for each system it
applies to and stores what it returns under ``workloads[name][system]`` in the results
JSON. Each figure should be measured ``options.runs`` times and returned as a list of
runs (``{"runs": [...]}``), so that bench/report.py can show the median and the range.

    from bench.registry import Options, register

    @register("presence", systems=("switchroom",), why_not="has no presence")
    def presence(system, options: Options) -> dict:
        return {"runs": [measure(options.seconds) for _ in range(options.runs)]}

and add the module's name to ``MODULES`` below. A table for it goes in bench/report.py's
``TABLES``, and a docs region (if the docs show it) in bench/docs.py's ``REGIONS``.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

# Modules whose import registers benchmarks, in the order the suite runs them.
MODULES = ("bench.workloads", "bench.parts", "bench.asgi3")


@dataclass(frozen=True)
class Options:
    """What every benchmark is told: how long to measure, how many runs, how big."""

    seconds: float
    runs: int
    quick: bool
    rates: tuple[int, ...]
    idle_sockets: int
    python_load: bool


Run = Callable[[Any, Options], dict[str, Any]]


@dataclass(frozen=True)
class Workload:
    name: str
    run: Run
    systems: tuple[str, ...] | None
    why_not: str


REGISTRY: dict[str, Workload] = {}


def register(
    name: str, systems: tuple[str, ...] | None = None, why_not: str = "does not speak this protocol"
) -> Callable[[Run], Run]:
    """Register ``run`` as benchmark ``name``, for ``systems`` (every system when None);
    the others are recorded as skipped with ``why_not``."""

    def add(run: Run) -> Run:
        if name in REGISTRY:
            raise ValueError(f"benchmark {name!r} is registered twice")
        REGISTRY[name] = Workload(name, run, systems, why_not)
        return run

    return add


def load() -> dict[str, Workload]:
    """Import every module in ``MODULES``, so that their benchmarks are registered."""
    import importlib

    for module in MODULES:
        importlib.import_module(module)
    return REGISTRY
