"""Wiring of the socket.io layer: build it from explicit dependencies, attach
it to the application, start and stop it with the application."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping

from aiohttp import web

from smeline.auth.services import AuthService
from smeline.bus import EventBus
from smeline.config import Settings
from smeline.realtime.auth import NoVisitors, OriginPolicy, StaffGate, VisitorAuthenticator
from smeline.realtime.bridge import Bridge, Directory
from smeline.realtime.server import Realtime, RealtimeLimits
from smeline.reference.services import ReferenceService
from smeline.telephony.calls import default_window_of_queue

REALTIME = web.AppKey("realtime", Realtime)
REALTIME_BRIDGE = web.AppKey("realtime_bridge", Bridge)


def build_realtime(
    settings: Settings,
    *,
    auth: AuthService,
    reference: ReferenceService,
    bus: EventBus,
    visitors: VisitorAuthenticator | None = None,
    window_of_queue: Callable[[str], str | None] = default_window_of_queue,
) -> tuple[Realtime, Bridge]:
    def windows() -> Mapping[str, str]:
        # Read on every use: the reference data is reloaded when it changes.
        return {code: w.county_code for code, w in reference.data.windows.items()}

    def county_of_window(code: str) -> str | None:
        window = reference.data.windows.get(code)
        return window.county_code if window is not None else None

    def known_window_of_queue(queue: str) -> str | None:
        window = window_of_queue(queue)
        return window if window is not None and window in reference.data.windows else None

    realtime = Realtime(
        staff=StaffGate(auth=auth),
        origins=OriginPolicy(
            public_url=settings.public_url, visitor_origins=settings.realtime_allowed_origins
        ),
        windows=windows,
        limits=RealtimeLimits(
            events_per_second=settings.realtime_events_per_second,
            event_burst=settings.realtime_event_burst,
            max_event_bytes=settings.realtime_max_event_bytes,
            session_check_seconds=settings.realtime_session_check_seconds,
        ),
        visitors=visitors or NoVisitors(),
        # The same switch as the bus (make_bus): with Redis, both are shared.
        redis_url=settings.redis_url or None,
        channel=settings.realtime_channel,
    )
    bridge = Bridge(
        bus=bus,
        directory=Directory(
            county_of_window=county_of_window, window_of_queue=known_window_of_queue
        ),
        emit_local=realtime.emit_local,
    )
    return realtime, bridge


def install_realtime(app: web.Application, realtime: Realtime, bridge: Bridge) -> None:
    """Mount ``/socket.io/`` and keep the layer on the application."""
    realtime.attach(app)
    app[REALTIME] = realtime

    async def close_sockets(_app: web.Application) -> None:
        await realtime.disconnect_all()

    app.on_shutdown.append(close_sockets)
    app[REALTIME_BRIDGE] = bridge


def realtime_lifecycle(
    realtime: Realtime, bridge: Bridge
) -> Callable[[web.Application], AsyncIterator[None]]:
    """A ``cleanup_ctx`` entry; append it after the one that starts the bus."""

    async def lifecycle(_app: web.Application) -> AsyncIterator[None]:
        bridge.start()
        await realtime.start()
        try:
            yield
        finally:
            bridge.stop()
            await realtime.close()

    return lifecycle
