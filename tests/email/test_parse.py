"""SMTP/MIME ↔ messages without sockets, over real-world message shapes."""

from email import policy
from email.message import EmailMessage

import pytest

from switchroom.servers.email import parse
from switchroom.servers.email.compose import compose
from switchroom.shared.messages import validate

ENVELOPE = {
    "mail_from": "ann@sender.example",
    "rcpt_to": ["room@example.com"],
    "peer": ["127.0.0.1", 5000],
    "helo": "mx.sender.example",
}


def received(raw: bytes, limit: int = 1024 * 1024) -> parse.Parsed:
    parsed = parse.parse(raw, max_layer_message=limit, **ENVELOPE)
    validate("email.receive", parsed.message)
    return parsed


ALTERNATIVE = b"""From: Ann <ann@sender.example>\r
To: room@example.com\r
Subject: hello\r
Message-ID: <abc@sender.example>\r
Date: Tue, 24 Nov 2026 10:00:00 +0100\r
MIME-Version: 1.0\r
Content-Type: multipart/alternative; boundary="b1"\r
\r
--b1\r
Content-Type: text/plain; charset=utf-8\r
\r
Hello room,\r
plain body.\r
--b1\r
Content-Type: text/html; charset=utf-8\r
\r
<p>Hello room</p>\r
--b1--\r
"""


def test_multipart_alternative():
    message = received(ALTERNATIVE).message
    assert message["subject"] == "hello"
    assert message["message_id"] == "<abc@sender.example>"
    assert message["from"] == "Ann <ann@sender.example>"
    assert message["to"] == ["room@example.com"]
    assert message["text"] == "Hello room,\nplain body."
    assert message["html"] == "<p>Hello room</p>"
    assert message["date"] == "2026-11-24T10:00:00+01:00"
    assert message["attachments"] == []
    assert message["raw"] == ALTERNATIVE
    assert message["size"] == len(ALTERNATIVE)


NESTED = """From: =?utf-8?b?SsO8cmdlbg==?= <j@sender.example>\r
To: room@example.com, "Bob, B." <bob@example.com>\r
Cc: carol@example.com\r
Reply-To: replies@sender.example\r
Subject: =?iso-8859-1?q?caf=E9_cr=E8me?=\r
MIME-Version: 1.0\r
Content-Type: multipart/mixed; boundary="outer"\r
\r
--outer\r
Content-Type: multipart/alternative; boundary="inner"\r
\r
--inner\r
Content-Type: text/plain; charset=iso-8859-1\r
Content-Transfer-Encoding: quoted-printable\r
\r
Voil=E0 le fichier.\r
--inner\r
Content-Type: text/html; charset=koi8-r\r
Content-Transfer-Encoding: base64\r
\r
PGI+8NLJ18XUPC9iPg==\r
--inner--\r
--outer\r
Content-Type: application/pdf\r
Content-Disposition: attachment; filename*=utf-8''r%C3%A9sum%C3%A9.pdf\r
Content-Transfer-Encoding: base64\r
\r
JVBERi0xLjQKJcfs\r
--outer\r
Content-Type: text/plain; name="notes.txt"\r
Content-Disposition: attachment; filename="notes.txt"\r
\r
attached notes\r
--outer--\r
""".encode("ascii")


def test_nested_multipart_encoded_headers_charsets_and_attachment_names():
    message = received(NESTED).message
    assert message["from"] == "Jürgen <j@sender.example>"
    assert message["subject"] == "café crème"
    assert message["to"] == ["room@example.com", '"Bob, B." <bob@example.com>']
    assert message["cc"] == ["carol@example.com"]
    assert message["reply_to"] == ["replies@sender.example"]
    assert message["text"] == "Voilà le fichier."
    assert message["html"] == "<b>Привет</b>"
    names = [(a["filename"], a["content_type"], a["content"]) for a in message["attachments"]]
    assert names == [
        ("résumé.pdf", "application/pdf", b"%PDF-1.4\n%\xc7\xec"),
        ("notes.txt", "text/plain", b"attached notes"),
    ]


