"""Wiring of the wallboard: the snapshot service, the missed-call counter on
the AMI stream, the publisher on the bus."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from datetime import datetime
from typing import Any

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from smeline.bus import EventBus
from smeline.config import Settings
from smeline.db import utcnow
from smeline.realtime.rooms import SUPERVISOR_NAMESPACE, SUPERVISORS
from smeline.realtime.server import Realtime
from smeline.reference.services import ReferenceService
from smeline.routing.services import RoutingService
from smeline.stats.figures import FigureRules
from smeline.stats.services import FiguresService
from smeline.telephony.live import LivePicture
from smeline.telephony.setup import Telephony
from smeline.wallboard.missed import MissedCalls
from smeline.wallboard.publisher import WallboardPublisher
from smeline.wallboard.services import WallboardService

WALLBOARD = web.AppKey("wallboard_service", WallboardService)
WALLBOARD_PUBLISHER = web.AppKey("wallboard_publisher", WallboardPublisher)


def figure_rules(settings: Settings) -> FigureRules:
    return FigureRules(
        service_level_seconds=settings.service_level_seconds,
        short_abandon_seconds=settings.short_abandon_seconds,
    )


def supervisor_rooms(realtime: Realtime) -> Callable[[], Iterator[str]]:
    """The supervisors' rooms with a socket connected to this process."""

    def occupied() -> Iterator[str]:
        rooms: Mapping[Any, Any] = realtime.server.manager.rooms.get(SUPERVISOR_NAMESPACE, {})
        for room, members in list(rooms.items()):
            if isinstance(room, str) and room.startswith(SUPERVISORS) and len(members):
                yield room

    return occupied


def build_wallboard(
    settings: Settings,
    *,
    sessionmaker: async_sessionmaker[AsyncSession],
    reference: ReferenceService,
    routing: RoutingService,
    telephony: Telephony,
    bus: EventBus,
    realtime: Realtime,
    now: Callable[[], datetime] = utcnow,
) -> tuple[WallboardService, WallboardPublisher]:
    missed = MissedCalls(now=now)

    def live() -> LivePicture | None:
        # Waiting callers and members are known only while AMI is connected.
        service = telephony.service
        return service.live if service is not None and service.client.connected else None

    def window_open(at: datetime) -> dict[str, bool]:
        return {code: state.open for code, state in routing.window_states(at).items()}

    service = WallboardService(
        sessionmaker=sessionmaker,
        figures=FiguresService(sessionmaker=sessionmaker, rules=figure_rules(settings)),
        reference=reference,
        window_open=window_open,
        live=live,
        missed=missed,
        now=now,
    )
    publisher = WallboardPublisher(
        bus=bus,
        service=service,
        emit_local=realtime.emit_local,
        occupied_rooms=supervisor_rooms(realtime),
        interval=settings.wallboard_push_seconds,
    )
    if telephony.service is not None:
        telephony.service.client.add_event_listener(missed.on_ami_event)
    missed.add_listener(publisher.stale)
    return service, publisher


def install(app: web.Application, service: WallboardService, publisher: WallboardPublisher) -> None:
    app[WALLBOARD] = service
    app[WALLBOARD_PUBLISHER] = publisher


def wallboard_lifecycle(
    publisher: WallboardPublisher,
) -> Callable[[web.Application], AsyncIterator[None]]:
    """A ``cleanup_ctx`` entry, after the bus and the socket layer started."""

    async def lifecycle(_app: web.Application) -> AsyncIterator[None]:
        publisher.start()
        try:
            yield
        finally:
            await publisher.stop()

    return lifecycle
