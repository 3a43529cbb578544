"""A ``switchroom`` subcommand run as a real subprocess, its log in a file the test reads."""

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


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


class SwitchroomProcess:
    """``switchroom <args>`` from this checkout; ``stop`` ends it by PID and keeps its log."""

    name = "switchroom"

    def __init__(self, args: list[str], env: dict[str, str] | None = None) -> None:
        self.log_file = tempfile.NamedTemporaryFile("w+", suffix=".log", delete=False)
        self.stopped_log = ""
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "switchroom.cli", *args],
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
            stdout=subprocess.DEVNULL,
            stderr=self.log_file,
        )

    def log_text(self) -> str:
        return Path(self.log_file.name).read_text()

    def wait_for_log(self, text: str, timeout: float = 20) -> None:
        """Wait until ``text`` is in the log; fail at once if the process exited."""
        deadline = time.monotonic() + timeout
        while text not in self.log_text():
            if self.proc.poll() is not None:
                raise RuntimeError(f"the {self.name} process exited:\n{self.log_text()}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"no {text!r} in the {self.name} log:\n{self.log_text()}")
            time.sleep(0.05)

    def stop(self) -> int:
        """SIGTERM (the graceful stop), SIGKILL after 20 s; returns the exit code."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        if not self.log_file.closed:
            self.stopped_log = self.log_text()
            self.log_file.close()
            os.unlink(self.log_file.name)
        return self.proc.returncode
