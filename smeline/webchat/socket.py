"""Web chat over socket.io: the inbound events of visitors and agents, and
what the bus bridge reads to push the conversation (docs/webchat.md,
"Over socket.io").

Thin handlers: parse (the realtime gate validated the payload against the
models below), call :class:`ChatService` — the same methods as the REST API,
so limits, idempotency and scope are the same — and serialise. Pushes of
stored things (messages, assignment, queue, end) go through the bus and
``smeline/realtime/bridge.py``, so every process tells its own sockets once.
Typing indicators are not stored and not on the bus: they are pushed here
through the socket.io manager (reaching every process once).

A visitor's socket is bound to the chat of its token: nothing here takes a
chat id from a visitor.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from smeline.errors import Conflict, NotFound
from smeline.realtime.bridge import CHAT_TYPING, Bridge, ChatFacts, ChatQueue
from smeline.realtime.rooms import AGENT_NAMESPACE, VISITOR_NAMESPACE
from smeline.realtime.server import Realtime, SocketContext
from smeline.webchat.events import AttachmentRef
from smeline.webchat.models import ChatMessage, ChatState, SenderKind
from smeline.webchat.schemas import ClientId, MessageBody
from smeline.webchat.services import ChatService, ChatView

#: Inbound event names (client → server).
CHAT_SEND = "chat.send"
CHAT_REPLY = "chat.reply"
CHAT_FETCH = "chat.fetch"

#: Lines one ``chat.fetch`` returns at most; ``last_seq`` tells the client
#: whether to ask again from the last line it got.
FETCH_LIMIT = 500
_NAME_TTL_SECONDS = 60.0
_NAME_CACHE_SIZE = 2048

ChatId = Field(ge=1, le=2**63 - 1)
Since = Field(ge=0, le=2**31 - 1)


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class VisitorSendIn(_In):
    client_id: ClientId
    body: MessageBody


class VisitorFetchIn(_In):
    since: int = Since


class VisitorTypingIn(_In):
    typing: bool


class AgentReplyIn(_In):
    chat_id: int = ChatId
    client_id: ClientId
    body: MessageBody


class AgentFetchIn(_In):
    chat_id: int = ChatId
    since: int = Since


class AgentTypingIn(_In):
    chat_id: int = ChatId
    typing: bool


# --- what the browsers receive (the socket contract) -------------------------------------


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AttachmentOut(_Out):
    id: int
    filename: str
    content_type: str
    size: int


class MessageOut(_Out):
    id: str  # "<chat id>:<seq>"
    seq: int
    chat_id: int
    sender_kind: Literal["visitor", "agent", "expert", "system"]
    sender_name: str | None
    body: str
    client_id: str | None
    created_at: datetime
    attachment: AttachmentOut | None = None


class ChatStateOut(_Out):
    chat_id: int
    state: Literal["queued", "assigned", "ended", "left_message"]
    queue_position: int | None
    agent_name: str | None


class ChatQueueOut(_Out):
    window_code: str
    waiting: int
    longest_wait_seconds: int


class ChatAssignedOut(_Out):
    chat_id: int
    window_code: str
    visitor_name: str
    company: str
    county_code: str | None
    category_code: str
    routing_reason: str
    created_at: datetime


class ChatEndedOut(_Out):
    chat_id: int
    reason: str


class ChatTypingOut(_Out):
    chat_id: int
    sender_kind: Literal["visitor", "agent"]
    typing: bool


class SentOut(_Out):
    """The acknowledgement of ``chat.send`` / ``chat.reply``."""

    message: MessageOut


class FetchedOut(_Out):
    """The acknowledgement of ``chat.fetch``."""

    messages: list[MessageOut]
    state: ChatStateOut
    last_seq: int


def message_out(
    message: ChatMessage, sender_name: str | None, attachment: AttachmentRef | None = None
) -> MessageOut:
    return MessageOut(
        id=f"{message.chat_id}:{message.seq}",
        seq=message.seq,
        chat_id=message.chat_id,
        sender_kind=SenderKind(message.sender_kind).value,
        sender_name=sender_name,
        body=message.body,
        client_id=message.client_id,
        created_at=message.created_at,
        attachment=AttachmentOut(**attachment.model_dump()) if attachment is not None else None,
    )


def state_out(view: ChatView) -> ChatStateOut:
    return ChatStateOut(
        chat_id=view.chat.id,
        state=ChatState(view.chat.state).value,
        queue_position=view.queue_position,
        agent_name=view.agent_name,
    )


class ChatSocket:
    """The chat events of ``/visitor`` and ``/agent``."""

    def __init__(self, *, chat: ChatService, realtime: Realtime) -> None:
        self._chat = chat
        self._realtime = realtime

    def register(self) -> None:
        on = self._realtime.on
        on(VISITOR_NAMESPACE, CHAT_SEND, VisitorSendIn, self.visitor_send)
        on(VISITOR_NAMESPACE, CHAT_FETCH, VisitorFetchIn, self.visitor_fetch)
        on(VISITOR_NAMESPACE, CHAT_TYPING, VisitorTypingIn, self.visitor_typing)
        on(AGENT_NAMESPACE, CHAT_REPLY, AgentReplyIn, self.agent_reply)
        on(AGENT_NAMESPACE, CHAT_FETCH, AgentFetchIn, self.agent_fetch)
        on(AGENT_NAMESPACE, CHAT_TYPING, AgentTypingIn, self.agent_typing)

    async def _fetched(self, view: ChatView, since: int) -> FetchedOut:
        rows, last_seq = await self._chat.messages(view.chat.id, since=since, limit=FETCH_LIMIT)
        return FetchedOut(
            messages=[message_out(*line) for line in rows],
            state=state_out(view),
            last_seq=last_seq,
        )

    # -- visitors -------------------------------------------------------------------

    async def visitor_send(self, context: SocketContext, body: VisitorSendIn) -> SentOut:
        chat_id = int(context.visitor_identity().chat_id)
        posted = await self._chat.post_message(
            chat_id,
            kind=SenderKind.VISITOR,
            client_id=body.client_id,
            body=body.body,
            now=self._chat.now(),
        )
        return SentOut(message=message_out(posted.message, posted.sender_name, posted.attachment))

    async def visitor_fetch(self, context: SocketContext, body: VisitorFetchIn) -> FetchedOut:
        chat_id = int(context.visitor_identity().chat_id)
        return await self._fetched(await self._chat.view(chat_id), body.since)

    async def visitor_typing(self, context: SocketContext, body: VisitorTypingIn) -> None:
        chat_id = int(context.visitor_identity().chat_id)
        view = await self._chat.view(chat_id)
        agent_id = view.chat.agent_id
        if view.chat.state == ChatState.ASSIGNED.value and agent_id is not None:
            typing = ChatTypingOut(chat_id=chat_id, sender_kind="visitor", typing=body.typing)
            await self._realtime.push_to_agent(agent_id, CHAT_TYPING, typing.model_dump())

    # -- agents -----------------------------------------------------------------------

    async def agent_reply(self, context: SocketContext, body: AgentReplyIn) -> SentOut:
        posted = await self._chat.agent_reply(
            context.staff(),
            body.chat_id,
            client_id=body.client_id,
            body=body.body,
            now=self._chat.now(),
        )
        return SentOut(message=message_out(posted.message, posted.sender_name, posted.attachment))

    async def agent_fetch(self, context: SocketContext, body: AgentFetchIn) -> FetchedOut:
        view = await self._chat.get_for_agent(context.staff(), body.chat_id)
        return await self._fetched(view, body.since)

    async def agent_typing(self, context: SocketContext, body: AgentTypingIn) -> None:
        principal = context.staff()
        view = await self._chat.get_for_agent(principal, body.chat_id)
        if view.chat.state != ChatState.ASSIGNED.value or view.chat.agent_id != principal.user_id:
            raise Conflict(
                "Only the agent the chat is assigned to can type in it",
                error_id="chat_not_yours",
                details={"state": view.chat.state},
            )
        typing = ChatTypingOut(chat_id=body.chat_id, sender_kind="agent", typing=body.typing)
        await self._realtime.push_to_chat(body.chat_id, CHAT_TYPING, typing.model_dump())


class ChatServiceLookups:
    """:class:`smeline.realtime.bridge.ChatLookups` over :class:`ChatService`.

    Display names are kept a minute (a renamed agent shows under the new
    name soon after); queues and chats are read every time.
    """

    def __init__(self, chat: ChatService) -> None:
        self._chat = chat
        self._names: dict[int, tuple[float, str | None]] = {}

    async def user_name(self, user_id: int) -> str | None:
        cached = self._names.get(user_id)
        now = time.monotonic()
        if cached is not None and now - cached[0] < _NAME_TTL_SECONDS:
            return cached[1]
        name = await self._chat.display_name(user_id)
        if len(self._names) >= _NAME_CACHE_SIZE:
            self._names.clear()
        self._names[user_id] = (now, name)
        return name

    async def facts(self, chat_id: int) -> ChatFacts | None:
        try:
            view = await self._chat.view(chat_id)
        except NotFound:
            return None
        return ChatFacts(view.chat.routing_reason, view.chat.created_at, view.agent_name)

    async def queue(self, window_code: str) -> ChatQueue:
        snapshot = await self._chat.queue_snapshot(window_code)
        longest = 0
        if snapshot.oldest_created_at is not None:
            waited = (self._chat.now() - snapshot.oldest_created_at).total_seconds()
            longest = max(0, int(waited))
        return ChatQueue(snapshot.chat_ids, longest)


def install(chat: ChatService, realtime: Realtime, bridge: Bridge) -> None:
    """Register the handlers and give the bridge its look-ups."""
    ChatSocket(chat=chat, realtime=realtime).register()
    bridge.set_chat_lookups(ChatServiceLookups(chat))
