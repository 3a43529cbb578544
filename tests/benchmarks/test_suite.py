"""The benchmark suite cannot rot: its quick mode runs every workload against Switchroom
(tiny durations, figures not judged), and its report shows ratios, failures and skips."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.report import report

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_quick_mode_runs_every_workload_on_switchroom(tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--systems", "switchroom", "--seconds", "0.5"]
        + ["--rates", "20", "--idle-sockets", "30", "--python-load", "--json", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    results = json.loads(out.read_text())
    got = {name: by_system["switchroom"] for name, by_system in results["workloads"].items()}
    assert set(got) == {"http", "echo", "broadcast", "memory", "layer", "email", "slack"}
    assert got["http"]["workers_1"]["requests"] > 0
    assert got["http"]["workers_1"]["non_2xx"] == 0
    assert got["http"]["workers_1"]["redis_per_unit"] > 0
    assert got["echo"]["messages"] > 0 and got["echo"]["wrong"] == 0
    (step,) = got["broadcast"]["steps"]
    assert step["sockets"] == 200 and step["received"] > 0
    assert got["memory"]["sockets"] == 30 and got["memory"]["rss_after_kb"] > 0
    assert got["layer"]["one_at_a_time"] > 0 and got["layer"]["batched"] > 0
    assert got["email"]["count"] > 0
    assert got["slack"]["answered"] > 0
    assert results["machine"]["cpus"] >= 1
    for title in ("HTTP hello", "WebSocket echo", "Broadcast", "Idle WebSockets", "Layer", "Email", "Slack"):
        assert title in done.stdout


def test_the_report_divides_switchroom_by_each_system_and_names_failures() -> None:
    http = {"rps": 3000.0, "p50_ms": 10.0, "p99_ms": 30.0, "errors": 0, "non_2xx": 0}
    results = {
        "labels": {
            "switchroom": "Switchroom",
            "original": "original",
            "channels4": "Channels 4",
            "ceiling": "ceiling",
        },
        "workloads": {
            "http": {
                "switchroom": {"workers_1": http},
                "original": {"workers_1": {**http, "rps": 600.0}},
                "channels4": {"error": "RuntimeError: server 1 exited with 1"},
                "ceiling": {"workers_1": {**http, "rps": 30000.0}},
            },
            "memory": {
                "switchroom": {"sockets": 10, "kb_per_socket": 15.0, "rss_before_kb": 1, "rss_after_kb": 2},
                "original": {"sockets": 10, "kb_per_socket": 12.0, "rss_before_kb": 1, "rss_after_kb": 2},
                "ceiling": {"skipped": "no layer"},
            },
        },
    }
    text = report(results)
    assert "| original | 1 worker | 600 |" in text
    assert "5.00×" in text and "0.10×" in text
    assert "| Channels 4 | RuntimeError: server 1 exited with 1 |" in text
    assert "1.25×" in text  # memory: 15 KB ÷ 12 KB, lower is better
    assert "Not run: ceiling (no layer)." in text
