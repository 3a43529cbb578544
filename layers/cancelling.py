"""Cancellation that a client library swallowed, made to count."""

import asyncio
from collections.abc import Iterable
from typing import Any


def raise_if_cancelled() -> None:
    """Re-raise a cancellation the client library swallowed.

    A client library (redis-py) can absorb a task's cancellation when it races with a command finishing; a
    receive loop that went on waiting would then never end, so it checks on each turn.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


# Seconds between the cancellations ``cancel_and_wait`` sends a task that has not ended.
RECANCEL_EVERY = 0.1


async def cancel_and_wait(tasks: Iterable[asyncio.Task[Any]], timeout: float) -> set[asyncio.Task[Any]]:
    """Cancel ``tasks`` and wait up to ``timeout`` seconds for them to end; the ones still
    running then, which the caller abandons (and says so).

    A task whose cancellation a client library swallowed gets it again at its next await:
    the cancellation is repeated every ``RECANCEL_EVERY`` seconds until the task ends.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    pending = {task for task in tasks if not task.done()}
    while pending:
        for task in pending:
            task.cancel()
        left = deadline - loop.time()
        if left <= 0:
            break
        _, pending = await asyncio.wait(pending, timeout=min(RECANCEL_EVERY, left))
    return pending
