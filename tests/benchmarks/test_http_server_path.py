"""The server-path harness runs end to end: every request it feeds is answered with 200."""

from bench.http_server_path import run


async def test_the_server_path_harness_answers_every_request() -> None:
    assert await run(200) > 0
