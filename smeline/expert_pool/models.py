"""Experts and the consultations they were brought into."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from smeline.db import Base, BigId, JsonDoc, UTCDateTime, utcnow


class Expert(Base):
    """Someone outside the contact centre (a lawyer, a financing adviser …)
    reached on their own phone through the trunk."""

    __tablename__ = "experts"
    __table_args__ = (Index("ix_experts_active", "active", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(64))
    # routing.numbers key of the expert's phone (mobile 139…, landline 0753…).
    phone_key: Mapped[str] = mapped_column(String(32))
    # Service category codes (reference ``categories``) the expert answers for.
    specialties: Mapped[list[str]] = mapped_column(JsonDoc, default=list)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    # Weekly hours in Asia/Shanghai, {"mon": [["09:00", "12:00"], …], …}; a day
    # that is missing is a day off. NULL: the business calendar (holidays and
    # 调休 included).
    schedule: Mapped[dict[str, Any] | None] = mapped_column(JsonDoc, nullable=True)
    # When the expert was last asked (rung), answered or not: the fairness key.
    last_consulted_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Consultation(Base):
    """One escalation attempt of a call: who was rung, whether and when they
    answered, how it ended. ``ended_at`` NULL: still going (the expert is on a
    call, which the chooser takes into account)."""

    __tablename__ = "consultations"
    __table_args__ = (
        Index("ix_consultations_linkedid", "linkedid", "id"),
        Index("ix_consultations_expert_started", "expert_id", "started_at"),
        Index("ix_consultations_open", "ended_at", "started_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    linkedid: Mapped[str] = mapped_column(String(64))  # the call (Asterisk's Linkedid)
    expert_id: Mapped[int | None] = mapped_column(ForeignKey("experts.id"), nullable=True)
    target_kind: Mapped[str] = mapped_column(String(10))  # city | window | province | expert
    target_ref: Mapped[str] = mapped_column(String(64))  # window code, expert id, "province"
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    answered_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # answered | no_answer | busy | failed | caller_left | dropped | agent_left;
    # NULL while the target is still ringing.
    outcome: Mapped[str | None] = mapped_column(String(16), nullable=True)
    agent_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)
