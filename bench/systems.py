"""The systems the suite compares, each started the way its users run it.

A system knows how to build its virtualenv (``bench/venvs.py``), how to start a *stack*
(a private Redis if it uses one, server processes and worker processes on free ports) and
how to publish to a group in its own layer API. Every process a stack starts is stopped
by PID when the stack ends, whatever happened.
"""

import contextlib
import http.client
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from bench.venvs import ensure_checkout_venv, ensure_venv
from switchroom.shared.redisproc import RedisProcess, free_port

ROOT = Path(__file__).resolve().parents[1]
TARGETS = ROOT / "bench" / "targets"


@dataclass
class Stack:
    """A running system: the ports its servers listen on and every process's PID by name."""

    ports: list[int]
    pids: dict[str, int]
    redis: RedisProcess | None


@dataclass
class Launcher:
    """Starts processes for a stack and stops every one of them by PID.

    Each process's output goes to its own file, shown (the last lines) if it exits early.
    """

    env: dict[str, str]
    cwd: Path = ROOT
    started: list[tuple[str, subprocess.Popen[bytes]]] = field(default_factory=list)
    logs: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="switchroom-bench-")))

    def spawn(self, kind: str, args: list[str], pass_fds: tuple[int, ...] = ()) -> None:
        name = f"{kind} {sum(k.startswith(kind) for k, _ in self.started) + 1}"
        with open(self.logs / f"{name}.log", "wb") as log:
            proc = subprocess.Popen(
                args, cwd=self.cwd, env=self.env, stdout=log, stderr=subprocess.STDOUT, pass_fds=pass_fds
            )
        self.started.append((name, proc))

    def check(self) -> None:
        """Fail at once if a process of the stack has exited, with the end of its output."""
        for name, proc in self.started:
            if proc.poll() is not None:
                tail = (self.logs / f"{name}.log").read_text(errors="replace")[-1500:]
                raise RuntimeError(
                    f"{name} exited with {proc.returncode}: {' '.join(map(str, proc.args))}\n{tail}"
                )

    def pids(self) -> dict[str, int]:
        return {name: proc.pid for name, proc in self.started}

    def stop(self) -> None:
        """SIGTERM each started process, SIGKILL any still running after 20 s."""
        for _, proc in self.started:
            if proc.poll() is None:
                proc.terminate()
        for _, proc in self.started:
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.started.clear()
        shutil.rmtree(self.logs, ignore_errors=True)


def wait_ready(port: int, launcher: Launcher, timeout: float = 60.0) -> None:
    """Wait until GET /hello on ``port`` answers 200: the server and whatever answers it are up."""
    deadline = time.monotonic() + timeout
    while True:
        launcher.check()
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", "/hello")
            status = conn.getresponse().status
            conn.close()
            if status == 200:
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"the server on port {port} did not answer /hello within {timeout} s")
        time.sleep(0.2)


