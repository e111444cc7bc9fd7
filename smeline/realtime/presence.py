"""Who has a console open: the ``/agent`` sockets of each staff member.

Listeners hear of every connection and disconnection (with how many sockets
of the same user remain in this process): web chat counts connections to
know who can take a chat, telephony pauses an agent whose last console went
away. A listener that fails is logged; it never refuses a socket.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Coroutine
from typing import Any, Protocol

logger = logging.getLogger(__name__)


class PresenceListener(Protocol):
    async def connected(self, user_id: int, sockets: int) -> None:
        """A console socket of ``user_id`` opened; ``sockets`` now open here."""

    async def disconnected(self, user_id: int, sockets: int) -> None:
        """One closed; ``sockets`` still open in this process."""


class Presence:
    def __init__(self) -> None:
        self._sockets: Counter[int] = Counter()
        self._listeners: list[PresenceListener] = []
        self._tasks: set[asyncio.Task[None]] = set()

    def add_listener(self, listener: PresenceListener) -> None:
        self._listeners.append(listener)

    @property
    def listeners(self) -> tuple[PresenceListener, ...]:
        return tuple(self._listeners)

    def sockets(self, user_id: int) -> int:
        return self._sockets[user_id]

    def connected(self, user_id: int) -> None:
        self._sockets[user_id] += 1
        count = self._sockets[user_id]
        for listener in self._listeners:
            self._spawn(listener.connected(user_id, count), listener)

    def disconnected(self, user_id: int) -> None:
        if self._sockets[user_id] <= 0:
            return
        self._sockets[user_id] -= 1
        count = self._sockets[user_id]
        if count == 0:
            del self._sockets[user_id]
        for listener in self._listeners:
            self._spawn(listener.disconnected(user_id, count), listener)

    def _spawn(self, coro: Coroutine[Any, Any, None], listener: PresenceListener) -> None:
        async def run() -> None:
            try:
                await coro
            except Exception:
                logger.exception("presence listener %s failed", type(listener).__name__)

        task = asyncio.get_running_loop().create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def drain(self) -> None:
        """Wait for the listeners' work (shutdown, tests)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
