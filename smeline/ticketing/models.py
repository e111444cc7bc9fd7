"""Work orders (工单), their append-only history, SLA policies and the calendar overrides."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    Boolean,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from smeline.db import Base, BigId, JsonDoc, UTCDateTime, utcnow


class TicketStatus(StrEnum):
    NEW = "new"
    ASSIGNED = "assigned"
    IN_PROGRESS = "in_progress"
    WAITING_CUSTOMER = "waiting_customer"
    RESOLVED = "resolved"
    CLOSED = "closed"
    ARCHIVED = "archived"
    REOPENED = "reopened"


OPEN_STATUSES = (
    TicketStatus.NEW,
    TicketStatus.ASSIGNED,
    TicketStatus.IN_PROGRESS,
    TicketStatus.WAITING_CUSTOMER,
    TicketStatus.REOPENED,
)


class Priority(StrEnum):
    LOW = "low"
    NORMAL = "normal"
    HIGH = "high"
    URGENT = "urgent"


class Source(StrEnum):
    """Where the request came in."""

    PHONE = "phone"
    WEB_CHAT = "web_chat"
    PORTAL = "portal"
    COUNTER = "counter"
    VOICEMAIL = "voicemail"
    EMAIL = "email"


class ServiceMode(StrEnum):
    ONLINE = "online"  # 线上
    OFFLINE = "offline"  # 线下
    JOINT = "joint"  # 协同服务


class SlaState(StrEnum):
    OK = "ok"
    WARNING = "warning"
    BREACHED = "breached"


class Ticket(Base):
    __tablename__ = "tickets"
    __table_args__ = (
        Index("ix_tickets_created", "created_at", "id"),
        Index("ix_tickets_county_status", "county_code", "status", "id"),
        Index("ix_tickets_window_status", "window_code", "status", "id"),
        Index("ix_tickets_assignee_status", "assignee_id", "status", "id"),
        Index("ix_tickets_status", "status", "id"),
        Index("ix_tickets_sla_state", "sla_state", "id"),
        Index("ix_tickets_category_status", "category_code", "status", "id"),
        Index("ix_tickets_resolution_due", "resolution_due_at"),
        # The SLA scheduler only ever looks at rows with a pending check.
        Index(
            "ix_tickets_next_sla_check",
            "next_sla_check_at",
            postgresql_where=text("next_sla_check_at IS NOT NULL"),
            sqlite_where=text("next_sla_check_at IS NOT NULL"),
        ),
        Index(
            "ix_tickets_archive_due",
            "closed_at",
            postgresql_where=text("status = 'closed'"),
            sqlite_where=text("status = 'closed'"),
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    number: Mapped[str] = mapped_column(String(20), unique=True)
    status: Mapped[str] = mapped_column(String(20))
    priority: Mapped[str] = mapped_column(String(10))
    source: Mapped[str] = mapped_column(String(16))
    channel_code: Mapped[str] = mapped_column(ForeignKey("channels.code"))
    category_code: Mapped[str] = mapped_column(ForeignKey("categories.code"))
    service_mode: Mapped[str] = mapped_column(String(10))
    county_code: Mapped[str] = mapped_column(ForeignKey("counties.code"))
    window_code: Mapped[str] = mapped_column(ForeignKey("windows.code"))

    subject: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text)
    enterprise_name: Mapped[str | None] = mapped_column(String(200), nullable=True)
    credit_code: Mapped[str | None] = mapped_column(String(18), nullable=True, index=True)
    contact_name: Mapped[str | None] = mapped_column(String(100), nullable=True)
    contact_phone: Mapped[str | None] = mapped_column(String(32), nullable=True, index=True)
    contact_email: Mapped[str | None] = mapped_column(String(254), nullable=True)
    # [{"kind": "call", "ref": "<Linkedid>"}, {"kind": "chat", "ref": "42"}]
    links: Mapped[list[dict[str, Any]]] = mapped_column(JsonDoc, default=list)

    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    assignee_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    archived_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    resolution: Mapped[str | None] = mapped_column(Text, nullable=True)

    # --- SLA (see docs/ticketing.md for the semantics) ---
    sla_policy_id: Mapped[int | None] = mapped_column(
        ForeignKey("sla_policies.id", ondelete="SET NULL"), nullable=True
    )
    first_response_target_min: Mapped[int] = mapped_column(Integer)
    resolution_target_min: Mapped[int] = mapped_column(Integer)
    first_response_due_at: Mapped[datetime] = mapped_column(UTCDateTime)
    first_response_warning_at: Mapped[datetime] = mapped_column(UTCDateTime)
    first_response_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # Resolution clock: business seconds used while it was running before, and since when
    # it runs now (null while paused in waiting_customer or stopped at resolution).
    resolution_elapsed_s: Mapped[int] = mapped_column(Integer, default=0)
    resolution_running_since: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    resolution_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    resolution_warning_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    sla_state: Mapped[str] = mapped_column(String(10), default=SlaState.OK)
    first_response_warned: Mapped[bool] = mapped_column(Boolean, default=False)
    first_response_breached: Mapped[bool] = mapped_column(Boolean, default=False)
    resolution_warned: Mapped[bool] = mapped_column(Boolean, default=False)
    resolution_breached: Mapped[bool] = mapped_column(Boolean, default=False)
    next_sla_check_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class TicketDayCounter(Base):
    """Per-day sequence behind the readable number MZ20261122-0001 (day in Asia/Shanghai)."""

    __tablename__ = "ticket_day_counters"

    day: Mapped[str] = mapped_column(String(8), primary_key=True)
    last: Mapped[int] = mapped_column(Integer)


class TicketHistory(Base):
    """Append-only: database triggers refuse UPDATE and DELETE (see the migrations)."""

    __tablename__ = "ticket_history"
    __table_args__ = (Index("ix_ticket_history_ticket", "ticket_id", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"))
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    action: Mapped[str] = mapped_column(String(32))
    field: Mapped[str | None] = mapped_column(String(40), nullable=True)
    from_value: Mapped[str | None] = mapped_column(Text, nullable=True)
    to_value: Mapped[str | None] = mapped_column(Text, nullable=True)
    note: Mapped[str | None] = mapped_column(Text, nullable=True)


class CommentKind(StrEnum):
    REPLY = "reply"  # sent to the SME: counts as first response
    CALL = "call"  # a call with the SME: counts as first response
    NOTE = "note"  # internal


class TicketComment(Base):
    __tablename__ = "ticket_comments"
    __table_args__ = (Index("ix_ticket_comments_ticket", "ticket_id", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"))
    author_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    kind: Mapped[str] = mapped_column(String(10))
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class TicketShare(Base):
    """Explicitly shares one work order with a user or with a whole county."""

    __tablename__ = "ticket_shares"
    __table_args__ = (
        UniqueConstraint("ticket_id", "user_id", "county_code", name="uq_ticket_shares_target"),
        Index("ix_ticket_shares_user", "user_id"),
        Index("ix_ticket_shares_county", "county_code"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"))
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    county_code: Mapped[str | None] = mapped_column(ForeignKey("counties.code"), nullable=True)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Handoff(Base):
    """A transfer to a department, agency or expert with its own handling deadline.

    The work order's resolution clock keeps running meanwhile (接转服务办理时限).
    """

    __tablename__ = "ticket_handoffs"
    __table_args__ = (
        Index("ix_ticket_handoffs_ticket", "ticket_id"),
        Index(
            "ix_ticket_handoffs_next_check",
            "next_check_at",
            postgresql_where=text("next_check_at IS NOT NULL"),
            sqlite_where=text("next_check_at IS NOT NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"))
    from_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    to_user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    note: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    target_min: Mapped[int] = mapped_column(Integer)
    due_at: Mapped[datetime] = mapped_column(UTCDateTime)
    warning_at: Mapped[datetime] = mapped_column(UTCDateTime)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    outcome: Mapped[str | None] = mapped_column(String(20), nullable=True)
    sla_state: Mapped[str] = mapped_column(String(10), default=SlaState.OK)
    next_check_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class SlaPolicy(Base):
    """Targets in business minutes for a category × priority (category null = any)."""

    __tablename__ = "sla_policies"
    __table_args__ = (UniqueConstraint("category_code", "priority", name="uq_sla_policies_key"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    category_code: Mapped[str | None] = mapped_column(ForeignKey("categories.code"), nullable=True)
    priority: Mapped[str] = mapped_column(String(10))
    first_response_min: Mapped[int] = mapped_column(Integer)
    resolution_min: Mapped[int] = mapped_column(Integer)
    handoff_min: Mapped[int] = mapped_column(Integer)


class SlaEvent(Base):
    """A warning or breach raised once; ``key`` makes raising idempotent across processes."""

    __tablename__ = "sla_events"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(64), unique=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"), index=True)
    handoff_id: Mapped[int | None] = mapped_column(ForeignKey("ticket_handoffs.id"), nullable=True)
    kind: Mapped[str] = mapped_column(String(32))
    due_at: Mapped[datetime] = mapped_column(UTCDateTime)
    raised_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Escalation(Base):
    __tablename__ = "escalations"
    __table_args__ = (UniqueConstraint("sla_event_id", "to_user_id", name="uq_escalations_key"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    sla_event_id: Mapped[int] = mapped_column(ForeignKey("sla_events.id"))
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"), index=True)
    to_user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class CalendarOverride(Base):
    __tablename__ = "calendar_overrides"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    is_workday: Mapped[bool] = mapped_column(Boolean)
    note: Mapped[str | None] = mapped_column(String(200), nullable=True)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class CalendarYear(Base):
    """A year an administrator declared complete where the official data lacks it."""

    __tablename__ = "calendar_years"

    year: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    confirmed_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    confirmed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
