"""``rediss://`` end to end: the layer, and ``switchroom http`` with a worker, over a real
TLS handshake (a TLS proxy in front of a real redis-server); untrusted certificates and
missing client certificates refused at once; and no password in any process's output."""

import asyncio
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote, urlencode

import httpx
import pytest
import redis

from switchroom.layers import LayerUnavailable, get_layer
from switchroom.shared.redisproc import RedisProcess, free_port, free_ports

from ..processes import SwitchroomProcess
from ..tlsproxy import KEY_PASSWORD, Certificates, TlsProxy, make_certificates, server_context

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    # Characters that must be percent-encoded in a query string, to prove paths survive.
    return make_certificates(tmp_path_factory.mktemp("certs & keys #1"))


@pytest.fixture(scope="module")
def plain_redis() -> Iterator[RedisProcess]:
    with RedisProcess() as server:
        yield server


@pytest.fixture(scope="module")
def tls_redis(plain_redis: RedisProcess, certs: Certificates) -> Iterator[TlsProxy]:
    """TLS with a certificate for 127.0.0.1 from the test CA."""
    with TlsProxy(plain_redis.port, server_context(certs.server_cert, certs.server_key)) as proxy:
        yield proxy


@pytest.fixture(scope="module")
def mutual_tls_redis(plain_redis: RedisProcess, certs: Certificates) -> Iterator[TlsProxy]:
    """TLS that also demands a client certificate from the test CA."""
    context = server_context(certs.server_cert, certs.server_key, client_ca=certs.ca)
    with TlsProxy(plain_redis.port, context) as proxy:
        yield proxy


def tls_url(port: int, password: str = "", **query: str) -> str:
    credentials = f":{quote(password, safe='')}@" if password else ""
    return f"rediss://{credentials}127.0.0.1:{port}/0?{urlencode(query)}"


def client_cert_options(certs: Certificates) -> dict[str, str]:
    return {
        "ssl_certfile": str(certs.client_cert),
        "ssl_keyfile": str(certs.client_key),
        "ssl_password": KEY_PASSWORD,
    }


async def test_send_receive_and_group_send_over_tls(tls_redis: TlsProxy, certs: Certificates) -> None:
    url = tls_url(tls_redis.port, ssl_ca_certs=str(certs.ca), prefix=f"tls{uuid.uuid4().hex[:8]}")
    sender, receiver = get_layer(url), get_layer(url)
    try:
        await sender.send("tls.test", {"text": "over TLS", "blob": b"\x00\xff"})
        assert await receiver.receive(["tls.test"], timeout=5) == (
            "tls.test",
            {"text": "over TLS", "blob": b"\x00\xff"},
        )
        reply = await receiver.new_channel("tls.reply!")
        await receiver.group_add("room", reply)
        assert (await sender.group_send("room", {"n": 1})).reached == 1
        assert await receiver.inbox.receive(1, timeout=5) == [(reply, {"n": 1})]
        assert await sender.send_many([("tls.batch", {"i": i}) for i in range(50)]) == [None] * 50
        got = await receiver.receive_many(["tls.batch"], max_messages=100, timeout=5)
        assert [m["i"] for _, m in got] == list(range(50))
        await receiver.flush()
    finally:
        await sender.close()
        await receiver.close()
    assert tls_redis.handshakes >= 2, "the layer did not go through the TLS endpoint"


@pytest.mark.parametrize(
    "case, expected",
    [
        ("signed by an unknown CA", "certificate verify failed: unable to get local issuer certificate"),
        ("for another host name", "certificate verify failed: IP address mismatch"),
        ("no CA given (system store)", "certificate verify failed: unable to get local issuer certificate"),
    ],
)
async def test_an_untrusted_certificate_is_refused_at_once(
    case: str, expected: str, plain_redis: RedisProcess, certs: Certificates
) -> None:
    cert, key, query = {
        "signed by an unknown CA": (certs.rogue_cert, certs.rogue_key, {"ssl_ca_certs": str(certs.ca)}),
        "for another host name": (
            certs.wrong_name_cert,
            certs.wrong_name_key,
            {"ssl_ca_certs": str(certs.ca)},
        ),
        "no CA given (system store)": (certs.server_cert, certs.server_key, {}),
    }[case]
    with TlsProxy(plain_redis.port, server_context(cert, key)) as proxy:
        layer = get_layer(tls_url(proxy.port, **query), connect_timeout=5, socket_timeout=10)
        started = time.monotonic()
        try:
            with pytest.raises(LayerUnavailable, match=expected):
                await layer.send("tls.refused", {"n": 1})
        finally:
            await layer.close()
        assert time.monotonic() - started < 2, "the refusal waited for a timeout"
        assert proxy.handshakes == 0


async def test_a_client_certificate_is_sent_when_the_server_demands_one(
    mutual_tls_redis: TlsProxy, certs: Certificates
) -> None:
    without = get_layer(tls_url(mutual_tls_redis.port, ssl_ca_certs=str(certs.ca)), connect_timeout=5)
    started = time.monotonic()
    try:
        with pytest.raises(LayerUnavailable):
            await without.send("tls.mutual", {"n": 1})
    finally:
        await without.close()
    assert time.monotonic() - started < 2
    url = tls_url(mutual_tls_redis.port, ssl_ca_certs=str(certs.ca), **client_cert_options(certs))
    layer = get_layer(url, prefix=f"tls{uuid.uuid4().hex[:8]}")
    try:
        await layer.send("tls.mutual", {"n": 2})
        assert await layer.receive(["tls.mutual"], timeout=5) == ("tls.mutual", {"n": 2})
    finally:
        await layer.close()


