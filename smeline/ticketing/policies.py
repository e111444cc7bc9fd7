"""SLA policies: targets per category × priority, with platform-wide defaults."""

from __future__ import annotations

import time

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from smeline.ticketing.models import Priority, SlaPolicy
from smeline.ticketing.sla import Targets

# A business day is 6.5 hours (08:30–12:00, 14:30–17:30) = 390 minutes.
DEFAULT_TARGETS: dict[Priority, Targets] = {
    Priority.URGENT: Targets(first_response_min=30, resolution_min=390, handoff_min=390),
    Priority.HIGH: Targets(first_response_min=120, resolution_min=1170, handoff_min=780),
    Priority.NORMAL: Targets(first_response_min=390, resolution_min=1950, handoff_min=1170),
    Priority.LOW: Targets(first_response_min=780, resolution_min=3900, handoff_min=1950),
}


def targets_of(policy: SlaPolicy) -> Targets:
    return Targets(
        first_response_min=policy.first_response_min,
        resolution_min=policy.resolution_min,
        handoff_min=policy.handoff_min,
    )


async def seed_default_policies(sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    async with sessionmaker() as db:
        existing = {
            p.priority
            for p in await db.scalars(select(SlaPolicy).where(SlaPolicy.category_code.is_(None)))
        }
        for priority, targets in DEFAULT_TARGETS.items():
            if priority.value not in existing:
                db.add(
                    SlaPolicy(
                        category_code=None,
                        priority=priority.value,
                        first_response_min=targets.first_response_min,
                        resolution_min=targets.resolution_min,
                        handoff_min=targets.handoff_min,
                    )
                )
        await db.commit()


async def list_policies(sessionmaker: async_sessionmaker[AsyncSession]) -> list[SlaPolicy]:
    async with sessionmaker() as db:
        return list(await db.scalars(select(SlaPolicy).order_by(SlaPolicy.id)))


async def upsert_policy(
    sessionmaker: async_sessionmaker[AsyncSession],
    *,
    category_code: str | None,
    priority: str,
    first_response_min: int,
    resolution_min: int,
    handoff_min: int,
) -> SlaPolicy:
    """New targets apply to work orders opened from now on (and to re-targeted ones)."""
    async with sessionmaker() as db:
        stmt = select(SlaPolicy).where(SlaPolicy.priority == priority).with_for_update()
        stmt = stmt.where(
            SlaPolicy.category_code == category_code
            if category_code is not None
            else SlaPolicy.category_code.is_(None)
        )
        policy = await db.scalar(stmt)
        if policy is None:
            policy = SlaPolicy(category_code=category_code, priority=priority)
            db.add(policy)
        policy.first_response_min = first_response_min
        policy.resolution_min = resolution_min
        policy.handoff_min = handoff_min
        await db.commit()
        return policy


class PolicyBook:
    """The SLA policies in memory: every create reads them, they change rarely.

    Reloaded after a change made through this process and every ``refresh_seconds``
    otherwise, so a change made on another process applies there within that time.
    """

    def __init__(
        self, *, sessionmaker: async_sessionmaker[AsyncSession], refresh_seconds: float = 30.0
    ) -> None:
        self._sessionmaker = sessionmaker
        self._refresh = refresh_seconds
        self._by_key: dict[tuple[str | None, str], SlaPolicy] = {}
        self._loaded_at = float("-inf")

    async def load(self) -> None:
        rows = await list_policies(self._sessionmaker)
        self._by_key = {(p.category_code, p.priority): p for p in rows}
        self._loaded_at = time.monotonic()

    async def refresh_now_and_then(self) -> None:
        if time.monotonic() - self._loaded_at >= self._refresh:
            await self.load()

    def resolve(self, category_code: str, priority: str) -> tuple[int | None, Targets]:
        """The category's own policy wins over the default (category null) one."""
        policy = self._by_key.get((category_code, priority)) or self._by_key.get((None, priority))
        if policy is not None:
            return policy.id, targets_of(policy)
        return None, DEFAULT_TARGETS[Priority(priority)]
