"""The focused benchmarks of one part of Switchroom each, registered so that the recorded
run holds their figures too: the layer (bench/layer.py), shards (bench/scaling.py), one
server's fan-out and memory per socket (bench/fanout.py), TLS (bench/tls.py) and presence
(bench/presence.py)."""

import asyncio
from typing import Any

from bench import fanout, layer, presence, scaling, tls
from bench.registry import Options, register

WHY_NOT = "a part of Switchroom measured alone"


@register("layer_parts", systems=("switchroom",), why_not=WHY_NOT)
def layer_parts(system: Any, options: Options) -> dict[str, Any]:
    """``python -m bench.layer``'s figures, ``runs`` times."""
    return {"runs": [layer.run(options.seconds, 2) for _ in range(options.runs)]}


@register("scaling", systems=("switchroom",), why_not=WHY_NOT)
def shards(system: Any, options: Options) -> dict[str, Any]:
    """``python -m bench.scaling``'s rows for 1, 2 and 4 shards, ``runs`` times."""
    counts = [1, 2] if options.quick else [1, 2, 4]
    return {"clients": 3, "runs": [scaling.run(options.seconds, 3, counts) for _ in range(options.runs)]}


@register("fanout", systems=("switchroom",), why_not=WHY_NOT)
def fan_out(system: Any, options: Options) -> dict[str, Any]:
    """``python -m bench.fanout``: one server process fanning a group out to its sockets."""
    sockets = options.idle_sockets
    return {"runs": [asyncio.run(fanout.measure(sockets, options.seconds)) for _ in range(options.runs)]}


@register("tls", systems=("switchroom",), why_not=WHY_NOT)
def over_tls(system: Any, options: Options) -> dict[str, Any]:
    """``python -m bench.tls``: layer pairs/s over TLS beside plain TCP."""
    return {"runs": [tls.run(options.seconds) for _ in range(options.runs)]}


@register("presence", systems=("switchroom",), why_not=WHY_NOT)
def presence_costs(system: Any, options: Options) -> dict[str, Any]:
    """``python -m bench.presence``: join and leave costs, listing 10,000, churn traffic."""
    calls = 500 if options.quick else 2000
    return {"runs": [presence.measure(options.seconds, calls, 10_000) for _ in range(options.runs)]}