class System:
    """One system under comparison; subclasses say how it runs."""

    name = ""
    label = ""
    venv = ""
    # Which layer API its publisher and layer client speak (bench/targets/*.py --system).
    api = ""
    uses_redis = True
    runs_workers = True
    # Workloads this system cannot run (e.g. broadcast without a layer).
    skips: frozenset[str] = frozenset()

    def __init__(self, cache_dir: Path) -> None:
        self.cache_dir = cache_dir
        self.python = ""

    def prepare(self) -> None:
        """Build (or find cached) the virtualenv; done before any timing starts."""
        self.python = str(ensure_venv(self.venv, self.cache_dir))

    def bin(self, script: str) -> str:
        """A console script of this system's virtualenv."""
        return str(Path(self.python).parent / script)

    def env(self, redis: RedisProcess | None) -> dict[str, str]:
        """The environment of this system's processes: its app on the path, the Redis URL."""
        path = ROOT if self.name == "switchroom" else TARGETS
        env = {**os.environ, "PYTHONPATH": str(path)}
        if redis is not None:
            env["BENCH_REDIS_URL"] = redis.url
        return env

    def cwd(self) -> Path:
        """The folder its processes start in."""
        return ROOT

    def server(self, launcher: Launcher, port: int, workers: int) -> None:
        raise NotImplementedError

    def worker(self, launcher: Launcher) -> None:
        raise NotImplementedError

    @contextlib.contextmanager
    def stack(self, servers: int, workers: int) -> Iterator[Stack]:
        """A private Redis (if used), ``servers`` server processes and ``workers`` workers."""
        with contextlib.ExitStack() as exits:
            redis = exits.enter_context(RedisProcess()) if self.uses_redis else None
            launcher = Launcher(self.env(redis), self.cwd())
            exits.callback(launcher.stop)
            ports = [free_port() for _ in range(servers)]
            for port in ports:
                self.server(launcher, port, workers)
            if self.runs_workers:
                for _ in range(workers):
                    self.worker(launcher)
            for port in ports:
                wait_ready(port, launcher)
            pids = launcher.pids()
            if redis is not None and redis.pid is not None:
                pids["redis"] = redis.pid
            yield Stack(ports, pids, redis)

    def publish(self, redis: RedisProcess, group: str, rate: float, seconds: float) -> dict[str, float]:
        """Run bench/targets/publish.py with this system's Python; its JSON summary."""
        done = subprocess.run(
            [self.python, str(TARGETS / "publish.py"), "--system", self.api, "--url", redis.url]
            + ["--group", group, "--rate", str(rate), "--seconds", str(seconds)],
            cwd=ROOT,
            env=self.env(redis),
            capture_output=True,
            text=True,
            timeout=seconds + 120,
        )
        if done.returncode:
            raise RuntimeError(f"{self.name} publisher failed:\n{done.stderr[-2000:]}")
        return json.loads(done.stdout.splitlines()[-1])

    def layer_ops(self, redis: RedisProcess, seconds: float) -> dict[str, float | None]:
        """Run bench/targets/layer_ops.py with this system's Python; pairs/s by mode."""
        done = subprocess.run(
            [self.python, str(TARGETS / "layer_ops.py"), "--system", self.api]
            + ["--url", redis.url, "--seconds", str(seconds)],
            cwd=ROOT,
            env=self.env(redis),
            capture_output=True,
            text=True,
            timeout=4 * seconds + 120,
        )
        if done.returncode:
            raise RuntimeError(f"{self.name} layer_ops failed:\n{done.stderr[-2000:]}")
        return json.loads(done.stdout.splitlines()[-1])


class Switchroom(System):
    """This checkout: ``switchroom http`` servers and ``switchroom worker`` processes."""

    name = "switchroom"
    label = "Switchroom"
    venv = "switchroom"
    api = "switchroom"

    def _cli(self, launcher: Launcher, kind: str, args: list[str]) -> None:
        layer = launcher.env["BENCH_REDIS_URL"]
        cli = [self.python, "-m", "switchroom.cli"]
        launcher.spawn(kind, [*cli, *args, "--layer", layer, "--log-level", "warning"])

    def server(self, launcher: Launcher, port: int, workers: int) -> None:
        self._cli(
            launcher, "server", ["http", "--port", str(port), "--no-access-log", "--max-connections", "5000"]
        )

    def worker(self, launcher: Launcher) -> None:
        self._cli(launcher, "worker", ["worker", "bench.apps:app"])


class SwitchroomUp(Switchroom):
    """``switchroom up`` in one process: the HTTP server and the workers on one loop, on the
    in-memory layer (no Redis), so nothing crosses processes."""

    name = "switchroom-up"
    label = "Switchroom, `up` in one process"
    uses_redis = False
    runs_workers = False
    skips = frozenset({"broadcast", "layer"})

    def server(self, launcher: Launcher, port: int, workers: int) -> None:
        args = ["up", "bench.apps:app", "--http-port", str(port), "--workers", str(workers)]
        args += ["--slack", "off", "--metrics-port", "0", "--log-level", "warning"]
        launcher.spawn("server", [self.python, "-m", "switchroom.cli", *args])


