"""The instruction-count harnesses run end to end: every message they send is answered."""

import subprocess
import sys

import pytest


@pytest.mark.parametrize(
    "argv",
    [
        ["bench.worker_cost", "http"],
        ["bench.worker_cost", "echo"],
        ["bench.server_cost", "http"],
        ["bench.server_cost", "echo"],
        ["bench.http_server_path"],
        ["bench.layer_cost"],
    ],
)
def test_a_cost_harness_answers_every_message(argv: list[str]) -> None:
    done = subprocess.run([sys.executable, "-m", *argv, "200"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert " µs" in done.stdout, done.stdout
