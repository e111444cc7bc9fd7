"""Event names and payloads published by web chat (only ``services.py`` publishes).

Payloads carry no phone number and no visitor token. ``chat.assigned`` names
the agent: the screen pop goes to that agent only, never to a room.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict

from smeline.bus import EventRegistry


class ChatEvent(BaseModel):
    model_config = ConfigDict(extra="forbid")

    chat_id: int
    visitor_id: str
    state: str
    window_code: str
    wanted_window_code: str
    county_code: str | None
    category_code: str
    agent_id: int | None


class ChatQueued(ChatEvent):
    routing_reason: str
    queue_position: int
    # Why it is (back) in the queue: started | transferred | requeued.
    cause: str


class ChatAssigned(ChatEvent):
    agent_id: int  # the agent who gets the screen pop
    previous_agent_id: int | None
    visitor_name: str
    company: str
    # accepted | assigned (longest idle) | transferred
    cause: str


class AttachmentRef(BaseModel):
    """A file a line carries (the bytes are fetched from the API)."""

    model_config = ConfigDict(extra="forbid")

    id: int
    filename: str
    content_type: str
    size: int


class ChatMessageEvent(ChatEvent):
    seq: int
    sender_kind: str
    sender_user_id: int | None
    client_id: str
    body: str
    created_at: datetime
    attachment: AttachmentRef | None = None
    # Experts invited into the chat: they hear its lines as its agent does.
    expert_ids: list[int] = []


class ChatEnded(ChatEvent):
    end_reason: str
    satisfaction: str | None
    ticket_id: int | None
    expert_ids: list[int] = []


class ChatExpertEvent(ChatEvent):
    """An expert invited into a chat, or out of it (left, or removed)."""

    expert_id: int
    by_user_id: int
    visitor_name: str
    company: str


class ChatRated(ChatEvent):
    satisfaction: str


CHAT_QUEUED = "chat.queued"
CHAT_ASSIGNED = "chat.assigned"
CHAT_MESSAGE = "chat.message"
CHAT_ENDED = "chat.ended"
CHAT_RATED = "chat.rated"
CHAT_EXPERT_INVITED = "chat.expert_invited"
CHAT_EXPERT_LEFT = "chat.expert_left"

EVENTS: dict[str, type[BaseModel]] = {
    CHAT_QUEUED: ChatQueued,
    CHAT_ASSIGNED: ChatAssigned,
    CHAT_MESSAGE: ChatMessageEvent,
    CHAT_ENDED: ChatEnded,
    CHAT_RATED: ChatRated,
    CHAT_EXPERT_INVITED: ChatExpertEvent,
    CHAT_EXPERT_LEFT: ChatExpertEvent,
}


def register(registry: EventRegistry) -> None:
    for name, model in EVENTS.items():
        registry.register(name, model)
