"""Assignment of queued chats: longest idle first, capacity, oldest chat first,
an atomic claim across processes, and re-queueing after a disconnect.

"Two processes" are two ChatService objects, each with its own engine and
connection pool, claiming from the same real PostgreSQL database at once.
"""

from __future__ import annotations

import asyncio
import secrets
from collections import Counter
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from smeline.auth.models import Role, User
from smeline.auth.permissions import Principal
from smeline.db import make_engine, make_sessionmaker
from smeline.webchat.models import Chat, ChatAgent, ChatMessage, ChatState
from smeline.webchat.services import ChatService
from smeline.webchat.setup import CHAT_SERVICE
from tests.conftest import Api

T0 = datetime(2025, 3, 12, 2, 0, tzinfo=UTC)  # a business morning in Meizhou


async def agents(svc: ChatService, window: str, n: int) -> list[int]:
    async with svc._sessionmaker() as db, db.begin():
        users = [
            User(
                username=f"{window}-{secrets.token_hex(4)}",
                display_name=f"{window}坐席{i}",
                role="agent",
                window_code=window,
                password_hash="!",
                must_change_password=False,
            )
            for i in range(n)
        ]
        db.add_all(users)
        await db.flush()
        return [u.id for u in users]


async def queued(svc: ChatService, window: str, n: int, start: datetime = T0) -> list[int]:
    """Chats already waiting in a window's queue, oldest first."""
    async with svc._sessionmaker() as db, db.begin():
        chats = [
            Chat(
                token_hash=secrets.token_hex(32),
                visitor_id=secrets.token_hex(8),
                visitor_name=f"访客{i}",
                category_code="other",
                wanted_window_code=window,
                window_code=window,
                routing_reason="form",
                state="queued",
                created_at=start + timedelta(milliseconds=i),
            )
            for i in range(n)
        ]
        db.add_all(chats)
        await db.flush()
        return [c.id for c in chats]


async def state_of(svc: ChatService, chat_id: int) -> tuple[str, int | None]:
    async with svc._sessionmaker() as db:
        chat = await db.get(Chat, chat_id)
        assert chat is not None
        return chat.state, chat.agent_id


async def test_the_longest_idle_agent_gets_the_next_chat(api: Api) -> None:
    svc = api.client.server.app[CHAT_SERVICE]
    a, b = await agents(svc, "xingning", 2)
    for user_id in (a, b):
        await svc.set_capacity(user_id, 5, now=T0)
    await svc.agent_online(b, now=T0)
    await svc.agent_online(a, now=T0)
    # b took and ended a chat a minute ago; a has never had one.
    async with svc._sessionmaker() as db, db.begin():
        seat = await db.get(ChatAgent, b)
        assert seat is not None
        seat.last_chat_at = T0 - timedelta(minutes=1)
    first, second, third = await queued(svc, "xingning", 3)
    assert await svc.dispatch("xingning", T0) == [first, second, third]
    assert (await state_of(svc, first))[1] == a  # never had a chat: idle longest
    assert (await state_of(svc, second))[1] == b  # a is now the most recent
    assert (await state_of(svc, third))[1] == a


async def test_capacity_holds_and_the_oldest_waiting_chat_goes_first(api: Api) -> None:
    svc = api.client.server.app[CHAT_SERVICE]
    # Capacity is the subject here, not the wrap-up owed for the closed chat
    # (docs/wrapup.md, tests/test_wrapups.py).
    svc.assign_guard = None
    (agent,) = await agents(svc, "city", 1)
    await svc.set_capacity(agent, 2, now=T0)
    chats = await queued(svc, "city", 4)
    await svc.agent_online(agent, now=T0)
    assert [await state_of(svc, c) for c in chats] == [
        ("assigned", agent),
        ("assigned", agent),
        ("queued", None),
        ("queued", None),
    ]
    # Dispatching again changes nothing: no free slot.
    assert await svc.dispatch("city", T0) == []
    # A slot frees: the oldest waiting chat, not a newer one, takes it.
    async with svc._sessionmaker() as db:
        user = await db.get(User, agent)
        assert user is not None
    principal = Principal(agent, user.username, Role.AGENT, None, "city", 0)
    await svc.close(principal, chats[0], now=T0 + timedelta(minutes=1))
    assert await state_of(svc, chats[2]) == ("assigned", agent)
    assert await state_of(svc, chats[3]) == ("queued", None)


