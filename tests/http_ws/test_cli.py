"""``switchroom http`` flags: one per setting, environment variables honoured, all documented."""

import dataclasses
from pathlib import Path

from switchroom.servers.http_ws.cli import build_parser, settings_from_args
from switchroom.servers.http_ws.settings import Settings

DOCS = Path(__file__).resolve().parents[2] / "docs" / "http.md"


def test_every_setting_has_a_flag_and_a_documented_row():
    docs = DOCS.read_text()
    for f in dataclasses.fields(Settings):
        flag = "--" + f.name.replace("_", "-")
        assert f"| `{flag}` | `SWITCHROOM_HTTP_{f.name.upper()}` |" in docs, f"{flag} is not in docs/http.md"


def test_flags_and_environment(monkeypatch):
    monkeypatch.setenv("SWITCHROOM_HTTP_MAX_BODY_SIZE", "1234")
    monkeypatch.setenv("SWITCHROOM_HTTP_PROXY_HEADERS", "true")
    args = build_parser().parse_args(["--port", "9001", "--allowed-hosts", "a.example, *.b.example"])
    settings = settings_from_args(args)
    assert settings.port == 9001
    assert settings.max_body_size == 1234
    assert settings.proxy_headers is True
    assert settings.allowed_hosts == ("a.example", "*.b.example")
    assert build_parser().parse_args(["--no-access-log"]).access_log is False
