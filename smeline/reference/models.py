"""Reference tables. Codes are stable identifiers; names are the zh-CN labels."""

from __future__ import annotations

from sqlalchemy import Boolean, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from smeline.db import Base, JsonDoc


class County(Base):
    __tablename__ = "counties"

    # GB/T 2260 administrative division code, e.g. 441481 for 兴宁市.
    code: Mapped[str] = mapped_column(String(6), primary_key=True)
    name: Mapped[str] = mapped_column(String(32))
    sort: Mapped[int] = mapped_column(Integer, default=0)


class Window(Base):
    __tablename__ = "windows"

    code: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    # The city centre window serves the whole city (441400), not one county.
    county_code: Mapped[str] = mapped_column(ForeignKey("counties.code"))
    # [["08:30","12:00"],["14:30","17:30"]]; null means the platform default hours.
    hours: Mapped[list[list[str]] | None] = mapped_column(JsonDoc, nullable=True)
    phone: Mapped[str | None] = mapped_column(String(32), nullable=True)
    address: Mapped[str | None] = mapped_column(String(200), nullable=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    sort: Mapped[int] = mapped_column(Integer, default=0)


class Category(Base):
    """服务类别 of the evaluation forms."""

    __tablename__ = "categories"

    code: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(32))
    sort: Mapped[int] = mapped_column(Integer, default=0)


class Channel(Base):
    """服务方式 of the evaluation forms."""

    __tablename__ = "channels"

    code: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(32))
    sort: Mapped[int] = mapped_column(Integer, default=0)
