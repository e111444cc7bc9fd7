"""Request and response models of the web-chat endpoints."""

from __future__ import annotations

import ipaddress
import unicodedata
from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BeforeValidator, Field, StringConstraints, model_validator

from smeline.api import Out, QuerySchema, RowId, Schema
from smeline.ticketing.schemas import Code, CountyCode, Phone
from smeline.webchat.models import (
    ChatState,
    EndReason,
    IpArea,
    RoutingReason,
    Satisfaction,
    SenderKind,
)

#: The longest message the schema lets through at all; the configured limit
#: (``chat_message_max_chars``) is checked by the service with its own error.
HARD_MAX_MESSAGE = 10_000


def _crlf(value: object) -> object:
    # Windows clients may send CRLF; one newline is what we keep.
    return value.replace("\r\n", "\n") if isinstance(value, str) else value


def _no_controls(value: str) -> str:
    """Text only: newline and tab, nothing else of Unicode's control characters
    (NUL, escape sequences, bells …). Rendering HTML safely is the browser's job."""
    for ch in value:
        if ch not in "\n\t" and unicodedata.category(ch) == "Cc":
            raise ValueError(f"control character U+{ord(ch):04X} is not allowed")
    return value


def _one_line(value: str) -> str:
    if "\n" in value or "\t" in value:
        raise ValueError("must be a single line")
    return value


Text = Annotated[str, BeforeValidator(_crlf), AfterValidator(_no_controls)]
Line = Annotated[Text, AfterValidator(_one_line)]
Name = Annotated[Line, StringConstraints(min_length=1, max_length=64)]
Company = Annotated[Line, StringConstraints(max_length=200)]
MessageBody = Annotated[Text, StringConstraints(min_length=1, max_length=HARD_MAX_MESSAGE)]
Comment = Annotated[Text, StringConstraints(max_length=500)]
ClientId = Annotated[
    str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:\-]+$")
]


def _cidr(value: str) -> str:
    try:
        network = ipaddress.ip_network(value.strip(), strict=False)
    except ValueError as exc:
        raise ValueError("not an IPv4 or IPv6 network (CIDR)") from exc
    return str(network)


Cidr = Annotated[str, StringConstraints(max_length=49), AfterValidator(_cidr)]


# --- visitor -------------------------------------------------------------------------


class ChatStartIn(Schema):
    """The pre-chat form."""

    name: Name
    company: Company = ""
    phone: Phone | None = None
    county_code: CountyCode | None = Field(
        default=None, description="The county the visitor chose (optional)"
    )
    category_code: Code
    member_id: RowId | None = Field(
        default=None,
        description="The portal's id of a logged-in member: a routing hint only, "
        "it grants no access to anything",
    )


class ChatStartOut(Out):
    chat_id: int
    visitor_id: str
    token: str = Field(description="Send as the X-Chat-Token header on every visitor call")
    state: ChatState
    closed: bool = Field(description="Nobody can take the chat now: leave a message")
    window_code: str
    window_name: str
    wanted_window_code: str
    county_code: str | None
    routing_reason: RoutingReason
    overflowed: bool
    ip_area: IpArea
    queue_position: int | None


class VisitorChatOut(Out):
    id: int
    visitor_id: str
    state: ChatState
    end_reason: EndReason | None
    closed: bool
    window_code: str
    window_name: str
    queue_position: int | None
    agent_name: str | None
    created_at: datetime
    assigned_at: datetime | None
    ended_at: datetime | None
    satisfaction: Satisfaction | None
    ticket_ref: str | None
    last_seq: int


class MessageIn(Schema):
    client_id: ClientId = Field(description="The sender's own id of the line; resends reuse it")
    body: MessageBody


class AttachmentOut(Out):
    id: int
    filename: str
    content_type: str = Field(description="Sniffed from the file's bytes")
    size: int


class MessageOut(Out):
    chat_id: int
    seq: int
    sender_kind: SenderKind
    sender_user_id: int | None
    sender_name: str | None
    client_id: str
    body: str = Field(description="The text; for a line that carries a file, the file's name")
    created_at: datetime
    attachment: AttachmentOut | None = None


class MessageListQuery(QuerySchema):
    since: int = Field(default=0, ge=0, le=2**31 - 1, description="Lines after this seq")
    limit: int = Field(default=200, ge=1, le=500)


class MessageListOut(Out):
    items: list[MessageOut]
    last_seq: int


class LeaveMessageIn(Schema):
    body: Annotated[Text, StringConstraints(min_length=1, max_length=2000)]
    phone: Phone | None = Field(default=None, description="If not given in the form")


class LeaveMessageOut(Out):
    chat_id: int
    state: ChatState
    ticket_ref: str = Field(description="The work order's 8-digit short reference")


class RatingIn(Schema):
    satisfaction: Literal["satisfied", "neutral", "dissatisfied"]
    comment: Comment | None = None


# --- agent ---------------------------------------------------------------------------


class ChatListQuery(QuerySchema):
    state: ChatState | None = None
    mine: bool = Field(default=False, description="Only the chats assigned to me")
    window_code: Code | None = None
    limit: int = Field(default=100, ge=1, le=500)


class AgentChatOut(Out):
    id: int
    visitor_id: str
    visitor_name: str
    company: str
    phone: str | None = Field(description="Masked for roles that do not see phone numbers")
    member_id: int | None
    chosen_county_code: str | None
    county_code: str | None
    category_code: str
    wanted_window_code: str
    window_code: str
    routing_reason: RoutingReason
    ip_area: IpArea
    visitor_ip: str | None
    state: ChatState
    end_reason: EndReason | None
    agent_id: int | None
    created_at: datetime
    assigned_at: datetime | None
    first_agent_reply_at: datetime | None
    ended_at: datetime | None
    requeued: int
    queue_position: int | None
    satisfaction: Satisfaction | None
    satisfaction_comment: str | None
    ticket_id: int | None
    ticket_ref: str | None
    last_seq: int
    joint: bool = Field(description="An expert was invited: served jointly (协同)")


class ChatListOut(Out):
    items: list[AgentChatOut]


class TransferIn(Schema):
    """Exactly one target: an agent, or a window's queue."""

    to_user_id: RowId | None = None
    window_code: Code | None = None

    @model_validator(mode="after")
    def _one_target(self) -> TransferIn:
        if (self.to_user_id is None) == (self.window_code is None):
            raise ValueError("give exactly one of to_user_id and window_code")
        return self


class ExpertInviteIn(Schema):
    user_id: RowId = Field(description="A user with the expert role")


class WindowAgentsQuery(QuerySchema):
    window_code: Code


class WindowAgentOut(Out):
    user_id: int
    display_name: str
    window_code: str
    online: bool
    capacity: int
    active_chats: int
    free: int = Field(description="Chats they can still take (capacity - active)")


class WindowAgentListOut(Out):
    items: list[WindowAgentOut]


class CapacityIn(Schema):
    capacity: int | None = Field(ge=1, le=50, description="None: the configured default")


class ChatSeatOut(Out):
    user_id: int
    capacity: int
    online: bool
    active_chats: int
    last_chat_at: datetime | None


# --- administration ---------------------------------------------------------------------


class IpRangeIn(Schema):
    cidr: Cidr
    county_code: CountyCode
    note: Annotated[Line, StringConstraints(max_length=100)] = ""


class IpRangeOut(Out):
    id: int
    cidr: str
    county_code: str
    note: str
    example: bool
    updated_at: datetime


class IpRangeListOut(Out):
    items: list[IpRangeOut]


class CannedReplyIn(Schema):
    window_code: Code | None = Field(default=None, description="None: for every window")
    title: Name
    body: Annotated[Text, StringConstraints(min_length=1, max_length=2000)]


class CannedReplyOut(Out):
    id: int
    window_code: str | None
    title: str
    body: str
    created_at: datetime


class CannedReplyListOut(Out):
    items: list[CannedReplyOut]
