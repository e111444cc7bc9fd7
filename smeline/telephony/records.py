"""Writing call records: one row per Linkedid, upserted, so that replaying
the same events (a reconnect, a restart that re-reads the stream) gives the
same rows."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from smeline.auth.models import User
from smeline.db import dialect_insert, utcnow
from smeline.telephony.calls import CallRecordData
from smeline.telephony.models import CallRecord
from smeline.telephony.phones import interface_of

# The PJSIP endpoint smeline renders for each agent (phones.interface_of).
_AGENT_INTERFACE = re.compile(r"^PJSIP/agent-([1-9][0-9]{0,17})$")


def agent_user_of(interface: str | None) -> int | None:
    """The staff member behind a queue member interface (``PJSIP/agent-12`` → 12)."""
    match = _AGENT_INTERFACE.fullmatch(interface or "")
    return int(match.group(1)) if match else None


class CallRecordStore:
    def __init__(
        self,
        *,
        sessionmaker: async_sessionmaker[AsyncSession],
        caller_key: Callable[[str], str],
    ) -> None:
        self._sessionmaker = sessionmaker
        self._caller_key = caller_key

    def _row(self, record: CallRecordData) -> dict[str, Any]:
        row = record.row()
        row["caller_number"] = row["caller_number"][:64]
        row["caller_name"] = row["caller_name"][:128]
        row["caller_key"] = self._caller_key(record.caller_number)
        row["updated_at"] = utcnow()
        return row

    async def save(self, records: Sequence[CallRecordData]) -> None:
        if not records:
            return
        rows = [self._row(r) for r in records]
        async with self._sessionmaker() as db, db.begin():
            await _fill_agent_users(db, rows)
            insert = dialect_insert(db)(CallRecord)
            # Every column but the key is replaced: the builder's latest view
            # of a call is complete, so a replay converges on the same row.
            update = {c: insert.excluded[c] for c in rows[0] if c != "linkedid"}
            await db.execute(
                insert.on_conflict_do_update(index_elements=["linkedid"], set_=update), rows
            )

    async def get(self, linkedid: str) -> CallRecord | None:
        async with self._sessionmaker() as db:
            result = await db.execute(select(CallRecord).where(CallRecord.linkedid == linkedid))
            return result.scalar_one_or_none()


async def _fill_agent_users(db: AsyncSession, rows: list[dict[str, Any]]) -> None:
    """``agent_user_id`` from the answering interface, for the wrap-up, the
    per-agent figures and "my calls". Only users that exist: a stray
    ``PJSIP/agent-N`` (a deleted account, a hand-made endpoint) must not make
    the foreign key refuse the whole batch of records."""
    wanted = {row["linkedid"]: agent_user_of(row.get("agent_interface")) for row in rows}
    ids = {user_id for user_id in wanted.values() if user_id is not None}
    known = set((await db.scalars(select(User.id).where(User.id.in_(ids)))).all()) if ids else set()
    for row in rows:
        user_id = wanted[row["linkedid"]]
        row["agent_user_id"] = user_id if user_id in known else None


def mine(user_id: int) -> ColumnElement[bool]:
    """The calls a staff member answered: by the user id the records carry,
    or by their phone's interface for rows written before it was filled."""
    return or_(
        CallRecord.agent_user_id == user_id, CallRecord.agent_interface == interface_of(user_id)
    )


async def calls_of_agent(
    db: AsyncSession, user_id: int, *, limit: int, after: tuple[datetime, int] | None = None
) -> list[CallRecord]:
    """My calls, newest first; ``after`` is the (started_at, id) of the last
    row of the previous page. One more row than asked tells there is more."""
    query = select(CallRecord).where(mine(user_id))
    if after is not None:
        started, ident = after
        query = query.where(
            or_(
                CallRecord.started_at < started,
                and_(CallRecord.started_at == started, CallRecord.id < ident),
            )
        )
    query = query.order_by(CallRecord.started_at.desc(), CallRecord.id.desc()).limit(limit + 1)
    return list((await db.scalars(query)).all())
