"""A relay for development: it accepts what the email server delivers and logs it instead
of sending it on, so replies by email can be seen without a real mail server.

    python -m switchroom.servers.email.devrelay --port 2526
"""

import argparse
import asyncio
import logging
from email import message_from_bytes, policy
from typing import Any

from aiosmtpd.smtp import SMTP

from switchroom.shared.logs import FORMATS, setup_logging
from switchroom.shared.serving import stop_event

log = logging.getLogger("switchroom.devrelay")


class LoggingHandler:
    """Logs each message: envelope, subject, threading and the start of the text."""

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        mail = message_from_bytes(envelope.original_content or b"", policy=policy.default)
        body = mail.get_body(preferencelist=("plain", "html"))
        text = body.get_content().strip() if body is not None else ""
        log.info(
            "outbound mail from %s to %s: %r (in reply to %s): %s",
            envelope.mail_from,
            ", ".join(envelope.rcpt_tos),
            mail["subject"],
            mail["in-reply-to"],
            text[:200].replace("\n", " / "),
        )
        return "250 OK: logged, not delivered"


async def start(bind: str, port: int) -> asyncio.Server:
    """Serve the logging relay on the running loop."""
    handler = LoggingHandler()
    server = await asyncio.get_running_loop().create_server(
        lambda: SMTP(handler, hostname="devrelay.localhost"), bind, port
    )
    log.info("development relay on %s:%d logs outbound mail instead of sending it", bind,
             server.sockets[0].getsockname()[1])
    return server


async def _serve(bind: str, port: int) -> None:
    server = await start(bind, port)
    stop = stop_event()
    await stop.wait()
    server.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m switchroom.servers.email.devrelay", description=__doc__)
    parser.add_argument("--bind", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=2526)
    parser.add_argument("--log-format", choices=FORMATS, default="text")
    args = parser.parse_args(argv)
    setup_logging("info", "devrelay", args.log_format)
    asyncio.run(_serve(args.bind, args.port))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
