"""Runs ``switchroom up`` as a subprocess and waits until it says where to go."""

import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from switchroom.shared.redisproc import free_port

from ..processes import ROOT, clean_environ


class UpProcess:
    """``switchroom up examples.chat.app:app`` on a free port, its output in a file."""

    def __init__(self, *args: str, app: str = "examples.chat.app:app", env: dict[str, str] | None = None):
        self.port = free_port()
        self.email_port = free_port()
        self.standin_port = free_port()
        self.output = tempfile.NamedTemporaryFile("w+", suffix=".log", delete=False)
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "switchroom.cli",
                "up",
                app,
                "--http-port",
                str(self.port),
                "--email-port",
                str(self.email_port),
                "--slack-standin-port",
                str(self.standin_port),
                *([] if "--metrics-port" in args else ["--metrics-port", "0"]),
                *args,
            ],
            cwd=ROOT,
            env=clean_environ(**(env or {})),
            stdout=self.output,
            stderr=subprocess.STDOUT,
        )
        self.wait_for(f"open http://127.0.0.1:{self.port}/", 60)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def text(self) -> str:
        return Path(self.output.name).read_text()

    def wait_for(self, needle: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while needle not in self.text():
            if self.proc.poll() is not None:
                raise RuntimeError(f"switchroom up exited:\n{self.text()}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{needle!r} never appeared:\n{self.text()}")
            time.sleep(0.05)

    def stop(self) -> int:
        """Ctrl-C, as a user would stop it."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.output.close()
        return self.proc.returncode
