"""Slack events ↔ messages without sockets, over real event shapes."""

import argparse
from pathlib import Path

import pytest

from switchroom.servers.slack import translate
from switchroom.servers.slack.cli import build_parser
from switchroom.servers.slack.settings import workspaces_from_env
from switchroom.shared.config import add_common_arguments
from switchroom.shared.messages import validate

REPLY = "slack.send.abc!Ev1"

MESSAGE = {
    "type": "message",
    "channel": "C1",
    "user": "U1",
    "text": "hello",
    "ts": "1.000100",
    "channel_type": "channel",
    "team": "T1",
    "client_msg_id": "x",
}
THREAD_REPLY = {**MESSAGE, "ts": "1.000200", "thread_ts": "1.000100", "parent_user_id": "U2"}
EDIT = {
    "type": "message",
    "subtype": "message_changed",
    "channel": "C1",
    "hidden": True,
    "ts": "2.0",
    "message": {"type": "message", "user": "U1", "text": "hello (edited)", "ts": "1.000100"},
    "previous_message": {"type": "message", "user": "U1", "text": "hello", "ts": "1.000100"},
}
BOT_MESSAGE = {
    "type": "message",
    "subtype": "bot_message",
    "bot_id": "B9",
    "username": "ci",
    "text": "build ok",
    "channel": "C1",
    "ts": "3.0",
}
FILE_SHARE = {
    "type": "message",
    "subtype": "file_share",
    "channel": "C1",
    "user": "U1",
    "text": "look",
    "files": [{"id": "F1", "name": "a.png"}],
    "ts": "4.0",
}
MENTION = {
    "type": "app_mention",
    "user": "U1",
    "text": "<@U0BOT> help",
    "ts": "5.0",
    "channel": "C1",
    "event_ts": "5.0",
}
REACTION = {
    "type": "reaction_added",
    "user": "U1",
    "reaction": "thumbsup",
    "item_user": "U2",
    "item": {"type": "message", "channel": "C7", "ts": "6.0"},
    "event_ts": "6.1",
}


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        (MESSAGE, {"channel": "C1", "user": "U1", "text": "hello", "ts": "1.000100", "thread_ts": None}),
        (THREAD_REPLY, {"thread_ts": "1.000100", "ts": "1.000200"}),
        (EDIT, {"subtype": "message_changed", "text": "hello (edited)", "user": "U1", "ts": "2.0"}),
        (BOT_MESSAGE, {"bot_id": "B9", "subtype": "bot_message", "user": None}),
        (FILE_SHARE, {"subtype": "file_share", "text": "look"}),
        (MENTION, {"type": "app_mention", "text": "<@U0BOT> help"}),
        (REACTION, {"type": "reaction_added", "channel": "C7", "ts": "6.0", "text": None}),
    ],
)
def test_event_messages(event, expected):
    message = translate.event_message(event, reply_channel=REPLY, mode="socket", team="T1", event_id="Ev1")
    validate("slack.event", message)
    assert message["event"] is event
    assert message["team"] == "T1"
    for key, value in expected.items():
        assert message[key] == value, key


def test_per_type_channels():
    assert translate.event_channel("message") == "slack.message"
    assert translate.event_channel("app_mention") == "slack.app_mention"
    assert translate.event_channel("weird type!") == "slack.weird_type_"


def test_own_messages_are_recognised():
    assert translate.is_own({"type": "message", "bot_id": "B0BOT"}, "U0BOT", "B0BOT")
    assert translate.is_own({"type": "message", "user": "U0BOT"}, "U0BOT", "B0BOT")
    assert translate.is_own({"type": "message", "message": {"bot_id": "B0BOT"}}, "U0BOT", "B0BOT")
    assert not translate.is_own(MESSAGE, "U0BOT", "B0BOT")
    assert not translate.is_own(BOT_MESSAGE, "U0BOT", "B0BOT")
    assert not translate.is_own(MESSAGE, None, None)


def test_api_calls():
    call = translate.api_call({"text": "hi", "thread_ts": "1.0"}, default_channel="C1")
    assert (call.method, call.lane, call.arguments, call.paced) == (
        "chat.postMessage",
        "C1",
        {"channel": "C1", "text": "hi", "thread_ts": "1.0"},
        True,
    )
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": "*hi*"}}]
    assert translate.api_call({"channel": "C2", "blocks": blocks}).arguments["blocks"] == blocks
    reaction = translate.api_call({"channel": "C3", "reaction": ":tada:", "ts": "9.0"})
    assert (reaction.method, reaction.arguments, reaction.paced) == (
        "reactions.add",
        {"channel": "C3", "name": "tada", "timestamp": "9.0"},
        False,
    )


def test_any_method_gets_every_field_as_an_argument():
    fields = {
        "text": "hi",
        "reply_broadcast": True,
        "unfurl_links": False,
        "attachments": [{"text": "a"}],
        "metadata": {"event_type": "x", "event_payload": {"k": 1}},
        "id": "job-1",
        "team": "T1",
    }
    call = translate.api_call(fields, default_channel="C1")
    assert call.arguments == {
        "channel": "C1",
        "text": "hi",
        "reply_broadcast": True,
        "unfurl_links": False,
        "attachments": [{"text": "a"}],
        "metadata": {"event_type": "x", "event_payload": {"k": 1}},
    }
    assert call.team == "T1"
    update = translate.api_call({"method": "chat.update", "ts": "5.0", "text": "new"}, default_channel="C1")
    assert (update.method, update.arguments, update.paced) == (
        "chat.update",
        {"channel": "C1", "ts": "5.0", "text": "new"},
        False,
    )
    view = translate.api_call({"method": "views.open", "trigger_id": "t1", "view": {"type": "modal"}}, "C1")
    assert (view.method, view.lane, view.arguments) == (
        "views.open",
        "views.open",
        {"trigger_id": "t1", "view": {"type": "modal"}},
    )
    home = translate.api_call({"method": "views.publish", "user_id": "U1", "view": {"type": "home"}})
    assert home.lane == "U1"
    upload = translate.api_call({"method": "files.upload_v2", "content": b"\x00", "filename": "a.bin"}, "C1")
    assert (translate.sdk_method(upload.method), upload.arguments["content"], upload.paced) == (
        "files_upload_v2",
        b"\x00",
        True,
    )


