"""Every command's flags come from its settings' field metadata: ``--help`` shows each one's
default and environment variable, a variable and its flag set the same field, switches
read the same spellings everywhere, ``up`` builds a part's settings as the part's own
command would, and the docs' tables are the generated ones. All in process: no server runs."""

import argparse
import dataclasses
import re

import pytest

from switchroom import reference
from switchroom.demo import build_parser as demo_parser
from switchroom.layers import get_layer
from switchroom.servers.email.cli import build_parser as email_parser
from switchroom.servers.http_ws.cli import build_parser as http_parser
from switchroom.servers.slack.cli import build_parser as slack_parser
from switchroom.shared.config import Common
from switchroom.shared.options import BOOLEAN_SPELLINGS, FALSE, TRUE, Spec, from_args, from_env, to_argv
from switchroom.shared.startup import StartupError
from switchroom.up import UpSettings, email_values, http_values
from switchroom.up import build_parser as up_parser
from switchroom.worker.cli import build_parser as worker_parser

PARSERS = {
    "http": (http_parser, []),
    "email": (email_parser, []),
    "slack": (slack_parser, []),
    "worker": (worker_parser, ["app:app"]),
    "up": (up_parser, ["app:app"]),
    "demo": (demo_parser, []),
}
GROUPS = reference.commands()
# Settings fields that deliberately have no flag.
NO_FLAG = {("Settings", "workspaces")}  # Slack tokens come from the environment only


def command_specs(command: str) -> list[Spec]:
    return [spec for group in GROUPS[command] for spec in group.specs()]


def parse(command: str, argv: list[str]) -> argparse.Namespace:
    build, positional = PARSERS[command]
    return build().parse_args([*positional, *argv])


def sample(spec: Spec) -> tuple[str, object]:
    """A value other than the default, as text and as the field's value."""
    default = spec.default
    if spec.switch:
        return ("off" if default else "on"), not default
    if spec.choices:
        choice = next(c for c in spec.choices if c != default)
        return str(choice), choice
    if isinstance(default, tuple):
        return "a.example, b.example", ("a.example", "b.example")
    if spec.parse.__name__ == "duration":
        return "2h", 7200.0
    if isinstance(default, float):
        return str(default + 1.5), default + 1.5
    if isinstance(default, int) and not isinstance(default, bool) or spec.parse is int:
        value = (default or 0) + 7
        return str(value), value
    return "x.example", "x.example"


def flag_argv(spec: Spec, text: str, value: object) -> list[str]:
    if spec.switch:
        return [spec.flag if value else "--no-" + spec.flag[2:]]
    return [spec.flag, text]


def test_every_command_is_described():
    assert set(GROUPS) == set(PARSERS)


@pytest.mark.parametrize("command", PARSERS)
def test_every_flag_comes_from_the_settings(command):
    """Nothing is written by hand: the parser's options are exactly the generated ones."""
    build, _ = PARSERS[command]
    dests = {a.dest for a in build()._actions if a.option_strings and a.dest != "help"}
    assert dests == {spec.name for spec in command_specs(command)}


@pytest.mark.parametrize("command", PARSERS)
def test_help_shows_each_options_default_and_variable(command):
    build, _ = PARSERS[command]
    parser = build()
    text = " ".join(parser.format_help().split())
    actions = {a.dest: a for a in parser._actions}
    for spec in command_specs(command):
        line = spec.text()
        assert line.startswith(spec.help) and line.endswith(
            f" [env {spec.env}, default {spec.show(spec.default)}]"
        )
        assert actions[spec.name].help == line
        assert " ".join(line.split()) in text, (command, spec.flag)
    for markup in ("``", ":class:", ":func:", ":meth:"):
        assert markup not in text, f"{command} --help shows {markup!r}"


@pytest.mark.parametrize("command", PARSERS)
def test_a_variable_and_its_flag_set_the_same_field(command, monkeypatch):
    specs = command_specs(command)
    assert specs
    for spec in specs:
        text, value = sample(spec)
        assert value != spec.default, spec.flag
        by_flag = parse(command, flag_argv(spec, text, value))
        with monkeypatch.context() as env:
            env.setenv(spec.env, text)
            by_env = parse(command, [])
        assert getattr(by_flag, spec.name) == getattr(by_env, spec.name) == value, (spec.flag, spec.env)
        assert getattr(parse(command, []), spec.name) == spec.default, spec.flag


@pytest.mark.parametrize("command", PARSERS)
def test_switches_read_the_same_spellings_everywhere(command, monkeypatch, capsys):
    switches = [spec for spec in command_specs(command) if spec.switch]
    for spec in switches:
        for spelling in BOOLEAN_SPELLINGS:
            for written in (spelling, spelling.upper(), f" {spelling.title()} "):
                monkeypatch.setenv(spec.env, written)
                assert getattr(parse(command, []), spec.name) is (spelling in TRUE), (spec.env, written)
        monkeypatch.setenv(spec.env, "maybe")
        with pytest.raises(SystemExit) as exit_:
            parse(command, [])
        assert exit_.value.code == 2
        assert f"{spec.env}='maybe': 'maybe' is not a boolean" in capsys.readouterr().err
        monkeypatch.delenv(spec.env)


