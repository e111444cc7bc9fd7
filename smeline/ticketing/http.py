"""Work-order endpoints."""

from __future__ import annotations

from datetime import date

from aiohttp import web
from pydantic import Field

from smeline import keys
from smeline.api import (
    ApiRoutes,
    Out,
    Schema,
    json_ok,
    no_content,
    parse_body,
    parse_query,
    path_int,
)
from smeline.auth.middleware import principal_of
from smeline.auth.permissions import Permission
from smeline.db import utcnow
from smeline.errors import NotFound, ValidationFailed, field_error
from smeline.ticketing import policies
from smeline.ticketing.calendar_service import CalendarService
from smeline.ticketing.models import Priority
from smeline.ticketing.schemas import (
    ActionIn,
    CommentIn,
    CommentListOut,
    CommentOut,
    HistoryListOut,
    HistoryOut,
    ShareIn,
    ShareOut,
    TicketCreateIn,
    TicketListQuery,
    TicketOut,
    TicketPageOut,
    TicketUpdateIn,
)
from smeline.ticketing.services import TicketService

routes = ApiRoutes(tag="work orders")


def _svc(request: web.Request) -> TicketService:
    return request.app[keys.TICKETS]


@routes.post(
    "/api/tickets",
    summary="Open a work order",
    body=TicketCreateIn,
    response=TicketOut,
    status=201,
    errors=(403, 422),
)
async def create_ticket(request: web.Request) -> web.StreamResponse:
    p = principal_of(request)
    data = await parse_body(request, TicketCreateIn)
    return json_ok(await _svc(request).create(p, data, now=utcnow()), status=201)


@routes.get(
    "/api/tickets",
    summary="List work orders (filtered, newest first, cursor-paginated)",
    query=TicketListQuery,
    response=TicketPageOut,
)
async def list_tickets(request: web.Request) -> web.StreamResponse:
    p = principal_of(request)
    query = parse_query(request, TicketListQuery)
    items, cursor = await _svc(request).list_page(p, query)
    return json_ok(TicketPageOut(items=items, next_cursor=cursor))


@routes.get(
    "/api/tickets/by-ref/{ref}",
    summary="Find a work order by its 8-digit short reference",
    response=TicketOut,
    errors=(404,),
)
async def ticket_by_ref(request: web.Request) -> web.StreamResponse:
    p = principal_of(request)
    return json_ok(await _svc(request).get_by_ref(p, request.match_info["ref"], now=utcnow()))


@routes.get("/api/tickets/{ticket_id}", summary="One work order", response=TicketOut, errors=(404,))
async def get_ticket(request: web.Request) -> web.StreamResponse:
    p = principal_of(request)
    return json_ok(await _svc(request).get(p, path_int(request, "ticket_id"), now=utcnow()))


@routes.patch(
    "/api/tickets/{ticket_id}",
    summary="Change fields of a work order",
    body=TicketUpdateIn,
    response=TicketOut,
    errors=(403, 404, 409, 422),
)
async def update_ticket(request: web.Request) -> web.StreamResponse:
    p = principal_of(request)
    data = await parse_body(request, TicketUpdateIn)
    out = await _svc(request).update(p, path_int(request, "ticket_id"), data, now=utcnow())
    return json_ok(out)


@routes.post(
    "/api/tickets/{ticket_id}/actions",
    summary="Move a work order through its state machine (assign, start, resolve, transfer …)",
    body=ActionIn,
    response=TicketOut,
    errors=(403, 404, 409, 422),
)
async def act_on_ticket(request: web.Request) -> web.StreamResponse:
    p = principal_of(request)
    data = await parse_body(request, ActionIn)
    return json_ok(await _svc(request).act(p, path_int(request, "ticket_id"), data, now=utcnow()))


@routes.get(
    "/api/tickets/{ticket_id}/history",
    summary="Append-only history of a work order",
    response=HistoryListOut,
    errors=(404,),
)
async def ticket_history(request: web.Request) -> web.StreamResponse:
    p = principal_of(request)
    rows = await _svc(request).history(p, path_int(request, "ticket_id"))
    return json_ok(HistoryListOut(items=[HistoryOut.model_validate(r) for r in rows]))


@routes.get(
    "/api/tickets/{ticket_id}/comments",
    summary="Replies, calls and notes",
    response=CommentListOut,
    errors=(404,),
)
async def ticket_comments(request: web.Request) -> web.StreamResponse:
    p = principal_of(request)
    rows = await _svc(request).comments(p, path_int(request, "ticket_id"))
    return json_ok(CommentListOut(items=[CommentOut.model_validate(r) for r in rows]))


@routes.post(
    "/api/tickets/{ticket_id}/comments",
    summary="Reply to the SME, log a call (both count as first response) or add a note",
    body=CommentIn,
    response=CommentOut,
    status=201,
    errors=(403, 404, 409, 422),
)
async def add_comment(request: web.Request) -> web.StreamResponse:
    p = principal_of(request)
    data = await parse_body(request, CommentIn)
    row = await _svc(request).comment(p, path_int(request, "ticket_id"), data, now=utcnow())
    return json_ok(CommentOut.model_validate(row), status=201)


@routes.post(
    "/api/tickets/{ticket_id}/shares",
    summary="Share a work order with a user or a county",
    body=ShareIn,
    response=ShareOut,
    status=201,
    errors=(403, 404, 422),
)
async def share_ticket(request: web.Request) -> web.StreamResponse:
    p = principal_of(request)
    data = await parse_body(request, ShareIn)
    row = await _svc(request).share(p, path_int(request, "ticket_id"), data, now=utcnow())
    return json_ok(ShareOut.model_validate(row), status=201)


