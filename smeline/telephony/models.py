"""Call records (one per call, keyed by Asterisk's Linkedid) and the audit of
listen-ins and recording access."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from smeline.db import Base, BigId, JsonDoc, UTCDateTime, utcnow


class CallRecord(Base):
    __tablename__ = "call_records"
    __table_args__ = (
        Index("ix_call_records_caller_key", "caller_key", "started_at"),
        Index("ix_call_records_started", "started_at", "id"),
        Index("ix_call_records_county_started", "county_code", "started_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    # Asterisk's Linkedid: the same for every channel of one call; replaying
    # the same events upserts the same row.
    linkedid: Mapped[str] = mapped_column(String(64), unique=True)
    direction: Mapped[str] = mapped_column(String(10))  # inbound | outbound
    caller_number: Mapped[str] = mapped_column(String(64), default="")  # as Asterisk gave it
    caller_key: Mapped[str] = mapped_column(String(32), default="")  # routing.numbers key
    caller_name: Mapped[str] = mapped_column(String(128), default="")
    county_code: Mapped[str | None] = mapped_column(String(6), nullable=True)
    category_code: Mapped[str | None] = mapped_column(String(32), nullable=True)
    windows: Mapped[list[str]] = mapped_column(JsonDoc, default=list)
    queues: Mapped[list[str]] = mapped_column(JsonDoc, default=list)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    queued_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    answered_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    wait_seconds: Mapped[int] = mapped_column(Integer, default=0)
    talk_seconds: Mapped[int] = mapped_column(Integer, default=0)
    handle_seconds: Mapped[int | None] = mapped_column(Integer, nullable=True)
    agent_interface: Mapped[str | None] = mapped_column(String(80), nullable=True)
    agent_name: Mapped[str | None] = mapped_column(String(80), nullable=True)
    agent_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    answered_window: Mapped[str | None] = mapped_column(String(32), nullable=True)
    outcome: Mapped[str] = mapped_column(String(16))
    overflowed: Mapped[bool] = mapped_column(Boolean, default=False)
    joint: Mapped[bool] = mapped_column(Boolean, default=False)  # 协同服务: escalated
    recording_file: Mapped[str | None] = mapped_column(String(255), nullable=True)
    survey: Mapped[str | None] = mapped_column(String(16), nullable=True)
    ticket_ref: Mapped[str | None] = mapped_column(String(32), nullable=True)
    escalations: Mapped[list[dict[str, Any]]] = mapped_column(JsonDoc, default=list)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class TelephonyAudit(Base):
    """Every listen-in, whisper, barge, forced pause/logout and every play or
    download of a recording: who, when, what."""

    __tablename__ = "telephony_audit"
    __table_args__ = (Index("ix_telephony_audit_at", "at", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    actor_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    action: Mapped[str] = mapped_column(String(32))
    target: Mapped[str] = mapped_column(String(128))  # a Linkedid, an interface, a file
    detail: Mapped[dict[str, Any]] = mapped_column(JsonDoc, default=dict)


class AgentEndpoint(Base):
    """An agent's WebRTC phone: the PJSIP endpoint rendered into Asterisk's
    configuration and the credentials the agent console registers with."""

    __tablename__ = "agent_endpoints"

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), primary_key=True)
    endpoint: Mapped[str] = mapped_column(String(40), unique=True)  # "agent-<user id>"
    # The browser needs it to register; digest auth never sends it on the wire.
    secret: Mapped[str] = mapped_column(String(64))
    window_code: Mapped[str | None] = mapped_column(ForeignKey("windows.code"), nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class QueueMembership(Base):
    """Where an agent is logged in and in which state smeline wants them.

    The source of truth for re-adding members after a restart of Asterisk or
    smeline: on every AMI (re)connect the queues are compared with these rows.
    """

    __tablename__ = "queue_memberships"

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), primary_key=True)
    window_code: Mapped[str] = mapped_column(ForeignKey("windows.code"))
    interface: Mapped[str] = mapped_column(String(80), unique=True)  # PJSIP/agent-12
    member_name: Mapped[str] = mapped_column(String(100))
    state: Mapped[str] = mapped_column(String(16))  # ready | paused | wrapup | disconnected
    reason: Mapped[str | None] = mapped_column(String(40), nullable=True)
    wrapup_until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    since: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
