"""What routing remembers: caller profiles and the landline exchange table."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from smeline.db import Base, UTCDateTime, utcnow


class CallerProfile(Base):
    """The county a number chose (IVR) or was given (agent); a choice made
    now always replaces what was stored."""

    __tablename__ = "caller_profiles"

    phone_key: Mapped[str] = mapped_column(String(32), primary_key=True)
    county_code: Mapped[str] = mapped_column(ForeignKey("counties.code"))
    source: Mapped[str] = mapped_column(String(16))  # ivr | agent | import
    calls: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class LandlinePrefix(Base):
    """A local exchange prefix → county, e.g. ``07532`` + next digits.

    ``prefix`` is in the normaliser's national form (``0753`` + the first
    digits of the subscriber number); the longest matching prefix wins.
    Administrators edit this table; the shipped rows are example data.
    """

    __tablename__ = "landline_prefixes"

    prefix: Mapped[str] = mapped_column(String(16), primary_key=True)
    county_code: Mapped[str] = mapped_column(ForeignKey("counties.code"))
    note: Mapped[str] = mapped_column(String(100), default="")
    example: Mapped[bool] = mapped_column(Boolean, default=False)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
