"""End to end: ``switchroom email`` as a subprocess on real Redis, ``smtplib`` as the
client, an aiosmtpd relay as the outbound side."""

import asyncio
import smtplib
from email import message_from_bytes, policy
from email.message import EmailMessage

import pytest

from switchroom.layers import ChannelFull, get_layer

from .harness import EmailProcess, RelaySink, receive_email, self_signed

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def relay():
    sink = RelaySink()
    yield sink
    sink.stop()


@pytest.fixture(scope="module")
def server(redis_server, relay):
    proc = EmailProcess(
        redis_server.url,
        "--domain",
        "example.com",
        "--address",
        "someone@other.example",
        "--max-message-size",
        "5000000",
        "--max-recipients",
        "3",
        "--max-connections-per-ip",
        "3",
        "--relay-host",
        "127.0.0.1",
        "--relay-port",
        str(relay.port),
        "--retry-for",
        "1.5",
        "--retry-backoff",
        "0.2",
        "--sender",
        "room@example.com",
        layer_query="&durable_capacity=40",
    )
    yield proc
    proc.stop()


@pytest.fixture
async def layer(server):
    layer = get_layer(server.layer_url)
    await layer.flush()
    yield layer
    await layer.flush()
    await layer.close()


def mail(subject: str = "hello", to: str = "room@example.com", size: int = 0) -> EmailMessage:
    message = EmailMessage()
    message["From"] = "Ann <ann@sender.example>"
    message["To"] = to
    message["Subject"] = subject
    message["Message-ID"] = "<m1@sender.example>"
    message.set_content("Hello room")
    message.add_alternative("<p>Hello room</p>", subtype="html")
    message.add_attachment(b"\x00\x01data", maintype="application", subtype="octet-stream", filename="d.bin")
    if size:
        message.add_attachment(bytes(size), maintype="application", subtype="zip", filename="big.zip")
    return message


def send(port: int, message: EmailMessage, to: list[str] | None = None) -> dict:
    with smtplib.SMTP("127.0.0.1", port, timeout=20) as client:
        return client.send_message(message, from_addr="ann@sender.example", to_addrs=to or [message["To"]])


async def test_round_trip_through_a_worker_reply(server, layer, relay):
    await asyncio.to_thread(send, server.port, mail())
    message = await receive_email(layer)
    assert message["mail_from"] == "ann@sender.example"
    assert message["rcpt_to"] == ["room@example.com"]
    assert message["peer"][0] == "127.0.0.1"
    assert message["subject"] == "hello"
    assert message["text"] == "Hello room\n"
    assert message["html"] == "<p>Hello room</p>\n"
    assert message["attachments"][0]["content"] == b"\x00\x01data"
    assert message["raw"].startswith(b"From: Ann")
    # The worker's side: answer by email, threaded.
    await layer.send(
        "email.send",
        {
            "to": [message["mail_from"]],
            "subject": "Re: hello",
            "text": "Got it",
            "in_reply_to": message["message_id"],
            "references": [message["message_id"]],
        },
    )
    sender, recipients, reply = (await asyncio.to_thread(relay.wait_for, 1))[-1]
    assert sender == "room@example.com"
    assert recipients == ["ann@sender.example"]
    assert reply["In-Reply-To"] == "<m1@sender.example>"
    assert reply["Subject"] == "Re: hello"
    assert reply.get_content().strip() == "Got it"


async def test_other_recipients_get_550(server, layer):
    with pytest.raises(smtplib.SMTPRecipientsRefused) as caught:
        await asyncio.to_thread(send, server.port, mail(to="victim@elsewhere.example"))
    assert caught.value.recipients["victim@elsewhere.example"][0] == 550
    await asyncio.to_thread(send, server.port, mail(to="someone@other.example"))
    message = await receive_email(layer)
    assert message["rcpt_to"] == ["someone@other.example"]


async def test_too_many_recipients_get_452(server, layer):
    to = [f"r{i}@example.com" for i in range(5)]
    with smtplib.SMTP("127.0.0.1", server.port, timeout=20) as client:
        client.ehlo()
        client.mail("ann@sender.example")
        codes = [client.rcpt(address)[0] for address in to]
    assert codes == [250, 250, 250, 452, 452]


