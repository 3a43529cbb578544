"""SMTP/MIME ↔ messages without sockets, over real-world message shapes."""

import base64
import quopri
from email import policy
from email.message import EmailMessage

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from switchroom.layers import get_layer
from switchroom.shared.mail import parse
from switchroom.shared.mail.compose import compose
from switchroom.shared.messages import validate

ENVELOPE = {
    "mail_from": "ann@sender.example",
    "rcpt_to": ["room@example.com"],
    "peer": ["127.0.0.1", 5000],
    "helo": "mx.sender.example",
}


def received(raw: bytes) -> dict:
    """What the server sends for ``raw``, parsed as the worker runtime parses it."""
    sent = parse.incoming(raw, **ENVELOPE)
    validate("email.receive", sent)
    message = parse.received(sent)
    validate("email.receive", message)
    msgpack.packb(message)
    return message


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
    message = received(ALTERNATIVE)
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
    message = received(NESTED)
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
    message = received(raw)
    assert message["raw"] == raw


def test_the_server_sends_the_envelope_and_raw_message_and_finds_the_message_id():
    sent = parse.incoming(RELATED, **{**ENVELOPE, "mail_from": "<>"})
    assert sent == {
        "mail_from": "",
        "rcpt_to": ["room@example.com"],
        "peer": ["127.0.0.1", 5000],
        "helo": "mx.sender.example",
        "message_id": "<folded.id@sender.example>",
        "size": len(RELATED),
        "raw": RELATED,
    }
    assert parse.message_id_of(b"Subject: x\r\n\r\nMessage-ID: <in.the.body>\r\n") is None
    assert parse.message_id_of(b"message-id:   <lower@case>  \r\n\r\n") == "<lower@case>"
    given = {"subject": "kept", "raw": ALTERNATIVE}
    assert parse.received(given)["subject"] == "kept"
    assert parse.received(given)["text"] == "Hello room,\nplain body."
    assert parse.received({"subject": "no raw"}) == {"subject": "no raw"}


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
    back = received(mime.as_bytes(policy=policy.SMTP))
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


SMTPUTF8 = (
    "From: Zoë <zoë@exämple.org>\r\nTo: jürgen@example.com\r\nSubject: Grüße\r\n"
    "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\nbody ü\r\n"
).encode() + b"Latin-1 byte in a body line: \xe9\r\n"


def test_raw_utf8_headers_from_smtputf8_mail():
    message = received(SMTPUTF8)
    assert message["from"] == "Zoë <zoë@exämple.org>"
    assert message["to"] == ["jürgen@example.com"]
    assert message["subject"] == "Grüße"
    assert ["To", "jürgen@example.com"] in message["headers"]
    assert message["text"] == "body ü\nLatin-1 byte in a body line: \ufffd\n"


def test_bytes_that_are_not_utf8_in_headers_become_replacement_characters():
    message = received(b"Subject: caf\xe9\r\nFrom: \xff\xfe <a@b.example>\r\n\r\nx\r\n")
    assert message["subject"] == "caf\ufffd"
    assert message["headers"][0] == ["Subject", "caf\ufffd"]


@pytest.mark.parametrize(
    ("charset", "text"),
    [
        ("windows-1252", "“Smart quotes” – and €"),
        ("iso-2022-jp", "こんにちは、世界"),
        ("gb2312", "你好，世界"),
        ("koi8-r", "Привет, мир"),
        ("iso-8859-15", "Größe: 5 €"),
    ],
)
def test_bodies_in_other_charsets(charset, text):
    for encoding in ("base64", "quoted-printable", "8bit"):
        body = text.encode(charset)
        if encoding == "base64":
            body = base64.encodebytes(body).replace(b"\n", b"\r\n")
        elif encoding == "quoted-printable":
            body = quopri.encodestring(body).replace(b"\n", b"\r\n") + b"\r\n"
        raw = (
            f"Content-Type: text/plain; charset={charset}\r\nContent-Transfer-Encoding: {encoding}\r\n\r\n"
        ).encode() + body
        assert received(raw)["text"].rstrip("\n") == text, encoding


RELATED = b"""From: news@sender.example\r
To: room@example.com\r
Subject: =?UTF-8?Q?Newsletter_=E2=80=94_November?=\r
Message-ID:\r
 <folded.id@sender.example>\r
X-Folded: first part\r
\tsecond part\r
MIME-Version: 1.0\r
Content-Type: multipart/alternative; boundary="alt"\r
\r
--alt\r
Content-Type: text/plain; charset=us-ascii\r
\r
Read it in HTML.\r
--alt\r
Content-Type: multipart/related; boundary="rel"; type="text/html"\r
\r
--rel\r
Content-Type: text/html; charset=utf-8\r
\r
<img src="cid:logo@sender.example">\r
--rel\r
Content-Type: image/png\r
Content-ID: <logo@sender.example>\r
Content-Disposition: inline\r
Content-Transfer-Encoding: base64\r
\r
iVBORw0KGgo=\r
--rel--\r
--alt--\r
"""


