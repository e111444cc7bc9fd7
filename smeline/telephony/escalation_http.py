"""Three-way escalation over HTTP (see :mod:`smeline.telephony.escalation`).

Every route is for the service desk. With no Asterisk configured each answers
503 ``telephony_not_configured`` right after the permission check, before the
body is even read. An agent escalates only the call they are on; supervisors
and administrators any call.

Registering :data:`routes` also builds the :class:`EscalationService` (it
listens to the AMI event stream from then on) and stops it with the app.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Literal, Self

from aiohttp import web
from pydantic import Field, model_validator

from smeline import keys
from smeline.agi_scripts.setup import number_plan
from smeline.api import ApiRoutes, Out, RowId, Schema, json_ok, parse_body
from smeline.auth.middleware import principal_of
from smeline.auth.models import Role
from smeline.auth.permissions import Permission, Principal
from smeline.db import utcnow
from smeline.expert_pool.services import ExpertService
from smeline.telephony.escalation import (
    EscalationService,
    EscalationView,
    TargetKind,
    TargetRequest,
)
from smeline.telephony.http import path_linkedid
from smeline.telephony.phones import interface_of

ESCALATIONS = web.AppKey("escalations", EscalationService)


@dataclass
class EscalationRoutes(ApiRoutes):
    """The route table; registering it also wires the service into the app."""

    def register(self, app: web.Application) -> None:
        super().register(app)
        install(app)


routes = EscalationRoutes(tag="telephony")


def install(app: web.Application) -> EscalationService:
    settings = app[keys.SETTINGS]
    telephony = app[keys.TELEPHONY]
    reference = app[keys.REFERENCE]
    source = telephony.service
    service = EscalationService(
        ami=source.client if source is not None else None,
        tracker=source.tracker if source is not None else None,
        experts=ExpertService(
            sessionmaker=app[keys.SESSIONMAKER],
            plan=number_plan(settings),
            calendar=app[keys.CALENDARS].calendar,
        ),
        plan=number_plan(settings),
        windows=lambda: reference.data.windows.keys(),
        now=utcnow,
        timeout_seconds=settings.escalation_timeout_seconds,
        province_number=settings.province_platform_number,
    )
    app[ESCALATIONS] = service

    async def lifecycle(_app: web.Application) -> AsyncIterator[None]:
        yield
        await service.stop()

    app.cleanup_ctx.append(lifecycle)
    return service


class EscalateIn(Schema):
    target_kind: Literal["city", "window", "province", "expert"]
    window_code: str | None = Field(
        default=None, pattern=r"^[a-z0-9_]{1,32}$", description="target_kind window only"
    )
    expert_id: RowId | None = Field(
        default=None, description="target_kind expert; omitted: chosen for the category"
    )
    category_code: str | None = Field(
        default=None,
        pattern=r"^[a-z0-9_]{1,32}$",
        description="target_kind expert without expert_id; default: the call's category",
    )
    consult: bool = Field(
        description="Caller on hold while the agent briefs the far party, then merge"
    )

    @model_validator(mode="after")
    def _fits_the_kind(self) -> Self:
        if self.target_kind == "window" and self.window_code is None:
            raise ValueError("window_code is required for a window")
        if self.target_kind != "window" and self.window_code is not None:
            raise ValueError("window_code is only for target_kind window")
        if self.target_kind != "expert" and (
            self.expert_id is not None or self.category_code is not None
        ):
            raise ValueError("expert_id and category_code are only for target_kind expert")
        return self


class EscalationOut(Out):
    linkedid: str
    phase: str  # idle | consulting | ringing | merged
    consult: bool
    room: str
    target_kind: str | None
    target_ref: str | None
    expert_id: int | None
    expert_name: str | None
    consultation_id: int | None
    answered: bool


def _out(view: EscalationView) -> EscalationOut:
    return EscalationOut(
        linkedid=view.linkedid,
        phase=view.phase.value,
        consult=view.consult,
        room=view.room,
        target_kind=view.target_kind.value if view.target_kind else None,
        target_ref=view.target_ref,
        expert_id=view.expert_id,
        expert_name=view.expert_name,
        consultation_id=view.consultation_id,
        answered=view.answered,
    )


def _allowed(request: web.Request) -> tuple[Principal, EscalationService]:
    p = principal_of(request)
    p.require(Permission.TELEPHONY_AGENT)
    request.app[keys.TELEPHONY].require_configured()
    return p, request.app[ESCALATIONS]


def _agent_interface(p: Principal) -> str | None:
    """Agents act on their own calls only."""
    return interface_of(p.user_id) if p.role is Role.AGENT else None


@routes.post(
    "/api/telephony/calls/{linkedid}/escalations",
    summary="Escalate a call: city centre, another window, the province or an expert",
    body=EscalateIn,
    response=EscalationOut,
    status=202,
    errors=(403, 404, 409, 422, 503),
)
async def start_escalation(request: web.Request) -> web.StreamResponse:
    p, service = _allowed(request)
    linkedid = path_linkedid(request)
    data = await parse_body(request, EscalateIn)
    view = await service.start(
        linkedid,
        TargetRequest(
            kind=TargetKind(data.target_kind),
            window_code=data.window_code,
            expert_id=data.expert_id,
            category=data.category_code,
        ),
        consult=data.consult,
        actor_user_id=p.user_id,
        agent_interface=_agent_interface(p),
    )
    return json_ok(_out(view), status=202)


#: The steps after the start: path, what it does, the service method.
_STEPS = (
    (
        "merge",
        "End the private consultation: the caller joins the agent and the far party",
        EscalationService.merge,
    ),
    (
        "leave",
        "Hand-off: the agent leaves, caller and far party stay connected",
        EscalationService.agent_leave,
    ),
    ("drop", "Let the far party go; caller and agent carry on", EscalationService.drop_target),
    (
        "cancel",
        "Give up on a far party still ringing (or a consultation not merged)",
        EscalationService.cancel,
    ),
)


def _step_handler(
    name: str, method: Callable[..., Awaitable[EscalationView]]
) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def handler(request: web.Request) -> web.StreamResponse:
        p, service = _allowed(request)
        view = await method(service, path_linkedid(request), agent_interface=_agent_interface(p))
        return json_ok(_out(view))

    handler.__name__ = f"{name}_escalation"  # the OpenAPI operationId
    return handler


for _name, _summary, _method in _STEPS:
    routes.post(
        f"/api/telephony/calls/{{linkedid}}/escalations/{_name}",
        summary=_summary,
        response=EscalationOut,
        errors=(403, 404, 409, 503),
    )(_step_handler(_name, _method))


__all__ = ["ESCALATIONS", "EscalateIn", "EscalationRoutes", "install", "routes"]
