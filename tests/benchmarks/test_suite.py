"""The benchmark suite cannot rot: its quick mode runs every system (tiny durations,
figures not judged, only that each was measured and counted); the report shows medians
with their range; the docs' figures are the recorded run's."""

import json
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest

from bench import docs
from bench.report import TABLES_BY_KEY, render, report
from bench.smtp_source import find
from bench.systems import SYSTEMS

ROOT = Path(__file__).resolve().parents[2]
SYSTEM_TABLES = ("http", "echo", "broadcast", "memory", "layer")
# What each smoke test below runs: together, every registered benchmark.
SUITE_WORKLOADS = (*SYSTEM_TABLES, "email", "slack", "asgi3_echo", "asgi3_chat")
PARTS_WORKLOADS = ("layer_parts", "scaling", "fanout", "tls", "presence")


def test_every_registered_benchmark_has_a_smoke_run() -> None:
    from bench.registry import load

    assert set(load()) == {*SUITE_WORKLOADS, *PARTS_WORKLOADS}


@pytest.mark.slow
@pytest.mark.timeout(900)  # builds every compared system's virtualenv on a fresh machine
def test_quick_mode_runs_every_system(tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--seconds", "0.3", "--runs", "1", "--rates", "20"]
        + ["--idle-sockets", "30", "--python-load", "--json", str(out)]
        + ["--workloads", ",".join(SUITE_WORKLOADS)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=840,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    results = json.loads(out.read_text())
    assert set(results["labels"]) == set(SYSTEMS)
    for name in SYSTEMS:
        http = results["workloads"]["http"][name]
        (closed,) = http["workers_1"]["runs"]
        assert closed["requests"] > 0 and closed["non_2xx"] == 0, (name, closed)
        for share in (50, 80):
            (paced,) = http[f"rate_{share}"]["runs"]
            assert paced["requests"] > 0 and "load_max_lag_ms" in paced, (name, paced)
        echo = results["workloads"]["echo"][name]
        assert echo["closed"]["runs"][0]["messages"] > 0, name
        assert echo["rate_80"]["runs"][0]["messages"] > 0, name
        assert results["workloads"]["memory"][name]["runs"][0]["rss_after_kb"] > 0, name
        layer = results["workloads"]["layer"][name]
        assert "skipped" in layer or layer["runs"][0]["one_at_a_time"] > 0, name
        broadcast = results["workloads"]["broadcast"][name]
        if "broadcast" in SYSTEMS[name].skips:
            assert "skipped" in broadcast
            continue
        (step,) = broadcast["steps"]
        (run,) = step["runs"]
        assert run["sockets"] == 200 and run["received"] > 0, (name, run)
        assert run["publisher_max_lag_ms"] >= 0 and run["publisher_behind"] in (True, False)
    ours = results["workloads"]["broadcast"]["switchroom"]["steps"][0]["runs"][0]
    assert ours["layer_reached"] + ours["layer_skipped"] == ours["expected"], ours
    assert ours["lost_after_layer"] == ours["layer_reached"] - ours["received"]
    assert results["workloads"]["email"]["switchroom"]["small"]["runs"][0]["count"] > 0
    assert results["workloads"]["email"]["switchroom"]["sink"]["runs"][0]["count"] > 0
    email = results["workloads"]["email"]["switchroom"]
    if "smtp_source" in email:
        # Without Postfix's smtp-source the run goes on, and its output says what was not run.
        assert "smtp-source not run: " in done.stdout
        skipped = email["smtp_source"]["skipped"]
        warnings.warn(f"the email workload ran without smtp-source: {skipped}", stacklevel=1)
    else:
        assert email["small_smtp_source"]["runs"][0]["count"] > 0
        assert email["sink_smtp_source"]["runs"][0]["count"] > 0
        assert "smtp-source (Postfix" in done.stdout
    assert results["workloads"]["slack"]["switchroom"]["runs"][0]["answered"] > 0
    (echo_round,) = results["workloads"]["asgi3_echo"]["switchroom"]["runs"]
    assert set(echo_round) == {"native App", "ASGI 3 (bare)", "ASGI 3 (Starlette)"}
    for app, figures in echo_round.items():
        assert figures["messages"] > 0 and figures["closed"] == figures["wrong"] == 0, (app, figures)
        assert figures["ratio_to_native"] > 0, (app, figures)
    for name in ("switchroom", "channels4", "channels4x2"):
        (chat,) = results["workloads"]["asgi3_chat"][name]["runs"]
        assert chat["delivered"] == chat["expected"] == 50 * 50, (name, chat)
    assert results["meta"]["short_run"]
    titles = ("HTTP hello", "WebSocket echo", "Broadcast", "Idle WebSockets", "Layer", "Email", "Slack")
    for title in (*titles, "through ASGI 3 apps", "Channels 4 tutorial chat"):
        assert title in done.stdout


@pytest.mark.slow
def test_the_parts_of_switchroom_are_recorded_too(tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench",
            "--quick",
            "--seconds",
            "0.3",
            "--runs",
            "1",
            "--systems",
            "switchroom",
        ]
        + ["--idle-sockets", "30", "--workloads", ",".join(PARTS_WORKLOADS)]
        + ["--json", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    results = json.loads(out.read_text())
    got = {name: by_system["switchroom"]["runs"][0] for name, by_system in results["workloads"].items()}
    assert got["layer_parts"]["redis pairs/s, batched"] > 0
    assert {row["shards"] for row in got["scaling"]} == {1, 2}
    assert got["fanout"]["delivered"] > 0 and got["fanout"]["layer_reached"] > 0
    assert got["tls"]["tls"] > 0 and got["tls"]["handshakes"] > 0
    assert got["presence"]["list_ms"] > 0 and got["presence"]["join_commands"] > 0
    # Every region the docs use renders from such a record (no "not in the recorded run").
    for name in ("layer_parts", "durable", "scaling", "scaling_model", "tls", "presence"):
        assert "Not in the recorded run" not in docs.render(name, results), name


def _results(workloads: dict) -> dict:
    return {
        "meta": {"command": "python -m bench", "started": "2026-01-01T00:00:00", "short_run": None},
        "labels": {"switchroom": "Switchroom", "original": "original", "channels4": "Channels 4"},
        "workloads": workloads,
    }


def test_the_report_shows_medians_with_their_range_and_divides_medians() -> None:
    def http(*rates: float) -> dict:
        return {
            "workers_1": {"load": "wrk", "runs": [{"rps": r, "p50_ms": 1.0, "p99_ms": 2.0} for r in rates]}
        }

    text = report(
        _results(
            {
                "http": {
                    "switchroom": http(3000.0, 2000.0, 9000.0),
                    "original": http(600.0, 500.0, 400.0),
                    "channels4": {"error": "RuntimeError: server 1 exited with 1"},
                }
            }
        )
    )
    assert "| Switchroom | 1 worker | 3,000 (2,000–9,000) | 1.0 | 2.0 |" in text
    assert "| original | 1 worker | 500 (400–600) |" in text
    assert "6.00×" in text  # 3,000 ÷ 500: medians, not means (4,667 ÷ 500)
    assert "| Channels 4 | RuntimeError: server 1 exited with 1 |" in text
    assert "Load generator: wrk." in text


def _echo_round(native: float, bare: float, starlette: float) -> dict:
    rates = {"native App": native, "ASGI 3 (bare)": bare, "ASGI 3 (Starlette)": starlette}
    return {name: {"mps": mps, "p50_ms": 1.0, "p99_ms": 2.0} for name, mps in rates.items()}


def test_asgi3_apps_are_shown_against_the_native_echo_of_their_runs() -> None:
    echo = {
        "sockets": 50,
        "apps": ["native App", "ASGI 3 (bare)", "ASGI 3 (Starlette)"],
        "runs": [_echo_round(1000, 900, 500), _echo_round(2000, 1700, 900), _echo_round(1500, 1100, 800)],
    }
    skipped = {"skipped": "measures ASGI 3 apps in `switchroom worker`"}
    text = report(_results({"asgi3_echo": {"switchroom": echo, "original": skipped}}))
    assert "| Switchroom | native App | 1,500 (1,000–2,000) |" in text
    rows = {line.split(" | ")[1]: line for line in text.splitlines() if line.startswith("| Switchroom")}
    assert rows["native App"].endswith("| 100 % |")
    assert rows["ASGI 3 (bare)"].endswith("| 73 % |")  # 1,100 ÷ 1,500: medians of the same runs
    assert rows["ASGI 3 (Starlette)"].endswith("| 53 % |")
    assert "Switchroom ÷ this" not in text and "original" not in text  # not a comparison of systems
    assert "ASGI 3 (bare) 73 %, **not met**" in text and "at least 80 %" in text
    echo["runs"] = [_echo_round(1000, 850, 820)]
    assert "ASGI 3 (bare) 85 %, met; ASGI 3 (Starlette) 82 %, met" in report(
        _results({"asgi3_echo": {"switchroom": echo}})
    )


def test_the_chat_broadcast_sets_switchroom_beside_daphne() -> None:
    def chat(*rates: float) -> dict:
        runs = [{"deliveries_per_s": r, "delivered": 10, "lost": 0, "sockets_failed": 0} for r in rates]
        return {"sockets": 200, "lines": 100, "runs": runs}

    text = report(
        _results({"asgi3_chat": {"switchroom": chat(3000, 4000, 5000), "channels4": chat(2000, 1000, 3000)}})
    )
    row = next(line for line in text.splitlines() if line.startswith("| Channels 4 |"))
    assert "| 100 lines into a room of 200 | 2,000 (1,000–3,000) |" in row and row.endswith("| 2.00× |")


def test_a_docs_table_whose_workload_is_not_in_the_record_says_so() -> None:
    results = _results({"echo": {}})
    for name in ("asgi3_echo", "asgi3_chat", "echo"):
        text = docs.render(name, results)
        assert text.startswith(f"*Not in the recorded run: the record has no {name} figures;"), text
        assert "`python -m bench --record`" in text


def test_the_email_figures_name_their_load_generator_and_say_when_smtp_source_did_not_run() -> None:
    def leaf(load: str, cpu: float) -> dict:
        return {"runs": [{"count": 10, "rate": 100.0, "cpu": cpu, "load": load}]}

    suite, source = "the suite's smtplib clients", "smtp-source (Postfix 3.7.11)"
    both = {
        **{"small": leaf(suite, 1.2), "sink": leaf(suite, 1.0), "large": leaf(suite, 9.0)},
        **{"small_smtp_source": leaf(source, 1.5), "sink_smtp_source": leaf(source, 1.0)},
    }
    table = TABLES_BY_KEY["email"]
    text = render(table, {"switchroom": both}, {"switchroom": "Switchroom"})
    assert "| Switchroom | small, switchroom email, smtp-source | 100 |" in text
    assert "| Switchroom | small, aiosmtpd Sink (no-op), suite's clients | 100 |" in text
    assert f"Load generators: {source}; {suite}." in text
    cpu = docs.render("email_cpu", _results({"email": {"switchroom": both}}))
    assert "with the suite's clients as the load, server CPU per small message 1.20 ms" in cpu
    assert "with smtp-source as the load, server CPU per small message 1.50 ms" in cpu and "1.50×" in cpu

    missing, where = find("/nonexistent/smtp-source")
    assert missing is None and "does not run" in where
    alone = {key: value for key, value in both.items() if "smtp_source" not in key}
    alone["smtp_source"] = {"skipped": where}
    text = render(table, {"switchroom": alone}, {"switchroom": "Switchroom"})
    assert "smtp-source" not in text.split("Load generators:")[0]
    assert f"smtp-source not run: {where}." in text
    cpu = docs.render("email_cpu", _results({"email": {"switchroom": alone}}))
    assert f"smtp-source did not run ({where})" in cpu


def test_a_publisher_that_fell_behind_says_so_in_the_report() -> None:
    step = {
        "offered_dps": 20000,
        "runs": [
            {"dps": 100.0, "publisher_max_lag_ms": lag, "publisher_behind": behind, "layer_reached": 10}
            for lag, behind in ((1.0, False), (900.0, True), (2.0, False))
        ],
    }
    text = report(_results({"broadcast": {"switchroom": {"steps": [step], "highest_lossless_dps": 0}}}))
    row = next(line for line in text.splitlines() if "20,000/s offered" in line)
    assert "| 2 (1–900) | 1 of 3 |" in row


def test_the_publisher_notes_how_far_behind_its_schedule_it_sent() -> None:
    sys.path.insert(0, str(ROOT / "bench" / "targets"))
    try:
        from publish import Schedule
    finally:
        sys.path.remove(str(ROOT / "bench" / "targets"))
    plan = Schedule(rate=100, seconds=0.05)
    stamps = []
    for n, text in plan:
        stamps.append(float(text.split()[1]))
        if n == 2:
            time.sleep(0.1)  # a stalled send: every later one is late too
    assert stamps == [plan.start + n / 100 for n in range(5)]  # the due times, not the send times
    assert plan.max_lag >= 0.1 > 1 / plan.rate


def test_the_docs_figures_are_the_recorded_runs() -> None:
    results = json.loads(docs.RECORDED.read_text())
    stale = docs.run(results, check=True)
    assert stale == [], f"run `python -m bench.docs`: {stale}"
    names = {m.group("name") for path in docs.files() for m in docs.REGION.finditer(path.read_text())}
    assert {"run", "http", "http_paced", "broadcast", "layer", "email", "scaling_model", "tls"} <= names


def test_a_figure_edited_by_hand_in_a_region_is_put_back() -> None:
    results = _results({})
    text = "before\n<!-- bench:run -->\nhand-written 99,999 req/s\n<!-- /bench -->\nafter\n"
    results["meta"].update(commit="abc", seconds=1.0, runs=3, seconds_per_measurement=10.0)
    results["machine"] = {"cpus": 2, "cpu_model": "", "python": "3.11", "kernel": "6", "load_avg": [0.1]}
    new = docs.rewrite(text, results)
    assert "99,999" not in new and "python -m bench" in new
    assert new.startswith("before\n<!-- bench:run -->\n") and new.endswith("<!-- /bench -->\nafter\n")
    with pytest.raises(KeyError):
        docs.rewrite("<!-- bench:nonsense -->\n<!-- /bench -->", results)


class _Out:
    def put(self, value: dict) -> None:
        self.value = value


def test_the_paced_http_load_times_requests_from_when_they_were_due() -> None:
    """A server that answers one request per 0.2 s on one connection, offered 20 requests/s:
    a closed loop would report 0.2 s per request; timed from when each was due, the queue
    behind the slow answers shows (the 10th waits for 9 before it)."""
    import asyncio
    import threading

    from bench.loads import http_rate_load
    from switchroom.shared.redisproc import free_port

    port = free_port()
    loop = asyncio.new_event_loop()
    started = threading.Event()

    async def slow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while await reader.readuntil(b"\r\n\r\n"):
            await asyncio.sleep(0.2)
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")

    async def serve() -> None:
        await asyncio.start_server(slow, "127.0.0.1", port)
        started.set()

    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(serve(), loop)
    assert started.wait(5)
    out = _Out()
    try:
        http_rate_load(port, 1, 20.0, 0.5, out)
    finally:
        loop.call_soon_threadsafe(loop.stop)
    latencies = sorted(out.value["latencies"])
    assert out.value["requests"] == out.value["offered"] == 10
    assert latencies[0] >= 0.2
    assert latencies[-1] >= 10 * 0.2 - 9 * 0.05  # the last was due at 0.45 s, answered at >= 2.0 s


def test_a_registered_benchmark_runs_only_for_its_systems_and_records_failures() -> None:
    from bench.__main__ import run_one
    from bench.registry import Options, Workload

    options = Options(seconds=0.1, runs=3, quick=True, rates=(1,), idle_sockets=1, python_load=True)
    ours = SYSTEMS["switchroom"](ROOT / ".cache" / "venvs")
    other = SYSTEMS["original"](ROOT / ".cache" / "venvs")

    def measure(system, options: Options) -> dict:
        if system.name == "ceiling":
            raise RuntimeError("no such endpoint")
        return {"runs": [{"n": i} for i in range(options.runs)]}

    only_ours = Workload("probe", measure, ("switchroom",), "has no probe")
    assert run_one(only_ours, ours, options)["runs"] == [{"n": 0}, {"n": 1}, {"n": 2}]
    assert run_one(only_ours, other, options) == {"skipped": "has no probe"}
    everyone = Workload("probe", measure, None, "")
    failed = run_one(everyone, SYSTEMS["ceiling"](ROOT / ".cache" / "venvs"), options)
    assert failed["error"] == "RuntimeError: no such endpoint"
    assert run_one(Workload("broadcast", measure, None, "no layer"), SYSTEMS["ceiling"](ROOT), options) == {
        "skipped": "no layer"
    }