def test_html_with_inline_images_and_folded_headers():
    message = received(RELATED)
    assert message["subject"] == "Newsletter — November"
    assert message["message_id"] == "<folded.id@sender.example>"
    assert ["X-Folded", "first part\tsecond part"] in message["headers"]
    assert message["text"] == "Read it in HTML."
    assert message["html"] == '<img src="cid:logo@sender.example">'
    [image] = message["attachments"]
    assert (image["content_type"], image["content_id"], image["content"]) == (
        "image/png",
        "logo@sender.example",
        b"\x89PNG\r\n\x1a\n",
    )


FORWARD = b"""From: ann@sender.example\r
To: room@example.com\r
Subject: Fwd: the original\r
Content-Type: multipart/mixed; boundary="fwd"\r
\r
--fwd\r
Content-Type: text/plain\r
\r
See below.\r
--fwd\r
Content-Type: message/rfc822\r
Content-Disposition: attachment; filename="original.eml"\r
\r
From: bob@elsewhere.example\r
Subject: the original\r
Content-Type: multipart/mixed; boundary="inner"\r
\r
--inner\r
Content-Type: text/plain\r
\r
Inner text.\r
--inner\r
Content-Type: application/pdf\r
Content-Disposition: attachment; filename="=?utf-8?q?=C3=BCber.pdf?="\r
\r
%PDF\r
--inner--\r
--fwd--\r
"""


def test_a_forwarded_email_is_one_attachment():
    message = received(FORWARD)
    assert message["text"] == "See below."
    [forwarded] = message["attachments"]
    assert (forwarded["filename"], forwarded["content_type"]) == ("original.eml", "message/rfc822")
    inner = received(forwarded["content"])
    assert inner["subject"] == "the original"
    assert inner["text"] == "Inner text."
    assert [(a["filename"], a["content"]) for a in inner["attachments"]] == [("über.pdf", b"%PDF")]


def test_defects_are_named():
    message = received(b'Content-Type: multipart/mixed; boundary="gone"\r\n\r\nno parts at all\r\n')
    assert "StartBoundaryNotFoundDefect" in message["defects"]
    assert received(ALTERNATIVE)["defects"] == []


async def test_a_big_email_travels_whole_in_one_durable_entry():
    layer = get_layer("memory://")
    big_text = "line of text ü\n" * 30_000
    mime = EmailMessage()
    mime["From"] = "ann@sender.example"
    mime["To"] = ", ".join(f"person{i}@example.com" for i in range(3000))
    mime["Subject"] = "everything big"
    mime.set_content(big_text)
    blobs = [bytes([i]) * size for i, size in enumerate((7_000_000, 10, 3_000_000))]
    for i, blob in enumerate(blobs):
        mime.add_attachment(blob, maintype="application", subtype="octet-stream", filename=f"{i}.bin")
    raw = mime.as_bytes(policy=policy.SMTP)
    try:
        await layer.durable.add("email.receive", parse.incoming(raw, **ENVELOPE))
        _, sent = await layer.receive(["email.receive"], timeout=1)
        whole = parse.received(sent)
        assert whole["raw"] == raw
        assert [a["content"] for a in whole["attachments"]] == blobs
        assert whole["text"] == big_text
        assert len(whole["to"]) == 3000
    finally:
        await layer.close()


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=2000))
def test_any_bytes_give_a_message_that_travels(raw):
    assert received(raw)["raw"] == raw


HEADER_TEXT = st.text(st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp")), max_size=60)
# Body text: any characters but the ones str.splitlines treats as line ends besides \n.
BODY_TEXT = st.text(
    st.characters(blacklist_categories=("Cs", "Zl", "Zp"), blacklist_characters="\r\x0b\x0c\x1c\x1d\x1e\x85"),
    min_size=1,
    max_size=300,
)


@settings(max_examples=60, deadline=None)
@given(
    subject=HEADER_TEXT,
    text=BODY_TEXT,
    files=st.lists(st.tuples(HEADER_TEXT.map(str.strip).filter(bool), st.binary(max_size=300)), max_size=3),
)
def test_what_compose_builds_parses_back(subject, text, files):
    outgoing = {
        "to": ["ann@sender.example"],
        "subject": subject,
        "text": text,
        "attachments": [
            {"filename": name, "content_type": "application/octet-stream", "content": data}
            for name, data in files
        ],
    }
    mime, _, _ = compose(outgoing, "room@example.com")
    back = received(mime.as_bytes(policy=policy.SMTP))
    assert back["subject"].split() == subject.split()
    assert back["text"].rstrip("\n") == text.rstrip("\n")
    assert [(a["filename"], a["content"]) for a in back["attachments"]] == files


def test_line_breaks_in_reply_headers_cannot_add_headers():
    mime, _, _ = compose(
        {
            "to": ["a@b.example"],
            "subject": "hi\r\nBcc: victim@c.example",
            "text": "x",
            "headers": [["X-Tag", "a\nBcc: other@c.example"]],
        },
        "room@example.com",
    )
    assert mime["Bcc"] is None
    assert mime["Subject"] == "hi Bcc: victim@c.example"
