"""Telephony over HTTP: the live picture, agents' queue state, supervisors'
listen-in and force actions, click-to-call and transfer.

With no Asterisk configured every action answers 503
``telephony_not_configured``; the status endpoint says ``configured: false``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal

from aiohttp import web
from pydantic import Field, StringConstraints
from sqlalchemy import select
from yarl import URL

from smeline import keys
from smeline.api import (
    ApiRoutes,
    Out,
    QuerySchema,
    Schema,
    json_ok,
    parse_body,
    parse_query,
    path_int,
)
from smeline.auth.middleware import principal_of
from smeline.auth.models import Role, User
from smeline.auth.permissions import Permission, Principal
from smeline.config import Settings
from smeline.contacts.setup import CONTACTS
from smeline.db import utcnow
from smeline.errors import Forbidden, NotFound, ValidationFailed, field_error
from smeline.telephony.actions import SpyMode
from smeline.telephony.agents import AgentAction, AgentNotLoggedIn, AgentStatus
from smeline.telephony.models import CallRecord
from smeline.telephony.phones import PhoneBook, interface_of
from smeline.telephony.records import calls_of_agent, mine
from smeline.telephony.setup import Telephony

routes = ApiRoutes(tag="telephony")

WindowCode = Literal[
    "meijiang", "meixian", "xingning", "pingyuan", "jiaoling", "dabu", "fengshun", "wuhua", "city"
]


class MemberOut(Out):
    interface: str
    name: str
    status: str
    paused: bool
    paused_reason: str | None
    in_call: bool
    ready: bool
    since: str | None


class WindowLiveOut(Out):
    code: str
    ready: int
    waiting: int
    members: list[MemberOut]


class TelephonyStatusOut(Out):
    configured: bool
    connected: bool
    calls_in_progress: int
    windows: list[WindowLiveOut]


class AgentStatusOut(Out):
    logged_in: bool
    window_code: str | None = None
    interface: str | None = None
    state: str | None = None
    reason: str | None = None
    since: datetime | None = None
    wrapup_until: datetime | None = None
    applied: bool | None = None


class LoginIn(Schema):
    window_code: WindowCode | None = Field(
        default=None, description="Agents are bound to their own window; others choose"
    )


Reason = Field(default=None, pattern=r"^[A-Za-z0-9_\-]{1,40}$")


class StateIn(Schema):
    action: Literal["ready", "pause", "wrapup"]
    reason: str | None = Reason


class ForcePauseIn(Schema):
    reason: str | None = Reason


class SpyIn(Schema):
    mode: SpyMode


class TransferIn(Schema):
    window_code: WindowCode


class OriginatedOut(Out):
    channel_id: str


def _telephony(request: web.Request) -> Telephony:
    return request.app[keys.TELEPHONY]


def _status_out(status: AgentStatus | None) -> AgentStatusOut:
    if status is None:
        return AgentStatusOut(logged_in=False)
    return AgentStatusOut(
        logged_in=True,
        window_code=status.window_code,
        interface=status.interface,
        state=status.state.value,
        reason=status.reason,
        since=status.since,
        wrapup_until=status.wrapup_until,
        applied=status.applied,
    )


@routes.get(
    "/api/telephony/status",
    summary="Live picture: queue members and waiting callers per window",
    response=TelephonyStatusOut,
)
async def telephony_status(request: web.Request) -> web.StreamResponse:
    p = principal_of(request)
    p.require(Permission.TELEPHONY_AGENT)
    t = _telephony(request)
    windows: list[WindowLiveOut] = []
    calls = 0
    if t.service is not None:
        live = t.service.live
        calls = len(t.service.tracker.calls)
        for code in request.app[keys.REFERENCE].data.windows:
            members = live.queue_members(code)
            windows.append(
                WindowLiveOut(
                    code=code,
                    ready=sum(1 for m in members if m.ready),
                    waiting=len(live.waiting.get(code, {})),
                    members=[MemberOut(**m.as_dict()) for m in members],
                )
            )
    out = TelephonyStatusOut(
        configured=t.configured, connected=t.connected, calls_in_progress=calls, windows=windows
    )
    return json_ok(out)


@routes.get(
    "/api/telephony/agents/me",
    summary="My queue state",
    response=AgentStatusOut,
)
async def my_agent_status(request: web.Request) -> web.StreamResponse:
    p = principal_of(request)
    p.require(Permission.TELEPHONY_AGENT)
    return json_ok(_status_out(await _telephony(request).agents.status(p.user_id)))


def _window_for(p: Principal, wanted: str | None) -> str:
    if p.role is Role.AGENT:
        if p.window_code is None:
            raise Forbidden("This agent is not placed in a window", error_id="no_window")
        if wanted not in (None, p.window_code):
            raise Forbidden("Agents log into their own window", error_id="window_scope")
        return p.window_code
    if wanted is None:
        if p.window_code is None:
            raise ValidationFailed(
                "Choose the window to log into",
                details=[field_error("window_code", "missing", "choose a window")],
            )
        return p.window_code
    return wanted


class PhoneSettingsOut(Out):
    endpoint: str
    sip_uri: str
    authorization_user: str
    password: str
    display_name: str
    ws_url: str
    ice_servers: list[str]
    codecs: list[str]
    dtmf: str


@routes.get(
    "/api/telephony/agents/me/phone",
    summary="My softphone's settings (SIP URI, password, WebSocket URL, ICE servers)",
    response=PhoneSettingsOut,
    errors=(403, 503),
)
async def my_phone(request: web.Request) -> web.StreamResponse:
    """The agent's own WebRTC endpoint (created on first use; rendered into
    pjsip.conf by ``smeline asterisk-config``). Only ever the caller's own."""
    p = principal_of(request)
    p.require(Permission.TELEPHONY_AGENT)
    _telephony(request).require_configured()
    settings: Settings = request.app[keys.SETTINGS]
    phone = await PhoneBook(sessionmaker=request.app[keys.SESSIONMAKER]).ensure(
        p.user_id, p.window_code
    )
    # By default Asterisk's /ws sits behind the same TLS reverse proxy as the
    # console (the browser trusts one certificate, docs/console.md).
    authority, scheme = request.host, "wss"
    if settings.public_url:
        public = URL(settings.public_url)
        authority = public.raw_authority or authority
        scheme = "wss" if public.scheme == "https" else "ws"
    ws_url = settings.webrtc_ws_url or f"{scheme}://{authority}/ws"
    domain = settings.webrtc_sip_domain or URL(f"//{authority}").raw_host or authority
    response = json_ok(
        PhoneSettingsOut(
            endpoint=phone.endpoint,
            sip_uri=f"sip:{phone.endpoint}@{domain}",
            authorization_user=phone.endpoint,
            password=phone.secret,
            display_name=p.username,
            ws_url=ws_url,
            ice_servers=list(settings.webrtc_ice_servers),
            # The Chinese PSTN is A-law; stock Asterisk has no opus transcoder.
            codecs=["PCMA", "PCMU"],
            # JsSIP's default is SIP INFO; the endpoints use RFC 4733.
            dtmf="rfc4733",
        )
    )
    response.headers["Cache-Control"] = "no-store"
    return response


