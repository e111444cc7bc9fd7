"""Enterprises and members registered on the platform.

Routing uses their phone numbers (normalised keys) to recognise a caller and
the county they are registered in; the portal bridge (issue 5) owns the rest.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from smeline.db import Base, BigId, UTCDateTime, utcnow


class Enterprise(Base):
    __tablename__ = "enterprises"
    __table_args__ = (Index("ix_enterprises_phone_key", "phone_key"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(200))
    credit_code: Mapped[str | None] = mapped_column(String(18), unique=True, nullable=True)
    county_code: Mapped[str | None] = mapped_column(ForeignKey("counties.code"), nullable=True)
    phone_key: Mapped[str] = mapped_column(String(32), default="")
    contact_name: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Member(Base):
    __tablename__ = "members"
    __table_args__ = (Index("ix_members_phone_key", "phone_key"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(64))
    phone_key: Mapped[str] = mapped_column(String(32), default="")
    enterprise_id: Mapped[int | None] = mapped_column(
        ForeignKey("enterprises.id"), nullable=True, index=True
    )
    county_code: Mapped[str | None] = mapped_column(ForeignKey("counties.code"), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
