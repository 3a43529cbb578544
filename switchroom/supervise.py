"""Run several processes as one: each started once what it needs is ready, their output
in one stream, and a clean stop for all.

Used by ``switchroom up --processes``. Each child's lines are relayed with its name: in
front of the line for the text log format, as a ``part`` field for JSON lines. Ctrl-C (or
SIGTERM, or any child exiting) stops every child with SIGTERM, waits for a grace period,
then kills what is left. Only the processes started here are signalled, by PID.
"""

import asyncio
import contextlib
import json
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

COLOURS = ("36", "35", "33", "32", "34", "31", "96", "95")

Probe = Callable[[], Awaitable[bool]]


@dataclass
class Child:
    """One process to run: a display name, its command line, and how to tell it is ready."""

    name: str
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    pass_fds: tuple[int, ...] = ()
    ready: Probe | None = None


class ChildExited(Exception):
    """A child ended on its own; ``code`` is its exit status."""

    def __init__(self, name: str, code: int) -> None:
        how = f"was killed by {signal.Signals(-code).name}" if code < 0 else f"exited with status {code}"
        super().__init__(f"{name} {how}")
        self.name = name
        self.code = code


class Supervisor:
    """The children of one ``up``: started in order, stopped together."""

    def __init__(self, names: list[str], log_format: str = "text", grace: float = 10.0) -> None:
        self.width = max((len(n) for n in names), default=0)
        self.log_format = log_format
        self.grace = grace
        self.colour = log_format == "text" and sys.stderr.isatty() and "NO_COLOR" not in os.environ
        self.running: dict[str, asyncio.subprocess.Process] = {}
        self.exits: dict[str, asyncio.Future[int]] = {}
        self.pumps: list[asyncio.Future[None]] = []

    async def start(self, child: Child) -> None:
        """Start ``child``, relaying its output from now on."""
        proc = await asyncio.create_subprocess_exec(
            *child.argv,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            stdin=asyncio.subprocess.DEVNULL,
            env={**os.environ, **child.env},
            pass_fds=child.pass_fds,
        )
        self.running[child.name] = proc
        self.exits[child.name] = asyncio.ensure_future(proc.wait())
        assert proc.stdout is not None
        self.pumps.append(asyncio.ensure_future(self._pump(child.name, proc.stdout, len(self.running) - 1)))

    async def wait_ready(self, children: list[Child], timeout: float) -> None:
        """Return when every probe of ``children`` says ready; ChildExited if any child ends
        meanwhile, TimeoutError naming the slow ones after ``timeout`` seconds."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        waiting = [c for c in children if c.ready is not None]
        while True:
            self.check_exits()
            results = await asyncio.gather(*(c.ready() for c in waiting if c.ready is not None))
            waiting = [c for c, ok in zip(waiting, results, strict=True) if not ok]
            if not waiting:
                return
            if loop.time() > deadline:
                names = ", ".join(c.name for c in waiting)
                raise TimeoutError(f"{names} not ready within {timeout:g} s")
            await asyncio.sleep(0.1)

    def check_exits(self) -> None:
        """Raise ChildExited for the first child that has ended."""
        for name, done in self.exits.items():
            if done.done():
                raise ChildExited(name, done.result())

    async def run(self, stop: asyncio.Event) -> ChildExited | None:
        """Wait for a stop signal (None) or the first child to end (which one, and how)."""
        stopper = asyncio.ensure_future(stop.wait())
        await asyncio.wait([stopper, *self.exits.values()], return_when=asyncio.FIRST_COMPLETED)
        stopper.cancel()
        try:
            self.check_exits()
        except ChildExited as exited:
            return exited
        return None

    async def stop(self) -> None:
        """SIGTERM every running child, wait up to the grace period, then SIGKILL the rest."""
        procs = list(self.running.values())
        for proc in procs:
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.terminate()
        if self.exits:
            _, pending = await asyncio.wait(list(self.exits.values()), timeout=self.grace)
            for proc in procs:
                if proc.returncode is None:
                    with contextlib.suppress(ProcessLookupError):
                        proc.kill()
            await asyncio.gather(*pending, return_exceptions=True)
        await asyncio.gather(*self.pumps, return_exceptions=True)

    def failures(self) -> list[tuple[str, int]]:
        """Children that ended with a status other than 0 or SIGTERM's, in start order."""
        return [
            (name, proc.returncode)
            for name, proc in self.running.items()
            if proc.returncode not in (0, None, -signal.SIGTERM)
        ]

    async def _pump(self, name: str, stream: asyncio.StreamReader, index: int) -> None:
        """Copy a child's output to our stderr (where our own log lines go, so the whole
        deployment is one stream), one line at a time, marked with the child's name."""
        prefix = self._prefix(name, index)
        while line := await stream.readline():
            text = line.decode(errors="replace").rstrip("\n")
            sys.stderr.write(
                (self._as_json(name, text) if self.log_format == "json" else prefix + text) + "\n"
            )
            sys.stderr.flush()

    def _prefix(self, name: str, index: int) -> str:
        label = f"{name:<{self.width}} |"
        return f"\033[{COLOURS[index % len(COLOURS)]}m{label}\033[0m " if self.colour else label + " "

    @staticmethod
    def _as_json(name: str, text: str) -> str:
        """A JSON log line with the child's name added; any other line becomes one."""
        try:
            entry = json.loads(text)
        except ValueError:
            entry = None
        if not isinstance(entry, dict):
            entry = {"message": text}
        return json.dumps({"part": name, **entry}, ensure_ascii=False)
