"""A deployment for ASGI 3 apps: one ``switchroom worker`` behind two ``switchroom http``
processes, all on one Redis key prefix."""

import uuid

from ..http_ws.harness import ServerProcess
from ..worker.harness import WorkerProcess


class Deployment:
    """Two HTTP servers and a worker for ``target``; ``stop`` ends them all by PID."""

    def __init__(self, redis_url: str, target: str, *worker_args: str, env: dict[str, str] | None = None):
        self.redis_url = redis_url
        self.prefix = f"a3{uuid.uuid4().hex[:10]}"
        self.servers: list[ServerProcess] = []
        self.workers: list[WorkerProcess] = []
        # The worker's environment; ``CHAT_LAYER`` names the deployment's layer for Channels.
        self.env = {"CHAT_LAYER": self.layer_url, **(env or {})}
        self.target = target
        try:
            for _ in range(2):
                self.servers.append(ServerProcess(redis_url, prefix=self.prefix))
            self.add_worker(*worker_args)
        except BaseException:
            self.stop()
            raise

    @property
    def layer_url(self) -> str:
        return f"{self.redis_url}?prefix={self.prefix}"

    def add_worker(self, *args: str) -> WorkerProcess:
        worker = WorkerProcess(self.layer_url, self.target, *args, env=self.env)
        self.workers.append(worker)
        return worker

    def ws(self, index: int, path: str) -> str:
        return self.servers[index].ws_url + path

    def url(self, index: int, path: str) -> str:
        return self.servers[index].url + path

    def stop(self) -> None:
        for worker in self.workers:
            if worker.proc.poll() is None:
                worker.proc.kill()
                worker.proc.wait()
        for server in self.servers:
            server.stop()