@routes.post(
    "/api/telephony/agents/me/login",
    summary="Log into a window's queue (QueueAdd of my WebRTC endpoint)",
    body=LoginIn,
    response=AgentStatusOut,
    errors=(403, 422, 503),
)
async def agent_login(request: web.Request) -> web.StreamResponse:
    p = principal_of(request)
    p.require(Permission.TELEPHONY_AGENT)
    data = await parse_body(request, LoginIn)
    _telephony(request).require_configured()
    window = _window_for(p, data.window_code)
    if p.role is Role.COUNTY_ADMIN:
        county = request.app[keys.REFERENCE].data.windows[window].county_code
        if county != p.county_code:
            raise Forbidden("A county admin takes calls in their county", error_id="county_scope")
    t = _telephony(request)
    status = await t.agents.login(
        p.user_id, window_code=window, interface=interface_of(p.user_id), member_name=p.username
    )
    return json_ok(_status_out(status))


@routes.post(
    "/api/telephony/agents/me/state",
    summary="Ready, pause with a reason, or after-call work (each a QueuePause in Asterisk)",
    body=StateIn,
    response=AgentStatusOut,
    errors=(403, 409, 422, 503),
)
async def agent_state(request: web.Request) -> web.StreamResponse:
    p = principal_of(request)
    p.require(Permission.TELEPHONY_AGENT)
    data = await parse_body(request, StateIn)
    if data.action == "ready":
        # Before the next contact, the wrap-up of the last (docs/wrapup.md).
        contacts = request.app[CONTACTS]
        await contacts.ensure_free(p.user_id, now=contacts.now())
    status = await _telephony(request).agents.act(
        p.user_id, AgentAction(data.action), reason=data.reason
    )
    return json_ok(_status_out(status))


@routes.post(
    "/api/telephony/agents/me/logout",
    summary="Leave the queue (QueueRemove)",
    status=204,
    errors=(409, 503),
)
async def agent_logout(request: web.Request) -> web.StreamResponse:
    p = principal_of(request)
    p.require(Permission.TELEPHONY_AGENT)
    await _telephony(request).agents.logout(p.user_id)
    return web.Response(status=204)


