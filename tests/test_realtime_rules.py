"""The socket layer's rules without sockets: the token bucket, origins, room
scope and the routing table from bus events to rooms."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from smeline.app import event_registry
from smeline.auth.models import Role
from smeline.auth.permissions import Principal
from smeline.bus import InProcessBus
from smeline.config import Settings
from smeline.realtime.auth import OriginPolicy, normalise_origin, session_cookie, token_from_payload
from smeline.realtime.bridge import ROUTES, Bridge, Directory, user_of_interface
from smeline.realtime.events import PushedEvent, SocketError
from smeline.realtime.ratelimit import TokenBucket
from smeline.realtime.rooms import supervisor_room_of, windows_in_scope
from smeline.reference.data import WINDOWS
from smeline.telephony import events as call_events
from smeline.telephony.phones import interface_of
from smeline.ticketing import events as ticket_events

WINDOW_COUNTIES = {code: county for code, _, county in WINDOWS}
DIRECTORY = Directory(
    county_of_window=WINDOW_COUNTIES.get,
    window_of_queue=lambda queue: queue if queue in WINDOW_COUNTIES else None,
)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


# --- token bucket -------------------------------------------------------------------------


def test_a_bucket_lets_a_burst_through_then_one_event_per_refill() -> None:
    clock = Clock()
    bucket = TokenBucket(rate=10, burst=20, clock=clock)
    assert [bucket.take() for _ in range(25)] == [True] * 20 + [False] * 5
    clock.now += 0.1  # one token
    assert [bucket.take(), bucket.take()] == [True, False]
    clock.now += 60  # refills to the burst, never beyond
    assert sum(bucket.take() for _ in range(30)) == 20


def test_a_steady_sender_below_the_rate_is_never_limited() -> None:
    clock = Clock()
    bucket = TokenBucket(rate=10, burst=2, clock=clock)
    for _ in range(1000):
        clock.now += 0.11
        assert bucket.take()


def test_a_clock_stepping_back_does_not_drain_or_fill_the_bucket() -> None:
    clock = Clock()
    bucket = TokenBucket(rate=1, burst=1, clock=clock)
    assert bucket.take()
    clock.now -= 50
    assert not bucket.take()


@pytest.mark.parametrize(("rate", "burst"), [(0, 5), (-1, 5), (1, 0)])
def test_a_bucket_needs_a_positive_rate_and_burst(rate: float, burst: int) -> None:
    with pytest.raises(ValueError):
        TokenBucket(rate=rate, burst=burst)


# --- origins and credentials --------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("https://Portal.Example.cn", "https://portal.example.cn"),
        ("https://portal.example.cn:443", "https://portal.example.cn"),
        ("http://127.0.0.1:8080/", "http://127.0.0.1:8080"),
        ("http://[::1]:8080", "http://[::1]:8080"),
        ("null", None),
        ("file://", None),
        ("ws://portal.example.cn", None),
        ("https://host:99999", None),
        ("", None),
    ],
)
def test_origins_are_normalised(value: str, expected: str | None) -> None:
    assert normalise_origin(value) == expected


def test_staff_accept_only_the_services_own_origin_and_visitors_the_portals_too() -> None:
    policy = OriginPolicy(
        public_url="https://cc.example.cn/", visitor_origins=["https://portal.example.cn"]
    )
    environ = {"HTTP_HOST": "10.0.0.5:8080"}
    proxied = {"HTTP_HOST": "cc.example.cn", "HTTP_X_FORWARDED_PROTO": "https"}
    assert policy.staff_allows(None, environ)  # not a browser page
    assert policy.staff_allows("https://cc.example.cn", environ)
    assert policy.staff_allows("http://10.0.0.5:8080", environ)
    assert policy.staff_allows("https://cc.example.cn:443", proxied)
    assert not policy.staff_allows("http://cc.example.cn", environ)
    assert not policy.staff_allows("https://portal.example.cn", environ)
    assert not policy.staff_allows("https://cc.example.cn.evil.com", environ)
    assert not policy.staff_allows("null", environ)
    assert policy.visitor_allows("https://portal.example.cn", environ)
    assert policy.transport_allows("https://portal.example.cn", environ)
    assert not policy.visitor_allows("https://evil.example.com", environ)
    assert not policy.transport_allows("https://evil.example.com", environ)


@pytest.mark.parametrize(
    ("auth", "token"),
    [
        ({"token": "abc"}, "abc"),
        ({"token": ""}, None),
        ({"token": None}, None),
        ({"token": 5}, None),
        ({"token": "x" * 257}, None),
        (["abc"], None),
        ("abc", None),
        (None, None),
    ],
)
def test_the_token_comes_only_from_a_well_formed_connect_payload(
    auth: Any, token: str | None
) -> None:
    assert token_from_payload(auth) == token


def test_the_session_cookie_is_read_from_the_cookie_header() -> None:
    assert session_cookie({"HTTP_COOKIE": "a=1; smeline_session=tok-1; b=2"}) == "tok-1"
    assert session_cookie({"HTTP_COOKIE": "a=1"}) is None
    assert session_cookie({"HTTP_COOKIE": 'smeline_session="' + "x" * 300 + '"'}) is None
    assert session_cookie({}) is None


def test_allowed_origins_must_be_origins() -> None:
    base: dict[str, Any] = {"database_url": "sqlite+aiosqlite:///:memory:"}
    assert Settings(**base, realtime_allowed_origins=["https://portal.example.cn"])
    for bad in ("portal.example.cn", "https://portal.example.cn/chat", "ftp://x", "*"):
        with pytest.raises(ValidationError):
            Settings(**base, realtime_allowed_origins=[bad])


# --- rooms --------------------------------------------------------------------------------


def principal(role: Role, *, county: str | None = None, window: str | None = None) -> Principal:
    return Principal(
        user_id=7, username="u", role=role, county_code=county, window_code=window, session_id=1
    )


def test_window_scope_is_the_work_order_scope() -> None:
    agent = principal(Role.AGENT, county="441481", window="xingning")
    county_admin = principal(Role.COUNTY_ADMIN, county="441481")
    supervisor = principal(Role.SUPERVISOR)
    assert windows_in_scope(agent, WINDOW_COUNTIES) == {"xingning"}
    assert windows_in_scope(county_admin, WINDOW_COUNTIES) == {"xingning"}
    assert windows_in_scope(supervisor, WINDOW_COUNTIES) == set(WINDOW_COUNTIES)
    assert windows_in_scope(principal(Role.ADMIN), WINDOW_COUNTIES) == set(WINDOW_COUNTIES)
    assert windows_in_scope(principal(Role.EXPERT), WINDOW_COUNTIES) == set()
    # A window the reference data does not know is in nobody's scope.
    stale = principal(Role.AGENT, county="441481", window="closed_window")
    assert windows_in_scope(stale, WINDOW_COUNTIES) == set()


def test_each_supervising_role_has_one_supervisors_room() -> None:
    assert supervisor_room_of(principal(Role.SUPERVISOR)) == "supervisors"
    assert supervisor_room_of(principal(Role.ADMIN)) == "supervisors"
    assert supervisor_room_of(principal(Role.COUNTY_ADMIN, county="441402")) == (
        "supervisors:441402"
    )
    for role in (Role.AGENT, Role.EXPERT, Role.AGENCY, Role.ANALYST, Role.EDITOR):
        assert supervisor_room_of(principal(role, county="441481")) is None


# --- the routing table --------------------------------------------------------------------


def test_every_route_is_a_registered_event_with_a_matching_payload() -> None:
    registry = event_registry()
    for name, route in ROUTES.items():
        assert issubclass(registry.model_for(name), route.model), name
    # Building the bridge checks the same against the live registry.
    Bridge(bus=InProcessBus(registry), directory=DIRECTORY, emit_local=_no_emit)


async def _no_emit(event: str, data: dict[str, Any], namespace: str, rooms: list[str]) -> None:
    raise AssertionError("not called")


@pytest.mark.parametrize(
    ("interface", "user_id"),
    [
        (interface_of(12), 12),
        ("PJSIP/agent-0", None),
        ("PJSIP/agent-12;2", None),
        ("SIP/agent-12", None),
        ("Local/agent-12@from-queue", None),
        ("PJSIP/agent-", None),
        (None, None),
    ],
)
def test_the_agent_behind_a_queue_interface(interface: str | None, user_id: int | None) -> None:
    assert user_of_interface(interface) == user_id


def _call(model: type[call_events.CallState], **fields: Any) -> Any:
    values: dict[str, Any] = {
        "linkedid": "cctest-1.0",
        "direction": "inbound",
        "caller_number": "13800001234",
        "county": "441481",
        "category": None,
        "window": "xingning",
        "queue": "xingning",
        "agent_interface": interface_of(12),
        "wait_seconds": 3,
        "outcome": "answered",
    }
    values.update(fields)
    return model(**values)


def test_a_screen_pop_goes_to_the_answering_agent_and_the_wallboard_only() -> None:
    answered = _call(call_events.CallAnswered, agent_name="坐席12")
    targets = ROUTES[call_events.CALL_ANSWERED].targets(answered, DIRECTORY)
    assert targets == {
        "/agent": ["agent:12"],
        "/supervisor": ["supervisors", "supervisors:441481"],
    }
    # An interface that is no smeline agent: no agent room at all, never a broadcast.
    stray = _call(call_events.CallAnswered, agent_name=None, agent_interface="SIP/trunk")
    assert "/agent" not in ROUTES[call_events.CALL_ANSWERED].targets(stray, DIRECTORY)


def test_queue_events_go_to_the_windows_and_the_supervisors() -> None:
    queued = _call(call_events.CallQueued, position=2, priority=None, agent_interface=None)
    assert ROUTES[call_events.CALL_QUEUED].targets(queued, DIRECTORY) == {
        "/agent": ["window:xingning"],
        "/supervisor": ["supervisors", "supervisors:441481"],
    }
    overflowed = _call(
        call_events.CallOverflowed, from_queue="xingning", to_queue="city", window="city"
    )
    assert ROUTES[call_events.CALL_OVERFLOWED].targets(overflowed, DIRECTORY) == {
        "/agent": ["window:city", "window:xingning"],
        "/supervisor": ["supervisors", "supervisors:441400"],
    }


def test_agent_state_goes_to_the_agent_and_its_county() -> None:
    state = call_events.AgentState(
        queue="meijiang",
        interface=interface_of(5),
        member_name="坐席5",
        status=1,
        paused=False,
        paused_reason=None,
        in_call=True,
        event="QueueMemberStatus",
    )
    assert ROUTES[call_events.AGENT_STATE].targets(state, DIRECTORY) == {
        "/agent": ["agent:5"],
        "/supervisor": ["supervisors", "supervisors:441402"],
    }
    unknown_queue = state.model_copy(update={"queue": "hand_made_queue"})
    assert ROUTES[call_events.AGENT_STATE].targets(unknown_queue, DIRECTORY)["/supervisor"] == [
        "supervisors"
    ]


def test_a_transferred_work_order_reaches_old_and_new_holder() -> None:
    transferred = ticket_events.TicketTransferred(
        ticket_id=1,
        number="MZ1",
        status="transferred",
        priority="normal",
        category_code="legal",
        county_code="441424",
        window_code="wuhua",
        assignee_id=3,
        sla_state="ok",
        actor_id=3,
        resolution_due_at=None,
        handoff_id=9,
        to_user_id=4,
        handoff_due_at="2031-05-06T08:00:00Z",
    )
    assert ROUTES[ticket_events.TICKET_TRANSFERRED].targets(transferred, DIRECTORY) == {
        "/agent": ["agent:3", "agent:4"],
        "/supervisor": ["supervisors", "supervisors:441424"],
    }


def test_a_route_refuses_a_payload_of_another_type() -> None:
    with pytest.raises(TypeError):
        ROUTES[call_events.CALL_ANSWERED].targets(
            _call(call_events.CallQueued, position=1, priority=None), DIRECTORY
        )


# --- what the browser receives ------------------------------------------------------------


def test_pushed_events_and_errors_have_a_fixed_shape() -> None:
    assert set(PushedEvent.model_json_schema()["properties"]) == {"id", "name", "at", "payload"}
    assert set(SocketError.model_json_schema()["properties"]) == {
        "code",
        "message",
        "event",
        "details",
    }
    with pytest.raises(ValidationError):
        SocketError.model_validate({"code": "x", "message": "y", "trace": "..."})


async def test_a_chat_service_that_takes_the_time_is_adapted() -> None:
    from dataclasses import dataclass
    from datetime import UTC, datetime

    from smeline.realtime.auth import VisitorIdentity, VisitorsNow

    @dataclass(frozen=True)
    class Identity:
        chat_id: int
        visitor_id: str

    seen: list[datetime] = []
    moment = datetime(2031, 5, 6, 8, 0, tzinfo=UTC)

    class Chats:
        async def authenticate(self, token: str, *, now: datetime) -> VisitorIdentity | None:
            seen.append(now)
            return Identity(5, "v5") if token == "good" else None

    visitors = VisitorsNow(Chats(), now=lambda: moment)
    assert await visitors.authenticate("good") == Identity(5, "v5")
    assert await visitors.authenticate("bad") is None
    assert seen == [moment, moment]
