"""``python -m bench.asgi3`` runs end to end (tiny load; the figures are not checked)."""

import json
import subprocess
import sys

import pytest

from ..processes import ROOT, clean_environ

pytestmark = pytest.mark.slow


def test_asgi3_bench_runs():
    result = subprocess.run(
        [sys.executable, "-m", "bench.asgi3", "--sockets", "2", "--seconds", "1", "--json"],
        cwd=ROOT,
        env=clean_environ(),
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    results = json.loads(result.stdout)
    assert set(results) == {"native App", "ASGI 3 (bare)", "ASGI 3 (Starlette)"}
    for figures in results.values():
        assert figures["messages"] > 0 and figures["closed"] == 0 and figures["wrong"] == 0
