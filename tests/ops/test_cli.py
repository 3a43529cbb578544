"""Command lines: every flag shows its environment variable and default in plain text, the
environment is honoured (and a bad value refused like a bad flag), and one log format
serves every process, with ``--log-format json`` for log shippers."""

import argparse
import dataclasses
import json
import logging
import re
import subprocess
import sys

import pytest
from prometheus_client import REGISTRY

from switchroom.demo import DemoSettings
from switchroom.demo import build_parser as demo_parser
from switchroom.layers import get_layer
from switchroom.servers.email import Settings as EmailSettings
from switchroom.servers.email.cli import build_parser as email_parser
from switchroom.servers.http_ws import Settings as HttpSettings
from switchroom.servers.http_ws.cli import build_parser as http_parser
from switchroom.servers.slack import Settings as SlackSettings
from switchroom.servers.slack.cli import build_parser as slack_parser
from switchroom.shared.config import Common, add_common_arguments
from switchroom.shared.health import Health
from switchroom.shared.logs import JsonFormatter
from switchroom.shared.metrics import LAYER_COUNTS
from switchroom.shared.options import add_options, option, specs
from switchroom.up import UpSettings
from switchroom.up import build_parser as up_parser
from switchroom.worker.cli import build_parser as worker_parser
from switchroom.worker.settings import WorkerSettings

from ..processes import ROOT, SwitchroomProcess, run_switchroom

PARSERS = {
    "http": http_parser,
    "email": email_parser,
    "slack": slack_parser,
    "worker": worker_parser,
    "up": up_parser,
    "demo": demo_parser,
}


@pytest.mark.parametrize("command", PARSERS)
def test_every_flag_names_its_environment_variable_and_default(command):
    parser = PARSERS[command]()
    options = [a for a in parser._actions if a.option_strings and a.dest != "help"]
    assert options
    for action in options:
        assert "[env SWITCHROOM_" in action.help, action.option_strings
        assert ", default " in action.help, action.option_strings
    text = parser.format_help()
    for markup in ("``", ":class:", ":func:", "\n.. "):
        assert markup not in text, f"{command} --help shows {markup!r}"


@pytest.mark.parametrize("command", PARSERS)
def test_help_runs_and_says_what_the_command_does(command):
    result = run_switchroom([command, "--help"])
    assert result.returncode == 0, result.stderr
    description = result.stdout.split("\n\n")[1]
    assert len(description.split()) > 5, result.stdout


@pytest.mark.parametrize(
    "settings", [Common, UpSettings, DemoSettings, HttpSettings, EmailSettings, SlackSettings, WorkerSettings]
)
def test_every_flag_with_a_fixed_set_of_values_lists_them(settings):
    for spec in specs(settings):
        for choice in spec.choices or ():
            assert re.search(rf"\b{re.escape(str(choice))}\b", spec.text()), (spec.flag, choice)


def test_the_environment_sets_defaults_and_flags_win(monkeypatch):
    monkeypatch.setenv("SWITCHROOM_SLACK_POST_INTERVAL", "2.5")
    monkeypatch.setenv("SWITCHROOM_LOG_FORMAT", "json")
    monkeypatch.setenv("SWITCHROOM_UP_PROCESSES", "yes")
    args = slack_parser().parse_args(["--log-format", "text"])
    assert args.post_interval == 2.5 and args.log_format == "text"
    assert up_parser().parse_args(["app:app"]).processes is True
    assert slack_parser().parse_args([]).log_format == "json"


def test_a_bad_environment_value_is_refused_like_a_bad_flag(monkeypatch, capsys):
    monkeypatch.setenv("SWITCHROOM_LOG_LEVEL", "loud")
    with pytest.raises(SystemExit) as exit_:
        worker_parser().parse_args(["app:app"])
    assert exit_.value.code == 2
    assert "'loud' is not one of debug, info, warning, error" in capsys.readouterr().err


@dataclasses.dataclass
class Example:
    flag: bool = option(True, help="a switch")
    name: str | None = option(None, help="a name")


def test_options_show_booleans_and_empty_defaults():
    parser = argparse.ArgumentParser()
    add_options(parser, Example, "t")
    helps = {a.dest: a.help for a in parser._actions}
    assert helps["flag"] == "a switch [env SWITCHROOM_T_FLAG, default on]"
    assert helps["name"] == "a name [env SWITCHROOM_T_NAME, default none]"
    assert parser.parse_args(["--no-flag"]).flag is False


