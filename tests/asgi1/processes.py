"""Start the servers and workers of the interop tests as subprocesses, and stop them by PID."""

import os
import sys
from pathlib import Path

from switchroom.shared.redisproc import free_port

from ..processes import Process

__all__ = ["Process", "daphne", "runworker", "switchroom_http", "switchroom_worker"]

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "channels1"


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
    return Process(command, name="switchroom-http", env=_own_env(), ready="listening on", port=port)


def switchroom_worker(layer_url: str) -> Process:
    """``switchroom worker`` running this folder's worker_app."""
    command = [sys.executable, "-m", "switchroom.cli", "worker", "tests.asgi1.worker_app:app"]
    command += ["--layer", layer_url]
    return Process(command, name="switchroom-worker", env=_own_env(), ready="worker reading")


def daphne(interop_python: str, layer_url: str) -> Process:
    """Daphne 1.4.2 serving the example site's channel layer on a free port."""
    port = free_port()
    command = [str(Path(interop_python).with_name("daphne")), "-b", "127.0.0.1", "-p", str(port)]
    command += ["chatsite.asgi:channel_layer"]
    return Process(command, name="daphne", cwd=EXAMPLE, env=_legacy_env(layer_url), port=port)


def runworker(interop_python: str, layer_url: str) -> Process:
    """The example site's ``manage.py runworker`` (Channels 1.1.8)."""
    command = [interop_python, "manage.py", "runworker"]
    env = _legacy_env(layer_url)
    return Process(command, name="runworker", cwd=EXAMPLE, env=env, ready="Listening on channels")
