"""An agent whose console went away stops getting calls.

The issue's rule: an agent whose console disconnects is paused in Asterisk
(a real ``QueuePause``, reason ``disconnected``), so a caller is never offered
to a seat whose agent cannot see the call. A page reload or a short network
drop is not a disconnection: the pause comes only when no console of the agent
has come back within ``grace_seconds``. Back, the agent says "ready" themselves
(``disconnected → ready``), as after any pause.

Counted per service process (the realtime presence): run telephony in one
process (docs/telephony.md).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from smeline.telephony.agents import AgentAction, AgentService, AgentState

logger = logging.getLogger(__name__)


class PauseOnConsoleLoss:
    def __init__(
        self,
        *,
        agents: AgentService,
        configured: Callable[[], bool],
        sockets: Callable[[int], int],
        grace_seconds: float,
    ) -> None:
        self._agents = agents
        self._configured = configured
        self._sockets = sockets
        self.grace_seconds = grace_seconds
        self._timers: dict[int, asyncio.TimerHandle] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        #: Agents paused because their console went away (tests, diagnostics).
        self.paused = 0

    async def connected(self, user_id: int, sockets: int) -> None:
        timer = self._timers.pop(user_id, None)
        if timer is not None:
            timer.cancel()

    async def disconnected(self, user_id: int, sockets: int) -> None:
        if sockets > 0 or not self._configured():
            return
        old = self._timers.pop(user_id, None)
        if old is not None:
            old.cancel()
        loop = asyncio.get_running_loop()
        self._timers[user_id] = loop.call_later(self.grace_seconds, self._expired, user_id)

    def _expired(self, user_id: int) -> None:
        self._timers.pop(user_id, None)
        self._spawn(self._pause(user_id))

    async def _pause(self, user_id: int) -> None:
        if self._sockets(user_id) > 0 or not self._configured():
            return  # a console came back at the last moment
        status = await self._agents.status(user_id)
        if status is None or status.state is AgentState.DISCONNECTED:
            return  # not in a queue, or already paused for this
        await self._agents.act(user_id, AgentAction.DISCONNECT)
        self.paused += 1
        logger.info("agent user_id=%s paused: console disconnected", user_id)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        async def run() -> None:
            try:
                await coro
            except Exception:
                logger.exception("pausing an agent whose console went away failed")

        task = asyncio.get_running_loop().create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        if self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