class Baseline(Switchroom):
    """This repository as it was at an earlier commit, run the same way as this checkout
    (its own ``switchroom`` command and its own ``bench.apps``), for before/after figures
    from one run: ``python -m bench --baseline REF``."""

    def __init__(self, cache_dir: Path, ref: str) -> None:
        super().__init__(cache_dir)
        self.ref = ref
        self.name = f"switchroom@{ref}"
        self.label = f"Switchroom at {ref}"
        self.source = Path()

    def prepare(self) -> None:
        python, self.source = ensure_checkout_venv(self.ref, self.cache_dir)
        self.python = str(python)

    def env(self, redis: RedisProcess | None) -> dict[str, str]:
        return {**super().env(redis), "PYTHONPATH": str(self.source)}

    def cwd(self) -> Path:
        return self.source

    def _cli(self, launcher: Launcher, kind: str, args: list[str]) -> None:
        layer = launcher.env["BENCH_REDIS_URL"]
        launcher.spawn(kind, [self.bin("switchroom"), *args, "--layer", layer, "--log-level", "warning"])


class Original(System):
    """Channels 1.1.8 + Daphne 1.4.2 + asgi_redis 1.4.3: Daphne servers, ``runworker`` workers."""

    name = "original"
    label = "original (Channels 1)"
    venv = "original"
    api = "original"

    def server(self, launcher: Launcher, port: int, workers: int) -> None:
        args = ["-b", "127.0.0.1", "-p", str(port), "-v", "0", "original_site.asgi:channel_layer"]
        launcher.spawn("server", [self.bin("daphne"), *args])

    def worker(self, launcher: Launcher) -> None:
        args = ["-m", "django", "runworker", "--settings", "original_site.settings", "-v", "0"]
        launcher.spawn("worker", [self.python, *args])


class Channels4(System):
    """Channels 4 + Daphne 4 + channels_redis 4: the app in the Daphne process, Redis for
    groups; one Daphne process, a sync Django view for /hello, redis-py's own parser."""

    name = "channels4"
    label = "Channels 4"
    venv = "channels4"
    api = "channels4"
    runs_workers = False

    def server(self, launcher: Launcher, port: int, workers: int) -> None:
        args = ["-b", "127.0.0.1", "-p", str(port), "-v", "0", "channels4_site.asgi:application"]
        launcher.spawn("server", [self.bin("daphne"), *args])


class Channels4Tuned(Channels4):
    """Channels 4 as a tuned deployment: two Daphne processes sharing one listening socket
    (``--fd``), an async Django view for /hello and hiredis, so it uses as many processes
    as Switchroom's server and worker and its best HTTP path."""

    name = "channels4x2"
    label = "Channels 4, 2 processes, async view, hiredis"
    venv = "channels4-tuned"

    def env(self, redis: RedisProcess | None) -> dict[str, str]:
        return {**super().env(redis), "BENCH_ASYNC_VIEW": "1"}

    def server(self, launcher: Launcher, port: int, workers: int) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind(("127.0.0.1", port))
            listener.listen(1024)
            fd = listener.fileno()
            for _ in range(2):
                args = ["--fd", str(fd), "-v", "0", "channels4_site.asgi:application"]
                launcher.spawn("server", [self.bin("daphne"), *args], pass_fds=(fd,))
        finally:
            listener.close()  # the two servers hold their own copies


class Ceiling(System):
    """uvicorn serving a raw ASGI app in-process: no layer, so no broadcast across processes."""

    name = "ceiling"
    label = "uvicorn raw ASGI (ceiling)"
    venv = "ceiling"
    uses_redis = False
    runs_workers = False
    skips = frozenset({"broadcast"})

    def server(self, launcher: Launcher, port: int, workers: int) -> None:
        args = ["ceiling:app", "--app-dir", str(TARGETS), "--host", "127.0.0.1", "--port", str(port)]
        args += ["--workers", str(workers), "--lifespan", "off", "--log-level", "warning", "--no-access-log"]
        launcher.spawn("server", [self.bin("uvicorn"), *args])


SYSTEMS: dict[str, type[System]] = {
    s.name: s for s in (Switchroom, SwitchroomUp, Original, Channels4, Channels4Tuned, Ceiling)
}