async def test_message_over_the_size_limit_gets_552(server, layer):
    with pytest.raises((smtplib.SMTPDataError, smtplib.SMTPSenderRefused)) as caught:
        await asyncio.to_thread(send, server.port, mail(size=6_000_000))
    assert caught.value.smtp_code == 552


async def test_big_attachments_come_back_whole(server, layer):
    original = mail(size=2_500_000)
    await asyncio.to_thread(send, server.port, original)
    message = await receive_email(layer)
    assert message["attachments"][1]["content"] == bytes(2_500_000)
    assert len(message["raw"]) == message["size"]
    reparsed = message_from_bytes(message["raw"], policy=policy.default)
    assert [part.get_content() for part in reparsed.iter_attachments()][1] == bytes(2_500_000)


async def test_full_layer_gets_451_and_nothing_is_lost(server, layer):
    with pytest.raises(ChannelFull):
        for _ in range(layer.durable.settings.capacity * 2):
            await layer.send("email.receive", {"filler": True})
    with pytest.raises(smtplib.SMTPDataError) as caught:
        await asyncio.to_thread(send, server.port, mail(subject="retry me"))
    assert caught.value.smtp_code == 451


async def test_per_ip_connection_limit_gets_421(server, layer):
    clients = [smtplib.SMTP("127.0.0.1", server.port, timeout=10) for _ in range(3)]
    try:
        with pytest.raises(smtplib.SMTPConnectError) as caught:
            smtplib.SMTP("127.0.0.1", server.port, timeout=10)
        assert caught.value.smtp_code == 421
    finally:
        for client in clients:
            client.quit()


async def test_a_permanent_refusal_goes_to_the_dead_letter_channel_at_once(server, layer, relay):
    await layer.send("email.send", {"to": ["reject-me@example.net"], "text": "x", "id": "job-1"})
    _, failed = await layer.receive(["email.send.failed"], timeout=10)
    assert failed["message"]["id"] == "job-1"
    assert failed["error"].startswith("permanent failure")
    assert failed["attempts"] == 1
    assert failed["undelivered"] == ["reject-me@example.net"]


async def test_a_busy_relay_is_retried_until_it_takes_the_message(server, layer, relay):
    relay.handler.busy = 2
    before = len(relay.handler.messages)
    try:
        await layer.send("email.send", {"to": ["ann@sender.example"], "subject": "patience", "text": "x"})
        _, _, delivered = (await asyncio.to_thread(relay.wait_for, before + 1))[-1]
        assert delivered["Subject"] == "patience"
        assert relay.handler.busy == 0
        assert len(relay.handler.messages) == before + 1
    finally:
        relay.handler.busy = 0


async def test_recipients_refused_for_good_are_reported_and_the_others_served(server, layer, relay):
    before = len(relay.handler.messages)
    await layer.send(
        "email.send", {"to": ["ok@example.net", "reject-me@example.net", "later@example.net"], "text": "x"}
    )
    _, failed = await layer.receive(["email.send.failed"], timeout=10)
    assert sorted(failed["undelivered"]) == ["later@example.net", "reject-me@example.net"]
    assert failed["attempts"] > 1  # "later" was retried until --retry-for ran out
    delivered = relay.handler.messages[before:]
    assert [recipients for _, recipients, _ in delivered] == [["ok@example.net"]]


async def test_smtputf8_mail_is_taken(server, layer):
    message = EmailMessage()
    message["From"] = "Zoë <zoë@sender.example>"
    message["To"] = "jürgen@example.com"
    message["Subject"] = "Grüße"
    message.set_content("Hallo ü")
    with smtplib.SMTP("127.0.0.1", server.port, timeout=20) as client:
        client.send_message(message)  # SMTPUTF8, raw UTF-8 headers
    received = await receive_email(layer)
    assert received["rcpt_to"] == ["jürgen@example.com"]
    assert received["from"] == "Zoë <zoë@sender.example>"
    assert (received["subject"], received["text"]) == ("Grüße", "Hallo ü\n")