def test_tls_options_are_checked_when_the_layer_is_built(certs: Certificates) -> None:
    with pytest.raises(ValueError, match="need a rediss:// URL"):
        get_layer(f"redis://127.0.0.1:6379/0?ssl_ca_certs={certs.ca}")
    with pytest.raises(ValueError, match="ssl_ca_certs: no such file"):
        get_layer("rediss://127.0.0.1:6379/0?ssl_ca_certs=/nonexistent/ca.pem")
    with pytest.raises(ValueError, match="ssl_cert_reqs must be one of"):
        get_layer("rediss://127.0.0.1:6379/0?ssl_cert_reqs=sometimes")
    with pytest.raises(ValueError, match="ssl_keyfile needs ssl_certfile"):
        get_layer(f"rediss://127.0.0.1:6379/0?ssl_keyfile={quote(str(certs.client_key))}")
    server = SwitchroomProcess(
        ["http", "--port", "0", "--layer", "redis://:pw@127.0.0.1:6379/0?ssl_ca_certs=ca.pem"]
    )
    assert server.proc.wait(20) == 2
    assert "cannot start: bad --layer: TLS options (ssl_ca_certs) need a rediss:// URL" in stopped(server)


def stopped(process: SwitchroomProcess) -> str:
    """Stop ``process``; everything it wrote."""
    process.stop()
    return process.stopped_log


def http_server(layer_url: str, port: int) -> SwitchroomProcess:
    command = ["http", "--port", str(port), "--layer", layer_url, "--log-level", "debug"]
    return SwitchroomProcess(command, ready="listening on")


async def get_until_ok(url: str, timeout: float = 20) -> httpx.Response:
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(timeout=5) as client:
        while True:
            response = await client.get(url)
            if response.status_code == 200:
                return response
            assert time.monotonic() < deadline, f"{url}: {response.status_code} {response.text}"
            await asyncio.sleep(0.1)


async def test_switchroom_http_and_a_worker_serve_a_request_over_tls(
    tls_redis: TlsProxy, certs: Certificates
) -> None:
    url = tls_url(tls_redis.port, ssl_ca_certs=str(certs.ca), prefix=f"tls{uuid.uuid4().hex[:8]}")
    before = tls_redis.handshakes
    port = free_port()
    server = http_server(url, port)
    worker = SwitchroomProcess(["worker", "tests.worker.apps:app", "--layer", url])
    try:
        response = await get_until_ok(f"http://127.0.0.1:{port}/items/7")
        assert response.json() == {"id": 7, "type": "int"}
    finally:
        logs = stopped(server) + stopped(worker)
    assert tls_redis.handshakes - before >= 2, logs
    assert "Traceback" not in logs, logs


@pytest.mark.parametrize("scheme", ["redis", "rediss"])
async def test_no_password_appears_in_any_output(scheme: str, certs: Certificates) -> None:
    """Served, refused at start for a wrong password, and failing with Redis gone: the Redis
    password (and the client key's passphrase) never reach stdout, stderr, the access log or a
    client."""
    password = "s3cr#t/p@ss word"
    wrong = "wr0ng-s3cret"
    with RedisProcess() as plain:
        with redis.Redis(port=plain.port) as admin:
            admin.config_set("requirepass", password)
        proxy = None
        if scheme == "rediss":
            context = server_context(certs.server_cert, certs.server_key, client_ca=certs.ca)
            proxy = TlsProxy(plain.port, context).start()
            tls = {"ssl_ca_certs": str(certs.ca), **client_cert_options(certs)}

            def url(secret: str) -> str:
                return tls_url(proxy.port, secret, **tls)
        else:

            def url(secret: str) -> str:
                return f"redis://:{quote(secret, safe='')}@127.0.0.1:{plain.port}/0"

        good_port, wrong_port = free_ports(2)
        processes = [
            http_server(url(password), good_port),
            SwitchroomProcess(
                ["http", "--port", str(wrong_port), "--layer", url(wrong), "--layer-wait", "1"]
            ),
        ]
        processes.append(SwitchroomProcess(["worker", "tests.worker.apps:app", "--layer", url(password)]))
        bodies = []
        try:
            assert processes[1].proc.wait(30) == 2
            bodies.append((await get_until_ok(f"http://127.0.0.1:{good_port}/items/3")).text)
            async with httpx.AsyncClient(timeout=10) as client:
                plain.stop(kill=True)
                down = await client.get(f"http://127.0.0.1:{good_port}/items/5")
                assert down.status_code == 503
                bodies.append(down.text)
        finally:
            outputs = [stopped(process) for process in processes]
            if proxy is not None:
                proxy.close()
    server_log, wrong_log, worker_log = outputs
    assert '"GET /items/3 HTTP/1.1" 200' in server_log, server_log
    assert "503 GET /items/5: the channel layer failed: redis at 127.0.0.1:" in server_log, server_log
    assert "cannot start: the channel layer did not answer within 1 s" in wrong_log, wrong_log
    assert "redis at 127.0.0.1:" in wrong_log, wrong_log
    secrets = [password, quote(password, safe=""), quote(password), wrong, KEY_PASSWORD]
    for where, text in [("server", server_log), ("wrong", wrong_log), ("worker", worker_log)] + [
        ("client", body) for body in bodies
    ]:
        for secret in secrets:
            assert secret not in text, f"{secret!r} in the {where} output:\n{text}"
    assert "127.0.0.1:" not in bodies[1], "a 503 told the client where Redis is"
