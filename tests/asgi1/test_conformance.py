"""asgiref 1.1.2's own conformance suite against switchroom.layers.asgi1 on each backend."""

import json
import subprocess
from pathlib import Path

import pytest

RUNNER = Path(__file__).with_name("run_conformance.py")
SUITE_SIZE = 18


@pytest.mark.parametrize("layer_backend", ["memory", "redis", "redis-shards"])
def test_asgiref_conformance_suite_passes(interop_python, layer_backend, request):
    if layer_backend == "memory":
        urls = ["memory://"]
    elif layer_backend == "redis":
        urls = [request.getfixturevalue("redis_server").url]
    else:
        urls = [s.url for s in request.getfixturevalue("redis_shards")]
    result = subprocess.run([interop_python, str(RUNNER), *urls], capture_output=True, text=True, timeout=120)
    report = result.stdout + result.stderr
    assert result.returncode == 0, report
    counts = json.loads(result.stdout.strip().splitlines()[-1])
    assert counts == {"asgiref": "1.1.2", "run": SUITE_SIZE, "failures": 0, "errors": 0, "skipped": 0}, report
