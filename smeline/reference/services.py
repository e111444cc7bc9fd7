"""Reference data: seeding, and an in-memory copy read on every request."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from smeline.reference import data
from smeline.reference.models import Category, Channel, County, Window


@dataclass
class ReferenceData:
    counties: dict[str, County] = field(default_factory=dict)
    windows: dict[str, Window] = field(default_factory=dict)
    categories: dict[str, Category] = field(default_factory=dict)
    channels: dict[str, Channel] = field(default_factory=dict)

    def window_for_county(self, county_code: str) -> Window:
        """The county's own window; the city centre for the city or anything unknown."""
        for window in self.windows.values():
            if window.county_code == county_code and window.code != "city":
                return window
        return self.windows["city"]


class ReferenceService:
    def __init__(self, *, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
        self._sessionmaker = sessionmaker
        self.data = ReferenceData()

    async def seed(self) -> None:
        """Idempotent: inserts what is missing, never overwrites what an administrator changed."""
        async with self._sessionmaker() as db:
            for sort, (code, name) in enumerate(data.COUNTIES):
                if await db.get(County, code) is None:
                    db.add(County(code=code, name=name, sort=sort))
            await db.flush()
            for sort, (code, name, county) in enumerate(data.WINDOWS):
                if await db.get(Window, code) is None:
                    db.add(Window(code=code, name=name, county_code=county, sort=sort, active=True))
            for sort, (code, name) in enumerate(data.CATEGORIES):
                if await db.get(Category, code) is None:
                    db.add(Category(code=code, name=name, sort=sort))
            for sort, (code, name) in enumerate(data.CHANNELS):
                if await db.get(Channel, code) is None:
                    db.add(Channel(code=code, name=name, sort=sort))
            await db.commit()

    async def load(self) -> ReferenceData:
        async with self._sessionmaker() as db:
            fresh = ReferenceData(
                counties={
                    c.code: c for c in await db.scalars(select(County).order_by(County.sort))
                },
                windows={w.code: w for w in await db.scalars(select(Window).order_by(Window.sort))},
                categories={
                    c.code: c for c in await db.scalars(select(Category).order_by(Category.sort))
                },
                channels={
                    c.code: c for c in await db.scalars(select(Channel).order_by(Channel.sort))
                },
            )
        self.data = fresh
        return fresh
