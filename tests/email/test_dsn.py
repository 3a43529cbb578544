"""Bounces as pure code: who gets one (never the null sender), and the RFC 3464 report."""

from email import message_from_bytes, policy

from switchroom.shared.mail.dsn import dsn_send, header_block, report
from switchroom.shared.messages import validate

RAW = (
    b"From: Ann <ann@sender.example>\r\nTo: room@example.com\r\nSubject: Hello\r\n"
    b"Message-ID: <m1@sender.example>\r\n\r\nbody\r\n"
)
ORIGINAL = {
    "mail_from": "ann@sender.example",
    "rcpt_to": ["room@example.com", "nobody@example.com"],
    "message_id": "<m1@sender.example>",
    "subject": "Hello",
    "raw": RAW,
    "arrival": 1_700_000_000.5,
}


def bounce(**changes):
    return dsn_send(
        {**ORIGINAL, **changes}, ["nobody@example.com"], "5.1.1", "550 5.1.1 no such user", "Why."
    )


def test_a_bounce_goes_from_the_null_sender_to_the_envelope_sender():
    message = bounce()
    validate("email.send", message)
    assert message["to"] == ["ann@sender.example"]
    assert message["mail_from"] == ""
    assert message["from"] == "Mail Delivery System <MAILER-DAEMON@example.com>"
    assert "<nobody@example.com>: 550 5.1.1 no such user" in message["text"]
    assert message["dsn"]["recipients"] == [
        {
            "address": "nobody@example.com",
            "status": "5.1.1",
            "action": "failed",
            "diagnostic": "550 5.1.1 no such user",
        }
    ]
    assert message["dsn"]["headers"] == header_block(RAW)
    assert dsn_send(ORIGINAL, ["x@example.com"], "5.1.1", "d", "e", sender="postmaster@x.com")["from"] == (
        "postmaster@x.com"
    )


def test_a_bounce_is_never_bounced():
    assert bounce(mail_from="") is None
    assert bounce(mail_from="<>") is None


def test_the_report_is_a_multipart_report_a_mail_program_can_read():
    mime = report(bounce(), "mx.example.com")
    parsed = message_from_bytes(mime.as_bytes(policy=policy.SMTP), policy=policy.default)
    assert parsed.get_content_type() == "multipart/report"
    assert parsed.get_param("report-type") == "delivery-status"
    assert parsed["Auto-Submitted"] == "auto-replied"
    assert parsed["In-Reply-To"] == "<m1@sender.example>"
    human, status, headers = parsed.iter_parts()
    assert human.get_content_type() == "text/plain" and "nobody@example.com" in human.get_content()
    assert status.get_content_type() == "message/delivery-status"
    per_message, per_recipient = status.get_payload()
    assert per_message["Reporting-MTA"] == "dns; mx.example.com"
    assert "14 Nov 2023" in per_message["Arrival-Date"]
    assert per_recipient["Final-Recipient"] == "rfc822; nobody@example.com"
    assert (per_recipient["Action"], per_recipient["Status"]) == ("failed", "5.1.1")
    assert per_recipient["Diagnostic-Code"] == "smtp; 550 5.1.1 no such user"
    assert headers.get_content_type() == "text/rfc822-headers"
    assert "Subject: Hello" in headers.get_content()
