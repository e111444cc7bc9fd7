"""The socket.io server: namespaces, authentication at connect, inbound events.

Three namespaces, each authenticated when the client connects (nothing is
reachable before):

* ``/agent`` — desk staff (``telephony.agent``), by session cookie or bearer token;
* ``/supervisor`` — supervisors, admins and county administrators
  (``telephony.supervise``), likewise;
* ``/visitor`` — web-chat visitors, by the token the chat service issued.

A refused connection gets socket.io's ``connect_error`` with
``{"message": <code>, "data": SocketError}``.

Every inbound event goes through one gate, in this order: the socket's token
bucket (``rate_limited``), the staff session still valid
(``authentication_required``, then the socket is closed), a handler
registered for that namespace and name, a single JSON argument no larger
than ``realtime_max_event_bytes``, the handler's pydantic model
(``bad_request`` for all three). Handlers are registered with :meth:`Realtime.on`.
A failure is an ``error`` event to that socket and, when the client asked
for an acknowledgement, ``{"ok": false, "error": ...}`` as the answer; a
success acknowledges ``{"ok": true, "data": ...}``. No exception text ever
reaches the client.

Inbound events of one socket are handled one after another, in order
(``async_handlers=False``): a chat's messages must not overtake each other.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import socketio  # type: ignore[import-untyped]
from aiohttp import web
from pydantic import BaseModel, ValidationError

from smeline.auth.models import Role
from smeline.auth.permissions import Permission, Principal
from smeline.errors import ApiError
from smeline.realtime.auth import (
    OriginPolicy,
    Refused,
    StaffGate,
    VisitorAuthenticator,
    VisitorIdentity,
    origin_of,
    token_from_payload,
)
from smeline.realtime.events import (
    ERROR,
    WINDOW_JOIN,
    WINDOW_LEAVE,
    ErrorCode,
    RoomOut,
    SocketError,
    WindowRoomIn,
)
from smeline.realtime.presence import Presence
from smeline.realtime.ratelimit import TokenBucket
from smeline.realtime.rooms import (
    AGENT_NAMESPACE,
    NAMESPACES,
    SUPERVISOR_NAMESPACE,
    VISITOR_NAMESPACE,
    agent_room,
    chat_room,
    supervisor_room_of,
    window_room,
    windows_in_scope,
)

logger = logging.getLogger(__name__)

SOCKET_PATH = "socket.io"
MAX_EVENT_NAME_LENGTH = 64
# How long start-up waits for the Redis manager's subscription.
_SUBSCRIBE_DEADLINE = 5.0

M = TypeVar("M", bound=BaseModel)
Result = BaseModel | Mapping[str, Any] | None


@dataclass(frozen=True)
class RealtimeLimits:
    events_per_second: float = 10.0
    event_burst: int = 20
    max_event_bytes: int = 16_384
    session_check_seconds: float = 5.0


@dataclass
class _Client:
    sid: str
    namespace: str
    bucket: TokenBucket
    principal: Principal | None = None
    token: str | None = field(default=None, repr=False)
    visitor: VisitorIdentity | None = None


@dataclass(frozen=True)
class SocketContext:
    """What an inbound handler knows about the socket that sent the event."""

    realtime: Realtime
    sid: str
    namespace: str
    principal: Principal | None
    visitor: VisitorIdentity | None

    def staff(self) -> Principal:
        if self.principal is None:
            raise Refused(ErrorCode.FORBIDDEN, "Staff only")
        return self.principal

    def visitor_identity(self) -> VisitorIdentity:
        if self.visitor is None:
            raise Refused(ErrorCode.FORBIDDEN, "Visitors only")
        return self.visitor

    async def enter_room(self, room: str) -> None:
        await self.realtime.server.enter_room(self.sid, room, namespace=self.namespace)

    async def leave_room(self, room: str) -> None:
        await self.realtime.server.leave_room(self.sid, room, namespace=self.namespace)

    def rooms(self) -> list[str]:
        rooms = self.realtime.server.rooms(self.sid, namespace=self.namespace)
        return [r for r in rooms if isinstance(r, str) and r != self.sid]

    async def emit(self, event: str, data: Any) -> None:
        """To this socket only."""
        await self.realtime.server.emit(
            event, data, to=self.sid, namespace=self.namespace, ignore_queue=True
        )


Handler = Callable[[SocketContext, M], Awaitable[Result]]


@dataclass(frozen=True)
class _Registration(Generic[M]):
    model: type[M]
    handler: Handler[M]


class Realtime:
    """socket.io for the agent console, the wallboard and the chat widget.

    ``redis_url`` set: rooms are shared between service processes through
    python-socketio's Redis manager (pushes made with :meth:`emit` reach
    sockets on every process). Otherwise one process works alone.
    """

    def __init__(
        self,
        *,
        staff: StaffGate,
        origins: OriginPolicy,
        windows: Callable[[], Mapping[str, str]],
        limits: RealtimeLimits,
        visitors: VisitorAuthenticator,
        redis_url: str | None = None,
        channel: str = "smeline:socketio",
    ) -> None:
        self._staff = staff
        self._origins = origins
        self._windows = windows
        self.limits = limits
        self._visitors = visitors
        self._clients: dict[str, _Client] = {}
        self._handlers: dict[tuple[str, str], _Registration[Any]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._sweeper: asyncio.Task[None] | None = None
        #: The /agent consoles open per staff member (docs/realtime.md).
        self.presence = Presence()
        self.manager: Any = (
            socketio.AsyncRedisManager(redis_url, channel=channel) if redis_url else None
        )
        self.server: Any = socketio.AsyncServer(
            async_mode="aiohttp",
            client_manager=self.manager,
            cors_allowed_origins=origins.transport_allows,
            # Portal pages (visitors) authenticate with their chat token, never
            # with cookies: a cross-origin request is not let to carry any.
            cors_credentials=False,
            # The transport's own ceiling; events are held to max_event_bytes
            # below with a clear error, far larger frames close the connection.
            max_http_buffer_size=max(4 * limits.max_event_bytes, 65_536),
            async_handlers=False,
            logger=False,
            engineio_logger=False,
        )
        for namespace in NAMESPACES:
            self._register_namespace(namespace)
        self.on(AGENT_NAMESPACE, WINDOW_JOIN, WindowRoomIn, self._join_window)
        self.on(AGENT_NAMESPACE, WINDOW_LEAVE, WindowRoomIn, self._leave_window)

    # -- wiring --------------------------------------------------------------------

    def attach(self, app: web.Application) -> None:
        self.server.attach(app, socketio_path=SOCKET_PATH)

    def set_visitor_authenticator(self, visitors: VisitorAuthenticator) -> None:
        self._visitors = visitors

    def on(self, namespace: str, event: str, model: type[M], handler: Handler[M]) -> None:
        """Register the handler of inbound ``event`` on ``namespace``; its
        payload is validated against ``model`` first (use ``extra="forbid"``)."""
        if namespace not in NAMESPACES:
            raise ValueError(f"unknown namespace {namespace!r}")
        if not event or len(event) > MAX_EVENT_NAME_LENGTH or event in ("connect", "disconnect"):
            raise ValueError(f"event name {event!r} cannot be registered")
        if (namespace, event) in self._handlers:
            raise ValueError(f"{event!r} on {namespace} already has a handler")
        self._handlers[(namespace, event)] = _Registration(model, handler)

    async def start(self) -> None:
        if self.manager is not None:
            await self._start_manager()
        if self._sweeper is None:
            self._sweeper = asyncio.create_task(self._sweep_forever(), name="realtime-sessions")

    async def disconnect_all(self) -> None:
        """Close every socket of this process (on shutdown: aiohttp waits for
        open WebSockets before it runs the cleanup)."""
        for sid in list(self._clients):
            self._forget(sid)
        # Not engine.io's disconnect(): it waits until each socket's queue is
        # drained, which a long-polling client that went away never does.
        sockets = list(self.server.eio.sockets.values())
        await asyncio.gather(
            *(s.close(wait=False, reason="server disconnect") for s in sockets),
            return_exceptions=True,
        )

    async def close(self) -> None:
        sweeper, self._sweeper = self._sweeper, None
        if sweeper is not None:
            sweeper.cancel()
            await asyncio.wait([sweeper])
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(list(self._tasks))
        await self.server.shutdown()
        if self.manager is not None:
            await self._stop_manager()

    # -- pushing -------------------------------------------------------------------

    async def emit(self, event: str, data: Any, *, namespace: str, rooms: list[str]) -> None:
        """Push to rooms on every process (through Redis when configured)."""
        if not rooms:
            return  # an empty target would be socket.io's "everyone"
        await self.server.emit(event, data, to=list(rooms), namespace=namespace)

    async def emit_local(self, event: str, data: Any, namespace: str, rooms: list[str]) -> None:
        """Push to rooms on this process's sockets only (the bus bridge: every
        process receives every bus event)."""
        if not rooms:
            return
        await self.server.emit(event, data, to=list(rooms), namespace=namespace, ignore_queue=True)

    async def push_to_agent(self, user_id: int, event: str, data: Any) -> None:
        await self.emit(event, data, namespace=AGENT_NAMESPACE, rooms=[agent_room(user_id)])

    async def push_to_chat(self, chat_id: int | str, event: str, data: Any) -> None:
        await self.emit(event, data, namespace=VISITOR_NAMESPACE, rooms=[chat_room(chat_id)])

    def connected(self, namespace: str | None = None) -> int:
        """Sockets connected to this process (all namespaces, or one)."""
        return sum(1 for c in self._clients.values() if namespace in (None, c.namespace))

    # -- connect / disconnect ------------------------------------------------------

    def _register_namespace(self, namespace: str) -> None:
        async def connect(sid: str, environ: dict[str, Any], auth: Any = None) -> bool:
            try:
                client = await self._admit(sid, namespace, environ, auth)
            except Refused as refused:
                logger.info("socket refused on %s: %s", namespace, refused.code)
                raise socketio.exceptions.ConnectionRefusedError(
                    refused.code, refused.error().model_dump(mode="json")
                ) from None
            except Exception:
                logger.exception("socket connect on %s failed", namespace)
                error = SocketError(code=ErrorCode.INTERNAL_ERROR, message="Internal error")
                raise socketio.exceptions.ConnectionRefusedError(
                    error.code, error.model_dump(mode="json")
                ) from None
            self._clients[sid] = client
            if namespace == AGENT_NAMESPACE and _at_desk(client.principal):
                assert client.principal is not None
                self.presence.connected(client.principal.user_id)
            return True

        async def disconnect(sid: str, reason: Any = None) -> None:
            self._forget(sid)

        async def event(name: Any, sid: str, *args: Any) -> dict[str, Any]:
            return await self._dispatch(namespace, name, sid, args)

        self.server.on("connect", connect, namespace=namespace)
        self.server.on("disconnect", disconnect, namespace=namespace)
        self.server.on("*", event, namespace=namespace)

    async def _admit(
        self, sid: str, namespace: str, environ: Mapping[str, Any], auth: Any
    ) -> _Client:
        origin = origin_of(environ)
        bucket = TokenBucket(rate=self.limits.events_per_second, burst=self.limits.event_burst)
        if namespace == VISITOR_NAMESPACE:
            if not self._origins.visitor_allows(origin, environ):
                raise Refused(
                    ErrorCode.FORBIDDEN, "Origin not allowed", details={"reason": "origin"}
                )
            token = token_from_payload(auth)
            if token is None:
                raise Refused(ErrorCode.AUTHENTICATION_REQUIRED, "Visitor token required")
            visitor = await self._visitors.authenticate(token)
            if visitor is None:
                raise Refused(
                    ErrorCode.AUTHENTICATION_REQUIRED,
                    "Visitor token expired or unknown",
                    details={"reason": "token_invalid"},
                )
            await self.server.enter_room(sid, chat_room(visitor.chat_id), namespace=namespace)
            return _Client(sid=sid, namespace=namespace, bucket=bucket, visitor=visitor)

        if not self._origins.staff_allows(origin, environ):
            raise Refused(ErrorCode.FORBIDDEN, "Origin not allowed", details={"reason": "origin"})
        token, principal = await self._staff.connect(environ, auth)
        rooms = self._staff_rooms(namespace, principal)
        for room in rooms:
            await self.server.enter_room(sid, room, namespace=namespace)
        logger.debug("socket %s on %s: user_id=%s", sid, namespace, principal.user_id)
        return _Client(
            sid=sid, namespace=namespace, bucket=bucket, principal=principal, token=token
        )

    @staticmethod
    def _staff_rooms(namespace: str, principal: Principal) -> list[str]:
        """The rooms joined on connect; :class:`Refused` when ``principal``
        has no business on ``namespace``."""
        if namespace == AGENT_NAMESPACE:
            if principal.role is Role.EXPERT:
                # An expert hears only the web chats they are invited to,
                # pushed to their own room; no window, no presence, no calls.
                return [agent_room(principal.user_id)]
            if not principal.can(Permission.TELEPHONY_AGENT):
                raise Refused(
                    ErrorCode.FORBIDDEN,
                    f"Role {principal.role.value} has no agent console",
                    details={"permission": Permission.TELEPHONY_AGENT.value},
                )
            return [agent_room(principal.user_id)]
        if namespace == SUPERVISOR_NAMESPACE:
            room = supervisor_room_of(principal)
            if room is None:
                raise Refused(
                    ErrorCode.FORBIDDEN,
                    f"Role {principal.role.value} has no wallboard",
                    details={"permission": Permission.TELEPHONY_SUPERVISE.value},
                )
            return [room]
        raise Refused(ErrorCode.FORBIDDEN, "Unknown namespace")

    # -- inbound events ------------------------------------------------------------

    async def _dispatch(
        self, namespace: str, name: Any, sid: str, args: tuple[Any, ...]
    ) -> dict[str, Any]:
        event = name if isinstance(name, str) and len(name) <= MAX_EVENT_NAME_LENGTH else None
        client = self._clients.get(sid)
        if client is None:
            return await self._fail(sid, namespace, event, Refused(ErrorCode.FORBIDDEN, "Gone"))
        if not client.bucket.take():
            return await self._fail(
                sid,
                namespace,
                event,
                Refused(
                    ErrorCode.RATE_LIMITED,
                    "Too many events; slow down",
                    details={
                        "events_per_second": self.limits.events_per_second,
                        "burst": self.limits.event_burst,
                    },
                ),
            )
        if client.principal is not None and not await self._session_still_valid(client):
            return await self._fail(sid, namespace, event, _session_ended())
        try:
            registration, payload = self._parse(namespace, event, args)
        except Refused as refused:
            return await self._fail(sid, namespace, event, refused)
        context = SocketContext(
            realtime=self,
            sid=sid,
            namespace=namespace,
            principal=client.principal,
            visitor=client.visitor,
        )
        try:
            result = await registration.handler(context, payload)
        except Refused as refused:
            return await self._fail(sid, namespace, event, refused)
        except ApiError as error:
            return await self._fail(
                sid, namespace, event, Refused(error.error_id, error.message, details=error.details)
            )
        except Exception:
            logger.exception("socket handler for %s on %s failed", event, namespace)
            return await self._fail(
                sid, namespace, event, Refused(ErrorCode.INTERNAL_ERROR, "Internal error")
            )
        if isinstance(result, BaseModel):
            return {"ok": True, "data": result.model_dump(mode="json")}
        return {"ok": True, "data": dict(result) if result is not None else None}

    def _parse(
        self, namespace: str, event: str | None, args: tuple[Any, ...]
    ) -> tuple[_Registration[Any], BaseModel]:
        registration = self._handlers.get((namespace, event)) if event else None
        if registration is None:
            raise Refused(
                ErrorCode.BAD_REQUEST, "Unknown event", details={"reason": "unknown_event"}
            )
        if len(args) > 1:
            raise Refused(
                ErrorCode.BAD_REQUEST,
                "An event carries one JSON object",
                details={"reason": "too_many_arguments"},
            )
        data = args[0] if args else None
        try:
            size = len(json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode())
        except (TypeError, ValueError):
            # Binary attachments and anything else JSON cannot carry.
            raise Refused(
                ErrorCode.BAD_REQUEST, "Payload must be JSON", details={"reason": "not_json"}
            ) from None
        if size > self.limits.max_event_bytes:
            raise Refused(
                ErrorCode.BAD_REQUEST,
                "Payload too large",
                details={"reason": "too_large", "max_bytes": self.limits.max_event_bytes},
            )
        try:
            payload = registration.model.model_validate(data)
        except ValidationError as exc:
            raise Refused(
                ErrorCode.BAD_REQUEST,
                "Invalid payload",
                details={
                    "reason": "invalid",
                    "errors": [
                        {
                            "loc": [str(p) for p in err["loc"]],
                            "type": err["type"],
                            "msg": err["msg"],
                        }
                        for err in exc.errors(include_url=False, include_input=False)
                    ],
                },
            ) from None
        return registration, payload

    async def _fail(
        self, sid: str, namespace: str, event: str | None, refused: Refused
    ) -> dict[str, Any]:
        error = refused.error(event).model_dump(mode="json")
        await self.server.emit(ERROR, error, to=sid, namespace=namespace, ignore_queue=True)
        if refused.code == ErrorCode.AUTHENTICATION_REQUIRED:
            self._forget(sid)
            # Not awaited: this runs inside the socket's own receive loop.
            self._spawn(self._drop(sid, namespace))
        return {"ok": False, "error": error}

    # -- staff sessions ------------------------------------------------------------

    async def _session_still_valid(self, client: _Client) -> bool:
        """The session behind a staff socket still authenticates to the same
        principal. A changed role, window or county drops the socket too: its
        rooms were chosen for the old one, and the console reconnects."""
        assert client.token is not None
        try:
            principal = await self._staff.principal(client.token)
        except Exception:
            # The database is briefly unreachable: keep the socket, ask again later.
            logger.warning("cannot re-check the session of socket %s", client.sid, exc_info=True)
            return True
        return principal is not None and principal == client.principal

    async def _sweep_forever(self) -> None:
        """Closes sockets of sessions that ended (logout, expiry, deactivation)
        even when their client stays silent."""
        while True:
            await asyncio.sleep(self.limits.session_check_seconds)
            try:
                await self.sweep()
            except Exception:
                logger.exception("session sweep failed")

    async def sweep(self) -> int:
        """One pass; returns how many sockets were closed."""
        verdicts: dict[tuple[str, Principal | None], bool] = {}
        closed = 0
        for client in list(self._clients.values()):
            if client.token is None:
                continue
            key = (client.token, client.principal)
            if key not in verdicts:
                verdicts[key] = await self._session_still_valid(client)
            if not verdicts[key] and client.sid in self._clients:
                error = _session_ended().error().model_dump(mode="json")
                await self.server.emit(
                    ERROR, error, to=client.sid, namespace=client.namespace, ignore_queue=True
                )
                await self._drop(client.sid, client.namespace)
                closed += 1
        return closed

    def _forget(self, sid: str) -> None:
        """The socket is gone (or going): no more events for it, one console fewer."""
        client = self._clients.pop(sid, None)
        if client is not None and client.namespace == AGENT_NAMESPACE and client.principal:
            if _at_desk(client.principal):
                self.presence.disconnected(client.principal.user_id)

    async def _drop(self, sid: str, namespace: str) -> None:
        self._forget(sid)
        await self.server.disconnect(sid, namespace=namespace, ignore_queue=True)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- built-in /agent events ----------------------------------------------------

    async def _join_window(self, context: SocketContext, body: WindowRoomIn) -> RoomOut:
        principal = context.staff()
        # An expert on /agent has no window (windows_in_scope would give a
        # county-bound one its county's).
        desk = principal.can(Permission.TELEPHONY_AGENT)
        if not desk or body.window_code not in windows_in_scope(principal, self._windows()):
            raise Refused(
                ErrorCode.FORBIDDEN,
                "Not a window of yours",
                details={"window_code": body.window_code},
            )
        room = window_room(body.window_code)
        await context.enter_room(room)
        return RoomOut(room=room)

    async def _leave_window(self, context: SocketContext, body: WindowRoomIn) -> RoomOut:
        room = window_room(body.window_code)
        await context.leave_room(room)
        return RoomOut(room=room)

    # -- the Redis manager ---------------------------------------------------------

    async def _start_manager(self) -> None:
        """Subscribe now rather than at the first connection (python-socketio's
        default), so a process that is up hears pushes made on the others."""
        if not self.server.manager_initialized:
            self.server.manager_initialized = True
            self.manager.initialize()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + _SUBSCRIBE_DEADLINE
        while not _subscribed(self.manager):
            if loop.time() > deadline:
                logger.warning("socket.io Redis manager not subscribed yet; pushes may be missed")
                return
            await asyncio.sleep(0.01)

    async def _stop_manager(self) -> None:
        thread = getattr(self.manager, "thread", None)
        if isinstance(thread, asyncio.Task):
            thread.cancel()
            await asyncio.wait([thread])
        pubsub = getattr(self.manager, "pubsub", None)
        redis = getattr(self.manager, "redis", None)
        if pubsub is not None:
            await pubsub.aclose()
        if redis is not None:
            await redis.aclose()


def _at_desk(principal: Principal | None) -> bool:
    """A desk console (presence counts it); an invited expert's is not one."""
    return principal is not None and principal.can(Permission.TELEPHONY_AGENT)


def _subscribed(manager: Any) -> bool:
    # redis-py records a channel once SUBSCRIBE is written to the connection.
    pubsub = getattr(manager, "pubsub", None)
    return bool(pubsub is not None and getattr(pubsub, "channels", None))


def _session_ended() -> Refused:
    return Refused(
        ErrorCode.AUTHENTICATION_REQUIRED,
        "Session ended; log in again",
        details={"reason": "session_invalid"},
    )
