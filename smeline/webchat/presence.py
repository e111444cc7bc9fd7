"""Web chat hears of agents' consoles: an open ``/agent`` socket is a seat
that can take chats (``ChatService.agent_online`` / ``agent_offline``, one call
per connection, counted in the database so every process can assign)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from smeline.webchat.services import ChatService


class ChatSeats:
    def __init__(self, chat: ChatService, now: Callable[[], datetime]) -> None:
        self._chat = chat
        self._now = now

    async def connected(self, user_id: int, sockets: int) -> None:
        await self._chat.agent_online(user_id, now=self._now())

    async def disconnected(self, user_id: int, sockets: int) -> None:
        await self._chat.agent_offline(user_id, now=self._now())
