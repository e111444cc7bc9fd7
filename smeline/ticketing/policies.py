"""SLA policies: targets per category × priority, with platform-wide defaults."""

from __future__ import annotations

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


async def find_policy(db: AsyncSession, category_code: str, priority: str) -> SlaPolicy | None:
    """The category's own policy wins over the default (category null) one."""
    rows = list(
        await db.scalars(
            select(SlaPolicy).where(
                SlaPolicy.priority == priority,
                (SlaPolicy.category_code == category_code) | SlaPolicy.category_code.is_(None),
            )
        )
    )
    rows.sort(key=lambda p: p.category_code is None)
    return rows[0] if rows else None


async def resolve_targets(
    db: AsyncSession, category_code: str, priority: str
) -> tuple[SlaPolicy | None, Targets]:
    policy = await find_policy(db, category_code, priority)
    if policy is not None:
        return policy, targets_of(policy)
    return None, DEFAULT_TARGETS[Priority(priority)]


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
