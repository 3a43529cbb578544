"""Health checks of real processes: readiness turns false within seconds of a Redis kill and
true after Redis returns, liveness stays true throughout, and the outage is logged once
(one warning when Redis stops answering, one line when it answers again), not once per
retry."""

import asyncio
import time

import httpx
import pytest

from switchroom.servers.slack.standin import StandIn
from switchroom.shared.redisproc import free_port

from ..processes import SwitchroomProcess

pytestmark = pytest.mark.slow

TOKENS = {"SWITCHROOM_SLACK_BOT_TOKEN": "xoxb-t", "SWITCHROOM_SLACK_APP_TOKEN": "xapp-t"}


def probe(port: int, path: str) -> httpx.Response:
    return httpx.get(f"http://127.0.0.1:{port}{path}", timeout=5)


def wait_until(check, timeout: float, what: str) -> float:
    """Seconds until ``check()`` is true; fails after ``timeout``."""
    started = time.monotonic()
    while not check():
        assert time.monotonic() - started < timeout, what
        time.sleep(0.1)
    return time.monotonic() - started


def command_for(kind: str, standin_url: str) -> tuple[list[str], str]:
    """The command line of a process of ``kind`` and the log line that says it started."""
    if kind == "http":
        return ["http", "--port", str(free_port())], "listening on"
    if kind == "worker":
        return ["worker", "examples.everything:app"], "worker reading"
    if kind == "email":
        return ["email", "--port", str(free_port()), "--domain", "x.test"], "listening for SMTP"
    return ["slack", "--api-url", standin_url], "connected to default"


@pytest.mark.parametrize("kind", ["http", "worker", "email", "slack"])
async def test_readiness_follows_redis_and_the_outage_is_logged_once(kind, redis_process):
    standin = await StandIn().start() if kind == "slack" else None
    command, started_line = command_for(kind, standin.base_url if standin else "")
    port = free_port()
    proc = SwitchroomProcess([*command, "--layer", redis_process.url, "--metrics-port", str(port)], TOKENS)
    try:
        await to_thread(proc.wait_for_log, started_line)
        assert (await to_thread(probe, port, "/readyz")).status_code == 200
        assert (await to_thread(probe, port, "/livez")).text == "live\n"

        redis_process.stop(kill=True)
        took = await to_thread(
            wait_until, lambda: probe(port, "/readyz").status_code == 503, 10, "still ready without Redis"
        )
        assert took < 10
        answer = await to_thread(probe, port, "/readyz")
        assert "not ready: the channel layer does not answer" in answer.text
        assert (await to_thread(probe, port, "/livez")).status_code == 200
        # Long enough for the readers to retry several times each.
        await asyncio.sleep(3)

        redis_process.start()
        await to_thread(wait_until, lambda: probe(port, "/readyz").status_code == 200, 15, "not ready again")
        await to_thread(proc.wait_for_log, "answers again")
        await asyncio.sleep(1)
        log = proc.log_text()
    finally:
        proc.stop()
        if standin is not None:
            await standin.stop()
    # A Redis restarted empty has lost the process's heartbeat too: saying so once is
    # right (other processes may have dropped its members), and is not the outage's line.
    lapsed = "was taken for dead: its heartbeat lapsed"
    warnings = [line for line in log.splitlines() if " WARNING " in line and lapsed not in line]
    assert len(warnings) == 2, log
    assert log.count(lapsed) <= 1, log
    assert f"redis at 127.0.0.1:{redis_process.port}/0 is unavailable" in warnings[0]
    assert "retrying quietly" in warnings[0]
    assert "answers again after" in warnings[1]


async def to_thread(function, *args):
    """Blocking checks off the loop the in-process stand-in runs on."""
    return await asyncio.to_thread(function, *args)
