"""Start the servers and workers of the interop tests as subprocesses, and stop them by PID."""

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from switchroom.shared.redisproc import free_port

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "channels1"
START_TIMEOUT = 60


class Process:
    """One subprocess whose output goes to a log file; ready once ``ready`` shows in the log
    (or, for servers, once ``port`` accepts connections)."""

    def __init__(
        self,
        name: str,
        command: list[str],
        *,
        cwd: Path,
        env: dict[str, str],
        ready: str | None = None,
        port: int | None = None,
    ) -> None:
        self.name = name
        self.port = port
        self.log = tempfile.NamedTemporaryFile("w+", prefix=f"{name}-", suffix=".log", delete=False)
        self.proc = subprocess.Popen(
            command, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT
        )
        try:
            self._wait_ready(ready)
        except BaseException:
            self.stop()
            raise

    def log_text(self) -> str:
        return Path(self.log.name).read_text(errors="replace")

    def _wait_ready(self, ready: str | None) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while not self._is_ready(ready):
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n{self.log_text()}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.name} did not start within {START_TIMEOUT} s:\n{self.log_text()}")
            time.sleep(0.05)

    def _is_ready(self, ready: str | None) -> bool:
        if ready is not None and ready not in self.log_text():
            return False
        if self.port is not None:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
            except OSError:
                return False
        return True

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it lingers; always by this process's own PID."""
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        self.log.close()
        os.unlink(self.log.name)


def _legacy_env(layer_url: str) -> dict[str, str]:
    """Environment of a Channels 1.x / Daphne 1.x process: the example site and the layer URL."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "DJANGO"))}
    return {**env, "PYTHONPATH": str(EXAMPLE), "SWITCHROOM_LAYER": layer_url, "PYTHONUNBUFFERED": "1"}


def _own_env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"}


def switchroom_http(layer_url: str) -> Process:
    """``switchroom http`` on a free port."""
    port = free_port()
    command = [sys.executable, "-m", "switchroom.cli", "http", "--port", str(port)]
    command += ["--layer", layer_url]
    return Process("switchroom-http", command, cwd=REPO, env=_own_env(), ready="listening on", port=port)


def switchroom_worker(layer_url: str) -> Process:
    """``switchroom worker`` running this folder's worker_app."""
    command = [sys.executable, "-m", "switchroom.cli", "worker", "tests.asgi1.worker_app:app"]
    command += ["--layer", layer_url]
    return Process("switchroom-worker", command, cwd=REPO, env=_own_env(), ready="worker reading")


def daphne(interop_python: str, layer_url: str) -> Process:
    """Daphne 1.4.2 serving the example site's channel layer on a free port."""
    port = free_port()
    command = [str(Path(interop_python).with_name("daphne")), "-b", "127.0.0.1", "-p", str(port)]
    command += ["chatsite.asgi:channel_layer"]
    return Process("daphne", command, cwd=EXAMPLE, env=_legacy_env(layer_url), port=port)


def runworker(interop_python: str, layer_url: str) -> Process:
    """The example site's ``manage.py runworker`` (Channels 1.1.8)."""
    command = [interop_python, "manage.py", "runworker"]
    env = _legacy_env(layer_url)
    return Process("runworker", command, cwd=EXAMPLE, env=env, ready="Listening on channels")
