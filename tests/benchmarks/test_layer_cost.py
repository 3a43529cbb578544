"""The Redis layer's cost harness runs end to end: every message it sends comes back."""

import subprocess
import sys


def test_the_layer_cost_harness_receives_every_message() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench.layer_cost", "200"], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert " µs of CPU per message" in done.stdout, done.stdout
    assert "Redis commands per message" in done.stdout, done.stdout
