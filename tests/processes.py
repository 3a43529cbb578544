"""Real subprocesses for the tests: ``Process`` starts a command with its output in a log
file, waits until it is ready (a line in its log, a port accepting connections), and stops
it by its PID; every failure to start or stop comes with the log. The command-specific
wrappers (``SwitchroomProcess`` here, the servers' and the worker's in their folders) only
build the command line."""

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Seconds a process has to become ready, and to end after its stop signal before SIGKILL.
START_TIMEOUT = 60.0
STOP_TIMEOUT = 20.0
# Seconds between two looks at the log or the port while waiting.
POLL = 0.02


def clean_environ(**extra: str) -> dict[str, str]:
    """This environment without SWITCHROOM_* settings, with this checkout importable."""
    kept = {k: v for k, v in os.environ.items() if not k.startswith("SWITCHROOM_")}
    return {**kept, "PYTHONPATH": str(ROOT), "NO_COLOR": "1", **extra}


def run_switchroom(
    args: list[str], env: dict[str, str] | None = None, timeout: float = 90
) -> subprocess.CompletedProcess[str]:
    """Run ``switchroom <args>`` to its end; its output in the result."""
    return subprocess.run(
        [sys.executable, "-m", "switchroom.cli", *args],
        cwd=ROOT,
        env=clean_environ(**(env or {})),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def port_open(port: int) -> bool:
    """Whether something accepts connections on ``127.0.0.1:port``."""
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


class Process:
    """One subprocess, its stdout and stderr in a log file. Ready once ``ready`` is in the
    log and ``port`` (if given) accepts connections: until then the constructor waits, and
    stops the process if it fails. ``stop`` sends ``stop_signal`` by PID, then SIGKILL
    after ``stop_timeout`` seconds; the log stays readable in ``stopped_log``."""

    name = "process"
    port: int | None = None
    stop_signal = signal.SIGTERM
    stop_timeout = STOP_TIMEOUT

    def __init__(
        self,
        command: list[str],
        *,
        name: str | None = None,
        cwd: Path = ROOT,
        env: dict[str, str] | None = None,
        ready: str | None = None,
        port: int | None = None,
        timeout: float = START_TIMEOUT,
    ) -> None:
        self.name = name or self.name
        if port is not None:
            self.port = port
        self.log_file = tempfile.NamedTemporaryFile("w+", prefix=f"{self.name}-", suffix=".log", delete=False)
        self.stopped_log = ""
        self.proc = subprocess.Popen(
            command,
            cwd=cwd,
            env=env if env is not None else dict(os.environ),
            stdin=subprocess.DEVNULL,
            stdout=self.log_file,
            stderr=subprocess.STDOUT,
        )
        if ready is None and port is None:
            return
        try:
            self._wait(
                lambda: (ready is None or ready in self.log_text()) and (port is None or port_open(port)),
                " and ".join(
                    ([] if ready is None else [f"{ready!r} in the log"])
                    + ([] if port is None else [f"port {port}"])
                ),
                timeout,
            )
        except BaseException:
            self.stop()
            raise

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log_text(self) -> str:
        """Everything the process wrote so far (after ``stop``: all it wrote)."""
        if self.log_file.closed:
            return self.stopped_log
        return Path(self.log_file.name).read_text(errors="replace")

    def wait_for_log(self, text: str, timeout: float = 20) -> bool:
        """Wait until ``text`` is in the log (True); fail at once if the process exited,
        or after ``timeout`` seconds, with the log."""
        self._wait(lambda: text in self.log_text(), repr(text), timeout)
        return True

    def _wait(self, ready: Callable[[], bool], what: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not ready():
            if self.proc.poll() is not None:
                if ready():
                    return
                code = self.proc.returncode
                raise RuntimeError(
                    f"the {self.name} process exited with {code} before {what}:\n{self.log_text()}"
                )
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"no {what} from the {self.name} process in {timeout} s:\n{self.log_text()}"
                )
            time.sleep(POLL)

    def send_signal(self, sig: int) -> None:
        """Send ``sig`` to this process, by its PID."""
        if self.proc.poll() is None:
            os.kill(self.proc.pid, sig)

    def terminate(self) -> None:
        """Send SIGTERM (the graceful stop) without waiting."""
        self.send_signal(signal.SIGTERM)

    def stop(self) -> int:
        """``stop_signal``, then SIGKILL if the process lingers ``stop_timeout`` seconds; its
        exit code."""
        if self.proc.poll() is None:
            os.kill(self.proc.pid, self.stop_signal)
            try:
                self.proc.wait(self.stop_timeout)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        if not self.log_file.closed:
            self.stopped_log = Path(self.log_file.name).read_text(errors="replace")
            self.log_file.close()
            os.unlink(self.log_file.name)
        return self.proc.returncode


class SwitchroomProcess(Process):
    """``switchroom <args>`` from this checkout (``clean``: without the SWITCHROOM_*
    settings of this environment)."""

    name = "switchroom"

    def __init__(
        self,
        args: list[str],
        env: dict[str, str] | None = None,
        *,
        clean: bool = False,
        ready: str | None = None,
        port: int | None = None,
        timeout: float = START_TIMEOUT,
    ) -> None:
        environ = (
            clean_environ(**(env or {})) if clean else {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
        )
        command = [sys.executable, "-m", "switchroom.cli", *args]
        super().__init__(command, env=environ, ready=ready, port=port, timeout=timeout)
