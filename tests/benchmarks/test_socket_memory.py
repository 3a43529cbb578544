"""The socket-memory breakdown that docs/scaling.md cites runs and prints its sections."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_socket_memory_breakdown_runs_end_to_end() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench.socket_memory", "--sockets", "20", "--top", "3"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "KB per socket" in done.stdout
    assert "allocations by lineno" in done.stdout
    assert "allocations by filename" in done.stdout