async def test_delivery_through_a_relay_with_starttls_and_auth(redis_server, tmp_path):
    cert, key = self_signed(tmp_path)
    relay = RelaySink(tls=(cert, key), users={"switchroom": "relay-s3cret"})
    proc = EmailProcess(
        redis_server.url,
        "--domain", "example.com",
        "--relay-host", "127.0.0.1",
        "--relay-port", str(relay.port),
        "--relay-starttls",
        env={
            "SWITCHROOM_RELAY_USER": "switchroom",
            "SWITCHROOM_RELAY_PASSWORD": "relay-s3cret",
            "SWITCHROOM_RELAY_CAFILE": str(cert),
        },
    )
    layer = get_layer(proc.layer_url)
    try:
        await layer.send("email.send", {"to": ["ann@sender.example"], "subject": "over TLS", "text": "x"})
        _, _, delivered = (await asyncio.to_thread(relay.wait_for, 1))[0]
        assert delivered["Subject"] == "over TLS"
        assert relay.handler.logins == ["switchroom"]
        assert "relay-s3cret" not in proc.log_text()
    finally:
        await layer.close()
        proc.stop()
        relay.stop()


async def test_relay_down_is_retried_then_reported(redis_server):
    proc = EmailProcess(
        redis_server.url,
        "--domain",
        "example.com",
        "--relay-host",
        "127.0.0.1",
        "--relay-port",
        "1",
        "--retry-for",
        "1",
        "--retry-backoff",
        "0.2",
    )
    layer = get_layer(proc.layer_url)
    try:
        await layer.send("email.send", {"to": ["a@example.net"], "text": "x", "id": "job-2"})
        _, failed = await layer.receive(["email.send.failed"], timeout=15)
        assert failed["message"]["id"] == "job-2"
        assert failed["error"].startswith("temporary failure")
        assert failed["attempts"] >= 3
        assert "retrying in" in proc.log_text()
    finally:
        await layer.close()
        proc.stop()


async def test_redis_down_gets_451(redis_process):
    proc = EmailProcess(redis_process.url, "--domain", "example.com")
    try:
        redis_process.stop(kill=True)
        with pytest.raises(smtplib.SMTPDataError) as caught:
            await asyncio.to_thread(send, proc.port, mail())
        assert caught.value.smtp_code == 451
        redis_process.start()
        await asyncio.sleep(0.5)
        await asyncio.to_thread(send, proc.port, mail(subject="after"))
        layer = get_layer(proc.layer_url)
        try:
            message = await receive_email(layer)
            assert message["subject"] == "after"
        finally:
            await layer.close()
    finally:
        proc.stop()


async def test_starttls_and_auth_on_the_submission_listener(redis_server, tmp_path):
    cert, key = self_signed(tmp_path)
    users = tmp_path / "users"
    users.write_text("sender:s3cret\n")
    proc = EmailProcess(
        redis_server.url,
        "--domain",
        "example.com",
        "--tls-cert",
        str(cert),
        "--tls-key",
        str(key),
        "--auth-file",
        str(users),
        "--submission-port",
        "0",
    )
    layer = get_layer(proc.layer_url)
    submission = int(proc.log_text().split("submission (AUTH required) on 127.0.0.1:")[1].split()[0])
    try:

        def session() -> None:
            import ssl

            context = ssl.create_default_context(cafile=str(cert))
            with smtplib.SMTP("127.0.0.1", submission, timeout=20) as client:
                client.ehlo()
                with pytest.raises(smtplib.SMTPNotSupportedError):
                    client.login("sender", "s3cret")
                client.starttls(context=context)
                client.ehlo()
                with pytest.raises(smtplib.SMTPAuthenticationError):
                    client.login("sender", "wrong")
                client.login("sender", "s3cret")
                client.send_message(mail(), from_addr="ann@sender.example", to_addrs=["room@example.com"])
            with smtplib.SMTP("127.0.0.1", proc.port, timeout=20) as client:
                client.starttls(context=context)
                client.ehlo()
                assert not client.has_extn("auth"), "the MX listener offers no AUTH"

        await asyncio.to_thread(session)
        message = await receive_email(layer)
        assert message["subject"] == "hello"
        assert "s3cret" not in proc.log_text()
    finally:
        await layer.close()
        proc.stop()
