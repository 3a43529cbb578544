"""Run several processes as one: prefixed, coloured output and a clean stop for all.

Used by ``switchroom up --processes``. Each child's lines are printed with its name in
front; Ctrl-C (or SIGTERM, or any child exiting) stops every child with SIGTERM, waits
for a grace period, then kills what is left. Only the processes started here are
signalled, by PID.
"""

import asyncio
import contextlib
import os
import signal
import sys
from dataclasses import dataclass, field

COLOURS = ("36", "35", "33", "32", "34", "31", "96", "95")


@dataclass
class Child:
    """One process to run: a display name and its command line."""

    name: str
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    pass_fds: tuple[int, ...] = ()


def _prefix(name: str, index: int, width: int, colour: bool) -> str:
    label = f"{name:<{width}} |"
    return f"\033[{COLOURS[index % len(COLOURS)]}m{label}\033[0m " if colour else label + " "


async def _pump(stream: asyncio.StreamReader, prefix: str) -> None:
    """Copy a child's output to ours, one prefixed line at a time."""
    while line := await stream.readline():
        sys.stdout.write(prefix + line.decode(errors="replace").rstrip("\n") + "\n")
        sys.stdout.flush()


async def supervise(children: list[Child], grace: float = 10.0) -> int:
    """Run ``children`` until a signal or the first exit; returns the first non-zero exit code."""
    colour = sys.stdout.isatty() and "NO_COLOR" not in os.environ
    width = max(len(c.name) for c in children)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    procs: list[asyncio.subprocess.Process] = []
    pumps = []
    try:
        for index, child in enumerate(children):
            proc = await asyncio.create_subprocess_exec(
                *child.argv,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                stdin=asyncio.subprocess.DEVNULL,
                env={**os.environ, **child.env},
                pass_fds=child.pass_fds,
            )
            procs.append(proc)
            assert proc.stdout is not None
            pumps.append(asyncio.ensure_future(_pump(proc.stdout, _prefix(child.name, index, width, colour))))
        exits = [asyncio.ensure_future(p.wait()) for p in procs]
        stopper = asyncio.ensure_future(stop.wait())
        await asyncio.wait([stopper, *exits], return_when=asyncio.FIRST_COMPLETED)
        stopper.cancel()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        await _stop_all(procs, grace)
        await asyncio.gather(*pumps, return_exceptions=True)
    codes = [p.returncode for p in procs]
    return next((c for c in codes if c not in (0, None, -signal.SIGTERM)), 0)


async def _stop_all(procs: list[asyncio.subprocess.Process], grace: float) -> None:
    """SIGTERM every running child, wait up to ``grace`` seconds, then SIGKILL the rest."""
    for proc in procs:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.terminate()
    waiting = [asyncio.ensure_future(p.wait()) for p in procs]
    if waiting:
        _, pending = await asyncio.wait(waiting, timeout=grace)
        for proc in procs:
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
        await asyncio.gather(*pending, return_exceptions=True)
