"""Event bus: in-process dispatch, registry rules, and Redis pub/sub against a real server."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta, timezone
from uuid import uuid4

import pytest
from pydantic import BaseModel, ValidationError
from redis.asyncio import Redis
from redis.exceptions import RedisError

from smeline.bus import (
    Envelope,
    EventBus,
    EventRegistry,
    InProcessBus,
    RedisBus,
    UnknownEvent,
    make_bus,
)

REDIS_URL = "redis://127.0.0.1:6379/0"


class TicketCreated(BaseModel):
    ticket_id: int
    title: str
    due_at: datetime


class TicketAssigned(BaseModel):
    ticket_id: int
    agent_id: int


class SlaWarning(BaseModel):
    ticket_id: int


@pytest.fixture
def registry() -> EventRegistry:
    reg = EventRegistry()
    reg.register("ticket.created", TicketCreated)
    reg.register("ticket.assigned", TicketAssigned)
    reg.register("ticket.sla_warning", SlaWarning)
    return reg


def created(ticket_id: int = 1) -> TicketCreated:
    return TicketCreated(
        ticket_id=ticket_id,
        title=f"ticket {ticket_id}",
        due_at=datetime(2025, 3, 1, 9, 30, tzinfo=timezone(timedelta(hours=8))),
    )


class Recorder:
    """A handler that records envelopes."""

    def __init__(self) -> None:
        self.seen: list[Envelope] = []

    async def __call__(self, envelope: Envelope) -> None:
        self.seen.append(envelope)

    @property
    def ids(self) -> list[str]:
        return [e.id for e in self.seen]


async def eventually(condition: Callable[[], bool], within: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        if condition():
            return
        if loop.time() > deadline:
            raise AssertionError("condition not met before the deadline")
        await asyncio.sleep(0.01)


def other_tasks() -> set[asyncio.Task[object]]:
    return {t for t in asyncio.all_tasks() if t is not asyncio.current_task()}


# --- registry ---------------------------------------------------------------------------


def test_registry_rejects_duplicates(registry: EventRegistry) -> None:
    with pytest.raises(ValueError, match="already registered"):
        registry.register("ticket.created", SlaWarning)
    assert registry.model_for("ticket.created") is TicketCreated


@pytest.mark.parametrize(
    "name",
    [
        "ticket",
        "Ticket.created",
        "ticket.Created",
        "ticket..created",
        ".ticket.created",
        "ticket.created.",
        "ticket.created\n",
        "ticket.2created",
        "ticket-created.x",
        "ticket.créé",
        "",
    ],
)
def test_registry_rejects_badly_formed_names(name: str) -> None:
    with pytest.raises(ValueError, match="does not match"):
        EventRegistry().register(name, SlaWarning)


def test_registry_accepts_nested_names() -> None:
    reg = EventRegistry()
    reg.register("call.answered", SlaWarning)
    reg.register("chat.queue.agent_assigned", SlaWarning)
    assert reg.names() == ["call.answered", "chat.queue.agent_assigned"]


def test_registry_rejects_non_models() -> None:
    with pytest.raises(TypeError):
        EventRegistry().register("ticket.created", dict)  # type: ignore[arg-type]


def test_registry_unknown_name_is_a_key_error(registry: EventRegistry) -> None:
    with pytest.raises(UnknownEvent):
        registry.model_for("ticket.deleted")
    with pytest.raises(KeyError):
        registry.model_for("ticket.deleted")


def test_json_schemas_list_every_name(registry: EventRegistry) -> None:
    schemas = registry.json_schemas()
    assert set(schemas) == set(registry.names())
    assert schemas["ticket.created"] == TicketCreated.model_json_schema()
    assert set(schemas["ticket.assigned"]["properties"]) == {"ticket_id", "agent_id"}


# --- envelope ---------------------------------------------------------------------------


def test_envelope_is_frozen_and_utc(registry: EventRegistry) -> None:
    env = Envelope(
        id=uuid4().hex,
        name="ticket.assigned",
        at=datetime(2025, 1, 1, 8, 0, tzinfo=timezone(timedelta(hours=8))),
        origin="node",
        payload={"ticket_id": 3, "agent_id": 4},
    )
    assert env.at == datetime(2025, 1, 1, 0, 0, tzinfo=UTC)
    assert env.at.tzinfo is UTC
    assert env.parsed(registry) == TicketAssigned(ticket_id=3, agent_id=4)
    with pytest.raises(ValidationError):
        env.name = "ticket.created"  # type: ignore[misc]
    with pytest.raises(ValidationError):
        Envelope(id=uuid4().hex, name="x.y", at=datetime(2025, 1, 1), origin="n", payload={})


# --- in-process -------------------------------------------------------------------------


@pytest.fixture
async def bus(registry: EventRegistry) -> AsyncIterator[InProcessBus]:
    b = InProcessBus(registry, node_id="test-node")
    await b.start()
    yield b
    await b.close()


async def test_in_process_subscriber_gets_typed_payload(
    bus: InProcessBus, registry: EventRegistry
) -> None:
    rec = Recorder()
    bus.subscribe(rec)
    before = datetime.now(UTC)
    env = await bus.publish("ticket.created", created(7))
    # Handlers run inside publish: nothing to wait for.
    assert rec.seen == [env]
    assert env.name == "ticket.created"
    assert env.origin == "test-node"
    assert len(env.id) == 32 and int(env.id, 16) >= 0
    assert env.at.tzinfo is UTC and before <= env.at <= datetime.now(UTC)
    parsed = env.parsed(registry)
    assert isinstance(parsed, TicketCreated)
    assert parsed == created(7)
    # The payload is JSON data, exactly as Redis would carry it.
    assert env.payload["due_at"] == "2025-03-01T09:30:00+08:00"
    await bus.wait_idle()


async def test_in_process_filters_by_name(bus: InProcessBus) -> None:
    everything, assigned_only, created_or_sla = Recorder(), Recorder(), Recorder()
    bus.subscribe(everything)
    bus.subscribe(assigned_only, ["ticket.assigned"])
    bus.subscribe(created_or_sla, ("ticket.created", "ticket.sla_warning"))
    e1 = await bus.publish("ticket.created", created())
    e2 = await bus.publish("ticket.assigned", TicketAssigned(ticket_id=1, agent_id=9))
    e3 = await bus.publish("ticket.sla_warning", SlaWarning(ticket_id=1))
    assert everything.ids == [e1.id, e2.id, e3.id]
    assert assigned_only.ids == [e2.id]
    assert created_or_sla.ids == [e1.id, e3.id]


async def test_in_process_subscribe_validates_names(bus: InProcessBus) -> None:
    with pytest.raises(UnknownEvent):
        bus.subscribe(Recorder(), ["ticket.creatd"])
    with pytest.raises(TypeError):
        bus.subscribe(Recorder(), "ticket.created")


async def test_in_process_unsubscribe(bus: InProcessBus) -> None:
    kept, dropped = Recorder(), Recorder()
    bus.subscribe(kept)
    unsubscribe = bus.subscribe(dropped)
    e1 = await bus.publish("ticket.sla_warning", SlaWarning(ticket_id=1))
    unsubscribe()
    unsubscribe()  # idempotent
    e2 = await bus.publish("ticket.sla_warning", SlaWarning(ticket_id=2))
    assert kept.ids == [e1.id, e2.id]
    assert dropped.ids == [e1.id]


async def test_in_process_dispatch_in_subscription_order(bus: InProcessBus) -> None:
    order: list[str] = []

    def make(label: str) -> Callable[[Envelope], object]:
        async def handler(envelope: Envelope) -> None:
            order.append(label)

        return handler

    for label in "abc":
        bus.subscribe(make(label))  # type: ignore[arg-type]
    await bus.publish("ticket.sla_warning", SlaWarning(ticket_id=1))
    assert order == ["a", "b", "c"]


async def test_in_process_failing_handler_does_not_stop_others(
    bus: InProcessBus, caplog: pytest.LogCaptureFixture
) -> None:
    before, after = Recorder(), Recorder()

    async def broken(envelope: Envelope) -> None:
        raise RuntimeError("handler bug")

    bus.subscribe(before)
    bus.subscribe(broken)
    bus.subscribe(after)
    with caplog.at_level(logging.ERROR, logger="smeline.bus"):
        env = await bus.publish("ticket.sla_warning", SlaWarning(ticket_id=1))
    assert before.ids == [env.id]
    assert after.ids == [env.id]
    [record] = [r for r in caplog.records if r.name == "smeline.bus"]
    assert record.exc_info is not None and "handler bug" in str(record.exc_info[1])
    assert env.id in record.getMessage()


async def test_in_process_rejects_unknown_name_and_wrong_payload(bus: InProcessBus) -> None:
    rec = Recorder()
    bus.subscribe(rec)
    with pytest.raises(UnknownEvent):
        await bus.publish("ticket.deleted", SlaWarning(ticket_id=1))
    with pytest.raises(TypeError, match="TicketCreated"):
        await bus.publish("ticket.created", SlaWarning(ticket_id=1))
    assert rec.seen == []
    await bus.wait_idle(timeout=0.1)


async def test_publish_requires_start_and_not_closed(registry: EventRegistry) -> None:
    b = InProcessBus(registry)
    with pytest.raises(RuntimeError, match="not started"):
        await b.publish("ticket.sla_warning", SlaWarning(ticket_id=1))
    async with b:
        await b.publish("ticket.sla_warning", SlaWarning(ticket_id=1))
    with pytest.raises(RuntimeError, match="closed"):
        await b.publish("ticket.sla_warning", SlaWarning(ticket_id=1))


async def test_in_process_wait_idle_times_out_while_a_handler_is_busy(bus: InProcessBus) -> None:
    release = asyncio.Event()

    async def slow(envelope: Envelope) -> None:
        await release.wait()

    bus.subscribe(slow)
    publishing = asyncio.create_task(bus.publish("ticket.sla_warning", SlaWarning(ticket_id=1)))
    await eventually(lambda: bool(bus._pending))
    with pytest.raises(TimeoutError):
        await bus.wait_idle(timeout=0.05)
    release.set()
    await bus.wait_idle(timeout=1)
    await publishing


async def test_handler_may_publish(bus: InProcessBus) -> None:
    rec = Recorder()

    async def escalate(envelope: Envelope) -> None:
        await bus.publish("ticket.sla_warning", SlaWarning(ticket_id=envelope.payload["ticket_id"]))

    bus.subscribe(escalate, ["ticket.created"])
    bus.subscribe(rec)
    await bus.publish("ticket.created", created(5))
    await bus.wait_idle()
    assert [e.name for e in rec.seen] == ["ticket.sla_warning", "ticket.created"]


# --- Redis ------------------------------------------------------------------------------


@pytest.fixture
def channel() -> str:
    return f"smeline:test:{uuid4().hex}"


@pytest.fixture
async def raw_redis() -> AsyncIterator[Redis]:
    client = Redis.from_url(REDIS_URL)
    yield client
    await client.aclose()


@pytest.fixture
async def two_buses(
    registry: EventRegistry, channel: str
) -> AsyncIterator[tuple[RedisBus, RedisBus]]:
    a = RedisBus(registry, REDIS_URL, channel=channel, node_id=f"a-{uuid4().hex[:8]}")
    b = RedisBus(registry, REDIS_URL, channel=channel, node_id=f"b-{uuid4().hex[:8]}")
    await a.start()
    await b.start()
    yield a, b
    await a.close()
    await b.close()


async def test_redis_event_reaches_both_processes_exactly_once(
    two_buses: tuple[RedisBus, RedisBus], registry: EventRegistry
) -> None:
    a, b = two_buses
    on_a, on_b, sla_on_b = Recorder(), Recorder(), Recorder()
    a.subscribe(on_a)
    b.subscribe(on_b)
    b.subscribe(sla_on_b, ["ticket.sla_warning"])

    a1 = await a.publish("ticket.created", created(1))
    a2 = await a.publish("ticket.sla_warning", SlaWarning(ticket_id=1))
    b1 = await b.publish("ticket.assigned", TicketAssigned(ticket_id=1, agent_id=2))
    # Redis delivers in the order it handled the PUBLISHes, so once a process has
    # dispatched its own latest event it has dispatched everything published before.
    await a.wait_idle()
    await b.wait_idle()
    a_sync = await a.publish("ticket.sla_warning", SlaWarning(ticket_id=2))
    await a.wait_idle()
    b_sync = await b.publish("ticket.sla_warning", SlaWarning(ticket_id=3))
    await b.wait_idle()
    await eventually(lambda: b_sync.id in on_a.ids)

    expected = [a1.id, a2.id, b1.id, a_sync.id, b_sync.id]
    assert on_a.ids == expected
    assert on_b.ids == expected
    assert sla_on_b.ids == [a2.id, a_sync.id, b_sync.id]

    # What came through Redis equals what the publisher built.
    assert on_b.seen[0] == a1
    assert on_b.seen[0].origin == a.node_id
    assert on_a.seen[2].origin == b.node_id
    parsed = on_b.seen[0].parsed(registry)
    assert isinstance(parsed, TicketCreated) and parsed == created(1)


async def test_redis_skips_garbage_and_keeps_reading(
    two_buses: tuple[RedisBus, RedisBus],
    raw_redis: Redis,
    channel: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    a, b = two_buses
    on_a, on_b = Recorder(), Recorder()
    a.subscribe(on_a)
    b.subscribe(on_b)
    valid = Envelope(
        id=uuid4().hex,
        name="ticket.sla_warning",
        at=datetime.now(UTC),
        origin="someone-else",
        payload={"ticket_id": 1},
    ).model_dump(mode="json")

    def tampered(**changes: object) -> bytes:
        return json.dumps({**valid, **changes}).encode()

    garbage = [
        b"not json at all",
        b"\xff\xfe\x00",
        b"[1, 2, 3]",
        b'"just a string"',
        b'{"name": "ticket.sla_warning", "payload": {"ticket_id": 1}}',  # missing fields
        tampered(at="yesterday"),
        tampered(at="2025-01-01T00:00:00"),  # naive
        tampered(id="not-hex"),
        tampered(payload=[1]),
        tampered(name="ticket.deleted"),  # unknown event
        tampered(name="NOT A NAME"),
        tampered(payload={"ticket_id": "x"}),  # payload does not fit the model
    ]
    with caplog.at_level(logging.WARNING, logger="smeline.bus"):
        for raw in garbage:
            # Two subscribers: our buses A and B.
            assert await raw_redis.publish(channel, raw) == 2
        env = await a.publish("ticket.created", created(4))
        await a.wait_idle()
        await eventually(lambda: len(on_b.seen) == 1)
    assert on_a.ids == [env.id]
    assert on_b.ids == [env.id]
    skipped = [r for r in caplog.records if r.name == "smeline.bus" and "skipping" in r.message]
    # Each of the two readers logged every garbage message once.
    assert len(skipped) == 2 * len(garbage)
    assert not a._reader.done() and not b._reader.done()  # type: ignore[union-attr]


async def test_redis_close_leaves_no_pending_tasks(registry: EventRegistry, channel: str) -> None:
    assert other_tasks() == set()
    bus = RedisBus(registry, REDIS_URL, channel=channel)
    rec = Recorder()
    bus.subscribe(rec)
    await bus.start()
    assert len(other_tasks()) == 1
    await bus.publish("ticket.sla_warning", SlaWarning(ticket_id=1))
    await bus.wait_idle()
    assert len(rec.seen) == 1
    await bus.close()
    await bus.close()  # idempotent
    assert other_tasks() == set()
    with pytest.raises(RuntimeError, match="closed"):
        await bus.publish("ticket.sla_warning", SlaWarning(ticket_id=1))


async def test_redis_start_failure_raises_and_leaks_nothing(registry: EventRegistry) -> None:
    bus = RedisBus(registry, "redis://127.0.0.1:1/0")
    with pytest.raises((RedisError, OSError)):
        await bus.start()
    assert other_tasks() == set()
    await bus.close()


async def test_redis_reader_reconnects_after_connection_loss(
    registry: EventRegistry, channel: str, raw_redis: Redis, caplog: pytest.LogCaptureFixture
) -> None:
    bus = RedisBus(registry, REDIS_URL, channel=channel, node_id=f"reconnect-{uuid4().hex[:8]}")
    rec = Recorder()
    bus.subscribe(rec)
    await bus.start()
    try:
        clients = await raw_redis.client_list(_type="pubsub")
        [subscriber] = [c for c in clients if c["name"] == f"smeline-bus:{bus.node_id}"]
        with caplog.at_level(logging.INFO, logger="smeline.bus"):
            await raw_redis.client_kill_filter(_id=subscriber["id"])
            await eventually(lambda: "lost Redis subscription" in caplog.text)
            # Events published before the new subscription exists are lost (pub/sub is
            # at-most-once); keep publishing until one gets through.
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 10
            while not rec.seen:
                assert loop.time() < deadline, "reader did not reconnect"
                await bus.publish("ticket.sla_warning", SlaWarning(ticket_id=1))
                await bus.wait_idle()
                await asyncio.sleep(0.02)
            assert "resubscribed" in caplog.text
    finally:
        await bus.close()
    assert other_tasks() == set()


# --- make_bus ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "cls"),
    [(REDIS_URL, RedisBus), (None, InProcessBus), ("", InProcessBus)],
)
def test_make_bus_picks_the_backend(
    registry: EventRegistry, url: str | None, cls: type[EventBus]
) -> None:
    bus = make_bus(registry, url, node_id="n1")
    assert type(bus) is cls
    assert bus.node_id == "n1"
    assert bus.registry is registry


def test_make_bus_redis_settings(registry: EventRegistry) -> None:
    bus = make_bus(registry, REDIS_URL)
    assert isinstance(bus, RedisBus)
    assert bus.redis_url == REDIS_URL
    assert bus.channel == "smeline:events"
    assert bus.node_id  # generated when not given


async def test_redis_lanes_keep_order_within_a_lane_and_let_other_lanes_pass(
    registry: EventRegistry, channel: str
) -> None:
    """A handler subscribed with a lane: a slow event of one work order holds
    up only that work order's later events; a handler without a lane still
    gets every event one after another."""
    bus = RedisBus(registry, REDIS_URL, channel=channel)
    await bus.start()
    try:
        release = asyncio.Event()
        laned: list[tuple[int, str]] = []
        serial: list[str] = []

        async def slow_for_ticket_1(envelope: Envelope) -> None:
            ticket = envelope.payload["ticket_id"]
            if ticket == 1 and envelope.name == "ticket.created":
                await release.wait()
            laned.append((ticket, envelope.name))

        async def in_order(envelope: Envelope) -> None:
            serial.append(envelope.id)

        bus.subscribe(slow_for_ticket_1, lane=lambda e: e.payload["ticket_id"])
        bus.subscribe(in_order)
        first = await bus.publish("ticket.created", created(1))
        then_1 = await bus.publish("ticket.sla_warning", SlaWarning(ticket_id=1))
        other = await bus.publish("ticket.created", created(2))
        other_2 = await bus.publish("ticket.sla_warning", SlaWarning(ticket_id=2))

        # Ticket 2 gets through while ticket 1's first event is still being handled.
        await eventually(lambda: len(laned) == 2)
        assert laned == [(2, "ticket.created"), (2, "ticket.sla_warning")]
        assert serial == [first.id, then_1.id, other.id, other_2.id]
        with pytest.raises(TimeoutError):
            await bus.wait_idle(timeout=0.05)  # ticket 1's events are not delivered yet
        release.set()
        await bus.wait_idle()
        assert laned[2:] == [(1, "ticket.created"), (1, "ticket.sla_warning")]
    finally:
        await bus.close()


async def test_the_in_process_bus_runs_laned_handlers_inside_publish(bus: InProcessBus) -> None:
    seen: list[int] = []

    async def handler(envelope: Envelope) -> None:
        seen.append(envelope.payload["ticket_id"])

    bus.subscribe(handler, lane=lambda e: e.payload["ticket_id"])
    await bus.publish("ticket.created", created(7))
    assert seen == [7]