def test_json_lines_carry_the_documented_fields():
    record = logging.LogRecord("switchroom.http", logging.WARNING, __file__, 1, "503 %s", ("GET /",), None)
    try:
        raise ValueError("boom")
    except ValueError:
        record.exc_info = sys.exc_info()
    entry = json.loads(JsonFormatter("http").format(record))
    assert entry["level"] == "warning" and entry["role"] == "http" and entry["logger"] == "switchroom.http"
    assert entry["message"] == "503 GET /" and "ValueError: boom" in entry["error"]
    assert entry["time"].endswith("+00:00") and isinstance(entry["pid"], int)


def test_a_server_logs_json_from_start_to_stop(redis_server):
    server = SwitchroomProcess(["http", "--port", "0", "--layer", redis_server.url, "--log-format", "json"])
    try:
        server.wait_for_log("listening on")
    finally:
        assert server.stop() == 0
    lines = [json.loads(line) for line in server.stopped_log.splitlines()]
    assert {entry["role"] for entry in lines} == {"http"}
    assert any(entry["message"].startswith("listening on http://") for entry in lines)
    assert lines[-1]["message"] == "stopped"


def test_a_failed_start_in_json_is_one_json_line():
    result = run_switchroom(["worker", "nosuch:app", "--log-format", "json"])
    assert result.returncode == 2
    (line,) = result.stderr.splitlines()
    entry = json.loads(line)
    assert entry["level"] == "error" and entry["role"] == "worker"
    assert entry["message"].startswith("cannot start: cannot load the app 'nosuch:app'")


def test_every_metric_and_common_flag_is_in_the_operations_docs():
    docs = (ROOT / "docs" / "operations.md").read_text()
    health = Health(get_layer("memory://"))
    health.ready = True
    health.layer_metrics.measured(True, {})
    families = [f for f in [*REGISTRY.collect(), *health.collect()] if f.name.startswith("switchroom")]
    suffix = {"counter": "_total", "info": "_info"}
    names = {f.name + suffix.get(f.type, "") for f in families}
    names |= {f"switchroom_layer_{key}_total" for key in LAYER_COUNTS}
    assert len(names) > 30
    for name in names:
        assert f"`{name}`" in docs, name
    common = argparse.ArgumentParser()
    add_common_arguments(common)
    for action in common._actions[1:]:
        variable = "SWITCHROOM_" + action.dest.upper()
        assert f"| `{action.option_strings[0]}` | `{variable}` |" in docs, action.option_strings


TWISTED_AND_WARNINGS = """
import warnings
from twisted.logger import Logger
from switchroom.shared.logs import setup_logging

setup_logging("info", "http", "json")
log = Logger(namespace="autobahn.test")
log.info("factory starting")
log.error("a protocol error")
try:
    1 / 0
except ZeroDivisionError:
    log.failure("a callback failed")
warnings.warn("an old call", DeprecationWarning, stacklevel=1)
"""


def test_twisted_failures_and_python_warnings_are_json_lines_too():
    result = subprocess.run(
        [sys.executable, "-W", "always", "-c", TWISTED_AND_WARNINGS],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    entries = [json.loads(line) for line in result.stderr.splitlines()]
    assert [(e["level"], e["message"]) for e in entries[:2]] == [
        ("error", "a protocol error"),
        ("critical", "a callback failed"),
    ]
    assert "ZeroDivisionError" in entries[1]["error"]
    assert entries[2]["logger"] == "py.warnings" and "an old call" in entries[2]["message"]
    assert len(entries) == 3 and {e["role"] for e in entries} == {"http"}


@pytest.mark.parametrize("command", PARSERS)
@pytest.mark.parametrize("log_format", ["text", "json"])
def test_a_refused_flag_is_one_line_in_the_chosen_format(command, log_format, monkeypatch, capsys):
    argv = ["--log-format", log_format, "--layer-wait", "soon"]
    monkeypatch.setattr(sys, "argv", ["switchroom", command, *argv])
    with pytest.raises(SystemExit) as exit_:
        PARSERS[command]().parse_args(argv)
    assert exit_.value.code == 2
    (line,) = capsys.readouterr().err.splitlines()
    if log_format == "text":
        assert f"[{command}] switchroom.{command}: " in line
    message = line if log_format == "text" else json.loads(line)["message"]
    assert message.endswith(
        f"cannot start: argument --layer-wait: invalid float value: 'soon'; see switchroom {command} --help"
    )