# --- business calendar ------------------------------------------------------------------

calendar_routes = ApiRoutes(tag="business calendar")


class YearOut(Out):
    year: int
    source: str


class OverrideOut(Out):
    day: date
    is_workday: bool


class CalendarOut(Out):
    hours: list[list[str]]
    years: list[YearOut]
    overrides: list[OverrideOut]
    warnings: list[str]


class OverrideIn(Schema):
    is_workday: bool
    note: str | None = Field(default=None, max_length=200)


def _cal(request: web.Request) -> CalendarService:
    return request.app[keys.CALENDARS]


def _day(request: web.Request) -> date:
    try:
        return date.fromisoformat(request.match_info["day"])
    except ValueError as exc:
        raise NotFound("No such day", error_id="bad_day") from exc


@calendar_routes.get(
    "/api/calendar",
    summary="Business hours, holiday data per year, overrides",
    response=CalendarOut,
)
async def get_calendar(request: web.Request) -> web.StreamResponse:
    principal_of(request)
    cal = _cal(request)
    this_year = utcnow().year
    sources = cal.year_sources(range(this_year - 1, this_year + 2))
    warnings = [
        f"No official holiday data for {y}: add its holidays and confirm the year"
        for y, s in sources.items()
        if s == "missing"
    ]
    return json_ok(
        CalendarOut(
            hours=[[a.strftime("%H:%M"), b.strftime("%H:%M")] for a, b in cal.default_hours],
            years=[YearOut(year=y, source=s.value) for y, s in sources.items()],
            overrides=[
                OverrideOut(day=d, is_workday=w) for d, w in sorted(cal.overrides().items())
            ],
            warnings=warnings,
        )
    )


@calendar_routes.put(
    "/api/calendar/overrides/{day}",
    summary="Mark one day as working day or day off",
    body=OverrideIn,
    status=204,
    errors=(403, 404, 422),
)
async def put_override(request: web.Request) -> web.StreamResponse:
    p = principal_of(request)
    p.require(Permission.CALENDAR_MANAGE)
    day = _day(request)
    data = await parse_body(request, OverrideIn)
    await _cal(request).set_override(day, data.is_workday, data.note, p.user_id, utcnow())
    return no_content()


@calendar_routes.delete(
    "/api/calendar/overrides/{day}", summary="Remove an override", status=204, errors=(403, 404)
)
async def delete_override(request: web.Request) -> web.StreamResponse:
    p = principal_of(request)
    p.require(Permission.CALENDAR_MANAGE)
    if not await _cal(request).delete_override(_day(request)):
        raise NotFound("No override on that day", error_id="override_not_found")
    return no_content()


@calendar_routes.post(
    "/api/calendar/years/{year}/confirm",
    summary="Declare a year without official data complete (its overrides are the whole truth)",
    status=204,
    errors=(403, 404),
)
async def confirm_year(request: web.Request) -> web.StreamResponse:
    p = principal_of(request)
    p.require(Permission.CALENDAR_MANAGE)
    year = path_int(request, "year")
    if not 2000 <= year <= 2100:
        raise NotFound("Year out of range", error_id="bad_year")
    await _cal(request).confirm_year(year, p.user_id, utcnow())
    return no_content()


# --- SLA policies -----------------------------------------------------------------------

policy_routes = ApiRoutes(tag="SLA policies")


class PolicyOut(Out):
    id: int
    category_code: str | None
    priority: str
    first_response_min: int
    resolution_min: int
    handoff_min: int


class PolicyListOut(Out):
    items: list[PolicyOut]


class PolicyIn(Schema):
    category_code: str | None = Field(default=None, max_length=32)
    priority: Priority
    first_response_min: int = Field(ge=1, le=525_600)
    resolution_min: int = Field(ge=1, le=525_600)
    handoff_min: int = Field(ge=1, le=525_600)


@policy_routes.get("/api/sla/policies", summary="SLA policies", response=PolicyListOut)
async def list_policies(request: web.Request) -> web.StreamResponse:
    principal_of(request).require(Permission.TICKETS_READ)
    rows = await policies.list_policies(request.app[keys.SESSIONMAKER])
    return json_ok(PolicyListOut(items=[PolicyOut.model_validate(r) for r in rows]))


@policy_routes.put(
    "/api/sla/policies",
    summary="Create or replace the policy of a category × priority (category null = default)",
    body=PolicyIn,
    response=PolicyOut,
    errors=(403, 422),
)
async def put_policy(request: web.Request) -> web.StreamResponse:
    principal_of(request).require(Permission.SLA_MANAGE)
    data = await parse_body(request, PolicyIn)
    if data.resolution_min < data.first_response_min:
        raise ValidationFailed(
            "Resolution target must not be shorter than first response",
            details=[field_error("resolution_min", "too_short", ">= first_response_min")],
        )
    if (
        data.category_code is not None
        and data.category_code not in request.app[keys.REFERENCE].data.categories
    ):
        raise ValidationFailed(
            "Unknown category",
            details=[field_error("category_code", "unknown", "no such category")],
        )
    row = await policies.upsert_policy(
        request.app[keys.SESSIONMAKER],
        category_code=data.category_code,
        priority=data.priority.value,
        first_response_min=data.first_response_min,
        resolution_min=data.resolution_min,
        handoff_min=data.handoff_min,
    )
    await request.app[keys.POLICIES].load()
    return json_ok(PolicyOut.model_validate(row))
