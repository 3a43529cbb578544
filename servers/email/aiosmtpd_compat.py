"""The parts of aiosmtpd's private API the inbound server relies on, in one place.

aiosmtpd offers no public hook for reading DATA ourselves (its reader takes one line per
call and bounds the message only after reading it), so ``inbound.LimitedSMTP`` replaces
``smtp_DATA`` and needs the session's stream reader and writer, the DATA hook call and
the state reset that follow a message, the command timeout, and the address parser it
wraps. Each is named here for the versions ``SUPPORTED`` says (and setup.cfg admits);
``tests/test_compat.py`` checks them against the installed aiosmtpd, so an upgrade that
moves one fails there, not in an SMTP session.
"""

import asyncio
from typing import Any

from aiosmtpd.smtp import SMTP

# aiosmtpd releases whose private API matches: >= 1.4.6, < 1.5.
SUPPORTED = ((1, 4, 6), (1, 5))
# Methods of SMTP that ``LimitedSMTP`` calls or overrides.
METHODS = ("_getaddr", "_call_handler_hook", "_set_post_data_state", "_reset_timeout")
# Attributes an SMTP session has once connected.
SESSION_ATTRIBUTES = ("_reader", "_writer")


def reader(session: SMTP) -> asyncio.StreamReader:
    """The session's stream reader (the client's bytes)."""
    return session._reader


def writer(session: SMTP) -> asyncio.StreamWriter:
    """The session's stream writer (closing it ends the connection)."""
    return session._writer


async def call_data_hook(session: SMTP) -> Any:
    """Run the handler's ``handle_DATA`` for the envelope, as aiosmtpd's own DATA does."""
    return await session._call_handler_hook("DATA")


def end_data(session: SMTP) -> None:
    """Reset the envelope after a message, taken or refused, as aiosmtpd's own DATA does."""
    session._set_post_data_state()


def restart_timeout(session: SMTP) -> None:
    """Restart the session's command timeout."""
    session._reset_timeout()


def parse_address(session: SMTP, arg: str) -> tuple[str | None, str | None]:
    """aiosmtpd's own parse of a ``MAIL FROM``/``RCPT TO`` argument: (address, rest)."""
    return SMTP._getaddr(session, arg)