async def _supervised(request: web.Request, p: Principal) -> int:
    """The agent a supervisor acts on; a county admin only in their county."""
    p.require(Permission.TELEPHONY_SUPERVISE)
    user_id = path_int(request, "user_id")
    async with request.app[keys.SESSIONMAKER]() as db:
        user = await db.get(User, user_id)
    if user is None:
        raise NotFound("No such user", error_id="user_not_found")
    county = user.county_code
    windows = request.app[keys.REFERENCE].data.windows
    if user.window_code in windows:
        county = windows[user.window_code].county_code
    if p.role is Role.COUNTY_ADMIN and county != p.county_code:
        raise Forbidden("Outside your county", error_id="county_scope")
    return user_id


@routes.post(
    "/api/telephony/agents/{user_id}/pause",
    summary="Supervisor: force-pause an agent (audited)",
    body=ForcePauseIn,
    response=AgentStatusOut,
    errors=(403, 404, 409, 422, 503),
)
async def force_pause(request: web.Request) -> web.StreamResponse:
    p = principal_of(request)
    user_id = await _supervised(request, p)
    data = await parse_body(request, ForcePauseIn)
    _telephony(request).require_configured()
    t = _telephony(request)
    status = await t.agents.act(user_id, AgentAction.PAUSE, reason=data.reason or "supervisor")
    await t.actions.audit(p.user_id, "force_pause", f"user:{user_id}", {"reason": data.reason})
    return json_ok(_status_out(status))


@routes.post(
    "/api/telephony/agents/{user_id}/logout",
    summary="Supervisor: log an agent out of their queue (audited)",
    status=204,
    errors=(403, 404, 409, 503),
)
async def force_logout(request: web.Request) -> web.StreamResponse:
    p = principal_of(request)
    user_id = await _supervised(request, p)
    t = _telephony(request)
    t.require_configured()
    await t.agents.logout(user_id)
    await t.actions.audit(p.user_id, "force_logout", f"user:{user_id}", {})
    return web.Response(status=204)


@routes.post(
    "/api/telephony/calls/{linkedid}/spy",
    summary="Supervisor: listen, whisper or barge on a live call (audited)",
    body=SpyIn,
    response=OriginatedOut,
    status=202,
    errors=(403, 404, 409, 422, 503),
)
async def spy_on_call(request: web.Request) -> web.StreamResponse:
    p = principal_of(request)
    p.require(Permission.TELEPHONY_SUPERVISE)
    data = await parse_body(request, SpyIn)
    _telephony(request).require_configured()
    originated = await _telephony(request).actions.spy(
        actor_user_id=p.user_id,
        linkedid=path_linkedid(request),
        mode=data.mode,
        supervisor_interface=interface_of(p.user_id),
    )
    return json_ok(OriginatedOut(channel_id=originated.channel_id), status=202)


def path_linkedid(request: web.Request) -> str:
    """A call's Linkedid from the path; anything that cannot be one is a 404."""
    value = request.match_info["linkedid"]
    if not (0 < len(value) <= 64) or not all(c.isalnum() or c in "-._" for c in value):
        raise NotFound("No such call", error_id="call_not_found")
    return value


@routes.post(
    "/api/telephony/calls/{linkedid}/transfer",
    summary="Send the caller to another window's queue, keeping their priority",
    body=TransferIn,
    status=204,
    errors=(403, 404, 422, 503),
)
async def transfer_call(request: web.Request) -> web.StreamResponse:
    p = principal_of(request)
    p.require(Permission.TELEPHONY_AGENT)
    data = await parse_body(request, TransferIn)
    _telephony(request).require_configured()
    await _telephony(request).actions.transfer_to_window(
        actor_user_id=p.user_id, linkedid=path_linkedid(request), window=data.window_code
    )
    return web.Response(status=204)


@routes.post(
    "/api/tickets/{ticket_id}/call",
    summary="Click-to-call the work order's contact: my phone rings first, then the SME",
    response=OriginatedOut,
    status=202,
    errors=(403, 404, 422, 503),
)
async def call_ticket_contact(request: web.Request) -> web.StreamResponse:
    p = principal_of(request)
    p.require(Permission.TELEPHONY_AGENT)
    _telephony(request).require_configured()
    ticket = await request.app[keys.TICKETS].get(p, path_int(request, "ticket_id"), now=utcnow())
    if not ticket.contact_phone:
        raise ValidationFailed(
            "The work order has no contact phone",
            details=[field_error("contact_phone", "missing", "no contact phone")],
        )
    originated = await _telephony(request).actions.click_to_call(
        actor_user_id=p.user_id,
        agent_interface=interface_of(p.user_id),
        number=ticket.contact_phone,
        ticket_ref=ticket.short_ref,
    )
    return json_ok(OriginatedOut(channel_id=originated.channel_id), status=202)


class RecordingQuery(QuerySchema):
    disposition: Literal["inline", "attachment"] = Field(
        default="inline", description="inline: play in the browser; attachment: download"
    )


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class MyCallsQuery(QuerySchema):
    limit: int = Field(default=20, ge=1, le=100)
    cursor: Annotated[str, StringConstraints(max_length=40)] | None = Field(
        default=None, description="next_cursor of the previous page"
    )


