"""Writing call records: one row per Linkedid, upserted, so that replaying
the same events (a reconnect, a restart that re-reads the stream) gives the
same rows."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from smeline.db import dialect_insert, utcnow
from smeline.telephony.calls import CallRecordData
from smeline.telephony.models import CallRecord


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
