"""The socket.io layer, over real sockets: python-socketio's client against the
service served by aiohttp's test server, real PostgreSQL, real Redis.

"Receives nothing" is never proved by waiting: a later marker that both
sockets must receive is pushed after the event under test, and the order of
what each socket received is checked once the marker is there.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from uuid import uuid4

import asyncpg
import pytest
import socketio  # type: ignore[import-untyped]
from pydantic import BaseModel, ConfigDict, Field

from smeline.app import create_app
from smeline.config import Settings
from smeline.realtime.events import PushedEvent
from smeline.realtime.server import Realtime, SocketContext
from smeline.telephony import events as call_events
from smeline.telephony.phones import interface_of
from smeline.ticketing import events as ticket_events
from tests.conftest import REDIS_URL, Api, make_settings
from tests.polling import until
from tests.socket_rig import Service, Sock, Sockets

AppFactory = Callable[..., Any]


# --- the service --------------------------------------------------------------------------


@dataclass(frozen=True)
class Visitor:
    chat_id: int
    visitor_id: str


class FakeChatTokens:
    """Stands in for the web-chat service (smeline/webchat), which issues the
    visitor tokens; the socket layer only asks it who a token belongs to."""

    def __init__(self, tokens: dict[str, Visitor]) -> None:
        self.tokens = tokens

    async def authenticate(self, token: str) -> Visitor | None:
        return self.tokens.get(token)


async def start_service(
    aiohttp_client: Any, database_url: str, *, bootstrap: bool = True, **overrides: Any
) -> Service:
    settings = make_settings(database_url, **overrides)
    client = await aiohttp_client(create_app(settings, background=False))
    api = Api(client)
    if bootstrap:
        await api.bootstrap_admin()
    return Service(client=client, api=api)


@pytest.fixture
async def service(settings: Settings, aiohttp_client: Any) -> Service:
    return await start_service(aiohttp_client, settings.database_url)


def call_state(model: type[call_events.CallState], **fields: Any) -> Any:
    values: dict[str, Any] = {
        "linkedid": f"cctest-{uuid4().hex[:12]}",
        "direction": "inbound",
        "caller_number": "13800001234",
        "county": "441481",
        "category": "financing",
        "window": "xingning",
        "queue": "xingning",
        "agent_interface": None,
        "wait_seconds": 4,
        "outcome": "queued",
    }
    extra: dict[str, Any] = {
        call_events.CallQueued: {"position": 1, "priority": None},
        call_events.CallAnswered: {"agent_name": None},
    }.get(model, {})
    values.update(extra)
    values.update(fields)
    return model(**values)


def agent_state(interface: str, queue: str) -> call_events.AgentState:
    return call_events.AgentState(
        queue=queue,
        interface=interface,
        member_name="坐席",
        status=1,
        paused=True,
        paused_reason="lunch",
        in_call=False,
        event="QueueMemberPause",
    )


def ticket_event(model: type[ticket_events.TicketEvent], **fields: Any) -> Any:
    values: dict[str, Any] = {
        "ticket_id": 1,
        "number": f"MZ{uuid4().int % 10**10:010d}",
        "status": "new",
        "priority": "normal",
        "category_code": "financing",
        "county_code": "441481",
        "window_code": "xingning",
        "assignee_id": None,
        "sla_state": "warning",
        "actor_id": None,
        "resolution_due_at": None,
    }
    if model is ticket_events.TicketSlaEvent:
        values.update(
            clock="resolution", due_at="2031-05-06T08:00:00Z", handoff_id=None, escalated_to=[]
        )
    values.update(fields)
    return model(**values)


def pushed_payloads(sock: Sock, name: str) -> list[dict[str, Any]]:
    """Payloads of bus events ``name`` pushed to ``sock`` (each checked against PushedEvent)."""
    out = []
    for data in sock.received(name):
        event = PushedEvent.model_validate(data)
        assert event.name == name
        out.append(event.payload)
    return out


# --- authentication at connect ------------------------------------------------------------


async def test_every_namespace_refuses_a_connection_without_credentials(
    service: Service, sockets: Sockets
) -> None:
    # Over WebSocket: the check is the namespace's, whatever the transport
    # (python-socketio's client takes ~30 s to drop a refused long-polling session).
    for namespace in ("/agent", "/supervisor", "/visitor"):
        refusal = await sockets.refusal(service.url, namespace)
        assert refusal["message"] == "authentication_required", (namespace, refusal)
    assert service.realtime.connected() == 0


async def test_unknown_tokens_and_hostile_auth_payloads_are_refused(
    service: Service, sockets: Sockets
) -> None:
    for auth in (
        {"token": "no-such-session"},
        {"token": ""},
        {"token": 12345},
        {"token": "x" * 5000},
        {"token": ["a"]},
        {"other": "field"},
        "just-a-string",
    ):
        for namespace in ("/agent", "/supervisor", "/visitor"):
            refusal = await sockets.refusal(service.url, namespace, auth=auth)
            assert refusal["message"] == "authentication_required", (auth, namespace)
    refusal = await sockets.refusal(
        service.url, "/agent", headers={"Cookie": "smeline_session=forged"}
    )
    assert refusal["message"] == "authentication_required"


async def test_staff_connect_with_the_bearer_token_or_the_session_cookie(
    service: Service, sockets: Sockets
) -> None:
    agent = await service.api.user("agent", window_code="xingning")
    by_token = await sockets.staff(service.url, "/agent", agent)
    # The browser's way: the cookie set at login, over long-polling first.
    status, body = await service.api.login(agent.username, "Meizhou-2026-secret")
    assert status == 200, body
    by_cookie = await sockets.connect(
        service.url,
        "/agent",
        headers={"Cookie": f"smeline_session={body['token']}"},
        transports=("polling", "websocket"),
    )
    await service.realtime.push_to_agent(agent.id, "test.hello", {"n": 1})
    await until(lambda: by_token.received("test.hello") and by_cookie.received("test.hello"))
    assert by_token.received("test.hello") == by_cookie.received("test.hello") == [{"n": 1}]


async def test_roles_without_a_console_or_wallboard_are_forbidden(
    service: Service, sockets: Sockets
) -> None:
    expert = await service.api.user("expert")
    analyst = await service.api.user("analyst")
    agent = await service.api.user("agent", window_code="xingning")
    county_admin = await service.api.user("county_admin", county_code="441481")
    # An expert may open /agent: it hears only the web chats they are invited
    # to (tests/test_webchat_experts.py); the wallboard stays closed to them.
    for actor, namespace in (
        (analyst, "/agent"),
        (expert, "/supervisor"),
        (agent, "/supervisor"),
    ):
        refusal = await sockets.refusal(service.url, namespace, auth={"token": actor.token})
        assert refusal["message"] == "forbidden", (actor.role, namespace)
    # Staff tokens are no visitor tokens.
    refusal = await sockets.refusal(service.url, "/visitor", auth={"token": agent.token})
    assert refusal["message"] == "authentication_required"
    assert (await sockets.staff(service.url, "/supervisor", county_admin)).client.connected
    assert (await sockets.staff(service.url, "/agent", county_admin)).client.connected


async def test_a_one_time_password_session_cannot_open_a_socket(
    service: Service, sockets: Sockets
) -> None:
    status, body = await service.api.call(
        "POST",
        "/api/users",
        service.api.admin,
        json={
            "username": "fresh",
            "display_name": "新坐席",
            "role": "agent",
            "window_code": "city",
        },
    )
    assert status == 201, body
    status, login = await service.api.login("fresh", body["one_time_password"])
    assert status == 200, login
    refusal = await sockets.refusal(service.url, "/agent", auth={"token": login["token"]})
    assert refusal["message"] == "forbidden"
    assert refusal["data"]["details"] == {"reason": "password_change_required"}


async def test_a_logged_out_session_is_refused(service: Service, sockets: Sockets) -> None:
    agent = await service.api.user("agent", window_code="xingning")
    status, _ = await service.api.call("POST", "/api/auth/logout", agent)
    assert status == 204
    refusal = await sockets.refusal(service.url, "/agent", auth={"token": agent.token})
    assert refusal["message"] == "authentication_required"


async def test_an_expired_session_is_refused(
    settings: Settings, aiohttp_client: Any, sockets: Sockets
) -> None:
    # No session cache: the expiry written below is seen at once.
    svc = await start_service(aiohttp_client, settings.database_url, session_cache_seconds=0)
    agent = await svc.api.user("agent", window_code="xingning")
    assert (await sockets.staff(svc.url, "/agent", agent)).client.connected
    conn = await asyncpg.connect(settings.database_url.replace("postgresql+asyncpg", "postgresql"))
    try:
        await conn.execute(
            "UPDATE auth_sessions SET expires_at = now() - interval '1 minute' WHERE user_id = $1",
            agent.id,
        )
    finally:
        await conn.close()
    refusal = await sockets.refusal(svc.url, "/agent", auth={"token": agent.token})
    assert refusal["message"] == "authentication_required"


async def test_an_open_socket_is_closed_soon_after_its_session_ends(
    settings: Settings, aiohttp_client: Any, sockets: Sockets
) -> None:
    svc = await start_service(
        aiohttp_client, settings.database_url, realtime_session_check_seconds=0.2
    )
    agent = await svc.api.user("agent", window_code="xingning")
    supervisor = await svc.api.user("supervisor")
    console = await sockets.staff(svc.url, "/agent", agent)
    wallboard = await sockets.staff(svc.url, "/supervisor", supervisor)
    status, _ = await svc.api.call("POST", "/api/auth/logout", agent)
    assert status == 204
    await until(lambda: console.disconnected, what="the logged-out console is closed")
    assert [e["code"] for e in console.errors()] == ["authentication_required"]
    assert console.errors()[0]["details"] == {"reason": "session_invalid"}
    # Deactivating a user ends their sessions too.
    status, body = await svc.api.call(
        "PATCH", f"/api/users/{supervisor.id}", svc.api.admin, json={"active": False}
    )
    assert status == 200, body
    await until(lambda: wallboard.disconnected, what="the deactivated user's wallboard is closed")


async def test_an_event_on_a_logged_out_session_is_refused_at_once(
    settings: Settings, aiohttp_client: Any, sockets: Sockets
) -> None:
    # The periodic sweep is far away: only the check on each event can catch it.
    svc = await start_service(
        aiohttp_client, settings.database_url, realtime_session_check_seconds=300
    )
    agent = await svc.api.user("agent", window_code="xingning")
    console = await sockets.staff(svc.url, "/agent", agent)
    status, _ = await svc.api.call("POST", "/api/auth/logout", agent)
    assert status == 204
    answer = await console.call("window.join", {"window_code": "xingning"})
    assert answer["ok"] is False and answer["error"]["code"] == "authentication_required"
    await until(lambda: console.disconnected, what="the console is closed")
    assert svc.realtime.connected() == 0


# --- origins ------------------------------------------------------------------------------


async def test_browser_origins_are_checked(
    settings: Settings, aiohttp_client: Any, sockets: Sockets
) -> None:
    portal = "https://portal.example.cn"
    svc = await start_service(
        aiohttp_client,
        settings.database_url,
        realtime_allowed_origins=[portal],
        public_url="https://cc.example.cn",
    )
    svc.realtime.set_visitor_authenticator(FakeChatTokens({"v-1": Visitor(1, "v1")}))
    agent = await svc.api.user("agent", window_code="xingning")
    # A foreign page (or a sandboxed one: "null") never gets a socket, whatever it carries.
    for namespace, auth, origin in (
        ("/agent", {"token": agent.token}, "https://evil.example.com"),
        ("/visitor", {"token": "v-1"}, "https://evil.example.com"),
        ("/agent", {"token": agent.token}, "null"),
    ):
        sock = sockets._make(namespace)
        with pytest.raises(socketio.exceptions.ConnectionError):
            await sock.client.connect(
                svc.url,
                namespaces=[namespace],
                auth=auth,
                headers={"Origin": origin},
                transports=["websocket"],
                wait_timeout=5,
            )
    # The portal's long-polling handshake is let through CORS, without cookies.
    handshake = "/socket.io/?EIO=4&transport=polling"
    response = await svc.client.get(handshake, headers={"Origin": portal})
    assert response.status == 200
    assert response.headers["Access-Control-Allow-Origin"] == portal
    assert "Access-Control-Allow-Credentials" not in response.headers
    response = await svc.client.get(handshake, headers={"Origin": "https://evil.example.com"})
    assert response.status == 400
    assert "Access-Control-Allow-Origin" not in response.headers
    # The portal embeds the chat widget, not the console.
    refusal = await sockets.refusal(
        svc.url, "/agent", auth={"token": agent.token}, headers={"Origin": portal}
    )
    assert refusal["message"] == "forbidden" and refusal["data"]["details"] == {"reason": "origin"}
    visitor = await sockets.connect(
        svc.url, "/visitor", auth={"token": "v-1"}, headers={"Origin": portal}
    )
    assert visitor.client.connected
    # The service's own origins: the configured public one, and the one the request names.
    for origin in ("https://cc.example.cn", svc.url.rstrip("/")):
        sock = await sockets.connect(
            svc.url, "/agent", auth={"token": agent.token}, headers={"Origin": origin}
        )
        assert sock.client.connected, origin


# --- rooms --------------------------------------------------------------------------------


async def test_an_agent_cannot_join_another_windows_room(
    service: Service, sockets: Sockets
) -> None:
    agent = await service.api.user("agent", window_code="xingning")
    console = await sockets.staff(service.url, "/agent", agent)
    for window in ("meijiang", "city", "no_such_window"):
        answer = await console.call("window.join", {"window_code": window})
        assert answer["ok"] is False, window
        assert answer["error"]["code"] == "forbidden"
    assert [e["code"] for e in console.errors()] == ["forbidden"] * 3
    assert await console.call("window.join", {"window_code": "xingning"}) == {
        "ok": True,
        "data": {"room": "window:xingning"},
    }
    meijiang_call = call_state(call_events.CallQueued, window="meijiang", queue="meijiang")
    xingning_call = call_state(call_events.CallQueued)
    await service.bus.publish(call_events.CALL_QUEUED, meijiang_call)
    await service.bus.publish(call_events.CALL_QUEUED, xingning_call)
    await until(lambda: len(console.received("call.queued")) >= 1)
    assert [p["linkedid"] for p in pushed_payloads(console, "call.queued")] == [
        xingning_call.linkedid
    ]
    rooms = set(service.realtime.server.rooms(console.sid, namespace="/agent"))
    assert rooms == {console.sid, f"agent:{agent.id}", "window:xingning"}


async def test_window_scope_follows_the_role(service: Service, sockets: Sockets) -> None:
    county_admin = await service.api.user("county_admin", county_code="441481")
    supervisor = await service.api.user("supervisor")
    scoped = await sockets.staff(service.url, "/agent", county_admin)
    city_wide = await sockets.staff(service.url, "/agent", supervisor)
    assert (await scoped.call("window.join", {"window_code": "xingning"}))["ok"] is True
    assert (await scoped.call("window.join", {"window_code": "meijiang"}))["ok"] is False
    for window in ("xingning", "meijiang", "city"):
        assert (await city_wide.call("window.join", {"window_code": window}))["ok"] is True
    assert (await city_wide.call("window.leave", {"window_code": "city"}))["ok"] is True
    rooms = set(service.realtime.server.rooms(city_wide.sid, namespace="/agent"))
    assert rooms == {city_wide.sid, f"agent:{supervisor.id}", "window:xingning", "window:meijiang"}


# --- the bridge ---------------------------------------------------------------------------


async def test_the_screen_pop_reaches_only_the_agent_who_gets_the_call(
    service: Service, sockets: Sockets
) -> None:
    first = await service.api.user("agent", window_code="xingning")
    second = await service.api.user("agent", window_code="xingning")
    consoles = [await sockets.staff(service.url, "/agent", a) for a in (first, second)]
    for console in consoles:
        assert (await console.call("window.join", {"window_code": "xingning"}))["ok"] is True
    answered = call_state(
        call_events.CallAnswered,
        agent_interface=interface_of(first.id),
        agent_name="兴宁坐席",
        outcome="answered",
    )
    marker = call_state(call_events.CallQueued)
    await service.bus.publish(call_events.CALL_ANSWERED, answered)
    await service.bus.publish(call_events.CALL_QUEUED, marker)
    await until(lambda: all(c.received("call.queued") for c in consoles))
    taker, other = consoles
    assert taker.names() == ["call.answered", "call.queued"]
    assert pushed_payloads(taker, "call.answered")[0]["linkedid"] == answered.linkedid
    assert pushed_payloads(taker, "call.answered")[0]["caller_number"] == "13800001234"
    assert other.names() == ["call.queued"]


async def test_agent_state_goes_to_that_agent_and_to_the_supervisors_of_its_county(
    service: Service, sockets: Sockets
) -> None:
    agent = await service.api.user("agent", window_code="xingning")
    other_agent = await service.api.user("agent", window_code="xingning")
    xingning_admin = await service.api.user("county_admin", county_code="441481")
    meijiang_admin = await service.api.user("county_admin", county_code="441402")
    supervisor = await service.api.user("supervisor")
    mine = await sockets.staff(service.url, "/agent", agent)
    not_mine = await sockets.staff(service.url, "/agent", other_agent)
    boards = {
        "xingning": await sockets.staff(service.url, "/supervisor", xingning_admin),
        "meijiang": await sockets.staff(service.url, "/supervisor", meijiang_admin),
        "city": await sockets.staff(service.url, "/supervisor", supervisor),
    }
    await service.bus.publish(
        call_events.AGENT_STATE, agent_state(interface_of(agent.id), "xingning")
    )
    # Markers: a work order assigned to each agent, and a meijiang SLA warning.
    await service.bus.publish(
        ticket_events.TICKET_ASSIGNED, ticket_event(ticket_events.TicketEvent, assignee_id=agent.id)
    )
    await service.bus.publish(
        ticket_events.TICKET_ASSIGNED,
        ticket_event(ticket_events.TicketEvent, assignee_id=other_agent.id),
    )
    await service.bus.publish(
        ticket_events.TICKET_SLA_WARNING,
        ticket_event(ticket_events.TicketSlaEvent, county_code="441402", window_code="meijiang"),
    )
    await until(lambda: mine.received("ticket.assigned") and not_mine.received("ticket.assigned"))
    await until(
        lambda: all(b.received("ticket.sla_warning") for b in (boards["meijiang"], boards["city"]))
    )
    assert mine.names() == ["agent.state", "ticket.assigned"]
    assert not_mine.names() == ["ticket.assigned"]
    # (the wallboard's own snapshot push follows these events ~1 s later: not counted here)
    assert boards["city"].bus_names() == [
        "agent.state",
        "ticket.assigned",
        "ticket.assigned",
        "ticket.sla_warning",
    ]
    assert boards["meijiang"].bus_names() == ["ticket.sla_warning"]
    # The xingning board heard its own county (the SLA warning was meijiang's).
    await until(lambda: len(boards["xingning"].bus_names()) >= 3)
    assert boards["xingning"].bus_names() == ["agent.state", "ticket.assigned", "ticket.assigned"]


async def test_sla_breach_reaches_the_assignee_and_the_county_supervisors(
    service: Service, sockets: Sockets
) -> None:
    agent = await service.api.user("agent", window_code="xingning")
    county_admin = await service.api.user("county_admin", county_code="441481")
    console = await sockets.staff(service.url, "/agent", agent)
    board = await sockets.staff(service.url, "/supervisor", county_admin)
    breach = ticket_event(ticket_events.TicketSlaEvent, assignee_id=agent.id, sla_state="breached")
    await service.bus.publish(ticket_events.TICKET_SLA_BREACHED, breach)
    await until(
        lambda: console.received("ticket.sla_breached") and board.received("ticket.sla_breached")
    )
    assert pushed_payloads(console, "ticket.sla_breached")[0]["number"] == breach.number
    assert pushed_payloads(board, "ticket.sla_breached")[0]["number"] == breach.number


# --- inbound events: the rate limit and bad payloads --------------------------------------


class EchoIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str = Field(max_length=20_000)


class EchoOut(BaseModel):
    text: str


def install_echo(realtime: Realtime, handled: list[str]) -> None:
    async def echo(context: SocketContext, body: EchoIn) -> EchoOut:
        handled.append(body.text)
        if body.text == "explode":
            raise RuntimeError("secret internals /etc/passwd")
        return EchoOut(text=body.text)

    realtime.on("/agent", "test.echo", EchoIn, echo)


async def test_a_burst_beyond_the_rate_limit_gets_rate_limited(
    settings: Settings, aiohttp_client: Any, sockets: Sockets
) -> None:
    # A bucket of 5 that refills once per 1000 s: exactly 5 get through.
    svc = await start_service(
        aiohttp_client,
        settings.database_url,
        realtime_events_per_second=0.001,
        realtime_event_burst=5,
    )
    handled: list[str] = []
    install_echo(svc.realtime, handled)
    agent = await svc.api.user("agent", window_code="xingning")
    console = await sockets.staff(svc.url, "/agent", agent)
    for n in range(12):
        await console.emit("test.echo", {"text": str(n)})
    await until(lambda: len(console.errors()) == 7, what="seven refusals")
    assert handled == ["0", "1", "2", "3", "4"]
    assert {e["code"] for e in console.errors()} == {"rate_limited"}
    assert {e["event"] for e in console.errors()} == {"test.echo"}
    answer = await console.call("test.echo", {"text": "later"})
    assert answer["ok"] is False and answer["error"]["code"] == "rate_limited"
    assert console.client.connected  # limited, not thrown out
    # Another socket has its own bucket.
    other = await sockets.staff(svc.url, "/agent", agent)
    assert (await other.call("test.echo", {"text": "fresh"}))["ok"] is True


async def test_bad_payloads_get_bad_request_and_never_a_trace(
    service: Service, sockets: Sockets
) -> None:
    handled: list[str] = []
    install_echo(service.realtime, handled)
    agent = await service.api.user("agent", window_code="xingning")
    console = await sockets.staff(service.url, "/agent", agent)
    cases: list[tuple[str, tuple[Any, ...], str]] = [
        ("test.echo", (123,), "invalid"),
        ("test.echo", (["text"],), "invalid"),
        ("test.echo", ({"text": 5},), "invalid"),
        ("test.echo", ({},), "invalid"),
        ("test.echo", ([],), "invalid"),
        ("test.echo", ({"text": "a", "admin": True},), "invalid"),
        ("test.echo", ({"text": "长" * 10_000},), "too_large"),
        ("test.echo", ({"text": "a"}, {"text": "b"}), "too_many_arguments"),
        ("test.echo", (b"\x00\x01binary",), "not_json"),
        ("test.echo", (), "invalid"),
        ("no.such.event", ({"text": "a"},), "unknown_event"),
        ("window.join", ({"window_code": "xingning; DROP TABLE users"},), "invalid"),
        ("x" * 500, ({"text": "a"},), "unknown_event"),
    ]
    for event, args, reason in cases:
        answer = await console.call(event, *args)
        assert answer["ok"] is False, (event, args)
        assert answer["error"]["code"] == "bad_request", (event, args, answer)
        assert answer["error"]["details"]["reason"] == reason, (event, args, answer)
    assert handled == []
    assert len(console.errors()) == len(cases)
    invalid = console.errors()[2]
    assert invalid["details"]["errors"] == [
        {"loc": ["text"], "type": "string_type", "msg": "Input should be a valid string"}
    ]
    assert console.errors()[-1]["event"] is None  # a hostile name is not echoed back
    # A handler that fails says so, without a word of its internals.
    answer = await console.call("test.echo", {"text": "explode"})
    assert answer == {
        "ok": False,
        "error": {
            "code": "internal_error",
            "message": "Internal error",
            "event": "test.echo",
            "details": None,
        },
    }
    # The socket is still there and works.
    assert await console.call("test.echo", {"text": "你好"}) == {
        "ok": True,
        "data": {"text": "你好"},
    }


async def test_handlers_register_once_per_namespace_and_name(service: Service) -> None:
    async def handler(context: SocketContext, body: EchoIn) -> None:
        return None

    service.realtime.on("/visitor", "test.send", EchoIn, handler)
    with pytest.raises(ValueError, match="already has a handler"):
        service.realtime.on("/visitor", "test.send", EchoIn, handler)
    with pytest.raises(ValueError, match="unknown namespace"):
        service.realtime.on("/", "test.send", EchoIn, handler)
    with pytest.raises(ValueError, match="cannot be registered"):
        service.realtime.on("/agent", "connect", EchoIn, handler)


# --- visitors -----------------------------------------------------------------------------


async def test_a_visitor_hears_only_their_own_chat(service: Service, sockets: Sockets) -> None:
    service.realtime.set_visitor_authenticator(
        FakeChatTokens({"token-a": Visitor(101, "va"), "token-b": Visitor(102, "vb")})
    )
    handled: list[tuple[int | str, str]] = []

    async def send(context: SocketContext, body: EchoIn) -> None:
        handled.append((context.visitor_identity().chat_id, body.text))

    service.realtime.on("/visitor", "test.send", EchoIn, send)
    refusal = await sockets.refusal(service.url, "/visitor", auth={"token": "token-c"})
    assert refusal["message"] == "authentication_required"
    a = await sockets.connect(service.url, "/visitor", auth={"token": "token-a"})
    b = await sockets.connect(service.url, "/visitor", auth={"token": "token-b"})
    assert set(service.realtime.server.rooms(b.sid, namespace="/visitor")) == {b.sid, "chat:102"}
    # B asks for A's chat: there is no way to name a room.
    for event, payload in (
        ("chat.join", {"chat_id": 101}),
        ("join", "chat:101"),
        ("window.join", {"window_code": "xingning"}),
    ):
        answer = await b.call(event, payload)
        assert answer["ok"] is False and answer["error"]["code"] == "bad_request", event
    assert set(service.realtime.server.rooms(b.sid, namespace="/visitor")) == {b.sid, "chat:102"}
    # What B sends lands in B's chat, whatever it claims.
    assert (await b.call("test.send", {"text": "我是101"}))["ok"] is True
    assert handled == [(102, "我是101")]
    await service.realtime.push_to_chat(101, "chat.message", {"body": "给A的回复"})
    await service.realtime.push_to_chat(102, "chat.message", {"body": "marker"})
    await service.realtime.push_to_chat(101, "chat.message", {"body": "marker"})
    await until(lambda: len(a.received("chat.message")) == 2 and b.received("chat.message"))
    assert a.received("chat.message") == [{"body": "给A的回复"}, {"body": "marker"}]
    assert b.received("chat.message") == [{"body": "marker"}]


# --- several processes sharing Redis ------------------------------------------------------


async def test_two_processes_sharing_redis_deliver_each_push_exactly_once(
    settings: Settings, aiohttp_client: Any, sockets: Sockets
) -> None:
    # Our own socket.io channel: other test runs on this Redis do not reach us.
    channel = f"smeline-test:socketio:{uuid4().hex}"
    first = await start_service(
        aiohttp_client, settings.database_url, redis_url=REDIS_URL, realtime_channel=channel
    )
    second = await start_service(
        aiohttp_client,
        settings.database_url,
        bootstrap=False,
        redis_url=REDIS_URL,
        realtime_channel=channel,
    )
    agent = await first.api.user("agent", window_code="xingning")
    supervisor = await first.api.user("supervisor")
    on_second = await sockets.staff(second.url, "/agent", agent)
    wallboard_on_first = await sockets.staff(first.url, "/supervisor", supervisor)
    # A push made on the first process reaches the socket on the second.
    await first.realtime.push_to_agent(agent.id, "test.direct", {"n": 1})
    # A bus event published on the first process: both processes hear it.
    answered = call_state(
        call_events.CallAnswered, agent_interface=interface_of(agent.id), outcome="answered"
    )
    await first.bus.publish(call_events.CALL_ANSWERED, answered)
    await first.realtime.push_to_agent(agent.id, "test.marker", {"n": 2})
    await first.realtime.emit(
        "test.marker", {"n": 3}, namespace="/supervisor", rooms=["supervisors"]
    )
    await until(lambda: on_second.received("test.marker"), within=10)
    await until(lambda: wallboard_on_first.received("test.marker"), within=10)
    # Each process pushes bus events to its own sockets only (other test runs
    # may publish on the shared bus channel: count only our call).
    ours = [
        p for p in pushed_payloads(on_second, "call.answered") if p["linkedid"] == answered.linkedid
    ]
    assert len(ours) == 1
    assert on_second.received("test.direct") == [{"n": 1}]
    assert on_second.received("test.marker") == [{"n": 2}]
    boards = [
        p
        for p in pushed_payloads(wallboard_on_first, "call.answered")
        if p["linkedid"] == answered.linkedid
    ]
    assert len(boards) == 1
    assert wallboard_on_first.received("test.marker") == [{"n": 3}]
    # And the other way round.
    await second.realtime.emit(
        "test.back", {"n": 4}, namespace="/supervisor", rooms=["supervisors"]
    )
    await second.realtime.emit(
        "test.marker", {"n": 5}, namespace="/supervisor", rooms=["supervisors"]
    )
    await until(lambda: len(wallboard_on_first.received("test.marker")) == 2, within=10)
    assert wallboard_on_first.received("test.back") == [{"n": 4}]


async def test_the_service_closes_its_sockets_on_shutdown(
    settings: Settings, aiohttp_client: Any, sockets: Sockets
) -> None:
    svc = await start_service(aiohttp_client, settings.database_url)
    agent = await svc.api.user("agent", window_code="xingning")
    console = await sockets.staff(svc.url, "/agent", agent)
    await svc.client.close()
    await until(lambda: console.disconnected, what="the console sees the shutdown")
