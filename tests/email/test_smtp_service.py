"""What a mail operator expects of the SMTP service, with smtplib and a raw socket: AUTH
LOGIN and PLAIN both ways, the ESMTP extensions, enhanced status codes, no version in the
banner, an MX and a submission listener on one server, the EHLO name toward the relay."""

import asyncio
import base64
import smtplib
import socket

import pytest

from switchroom.layers import get_layer

from .harness import EmailProcess, RelaySink, receive_email

pytestmark = pytest.mark.slow

MESSAGE = b"Subject: submitted\r\nMessage-ID: <sub@x>\r\n\r\nhi\r\n"


@pytest.fixture(scope="module")
def relay():
    sink = RelaySink()
    yield sink
    sink.stop()


@pytest.fixture(scope="module")
def server(redis_server, relay, tmp_path_factory):
    users = tmp_path_factory.mktemp("auth") / "users"
    users.write_text("sender:s3cret\n")
    proc = EmailProcess(
        redis_server.url,
        *("--domain", "example.com", "--hostname", "mx.example.com", "--auth-file", str(users)),
        *("--submission-port", "0", "--auth-without-tls", "--relay-helo", "out.example.com"),
        *("--relay-host", "127.0.0.1", "--relay-port", str(relay.port)),
    )
    proc.submission = int(proc.log_text().split("submission (AUTH required) on 127.0.0.1:")[1].split()[0])
    yield proc
    proc.stop()


@pytest.fixture
async def layer(server):
    layer = get_layer(server.layer_url)
    await layer.flush()
    yield layer
    await layer.close()


def login(port: int, mechanism: str, initial_response: bool) -> tuple[int, bytes]:
    """AUTH with smtplib's own code for ``mechanism``, then submit one message."""
    with smtplib.SMTP("127.0.0.1", port, timeout=20) as client:
        client.ehlo()
        client.user, client.password = "sender", "s3cret"
        authobject = client.auth_login if mechanism == "LOGIN" else client.auth_plain
        code, text = client.auth(mechanism, authobject, initial_response_ok=initial_response)
        client.sendmail("sender@example.com", ["room@example.com"], MESSAGE)
        return code, text


@pytest.mark.parametrize("mechanism", ["LOGIN", "PLAIN"])
@pytest.mark.parametrize("initial_response", [True, False])
async def test_auth_login_and_plain_with_and_without_an_initial_response(
    server, layer, mechanism, initial_response
):
    code, text = await asyncio.to_thread(login, server.submission, mechanism, initial_response)
    assert (code, text) == (235, b"2.7.0 Authentication successful")
    assert (await receive_email(layer))["subject"] == "submitted"


def test_a_wrong_password_is_refused_both_ways(server):
    for mechanism in ("LOGIN", "PLAIN"):
        with smtplib.SMTP("127.0.0.1", server.submission, timeout=20) as client:
            client.ehlo()
            client.user, client.password = "sender", "wrong"
            authobject = client.auth_login if mechanism == "LOGIN" else client.auth_plain
            with pytest.raises(smtplib.SMTPAuthenticationError) as caught:
                client.auth(mechanism, authobject, initial_response_ok=False)
            assert caught.value.smtp_code == 535


def test_the_extensions_a_sender_looks_for_and_a_banner_without_a_version(server):
    with smtplib.SMTP("127.0.0.1", server.port, timeout=20) as client:
        client.ehlo()
        for extension in ("pipelining", "enhancedstatuscodes", "8bitmime", "smtputf8", "size"):
            assert client.has_extn(extension), extension
        assert not client.has_extn("auth"), "the MX listener takes no AUTH"
        assert client.mail("ann@sender.example") == (250, b"2.0.0 OK")
        assert client.rcpt("room@example.com") == (250, b"2.1.5 OK")
        assert client.rcpt("victim@elsewhere.example")[:1] == (550,)
        assert client.docmd("BOGUS")[1].startswith(b"5.5.2 ")
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        greeting = sock.recv(200)
    assert greeting == b"220 mx.example.com ESMTP\r\n"


def test_pipelined_commands_get_their_replies_in_order(server):
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        stream = sock.makefile("rb")
        stream.readline()
        sock.sendall(b"EHLO client.example\r\n")
        while not stream.readline().startswith(b"250 "):
            pass
        sock.sendall(
            b"MAIL FROM:<ann@sender.example>\r\nRCPT TO:<room@example.com>\r\n"
            b"RCPT TO:<x@elsewhere.example>\r\nDATA\r\n"
        )
        replies = [stream.readline()[:3] for _ in range(4)]
        assert replies == [b"250", b"250", b"550", b"354"]
        sock.sendall(b"Subject: pipelined\r\n\r\nbody\r\n.\r\nQUIT\r\n")
        assert stream.readline().startswith(b"250 2.0.0")
        assert stream.readline().startswith(b"221 2.0.0")


async def test_submission_requires_auth_and_relays_mail_for_elsewhere(server, layer, relay):
    def submit() -> None:
        with smtplib.SMTP("127.0.0.1", server.submission, timeout=20) as client:
            client.ehlo()
            code, text = client.mail("sender@example.com")
            assert (code, text[:5]) == (530, b"5.7.0")
            client.login("sender", "s3cret")
            raw = b"Subject: relayed\r\nMessage-ID: <relayed@x>\r\n\r\n8-bit \xc3\xbc\r\n"
            client.sendmail("sender@example.com", ["bob@remote.example", "room@example.com"], raw)

    before = len(relay.handler.messages)
    await asyncio.to_thread(submit)
    local = await receive_email(layer)
    assert (local["subject"], local["rcpt_to"]) == ("relayed", ["room@example.com"])
    mail_from, rcpts, relayed = (await asyncio.to_thread(relay.wait_for, before + 1))[-1]
    assert (mail_from, rcpts, relayed["Subject"]) == ("sender@example.com", ["bob@remote.example"], "relayed")
    assert relayed["Message-ID"] == "<relayed@x>", "relayed as it came"
    assert relay.handler.helos[-1] == "out.example.com", "--relay-helo names us toward the relay"


def test_the_mx_listener_never_relays_even_after_auth_was_tried(server):
    with smtplib.SMTP("127.0.0.1", server.port, timeout=20) as client:
        client.ehlo()
        blob = base64.b64encode(b"\0sender\0s3cret").decode()
        assert client.docmd("AUTH", f"PLAIN {blob}")[0] == 504
        client.mail("sender@example.com")
        assert client.rcpt("bob@remote.example")[0] == 550
