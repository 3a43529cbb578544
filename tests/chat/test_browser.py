"""The chat page in a real headless Chromium: two pages, a line typed in one shows up in
the other; an email to the room shows up too and is answered by email from the page; a
Slack message (from the local stand-in) shows up, and page messages are posted to Slack.
Who is in the room shows beside it: the pages by name (a second page of a name counts
under it and leaves with its page), the email and Slack senders.
A screenshot is kept in ``test-artifacts/chat.png``."""

import json
import shutil
import smtplib
import urllib.request
from email.message import EmailMessage
from pathlib import Path

import pytest

from .harness import ROOT, UpProcess

pytestmark = pytest.mark.slow

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def chromium_path() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    pytest.fail("no Chromium on PATH: install Debian's chromium package (.ci/run does)")


def send_email(port: int) -> None:
    message = EmailMessage()
    message["From"] = "carol@mail.example"
    message["To"] = "room@chat.localhost"
    message["Subject"] = "greetings"
    message["Message-ID"] = "<greetings-1@mail.example>"
    message.set_content("hello room, from email")
    with smtplib.SMTP("127.0.0.1", port, timeout=20) as client:
        client.send_message(message)


def slack_event(port: int, text: str) -> None:
    body = json.dumps({"event": {"type": "message", "channel": "C0CHATROOM", "user": "U0DAVE", "text": text}})
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/_standin/event",
        data=body.encode(),
        headers={"Content-Type": "application/json"},
    )
    urllib.request.urlopen(request, timeout=10).read()


def slack_posts(port: int) -> list[dict]:
    return json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/_standin/posts", timeout=10).read())


@pytest.fixture
def up():
    process = UpProcess("--processes", "--workers", "2")
    yield process
    process.stop()


def test_two_pages_talk(up):
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        try:
            alice, bob = browser.new_page(), browser.new_page()
            for page in (alice, bob):
                page.goto(up.url + "/")
                expect(page.locator("#status")).to_have_text("connected", timeout=15_000)
            alice.fill("#name", "alice")
            alice.fill("#text", "hello from the browser")
            alice.press("#text", "Enter")
            last_line = bob.locator("#log li").last
            expect(last_line).to_contain_text("alice: hello from the browser", timeout=10_000)
            expect(alice.locator("#log li").last).to_contain_text("alice: hello from the browser")
            send_email(up.email_port)
            email_line = bob.locator("#log li").last
            expect(email_line).to_contain_text("carol@mail.example: hello room, from email", timeout=10_000)
            expect(alice.locator("#log li").last).to_contain_text("hello room, from email", timeout=10_000)
            email_line.get_by_role("button", name="reply by email").click()
            expect(bob.locator("#replying")).to_contain_text("carol@mail.example")
            bob.fill("#name", "bob")
            bob.fill("#text", "welcome, carol")
            bob.press("#text", "Enter")
            expect(alice.locator("#log li").last).to_contain_text(
                "(by email to carol@mail.example) welcome, carol", timeout=10_000
            )
            mailed = "outbound mail from room@chat.localhost to carol@mail.example: 'Re: greetings'"
            up.wait_for_log(mailed, 30)
            slack_event(up.standin_port, "hello from slack")
            expect(alice.locator("#log li").last).to_contain_text("U0DAVE: hello from slack", timeout=15_000)
            assert any(
                post.get("text") == "*alice*: hello from the browser" for post in slack_posts(up.standin_port)
            )
            check_people(browser, up, alice, bob)
            artifacts = ROOT / "test-artifacts"
            artifacts.mkdir(exist_ok=True)
            bob.screenshot(path=str(artifacts / "chat.png"))
        finally:
            browser.close()
    assert Path(ROOT / "test-artifacts" / "chat.png").stat().st_size > 0


def check_people(browser, up, alice, bob) -> None:
    """The room's list on both pages: web names, the email and Slack senders, and a second
    page of alice counted under her until it closes."""
    from playwright.sync_api import expect

    for page in (alice, bob):
        people = page.locator("#people")
        expect(people.locator("li[data-key='alice']")).to_have_text("webalice", timeout=10_000)
        expect(people.locator("li[data-key='bob']")).to_have_text("webbob", timeout=10_000)
        expect(people.locator("li[data-key='carol@mail.example']")).to_have_text("emailcarol@mail.example")
        expect(people.locator("li[data-key='U0DAVE']")).to_have_text("slackU0DAVE", timeout=10_000)
    second = browser.new_page()
    second.goto(up.url + "/")
    expect(second.locator("#status")).to_have_text("connected", timeout=15_000)
    second.fill("#name", "alice")
    second.press("#name", "Tab")
    expect(bob.locator("#people li[data-key='alice']")).to_have_text("webalice (2 pages)", timeout=10_000)
    expect(second.locator("#people li[data-key='alice'] .count")).to_have_text(" (2 pages)", timeout=10_000)
    second.close()
    expect(bob.locator("#people li[data-key='alice']")).to_have_text("webalice", timeout=10_000)
