"""Cancellation that a client library swallowed, made to count."""

import asyncio


def raise_if_cancelled() -> None:
    """Re-raise a cancellation the client library swallowed.

    A client library (redis-py) can absorb a task's cancellation when it races with a command finishing; a
    receive loop that went on waiting would then never end, so it checks on each turn.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError
