"""Web chat: conversations, their messages, and the tables routing and
assignment read (IP ranges, agents' chat capacity and presence, canned replies)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import (
    Boolean,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import Mapped, mapped_column

from smeline.db import Base, BigId, UTCDateTime, utcnow


class ChatState(StrEnum):
    """queued → assigned → ended; queued → left_message; a chat nobody could
    take starts ``ended`` (end_reason ``closed``) and may still leave a message.
    An assigned chat goes back to queued when it is transferred to a window or
    its agent stayed disconnected past the grace period."""

    QUEUED = "queued"
    ASSIGNED = "assigned"
    ENDED = "ended"
    LEFT_MESSAGE = "left_message"


class EndReason(StrEnum):
    CLOSED = "closed"  # no window could take the chat when it started
    VISITOR_LEFT = "visitor_left"
    AGENT_CLOSED = "agent_closed"
    LEFT_MESSAGE = "left_message"


class RoutingReason(StrEnum):
    MEMBER = "member"  # a logged-in portal member's county
    FORM = "form"  # the county chosen in the pre-chat form
    CALLER_PROFILE = "caller_profile"  # what routing knows of the phone given
    IP = "ip"  # the administrators' CIDR table
    CITY_DEFAULT = "city_default"


class IpArea(StrEnum):
    """What the public IP data says about the visitor's address."""

    MEIZHOU = "meizhou"
    OUTSIDE = "outside"
    UNKNOWN = "unknown"  # private, IPv6, not in the data, or no data


class Satisfaction(StrEnum):
    SATISFIED = "satisfied"  # 满意
    NEUTRAL = "neutral"  # 一般
    DISSATISFIED = "dissatisfied"  # 不满意
    NO_ANSWER = "no_answer"  # the chat ended and the visitor did not rate it


class SenderKind(StrEnum):
    VISITOR = "visitor"
    AGENT = "agent"
    EXPERT = "expert"  # an expert the agent invited into the chat
    SYSTEM = "system"


class Chat(Base):
    __tablename__ = "chats"
    __table_args__ = (
        # The queue of a window, oldest first.
        Index("ix_chats_queue", "state", "window_code", "created_at", "id"),
        Index("ix_chats_agent_state", "agent_id", "state"),
        Index("ix_chats_visitor_ip_created", "visitor_ip", "created_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    # sha256 of the visitor token: a database leak yields no conversations.
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    # A public id of the visitor (socket.io room name), never a secret.
    visitor_id: Mapped[str] = mapped_column(String(32))
    visitor_name: Mapped[str] = mapped_column(String(64))
    company: Mapped[str] = mapped_column(String(200), default="")
    # As typed (shown to the desk, masked for others) and the routing.numbers key.
    phone: Mapped[str | None] = mapped_column(String(32), nullable=True)
    phone_key: Mapped[str] = mapped_column(String(32), default="", index=True)
    member_id: Mapped[int | None] = mapped_column(ForeignKey("members.id"), nullable=True)
    chosen_county_code: Mapped[str | None] = mapped_column(
        ForeignKey("counties.code"), nullable=True
    )
    # The county routing settled on; NULL: unknown (city centre).
    county_code: Mapped[str | None] = mapped_column(ForeignKey("counties.code"), nullable=True)
    category_code: Mapped[str] = mapped_column(ForeignKey("categories.code"))
    # The window the visitor belongs to, and the one whose queue holds the chat.
    wanted_window_code: Mapped[str] = mapped_column(ForeignKey("windows.code"))
    window_code: Mapped[str] = mapped_column(ForeignKey("windows.code"))
    routing_reason: Mapped[str] = mapped_column(String(16))
    visitor_ip: Mapped[str | None] = mapped_column(String(45), nullable=True)
    ip_area: Mapped[str] = mapped_column(String(8), default=IpArea.UNKNOWN.value)

    state: Mapped[str] = mapped_column(String(16))
    end_reason: Mapped[str | None] = mapped_column(String(16), nullable=True)
    agent_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    assigned_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    first_agent_reply_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    requeued: Mapped[int] = mapped_column(Integer, default=0)

    satisfaction: Mapped[str | None] = mapped_column(String(16), nullable=True)
    satisfaction_comment: Mapped[str | None] = mapped_column(String(500), nullable=True)
    rated_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id"), nullable=True)
    # The last message sequence number handed out in this chat.
    last_seq: Mapped[int] = mapped_column(Integer, default=0)
    # An expert was invited: served together (协同), and the lines of the chat
    # go to the invited experts too (looked up only when this is set).
    joint: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())


class ChatMessage(Base):
    """One line of a conversation. ``seq`` numbers the lines of a chat (1, 2 …)
    so a client that reconnects asks for what came after the last it saw;
    ``client_id`` is the sender's own id of the line, so a resend after a
    dropped connection is recognised and not stored twice."""

    __tablename__ = "chat_messages"
    __table_args__ = (
        UniqueConstraint("chat_id", "seq", name="uq_chat_messages_chat_seq"),
        UniqueConstraint(
            "chat_id", "sender_kind", "client_id", name="uq_chat_messages_chat_sender_client"
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    chat_id: Mapped[int] = mapped_column(ForeignKey("chats.id", ondelete="CASCADE"))
    seq: Mapped[int] = mapped_column(Integer)
    sender_kind: Mapped[str] = mapped_column(String(8))
    sender_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    client_id: Mapped[str] = mapped_column(String(64))
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # A line that carries a file (its body is the file's name).
    attachment_id: Mapped[int | None] = mapped_column(
        ForeignKey("chat_attachments.id", ondelete="CASCADE"), nullable=True
    )


class ChatAttachment(Base):
    """A file sent in a chat. Kept in the database, not on disk: it is written
    in the same transaction as the line that carries it (an upload that fails
    leaves nothing behind), every process of a multi-process deployment reads
    it without a shared volume, and backups include it. The size is capped
    (``chat_attachment_max_bytes``, 10 MiB by default)."""

    __tablename__ = "chat_attachments"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    chat_id: Mapped[int] = mapped_column(ForeignKey("chats.id", ondelete="CASCADE"), index=True)
    sender_kind: Mapped[str] = mapped_column(String(8))
    sender_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    # Cleaned for display and download (no path, no control characters).
    filename: Mapped[str] = mapped_column(String(160))
    # Sniffed from the bytes, never the browser's claim.
    content_type: Mapped[str] = mapped_column(String(100))
    size: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    data: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ChatExpert(Base):
    """An expert invited into a chat by its agent. ``left_at`` NULL: still in
    it. One active row per (chat, expert), kept by the service under the chat's
    row lock; an expert who left may be invited again (a new row)."""

    __tablename__ = "chat_experts"
    __table_args__ = (
        Index("ix_chat_experts_chat", "chat_id", "left_at"),
        Index("ix_chat_experts_user", "user_id", "left_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    chat_id: Mapped[int] = mapped_column(ForeignKey("chats.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    invited_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    invited_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    left_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class ChatIpRange(Base):
    """A network → county, edited by administrators. Public IP data knows the
    city at best, so the county of an address comes only from this table
    (the operator's or the government network's allocations). The shipped rows
    are example data (``example=true``)."""

    __tablename__ = "chat_ip_ranges"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    cidr: Mapped[str] = mapped_column(String(49), unique=True)  # normalised network
    county_code: Mapped[str] = mapped_column(ForeignKey("counties.code"))
    note: Mapped[str] = mapped_column(String(100), default="")
    example: Mapped[bool] = mapped_column(Boolean, default=False)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ChatAgent(Base):
    """An agent's chat seat: capacity, presence (kept by the socket layer, so
    every process can assign) and the idle key of longest-idle assignment.

    Every assignment to an agent locks this row first, so two processes never
    fill the same free slot twice."""

    __tablename__ = "chat_agents"

    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    # NULL: the configured default (chat_agent_capacity).
    capacity: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # Open chat connections of this agent over all processes; online while > 0.
    connections: Mapped[int] = mapped_column(Integer, default=0)
    online_since: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # Set when the last connection went away: the grace period runs from here.
    offline_since: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # The last assignment to or end of one of the agent's chats: longest idle first.
    last_chat_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class CannedReply(Base):
    """A ready answer the agent inserts; per window, or for all (window NULL)."""

    __tablename__ = "chat_canned_replies"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    window_code: Mapped[str | None] = mapped_column(
        ForeignKey("windows.code"), nullable=True, index=True
    )
    title: Mapped[str] = mapped_column(String(64))
    body: Mapped[str] = mapped_column(Text)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