class MyCallOut(Out):
    linkedid: str
    direction: str
    caller_number: str
    county_code: str | None
    category_code: str | None
    window: str | None
    started_at: datetime
    answered_at: datetime | None
    ended_at: datetime | None
    wait_seconds: int
    talk_seconds: int
    outcome: str
    joint: bool
    ticket_ref: str | None
    has_recording: bool = Field(description="The file is still there (not purged)")


class MyCallsPageOut(Out):
    items: list[MyCallOut]
    next_cursor: str | None = Field(description="Pass as cursor= for the next page")


def _parse_call_cursor(cursor: str) -> tuple[datetime, int]:
    """``<microseconds since epoch>_<call record id>``."""
    micros, _, ident = cursor.partition("_")
    if (
        micros.isascii()
        and micros.isdigit()
        and ident.isascii()
        and ident.isdigit()
        and len(micros) <= 17
        and len(ident) <= 18
    ):
        return _EPOCH + timedelta(microseconds=int(micros)), int(ident)
    raise ValidationFailed("Bad cursor", details=[field_error("cursor", "invalid", "not a cursor")])


@routes.get(
    "/api/telephony/calls/mine",
    summary="My recent calls, newest first, with whether a recording can be played",
    query=MyCallsQuery,
    response=MyCallsPageOut,
    errors=(403, 422),
)
async def my_calls(request: web.Request) -> web.StreamResponse:
    """Read from the call records: works without Asterisk configured too."""
    p = principal_of(request)
    p.require(Permission.TELEPHONY_AGENT)
    q = parse_query(request, MyCallsQuery)
    after = _parse_call_cursor(q.cursor) if q.cursor is not None else None
    async with request.app[keys.SESSIONMAKER]() as db:
        rows = await calls_of_agent(db, p.user_id, limit=q.limit, after=after)
    more, rows = len(rows) > q.limit, rows[: q.limit]
    present = await _telephony(request).recordings.present([r.recording_file for r in rows])
    items = [
        MyCallOut(
            linkedid=r.linkedid,
            direction=r.direction,
            caller_number=r.caller_number,
            county_code=r.county_code,
            category_code=r.category_code,
            window=r.answered_window,
            started_at=r.started_at,
            answered_at=r.answered_at,
            ended_at=r.ended_at,
            wait_seconds=r.wait_seconds,
            talk_seconds=r.talk_seconds,
            outcome=r.outcome,
            joint=r.joint,
            ticket_ref=r.ticket_ref,
            has_recording=has,
        )
        for r, has in zip(rows, present, strict=True)
    ]
    cursor = None
    if more and rows:
        last = rows[-1]
        cursor = f"{(last.started_at - _EPOCH) // timedelta(microseconds=1)}_{last.id}"
    return json_ok(MyCallsPageOut(items=items, next_cursor=cursor))


@routes.get(
    "/api/telephony/calls/{linkedid}/recording",
    summary="Play or download a call's recording: supervisors any (county admins their "
    "county), the desk their own calls; every access is audited",
    query=RecordingQuery,
    errors=(403, 404, 422),
)
async def call_recording(request: web.Request) -> web.StreamResponse:
    p = principal_of(request)
    p.require(Permission.TELEPHONY_AGENT)
    q = parse_query(request, RecordingQuery)
    linkedid = path_linkedid(request)
    async with request.app[keys.SESSIONMAKER]() as db:
        call = await db.scalar(select(CallRecord).where(CallRecord.linkedid == linkedid))
        own = (
            call is not None
            and (
                await db.scalar(
                    select(CallRecord.id).where(CallRecord.id == call.id, mine(p.user_id))
                )
            )
            is not None
        )
    if call is None:
        raise NotFound("No such call", error_id="call_not_found")
    if not p.can(Permission.TELEPHONY_SUPERVISE) and not own:
        raise Forbidden("Only the recordings of your own calls", error_id="not_your_call")
    if p.role is Role.COUNTY_ADMIN and call.county_code != p.county_code and not own:
        raise Forbidden("Outside your county", error_id="county_scope")
    t = _telephony(request)
    path = await t.recordings.locate(call.recording_file or "")
    if path is None:
        # Never recorded, or purged after the retention period.
        raise NotFound("No recording for this call", error_id="recording_not_found")
    action = "recording_play" if q.disposition == "inline" else "recording_download"
    await t.actions.audit(p.user_id, action, linkedid, {"file": path.name})
    return web.FileResponse(
        path,
        headers={
            "Content-Disposition": f'{q.disposition}; filename="{path.name}"',
            "Cache-Control": "no-store",
        },
    )


__all__ = ["AgentNotLoggedIn", "routes"]
