"""Internal event bus for live events (``ticket.created``, ``ticket.sla_warning`` ...).

Every event has a name registered in an :class:`EventRegistry` together with the
pydantic model of its payload. Events travel inside an :class:`Envelope` whose
payload is plain JSON data, on every backend, so a handler written against the
in-process bus behaves the same when the service runs as several processes
sharing Redis pub/sub.

Delivery is at most once: Redis pub/sub does not keep messages for subscribers
that are disconnected, so events published while a process is reconnecting are
lost for that process. Use the bus for live notifications, never as the record
of what happened (that lives in the database).
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import socket
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Hashable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from types import TracebackType
from typing import Any, Self
from uuid import uuid4

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, field_validator
from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

logger = logging.getLogger(__name__)

EVENT_NAME_PATTERN = r"^[a-z][a-z_]*(\.[a-z][a-z_]*)+$"
_EVENT_NAME_RE = re.compile(EVENT_NAME_PATTERN)


class UnknownEvent(KeyError):
    """An event name that is not in the registry."""


class EventRegistry:
    """Maps event name -> pydantic payload model.

    One registry shared by backend and (later) frontend.
    """

    def __init__(self) -> None:
        self._models: dict[str, type[BaseModel]] = {}

    def register(self, name: str, model: type[BaseModel]) -> None:
        # fullmatch, so a trailing newline cannot slip past the "$" anchor.
        if not isinstance(name, str) or not _EVENT_NAME_RE.fullmatch(name):
            raise ValueError(f"event name {name!r} does not match {EVENT_NAME_PATTERN}")
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            raise TypeError(f"payload model for {name!r} must be a pydantic model class")
        if name in self._models:
            raise ValueError(f"event {name!r} is already registered")
        self._models[name] = model

    def model_for(self, name: str) -> type[BaseModel]:
        try:
            return self._models[name]
        except KeyError:
            raise UnknownEvent(name) from None

    def names(self) -> list[str]:
        return list(self._models)

    def json_schemas(self) -> dict[str, dict[str, Any]]:
        return {name: model.model_json_schema() for name, model in self._models.items()}


class Envelope(BaseModel):
    """One event as it travels on the bus."""

    # Extra fields are ignored rather than rejected so that a newer process can add
    # envelope fields without older processes dropping its events.
    model_config = ConfigDict(frozen=True)

    id: str = Field(pattern=r"^[0-9a-f]{32}$")
    name: str = Field(pattern=EVENT_NAME_PATTERN)
    at: AwareDatetime
    origin: str = Field(min_length=1)
    payload: dict[str, Any]

    @field_validator("at")
    @classmethod
    def _to_utc(cls, value: datetime) -> datetime:
        return value.astimezone(UTC)

    def parsed(self, registry: EventRegistry) -> BaseModel:
        """The payload validated against the model registered for ``name``."""
        return registry.model_for(self.name).model_validate(self.payload)


EventHandler = Callable[[Envelope], Awaitable[None]]


def _default_node_id() -> str:
    # Host and pid make log lines traceable; the random tail tells apart two buses
    # in one process (tests) and a pid reused after a restart.
    return f"{socket.gethostname()}:{os.getpid()}:{uuid4().hex[:6]}"


@dataclass(eq=False)
class _Subscription:
    handler: EventHandler
    names: frozenset[str] | None
    active: bool = True
    lane: LaneOf | None = None


#: Which lane an event belongs to for a handler that may run concurrently:
#: events of one lane reach the handler in order, lanes run side by side.
LaneOf = Callable[["Envelope"], Hashable]

# Events a reader may have in flight in lanes before it stops reading.
MAX_IN_FLIGHT = 256


class _Lanes:
    """Concurrent dispatch for subscriptions that name a lane: each event runs
    in its own task after the previous event of its lane has finished, at
    most ``limit`` at a time (the reader waits for a free slot: back-pressure
    instead of an unbounded backlog in memory)."""

    def __init__(self, limit: int = MAX_IN_FLIGHT) -> None:
        self._slots = asyncio.Semaphore(limit)
        self._tails: dict[tuple[int, Hashable], asyncio.Task[None]] = {}

    async def submit(
        self, subscription: _Subscription, envelope: Envelope, run: Callable[[], Awaitable[None]]
    ) -> asyncio.Task[None]:
        assert subscription.lane is not None
        key = (id(subscription), subscription.lane(envelope))
        await self._slots.acquire()
        previous = self._tails.get(key)

        async def in_lane() -> None:
            try:
                if previous is not None:
                    await asyncio.wait([previous])
                await run()
            finally:
                self._slots.release()
                if self._tails.get(key) is task:
                    del self._tails[key]

        task = asyncio.get_running_loop().create_task(in_lane(), name=f"bus-lane:{key[1]}")
        self._tails[key] = task
        return task


class EventBus(ABC):
    def __init__(self, registry: EventRegistry, *, node_id: str | None = None) -> None:
        self.registry = registry
        self.node_id = node_id or _default_node_id()
        self._subscriptions: list[_Subscription] = []
        # Ids published by this process and not yet dispatched locally, for wait_idle().
        self._pending: dict[str, asyncio.Future[None]] = {}
        self._started = False
        self._closed = False

    @abstractmethod
    async def start(self) -> None: ...

    @abstractmethod
    async def close(self) -> None: ...

    @abstractmethod
    async def _send(self, envelope: Envelope) -> None:
        """Hand a freshly published envelope to the transport."""

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def publish(self, name: str, payload: BaseModel) -> Envelope:
        model = self.registry.model_for(name)
        if not isinstance(payload, model):
            raise TypeError(
                f"payload for {name!r} must be {model.__qualname__}, "
                f"not {type(payload).__qualname__}"
            )
        self._check_running()
        envelope = Envelope(
            id=uuid4().hex,
            name=name,
            at=datetime.now(UTC),
            origin=self.node_id,
            # JSON mode even in-process, so handlers see exactly what Redis would carry.
            payload=payload.model_dump(mode="json"),
        )
        self._pending[envelope.id] = asyncio.get_running_loop().create_future()
        try:
            await self._send(envelope)
        except BaseException:
            self._settle(envelope.id)
            raise
        return envelope

    def subscribe(
        self,
        handler: EventHandler,
        names: Iterable[str] | None = None,
        *,
        lane: LaneOf | None = None,
    ) -> Callable[[], None]:
        """``handler`` gets every event of ``names`` (all when None). With a
        ``lane``, a bus that reads events from elsewhere (Redis) may run the
        handler for events of different lanes at the same time, in order
        within a lane; without one, events reach it one after another in the
        order they were read. The in-process bus always runs handlers inside
        ``publish``."""
        wanted: frozenset[str] | None = None
        if names is not None:
            # A bare string would silently subscribe to its characters.
            if isinstance(names, str):
                raise TypeError("names must be an iterable of event names, not a str")
            wanted = frozenset(names)
            for name in wanted:
                self.registry.model_for(name)  # typos fail here, not by silence later
        subscription = _Subscription(handler, wanted, lane=lane)
        self._subscriptions.append(subscription)

        def unsubscribe() -> None:
            if subscription.active:
                subscription.active = False
                self._subscriptions.remove(subscription)

        return unsubscribe

    # A timeout argument rather than asyncio.timeout(): tests want one short call.
    async def wait_idle(self, timeout: float = 5.0) -> None:  # noqa: ASYNC109
        """Return once every event this process published so far reached local handlers."""
        waiting = list(self._pending.values())
        if not waiting:
            return
        _, not_done = await asyncio.wait(waiting, timeout=timeout)
        if not_done:
            raise TimeoutError(
                f"{len(not_done)} published event(s) not delivered locally after {timeout}s"
            )

    def _check_running(self) -> None:
        if self._closed:
            raise RuntimeError("event bus is closed")
        if not self._started:
            raise RuntimeError("event bus is not started; call start() first")

    def _settle(self, event_id: str) -> None:
        future = self._pending.pop(event_id, None)
        if future is not None and not future.done():
            future.set_result(None)

    async def _deliver(self, envelope: Envelope, lanes: _Lanes | None = None) -> None:
        """Every matching handler gets the event; with ``lanes``, the ones that
        name a lane in their own tasks. The event counts as delivered
        (``wait_idle``) once all of them are done."""
        spawned: list[asyncio.Task[None]] = []
        try:
            spawned = await self._dispatch(envelope, lanes)
        finally:
            if not spawned:
                self._settle(envelope.id)
            else:
                done = asyncio.gather(*spawned, return_exceptions=True)
                done.add_done_callback(lambda _f: self._settle(envelope.id))

    async def _dispatch(
        self, envelope: Envelope, lanes: _Lanes | None = None
    ) -> list[asyncio.Task[None]]:
        spawned: list[asyncio.Task[None]] = []
        # Iterate over a copy: handlers may subscribe or unsubscribe while we run.
        for subscription in list(self._subscriptions):
            if not subscription.active:
                continue
            if subscription.names is not None and envelope.name not in subscription.names:
                continue
            if lanes is not None and subscription.lane is not None:
                spawned.append(
                    await lanes.submit(
                        subscription, envelope, partial(self._call, subscription, envelope)
                    )
                )
            else:
                await self._call(subscription, envelope)
        return spawned

    @staticmethod
    async def _call(subscription: _Subscription, envelope: Envelope) -> None:
        if not subscription.active:
            return
        try:
            await subscription.handler(envelope)
        except Exception:
            # One broken consumer must not starve the others or fail the publisher.
            logger.exception(
                "event handler %s failed on %s %s",
                getattr(subscription.handler, "__qualname__", repr(subscription.handler)),
                envelope.name,
                envelope.id,
            )


class InProcessBus(EventBus):
    """Handlers run inside ``publish``, in subscription order.

    An event published from a handler is delivered completely before the
    remaining handlers of the outer event run.
    """

    async def start(self) -> None:
        if self._closed:
            raise RuntimeError("event bus is closed")
        self._started = True

    async def close(self) -> None:
        self._closed = True

    async def _send(self, envelope: Envelope) -> None:
        await self._deliver(envelope)


_BACKOFF_INITIAL = 0.1
_BACKOFF_MAX = 5.0
# A silently dead TCP connection (NAT timeout, failover) never raises on read, so
# the reader pings when idle and gives up on a connection that stays silent.
_PING_INTERVAL = 5.0
_SILENCE_LIMIT = 3 * _PING_INTERVAL
_CONNECT_TIMEOUT = 5.0
_LOG_SNIPPET = 200


@dataclass(eq=False)
class _Subscriber:
    client: Redis
    pubsub: PubSub

    async def aclose(self) -> None:
        try:
            await self.pubsub.aclose()  # type: ignore[no-untyped-call]  # untyped in redis-py
        finally:
            await self.client.aclose()


class RedisBus(EventBus):
    """Redis pub/sub on one channel; every process, the publisher included,
    dispatches what it reads from the channel, so each local handler sees an
    event once.

    Handlers without a lane run one after another in the reader task, which
    keeps the order of events; a slow one delays the following events of this
    process. Handlers subscribed with a lane run in tasks, in order within a
    lane (e.g. one chat), lanes side by side.
    """

    def __init__(
        self,
        registry: EventRegistry,
        redis_url: str,
        *,
        channel: str = "smeline:events",
        node_id: str | None = None,
    ) -> None:
        super().__init__(registry, node_id=node_id)
        self.redis_url = redis_url
        self.channel = channel
        self._publisher: Redis | None = None
        self._reader: asyncio.Task[None] | None = None
        # Handlers that name a lane run concurrently per lane: one slow
        # handler (a database look-up for a push) no longer holds up every
        # following event of this process (bench/RESULTS.md, issue 4).
        self._lanes = _Lanes()

    def _client(self) -> Redis:
        # No retries inside redis-py: its silent reconnect would hide lost events
        # from us, and a retried PUBLISH could deliver an event twice.
        return Redis.from_url(
            self.redis_url,
            retry=Retry(NoBackoff(), 0),
            socket_connect_timeout=_CONNECT_TIMEOUT,
            socket_timeout=_CONNECT_TIMEOUT,
            client_name="smeline-bus:" + re.sub(r"[^\w.:-]", "_", self.node_id),
        )

    async def start(self) -> None:
        if self._closed:
            raise RuntimeError("event bus is closed")
        if self._started:
            raise RuntimeError("event bus is already started")
        publisher = self._client()
        try:
            # Fail fast at start-up: a service that cannot reach Redis at boot is misconfigured.
            subscriber = await self._subscribe()
        except BaseException:
            await publisher.aclose()
            raise
        self._publisher = publisher
        self._reader = asyncio.create_task(
            self._read_forever(subscriber), name=f"smeline-bus-reader:{self.channel}"
        )
        self._started = True
        logger.info("event bus subscribed to Redis channel %s as %s", self.channel, self.node_id)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        reader, self._reader = self._reader, None
        publisher, self._publisher = self._publisher, None
        try:
            if reader is not None:
                reader.cancel()
                # asyncio.wait does not raise, so a cancellation of close() itself
                # still propagates instead of being mistaken for the reader's.
                await asyncio.wait([reader])
        finally:
            if publisher is not None:
                await publisher.aclose()

    async def _send(self, envelope: Envelope) -> None:
        assert self._publisher is not None  # _check_running() guarantees it
        receivers = await self._publisher.publish(self.channel, envelope.model_dump_json())
        if receivers == 0:
            # Not even our own subscription got it (we are reconnecting): it will never come back.
            logger.warning(
                "event %s %s published while nobody was subscribed to %s",
                envelope.name,
                envelope.id,
                self.channel,
            )
            self._settle(envelope.id)

    async def _subscribe(self) -> _Subscriber:
        client = self._client()
        subscriber = _Subscriber(client, client.pubsub())
        try:
            async with asyncio.timeout(_CONNECT_TIMEOUT):
                await subscriber.pubsub.subscribe(self.channel)
                # Only the confirmation proves Redis will route later PUBLISHes to us.
                while True:
                    message = await subscriber.pubsub.get_message(timeout=_CONNECT_TIMEOUT)
                    if message is not None and message["type"] == "subscribe":
                        return subscriber
        except BaseException:
            await subscriber.aclose()
            raise

    async def _read_forever(self, subscriber: _Subscriber) -> None:
        loop = asyncio.get_running_loop()
        backoff = _BACKOFF_INITIAL
        while True:
            connected_at = loop.time()
            try:
                await self._pump(subscriber)
            except (RedisError, OSError) as exc:
                logger.warning(
                    "lost Redis subscription to %s (%s: %s); reconnecting",
                    self.channel,
                    type(exc).__name__,
                    exc,
                )
            except Exception:
                # A bug here must not leave the process deaf for good.
                logger.exception("event bus reader for %s failed; reconnecting", self.channel)
            finally:
                await subscriber.aclose()
            # Only a connection that held for a while resets the back-off, so a
            # server that accepts and drops at once is not hammered.
            if loop.time() - connected_at > _BACKOFF_MAX:
                backoff = _BACKOFF_INITIAL
            subscriber = await self._reconnect(backoff)
            backoff = min(backoff * 2, _BACKOFF_MAX)

    async def _reconnect(self, backoff: float) -> _Subscriber:
        while True:
            await asyncio.sleep(backoff)
            try:
                subscriber = await self._subscribe()
            except (RedisError, OSError) as exc:
                backoff = min(backoff * 2, _BACKOFF_MAX)
                logger.warning(
                    "cannot resubscribe to %s (%s: %s); next attempt in %.1fs",
                    self.channel,
                    type(exc).__name__,
                    exc,
                    backoff,
                )
                continue
            lost = list(self._pending)
            if lost:
                # Our own events published before this subscription existed went
                # past us; without this wait_idle() would never return again.
                logger.warning(
                    "%d own event(s) may have been missed during reconnect to %s",
                    len(lost),
                    self.channel,
                )
                for event_id in lost:
                    self._settle(event_id)
            logger.info("resubscribed to Redis channel %s", self.channel)
            return subscriber

    async def _pump(self, subscriber: _Subscriber) -> None:
        loop = asyncio.get_running_loop()
        last_heard = loop.time()
        pinged = False
        while True:
            message = await subscriber.pubsub.get_message(timeout=_PING_INTERVAL)
            now = loop.time()
            if message is None:
                silent_for = now - last_heard
                if silent_for > _SILENCE_LIMIT:
                    raise TimeoutError(f"no reply from Redis for {silent_for:.0f}s")
                if silent_for >= _PING_INTERVAL and not pinged:
                    await subscriber.pubsub.ping()
                    pinged = True
                continue
            if message["type"] == "message":
                await self._handle_raw(message["data"])
            # Measured after dispatch, so a slow handler is not mistaken for a dead link.
            last_heard = loop.time()
            pinged = False

    async def _handle_raw(self, data: bytes) -> None:
        try:
            envelope = Envelope.model_validate_json(data)
        except ValidationError as exc:
            # Anything can be PUBLISHed on the channel; skip it rather than kill the reader.
            logger.warning(
                "skipping malformed message on %s: %s; data=%r",
                self.channel,
                _short_errors(exc),
                data[:_LOG_SNIPPET],
            )
            return
        try:
            # Validate once here so handlers never see a payload that does not parse,
            # e.g. from a process running an older version of the model.
            envelope.parsed(self.registry)
        except UnknownEvent:
            logger.warning(
                "skipping event with unknown name %r from %s on %s",
                envelope.name,
                envelope.origin,
                self.channel,
            )
            self._settle(envelope.id)
            return
        except ValidationError as exc:
            logger.warning(
                "skipping event %s %s from %s with invalid payload: %s",
                envelope.name,
                envelope.id,
                envelope.origin,
                _short_errors(exc),
            )
            self._settle(envelope.id)
            return
        await self._deliver(envelope, self._lanes)


def _short_errors(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in err['loc']) or '<root>'}: {err['msg']}"
        for err in exc.errors(include_url=False)
    )


def make_bus(
    registry: EventRegistry, redis_url: str | None, *, node_id: str | None = None
) -> EventBus:
    # An empty SMELINE_REDIS_URL means "not configured", like an absent one.
    if redis_url:
        return RedisBus(registry, redis_url, node_id=node_id)
    return InProcessBus(registry, node_id=node_id)
