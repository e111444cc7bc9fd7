"""Pushing the wallboard: a bus event that changes the picture makes it
stale; a fresh snapshot goes to the supervisors' rooms at most once per
``wallboard_push_seconds``.

Debounce: the first event after a quiet spell opens a window of
``interval`` seconds; every event inside it is folded into one push at its
end. Events that arrive while the snapshot is being built open the next
window. So a burst (a call queued, answered, an agent state, a work order
created…) costs one set of queries and one push, and two pushes are never
closer than ``interval``.

One snapshot per *scope*: the city-wide room ``supervisors`` gets the whole
city, each ``supervisors:<county>`` room only that county's windows, agents
and work orders. Only rooms with a socket on this process are computed.

Several processes: every process's bus hands it every event (like the
bridge, docs/realtime.md), so each pushes to the sockets connected to itself
only (``emit_local``); pushing through the Redis manager would send each
supervisor one copy per process.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from smeline.bus import Envelope, EventBus
from smeline.realtime.rooms import SUPERVISOR_NAMESPACE, SUPERVISORS
from smeline.wallboard.events import TRIGGERS, WALLBOARD_UPDATE
from smeline.wallboard.services import Scope, WallboardService

logger = logging.getLogger(__name__)

LocalEmit = Callable[[str, dict[str, Any], str, list[str]], Awaitable[None]]


def scope_of_room(room: str) -> Scope | None:
    """``supervisors`` → city-wide; ``supervisors:441481`` → that county."""
    if room == SUPERVISORS:
        return Scope(None)
    prefix = SUPERVISORS + ":"
    if room.startswith(prefix) and len(room) > len(prefix):
        return Scope(room[len(prefix) :])
    return None


class WallboardPublisher:
    def __init__(
        self,
        *,
        bus: EventBus,
        service: WallboardService,
        emit_local: LocalEmit,
        occupied_rooms: Callable[[], Iterable[str]],
        interval: float = 1.0,
    ) -> None:
        self._bus = bus
        self._service = service
        self._emit_local = emit_local
        self._occupied_rooms = occupied_rooms
        self.interval = interval
        self._dirty = False
        self._task: asyncio.Task[None] | None = None
        self._unsubscribe: Callable[[], None] | None = None
        #: Snapshots pushed by this process (one per room per push).
        self.pushed = 0
        # Only events this deployment registers (a part may be absent).
        self._names = sorted(TRIGGERS & set(bus.registry.names()))

    def start(self) -> None:
        if self._unsubscribe is None:
            self._unsubscribe = self._bus.subscribe(self.on_event, self._names)

    async def stop(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def on_event(self, envelope: Envelope) -> None:
        self.stale()

    def stale(self) -> None:
        """Something changed: push within ``interval`` (plus the time to build it)."""
        self._dirty = True
        if self._task is None and self._unsubscribe is not None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="wallboard-push")

    async def _run(self) -> None:
        while self._dirty:
            await asyncio.sleep(self.interval)
            self._dirty = False
            try:
                await self.push()
            except Exception:
                logger.exception("pushing the wallboard failed")
        self._task = None

    async def push(self) -> int:
        """Build and push a snapshot to every occupied supervisors' room of
        this process; returns the number of rooms pushed to."""
        scopes = {
            scope
            for scope in (scope_of_room(room) for room in self._occupied_rooms())
            if scope is not None
        }
        if not scopes:
            return 0
        gathered = await self._service.gather(scopes)
        for scope in sorted(scopes, key=lambda s: s.county_code or ""):
            snapshot = self._service.view(gathered, scope).model_dump(mode="json")
            await self._emit_local(WALLBOARD_UPDATE, snapshot, SUPERVISOR_NAMESPACE, [scope.room])
            self.pushed += 1
        return len(scopes)