@pytest.mark.parametrize(
    "raw",
    [
        b"Subject: no body at all\r\n\r\n",
        b'Content-Type: multipart/mixed; boundary="never-closed"\r\n\r\n--never-closed\r\ntext\r\n',
        b"Content-Type: text/plain; charset=no-such-charset\r\n\r\nbytes \xff\xfe here\r\n",
        b"Content-Type: multipart/mixed\r\n\r\nno boundary parameter\r\n",
        b"Date: not a date\r\nFrom: <<<broken\r\nTo: ,,,\r\n\r\nbody\r\n",
        b"Content-Transfer-Encoding: base64\r\n\r\n!!!not base64!!!\r\n",
        b"\xff\xfe\x00garbage without headers",
    ],
)
def test_malformed_mime_still_gives_a_valid_message(raw):
    message = received(raw).message
    assert message["raw"] == raw


def test_large_parts_spill_to_chunks():
    mime = EmailMessage()
    mime["From"] = "ann@sender.example"
    mime["To"] = "room@example.com"
    mime["Subject"] = "big"
    mime.set_content("see attached")
    big = bytes(range(256)) * 8000
    mime.add_attachment(big, maintype="application", subtype="octet-stream", filename="big.bin")
    mime.add_attachment(b"small", maintype="text", subtype="plain", filename="small.txt")
    raw = mime.as_bytes(policy=policy.SMTP)
    parsed = received(raw, limit=1024 * 1024)
    keys = [key for key, _ in parsed.spills]
    assert keys == ["attachment:0", "raw"]
    assert dict(parsed.spills)["attachment:0"] == big
    assert dict(parsed.spills)["raw"] == raw
    big_item, small_item = parsed.message["attachments"]
    assert big_item["content"] is None and big_item["size"] == len(big)
    assert small_item["content"] == b"small"
    assert parsed.message["raw"] is None
    pieces = parse.pieces(big, 300_000)
    assert b"".join(p["content"] for p in pieces) == big
    assert [p["more_content"] for p in pieces] == [True] * (len(pieces) - 1) + [False]
    for piece in pieces:
        validate("email.chunk", piece)


def test_compose_a_threaded_reply_with_attachments():
    message = {
        "to": ["ann@sender.example"],
        "cc": ["c@example.com"],
        "bcc": ["hidden@example.com"],
        "subject": "Re: hello",
        "text": "Thanks!",
        "html": "<p>Thanks!</p>",
        "in_reply_to": "<abc@sender.example>",
        "references": ["<root@sender.example>"],
        "attachments": [{"filename": "ü.txt", "content_type": "text/plain", "content": b"x"}],
    }
    validate("email.send", message)
    mime, sender, recipients = compose(message, "room@example.com")
    assert sender == "room@example.com"
    assert recipients == ["ann@sender.example", "c@example.com", "hidden@example.com"]
    assert "hidden" not in mime.as_string()
    assert mime["In-Reply-To"] == "<abc@sender.example>"
    assert mime["References"] == "<root@sender.example> <abc@sender.example>"
    assert mime["Message-ID"].endswith("@example.com>")
    back = received(mime.as_bytes(policy=policy.SMTP)).message
    assert back["text"] == "Thanks!\n"
    assert back["html"] == "<p>Thanks!</p>\n"
    assert back["attachments"][0]["filename"] == "ü.txt"


def test_every_setting_is_documented():
    import dataclasses
    from pathlib import Path

    from switchroom.servers.email.settings import Settings

    docs = (Path(__file__).resolve().parents[2] / "docs" / "email.md").read_text()
    for f in dataclasses.fields(Settings):
        assert f"| `--{f.name.replace('_', '-')}` | `SWITCHROOM_EMAIL_{f.name.upper()}` |" in docs, f.name