def test_post_schedule_keeps_one_per_second_per_channel_and_honours_retry_after():
    schedule = translate.PostSchedule(interval=1.0)
    assert schedule.delay("C1", 100.0) <= 0
    schedule.posted("C1", 100.0)
    assert schedule.delay("C1", 100.2) == pytest.approx(0.8)
    assert schedule.delay("C2", 100.2) <= 0
    schedule.rate_limited(5, 100.5)
    assert schedule.delay("C2", 100.5) == pytest.approx(5)
    assert schedule.delay("C2", 100.5, paced=False) == pytest.approx(5), "a 429 pauses every call"
    assert schedule.delay("C1", 106.0, paced=False) <= 0


def test_workspaces_from_environment(tmp_path):
    assert workspaces_from_env({}) == []
    one = workspaces_from_env(
        {"SWITCHROOM_SLACK_BOT_TOKEN": "xoxb-1", "SWITCHROOM_SLACK_APP_TOKEN": "xapp-1"}
    )
    assert [(w.bot_token, w.app_token) for w in one] == [("xoxb-1", "xapp-1")]
    assert "xoxb" not in repr(one[0])
    listing = tmp_path / "workspaces.json"
    listing.write_text(
        '[{"name": "a", "bot_token": "xoxb-a", "app_token": "xapp-a"}, {"bot_token": "xoxb-b"}]'
    )
    several = workspaces_from_env({"SWITCHROOM_SLACK_WORKSPACES": str(listing)})
    assert [w.name for w in several] == ["a", "workspace2"]
    listing.write_text('[{"name": "no token"}]')
    with pytest.raises(ValueError, match="bot_token"):
        workspaces_from_env({"SWITCHROOM_SLACK_WORKSPACES": str(listing)})


SLASH_COMMAND = {
    "token": "x",
    "team_id": "T1",
    "team_domain": "acme",
    "channel_id": "C1",
    "channel_name": "general",
    "user_id": "U1",
    "user_name": "ann",
    "command": "/deploy",
    "text": "staging",
    "api_app_id": "A1",
    "response_url": "https://hooks.slack.com/commands/T1/1/x",
    "trigger_id": "1.2.3",
}
BLOCK_ACTIONS = {
    "type": "block_actions",
    "team": {"id": "T1", "domain": "acme"},
    "user": {"id": "U1", "username": "ann"},
    "channel": {"id": "C1", "name": "general"},
    "message": {"type": "message", "bot_id": "B0BOT", "text": "Deploy?", "ts": "7.0"},
    "actions": [{"action_id": "yes", "block_id": "b", "type": "button", "value": "go"}],
    "trigger_id": "1.2.4",
}


def test_envelopes_of_every_kind_become_events():
    event, event_id = translate.envelope_event("events_api", {"event_id": "Ev9", "event": MENTION}, "env-1")
    assert (event, event_id) == (MENTION, "Ev9")

    event, event_id = translate.envelope_event("slash_commands", SLASH_COMMAND, "env-2")
    message = translate.event_message(event, reply_channel=REPLY, mode="socket", team=None, event_id=event_id)
    validate("slack.event", message)
    assert event_id == "env-2"
    assert (message["type"], message["team"], message["channel"], message["user"], message["text"]) == (
        "slash_command",
        "T1",
        "C1",
        "U1",
        "staging",
    )
    assert message["event"]["command"] == "/deploy"

    event, _ = translate.envelope_event("interactive", BLOCK_ACTIONS, "env-3")
    message = translate.event_message(event, reply_channel=REPLY, mode="socket", team=None, event_id="env-3")
    validate("slack.event", message)
    assert (message["type"], message["channel"], message["user"], message["ts"]) == (
        "block_actions",
        "C1",
        "U1",
        "7.0",
    )
    assert message["event"]["actions"][0]["value"] == "go"
    assert not translate.is_own(event, "U0BOT", "B0BOT"), "a click on the bot's own message is news"

    event, event_id = translate.envelope_event("events_api", None, "env-4")
    assert (event["type"], event_id) == ("unknown", None)


@pytest.mark.parametrize(
    ("header", "seconds"), [("3", 3.0), ("0.5", 0.5), (None, 1.0), ("soon", 1.0), ("-2", 0.0), ("inf", 1.0)]
)
def test_retry_after_headers(header, seconds):
    assert translate.retry_after(header) == seconds


def test_an_interaction_is_not_mistaken_for_the_message_it_was_on():
    event, _ = translate.envelope_event("interactive", BLOCK_ACTIONS, "env-3")
    message = translate.event_message(event, reply_channel=REPLY, mode="socket", team=None, event_id="env-3")
    assert message["bot_id"] is None and message["text"] is None


def test_every_flag_is_documented():
    """The Slack server's own flags are in docs/slack.md (the common ones in docs/operations.md)."""
    doc = (Path(__file__).resolve().parents[2] / "docs" / "slack.md").read_text()
    shared = argparse.ArgumentParser()
    add_common_arguments(shared)
    common = {a.dest for a in shared._actions}
    flags = [a.option_strings[0] for a in build_parser()._actions if a.dest not in common]
    assert "--stop-grace" in flags
    for flag in flags:
        assert f"`{flag}`" in doc, flag
