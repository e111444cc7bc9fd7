"""Call records in PostgreSQL: upserted by Linkedid, replay-safe."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from smeline.db import make_engine, make_sessionmaker
from smeline.telephony.calls import CallRecordData, CallTracker
from smeline.telephony.models import CallRecord
from smeline.telephony.records import CallRecordStore
from tests.recorded import timed_messages


@pytest.fixture
async def sessionmaker(database_url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = make_engine(database_url)
    try:
        yield make_sessionmaker(engine)
    finally:
        await engine.dispose()


def _records(name: str) -> list[CallRecordData]:
    tracker = CallTracker(window_of_queue=lambda q: q.removeprefix("county-"))
    for at, message in timed_messages(name):
        tracker.feed(message, at)
    return tracker.drain_finished()


async def test_replaying_a_recording_twice_leaves_the_same_single_row(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    store = CallRecordStore(sessionmaker=sessionmaker, caller_key=lambda raw: raw.upper())
    await store.save(_records("recordings-2--ami-overflow"))
    first = await store.get("cctest-1795344509.3")
    await store.save(_records("recordings-2--ami-overflow"))
    async with sessionmaker() as db:
        count = await db.scalar(select(func.count()).select_from(CallRecord))
    second = await store.get("cctest-1795344509.3")
    assert count == 1
    assert first is not None and second is not None
    columns = [c for c in CallRecord.__table__.columns.keys() if c != "updated_at"]
    assert {c: getattr(first, c) for c in columns} == {c: getattr(second, c) for c in columns}
    assert second.outcome == "answered" and second.overflowed
    assert second.wait_seconds == 8 and second.talk_seconds == 6
    assert second.windows == ["x", "city"] and second.answered_window == "city"
    assert second.caller_key == "SIPP"


async def test_conference_call_is_stored_as_one_joint_record(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    store = CallRecordStore(sessionmaker=sessionmaker, caller_key=lambda raw: raw)
    await store.save(_records("recordings--ami-confbridge"))
    async with sessionmaker() as db:
        rows = (await db.execute(select(CallRecord))).scalars().all()
    assert len(rows) == 1
    assert rows[0].joint and len(rows[0].escalations) == 1
