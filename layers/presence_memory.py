"""Presence kept in this process's memory, with the same rules as the Redis store."""

import time
from typing import TYPE_CHECKING

from .names import process_of
from .presence import Entry, FlushSlot, join_event, leave_event
from .tracking import PresenceStore

if TYPE_CHECKING:
    from .memory import MemoryLayer


class _Group:
    def __init__(self, interval: float) -> None:
        self.entries: dict[str, bytes] = {}
        self.events: list[bytes] = []
        self.slot = FlushSlot(interval)


class MemoryPresence(PresenceStore):
    """Entries and events per group in dicts; processes are alive as the layer says."""

    def __init__(self, layer: "MemoryLayer", interval: float) -> None:
        self.layer = layer
        self.interval = interval
        self._groups: dict[str, _Group] = {}

    def _group(self, group: str) -> _Group:
        found = self._groups.get(group)
        if found is None:
            found = self._groups[group] = _Group(self.interval)
        return found

    async def write(self, group: str, address: str, entry: Entry | None) -> float | None:
        state = self._group(group)
        old = state.entries.get(address)
        if entry is None:
            if old is None:
                return None
            del state.entries[address]
            state.events.append(leave_event(address, old))
        else:
            value = entry.pack()
            if value == old:
                return None
            if old is not None:
                state.events.append(leave_event(address, old))
            state.entries[address] = value
            state.events.append(join_event(address, value))
        return state.slot.claim(time.monotonic())

    async def stored(self, group: str) -> tuple[list[str], list[bytes]]:
        state = self._groups.get(group)
        if state is None:
            return [], []
        return await self.processes(group), list(state.entries.values())

    async def processes(self, group: str) -> list[str]:
        state = self._groups.get(group)
        addresses = state.entries if state is not None else ()
        return sorted({process_of(address) for address in addresses if "!" in address})

    async def dead(self, processes: list[str]) -> set[str]:
        return {p for p in processes if self.layer._dead(p)}

    async def remove(self, group: str, dead: list[str], now_ms: int) -> tuple[float | None, int]:
        state = self._groups.get(group)
        if state is None:
            return None, 0
        gone = set(dead)
        for address, value in list(state.entries.items()):
            entry = Entry.unpack(address, value)
            if entry.process in gone or 0 < entry.deadline_ms <= now_ms:
                state.events.append(leave_event(address, state.entries.pop(address)))
        claim = state.slot.claim(time.monotonic()) if state.events else None
        if not state.entries and not state.events and state.slot.until <= time.monotonic():
            del self._groups[group]
        return claim, len(state.entries)

    async def take(self, group: str) -> list[bytes]:
        state = self._groups.get(group)
        if state is None:
            return []
        events, state.events = state.events, []
        state.slot.flushed(time.monotonic())
        return events

    def clear(self) -> None:
        """Forget every group (the layer was flushed)."""
        self._groups.clear()
