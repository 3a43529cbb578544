"""Settings of the worker: how many consumers run at once and how long they may take.

Each has a flag and an environment variable (``SWITCHROOM_<NAME>``, no prefix), generated
by ``switchroom.shared.options``; ``docs/worker.md`` lists them.
"""

from dataclasses import dataclass

from switchroom.shared.options import option


@dataclass
class WorkerSettings:
    """What ``Worker`` needs besides an app and a layer."""

    concurrency: int = option(100, help="consumers run at once")
    threads: int = option(8, help="threads for plain (sync) consumers")
    batch: int = option(100, help="messages taken per receive")
    durable_batch: int = option(10, help="entries of durable channels taken per read")
    grace: float = option(30.0, help="seconds running consumers get on SIGTERM")
    body_timeout: float = option(30.0, help="seconds to wait for a request body chunk")
    lifespan_timeout: float = option(30.0, help="seconds for ASGI lifespan events")
