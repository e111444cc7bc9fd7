"""The wrap-up of a contact (a call or a chat an agent handled)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from smeline.db import Base, BigId, UTCDateTime, utcnow


class ContactKind(StrEnum):
    CALL = "call"
    CHAT = "chat"


class WrapupResult(StrEnum):
    RESOLVED = "resolved"  # 已解决
    TICKET = "ticket"  # 已转工单


class Wrapup(Base):
    """What an agent records after a contact: who (enterprise), what
    (category), how (online / offline / joint) and the outcome. One per
    contact and agent; these feed every report."""

    __tablename__ = "wrapups"
    __table_args__ = (
        # One wrap-up per contact and agent (NULLs differ: each kind uses its own column).
        UniqueConstraint("agent_user_id", "call_linkedid", name="uq_wrapups_agent_call"),
        UniqueConstraint("agent_user_id", "chat_id", name="uq_wrapups_agent_chat"),
        Index("ix_wrapups_created", "created_at", "id"),
        Index("ix_wrapups_call", "call_linkedid"),
        Index("ix_wrapups_chat", "chat_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    contact_kind: Mapped[str] = mapped_column(String(8))
    # Asterisk's Linkedid of the call (call_records.linkedid), or the chat.
    call_linkedid: Mapped[str | None] = mapped_column(String(64), nullable=True)
    chat_id: Mapped[int | None] = mapped_column(
        ForeignKey("chats.id", ondelete="CASCADE"), nullable=True
    )
    agent_user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    # The contact's window and county, copied for the reports and scoping.
    window_code: Mapped[str | None] = mapped_column(ForeignKey("windows.code"), nullable=True)
    county_code: Mapped[str | None] = mapped_column(ForeignKey("counties.code"), nullable=True)
    enterprise_name: Mapped[str] = mapped_column(String(200))
    enterprise_id: Mapped[int | None] = mapped_column(ForeignKey("enterprises.id"), nullable=True)
    category_code: Mapped[str] = mapped_column(ForeignKey("categories.code"))
    service_mode: Mapped[str] = mapped_column(String(8))  # online | offline | joint
    result: Mapped[str] = mapped_column(String(8))  # resolved | ticket
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id"), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
