"""The presence benchmark cannot rot: a tiny run prints each of its figures (not judged)."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_the_presence_bench_prints_every_figure() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench.presence", "--quick", "--calls", "50", "--members", "500"]
        + ["--seconds", "0.5", "--watchers", "5", "--rate", "200"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    lines = done.stdout.splitlines()
    for start in ("  join ", "  leave ", "  list ", "  churn  interval 100 ms", "  churn  interval   0 ms"):
        assert any(line.startswith(start) for line in lines), done.stdout
    assert "500 members" in done.stdout
