"""The expert pool over HTTP: the desk lists experts and sees who can be
asked now; administrators add and change experts."""

from __future__ import annotations

from aiohttp import web

from smeline import keys
from smeline.agi_scripts.setup import number_plan
from smeline.api import ApiRoutes, json_ok, parse_body, parse_query, path_int
from smeline.auth.middleware import principal_of
from smeline.auth.models import Role
from smeline.auth.permissions import Permission, Principal
from smeline.db import utcnow
from smeline.errors import Forbidden, ValidationFailed, field_error
from smeline.expert_pool.models import Expert
from smeline.expert_pool.schemas import (
    AvailabilityOut,
    AvailableQuery,
    ExpertAvailabilityOut,
    ExpertIn,
    ExpertListOut,
    ExpertOut,
    ExpertPatch,
)
from smeline.expert_pool.services import Availability, ExpertService

routes = ApiRoutes(tag="experts")


def expert_service(app: web.Application) -> ExpertService:
    """Stateless: built per use from what the app carries."""
    return ExpertService(
        sessionmaker=app[keys.SESSIONMAKER],
        plan=number_plan(app[keys.SETTINGS]),
        calendar=app[keys.CALENDARS].calendar,
    )


def _require_admin(p: Principal) -> None:
    # No permission of its own: managing the pool is an administrator's job,
    # like users and SLA policies.
    if p.role is not Role.ADMIN:
        raise Forbidden(
            "Only administrators manage the expert pool",
            error_id="permission_denied",
            details={"role": p.role.value},
        )


def _check_categories(request: web.Request, codes: list[str] | None, field: str) -> None:
    if codes is None:
        return
    known = request.app[keys.REFERENCE].data.categories
    unknown = [c for c in codes if c not in known]
    if unknown:
        raise ValidationFailed(
            "Unknown service category",
            details=[field_error(field, "unknown_category", ", ".join(unknown))],
        )


def _out(row: Expert) -> ExpertOut:
    return ExpertOut.model_validate(row)


def _availability_out(a: Availability) -> ExpertAvailabilityOut:
    e = a.expert
    return ExpertAvailabilityOut(
        id=e.id,
        name=e.name,
        phone_key=e.phone_key,
        specialties=list(e.specialties),
        active=e.active,
        schedule={k: [list(i) for i in v] for k, v in e.schedule.items()}
        if e.schedule is not None
        else None,
        last_consulted_at=e.last_consulted_at,
        available=a.available,
        reasons=list(a.reasons),
    )


@routes.get("/api/experts", summary="The expert pool", response=ExpertListOut)
async def list_experts(request: web.Request) -> web.StreamResponse:
    p = principal_of(request)
    p.require(Permission.TELEPHONY_AGENT)
    rows = await expert_service(request.app).list_experts()
    return json_ok(ExpertListOut(items=[_out(r) for r in rows]))


@routes.get(
    "/api/experts/available",
    summary="Who can be asked now for a category (schedule, not on a call), fairest first",
    query=AvailableQuery,
    response=AvailabilityOut,
    errors=(422,),
)
async def available_experts(request: web.Request) -> web.StreamResponse:
    p = principal_of(request)
    p.require(Permission.TELEPHONY_AGENT)
    query = parse_query(request, AvailableQuery)
    _check_categories(request, [query.category], "category")
    now = utcnow()
    ranked = await expert_service(request.app).availability(query.category, now)
    suggested = ranked[0].expert.id if ranked and ranked[0].available else None
    return json_ok(
        AvailabilityOut(
            category=query.category,
            at=now,
            suggested_expert_id=suggested,
            experts=[_availability_out(a) for a in ranked],
        )
    )


@routes.post(
    "/api/experts",
    summary="Add an expert (administrators)",
    body=ExpertIn,
    response=ExpertOut,
    status=201,
    errors=(403, 422),
)
async def create_expert(request: web.Request) -> web.StreamResponse:
    p = principal_of(request)
    _require_admin(p)
    data = await parse_body(request, ExpertIn)
    _check_categories(request, data.specialties, "specialties")
    row = await expert_service(request.app).create(data, now=utcnow())
    return json_ok(_out(row), status=201)


@routes.patch(
    "/api/experts/{expert_id}",
    summary="Change an expert: hours, specialties, phone, active (administrators)",
    body=ExpertPatch,
    response=ExpertOut,
    errors=(403, 404, 422),
)
async def update_expert(request: web.Request) -> web.StreamResponse:
    p = principal_of(request)
    _require_admin(p)
    expert_id = path_int(request, "expert_id")
    data = await parse_body(request, ExpertPatch)
    _check_categories(request, data.specialties, "specialties")
    row = await expert_service(request.app).update(expert_id, data, now=utcnow())
    return json_ok(_out(row))