async def test_two_processes_claiming_at_once_never_double_assign_or_skip(
    api: Api, database_url: str
) -> None:
    first = api.client.server.app[CHAT_SERVICE]
    engine = make_engine(database_url, pool_size=5)
    try:
        second = ChatService(
            sessionmaker=make_sessionmaker(engine),
            reference=first._reference,
            calendars=first._calendars,
            routing=first._routing,
            tickets=first._tickets,
            bus=first._bus,
            options=first.options,
        )
        team = await agents(first, "meijiang", 4)
        for user_id in team:
            await first.set_capacity(user_id, 3, now=T0)
            await first.agent_online(user_id, now=T0)
        for round_ in range(15):
            # More chats than free slots, so the claimers race for slots too.
            chats = await queued(first, "meijiang", 14, start=T0 + timedelta(minutes=round_))
            got = await asyncio.gather(
                first.dispatch("meijiang", T0),
                second.dispatch("meijiang", T0),
                first.dispatch("meijiang", T0),
                second.dispatch("meijiang", T0),
            )
            handed = [c for batch in got for c in batch]
            assert len(handed) == len(set(handed)) == 12, (round_, got)
            states = {c: await state_of(first, c) for c in chats}
            assigned = [c for c, (s, _) in states.items() if s == ChatState.ASSIGNED.value]
            # Oldest first: exactly the 12 oldest were taken, none skipped.
            assert assigned == chats[:12]
            per_agent = Counter(agent for s, agent in states.values() if agent is not None)
            assert sorted(per_agent.values()) == [3, 3, 3, 3]
            async with first._sessionmaker() as db:
                lines = dict(
                    (
                        await db.execute(
                            select(ChatMessage.chat_id, func.count())
                            .where(ChatMessage.chat_id.in_(chats))
                            .group_by(ChatMessage.chat_id)
                        )
                    ).all()
                )
            # One "agent joined" line per assigned chat: no chat was given twice.
            assert lines == {c: 1 for c in assigned}
            # Free every slot for the next round.
            async with first._sessionmaker() as db, db.begin():
                for chat in await db.scalars(select(Chat).where(Chat.id.in_(chats))):
                    chat.state = ChatState.ENDED.value
    finally:
        await engine.dispose()


async def test_a_chat_whose_agent_left_is_requeued_after_the_grace_period(api: Api) -> None:
    svc = api.client.server.app[CHAT_SERVICE]
    grace = svc.options.requeue_grace
    gone, stays = await agents(svc, "wuhua", 2)
    await svc.agent_online(gone, now=T0)
    (chat,) = await queued(svc, "wuhua", 1)
    await svc.dispatch("wuhua", T0)
    assert await state_of(svc, chat) == ("assigned", gone)
    await svc.agent_offline(gone, now=T0)
    await svc.sweep(T0 + grace - timedelta(seconds=1))
    assert await state_of(svc, chat) == ("assigned", gone)  # may still come back
    await svc.sweep(T0 + grace + timedelta(seconds=1))
    assert await state_of(svc, chat) == ("queued", None)
    # Back online within the grace period keeps one's chats.
    await svc.agent_online(stays, now=T0 + grace + timedelta(seconds=2))
    assert await state_of(svc, chat) == ("assigned", stays)
    async with svc._sessionmaker() as db:
        requeued = await db.scalar(select(Chat.requeued).where(Chat.id == chat))
    assert requeued == 1


async def test_an_agent_who_reconnects_within_the_grace_keeps_the_chat(api: Api) -> None:
    svc = api.client.server.app[CHAT_SERVICE]
    (agent,) = await agents(svc, "dabu", 1)
    await svc.agent_online(agent, now=T0)
    await svc.agent_online(agent, now=T0)  # a second tab
    (chat,) = await queued(svc, "dabu", 1)
    await svc.dispatch("dabu", T0)
    await svc.agent_offline(agent, now=T0)  # one tab closed: still online
    await svc.sweep(T0 + svc.options.requeue_grace * 2)
    assert await state_of(svc, chat) == ("assigned", agent)
    await svc.agent_offline(agent, now=T0)
    await svc.agent_online(agent, now=T0 + timedelta(seconds=5))
    await svc.sweep(T0 + svc.options.requeue_grace * 2)
    assert await state_of(svc, chat) == ("assigned", agent)