def test_layer_urls_read_switches_with_the_same_spellings():
    for spelling in BOOLEAN_SPELLINGS:
        layer = get_layer(f"redis://127.0.0.1:1/0?local={spelling.upper()}")
        assert layer.local is (spelling in TRUE), spelling
    with pytest.raises(ValueError, match="'maybe' is not a boolean"):
        get_layer("redis://127.0.0.1:1/0?local=maybe")
    assert set(TRUE).isdisjoint(FALSE)


@pytest.mark.parametrize("command", PARSERS)
def test_every_setting_has_a_flag(command):
    for group in GROUPS[command]:
        if group.only is not None:
            continue
        named = {spec.name for spec in group.specs()}
        fields = {f.name for f in dataclasses.fields(group.cls)}
        assert fields - named == {n for c, n in NO_FLAG if c == group.cls.__name__ and n in fields}


@pytest.mark.parametrize("command", ["http", "email", "slack", "worker"])
def test_a_parts_settings_are_the_same_from_flags_and_from_up(command, monkeypatch):
    """``up`` builds a part in process with ``from_env`` and as a child with ``to_argv``: with
    the same environment and the same values, both give what the part's command builds."""
    group = GROUPS[command][-1]
    values = {}
    for spec in group.specs():
        text, value = sample(spec)
        values[spec.name] = value
    env_spec = group.specs()[-1]
    text, env_value = sample(env_spec)
    monkeypatch.setenv(env_spec.env, text)
    del values[env_spec.name]
    extra = {"workspaces": []} if command == "slack" else {}
    in_process = from_env(group.cls, group.prefix, **values, **extra)
    child = from_args(group.cls, parse(command, to_argv(group.cls, values)), **extra)
    assert in_process == child
    assert getattr(in_process, env_spec.name) == env_value


def test_up_passes_its_choices_to_the_parts(monkeypatch):
    from switchroom.servers.email.settings import Settings as EmailSettings
    from switchroom.servers.http_ws.settings import Settings as HttpSettings
    from switchroom.up import Plan, part_settings

    args = up_parser().parse_args(["app:app", "--bind", "127.0.0.2", "--http-port", "8123"])
    monkeypatch.setenv("SWITCHROOM_HTTP_BIND", "0.0.0.0")
    monkeypatch.setenv("SWITCHROOM_HTTP_MAX_BODY_SIZE", "1234")
    http = part_settings(HttpSettings, "http", **http_values(args))
    assert (http.bind, http.port, http.max_body_size) == ("127.0.0.2", 8123, 1234)
    monkeypatch.setenv("SWITCHROOM_HTTP_MAX_BODY_SIZE", "big")
    with pytest.raises(StartupError, match="SWITCHROOM_HTTP_MAX_BODY_SIZE: invalid literal"):
        part_settings(HttpSettings, "http", **http_values(args))
    plan = Plan(app=None, http=True, email=True, slack="off", domains=("a.test", "b.test"), workers=1)
    values = email_values(args, plan, "relay.test", 2526)
    argv = to_argv(EmailSettings, values)
    assert argv.count("--domains") == 2
    email = from_args(EmailSettings, email_parser().parse_args(argv))
    assert email == from_env(EmailSettings, "email", environ={}, **values)
    assert email.domains == ("a.test", "b.test") and email.relay_port == 2526


def test_a_bad_variable_of_a_part_is_named():
    from switchroom.servers.http_ws.settings import Settings as HttpSettings

    with pytest.raises(ValueError, match="SWITCHROOM_HTTP_ACCESS_LOG: 'sometimes' is not a boolean"):
        from_env(HttpSettings, "http", environ={"SWITCHROOM_HTTP_ACCESS_LOG": "sometimes"})


def test_up_and_the_common_options_keep_their_variables():
    specs = {s.name: s.env for s in reference.Group(UpSettings, "up").specs()}
    assert specs["layer"] == "SWITCHROOM_UP_LAYER" and specs["processes"] == "SWITCHROOM_UP_PROCESSES"
    common = {s.name: s.env for s in reference.Group(Common).specs()}
    assert common["layer"] == "SWITCHROOM_LAYER" and common["metrics_port"] == "SWITCHROOM_METRICS_PORT"


def test_the_docs_tables_are_the_generated_ones():
    assert reference.stale() == [], "regenerate them: python -m switchroom.reference --write"
    operations = (reference.DOCS / "operations.md").read_text()
    assert re.search(r"<!-- options:up -->\n\| flag \|", operations)
