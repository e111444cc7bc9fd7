"""Agents' WebRTC phones: one PJSIP endpoint per agent (``agent-<user id>``)."""

from __future__ import annotations

import secrets

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from smeline.db import dialect_insert, utcnow
from smeline.telephony.models import AgentEndpoint


def endpoint_name(user_id: int) -> str:
    return f"agent-{user_id}"


def interface_of(user_id: int) -> str:
    return f"PJSIP/{endpoint_name(user_id)}"


class PhoneBook:
    def __init__(self, *, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
        self._sessionmaker = sessionmaker

    async def ensure(self, user_id: int, window_code: str | None) -> AgentEndpoint:
        """The agent's endpoint, created with a random secret on first use
        (``smeline asterisk-config`` renders it into pjsip.conf)."""
        async with self._sessionmaker() as db, db.begin():
            insert = dialect_insert(db)(AgentEndpoint).values(
                user_id=user_id,
                endpoint=endpoint_name(user_id),
                secret=secrets.token_urlsafe(24),
                window_code=window_code,
                updated_at=utcnow(),
            )
            await db.execute(insert.on_conflict_do_nothing(index_elements=["user_id"]))
            row = await db.scalar(select(AgentEndpoint).where(AgentEndpoint.user_id == user_id))
            assert row is not None
            return row

    async def all(self) -> list[AgentEndpoint]:
        async with self._sessionmaker() as db:
            return list((await db.scalars(select(AgentEndpoint))).all())
