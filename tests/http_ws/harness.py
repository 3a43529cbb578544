"""Runs ``switchroom http`` as a real subprocess for the end-to-end tests."""

import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from switchroom.shared.redisproc import free_port

ROOT = Path(__file__).resolve().parents[2]


class ServerProcess:
    """A ``switchroom http`` process on a free port, logging to a file the test can read."""

    def __init__(self, redis_url: str, *args: str, unix_socket: str | None = None) -> None:
        self.layer_url = f"{redis_url}{'&' if '?' in redis_url else '?'}prefix=hs{uuid.uuid4().hex[:10]}"
        self.port = free_port()
        where = ["--unix-socket", unix_socket] if unix_socket else ["--port", str(self.port)]
        self.log_file = tempfile.NamedTemporaryFile("w+", suffix=".log", delete=False)
        self.stopped_log = ""
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "switchroom.shared.cli", "http", *where, "--layer", self.layer_url, *args],
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            stdout=subprocess.DEVNULL,
            stderr=self.log_file,
        )
        self.wait_for_log("listening on")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def log_text(self) -> str:
        return Path(self.log_file.name).read_text()

    def wait_for_log(self, text: str, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.log_text():
            if self.proc.poll() is not None:
                raise RuntimeError(f"the server exited:\n{self.log_text()}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"no {text!r} in the server log:\n{self.log_text()}")
            time.sleep(0.05)

    def terminate(self) -> None:
        """Send SIGTERM (the graceful stop)."""
        self.proc.send_signal(signal.SIGTERM)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.stopped_log = self.log_text()
        self.log_file.close()
        os.unlink(self.log_file.name)
        return self.proc.returncode
