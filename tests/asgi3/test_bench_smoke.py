"""``python -m bench.asgi3`` runs end to end, echo and the Channels chat broadcast (a tiny
load; the figures are not checked)."""

import json
import subprocess
import sys

import pytest

from ..processes import ROOT, clean_environ

pytestmark = pytest.mark.slow


def test_asgi3_bench_runs():
    result = subprocess.run(
        [sys.executable, "-m", "bench.asgi3", "--sockets", "2", "--seconds", "1"]
        + ["--room", "3", "--messages", "5", "--json"],
        cwd=ROOT,
        env=clean_environ(),
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    results = json.loads(result.stdout)
    assert set(results["echo"]) == {"native App", "ASGI 3 (bare)", "ASGI 3 (Starlette)"}
    for figures in results["echo"].values():
        assert figures["messages"] > 0 and figures["closed"] == 0 and figures["wrong"] == 0
    assert set(results["broadcast"]) == {"Switchroom + its Channels backend", "Daphne 4 + channels_redis"}
    for figures in results["broadcast"].values():
        assert figures["delivered"] == figures["expected"] == 15
