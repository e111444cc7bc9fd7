"""Read-only reference endpoints (any signed-in staff member)."""

from __future__ import annotations

from aiohttp import web

from smeline import keys
from smeline.api import ApiRoutes, Out, json_ok
from smeline.auth.middleware import principal_of
from smeline.reference.services import ReferenceService

routes = ApiRoutes(tag="reference")


class CountyOut(Out):
    code: str
    name: str


class WindowOut(Out):
    code: str
    name: str
    county_code: str
    hours: list[list[str]] | None
    phone: str | None
    address: str | None
    active: bool


class NamedCodeOut(Out):
    code: str
    name: str


class ReferenceOut(Out):
    counties: list[CountyOut]
    windows: list[WindowOut]
    categories: list[NamedCodeOut]
    channels: list[NamedCodeOut]


@routes.get(
    "/api/reference",
    summary="Counties, windows, service categories and service channels",
    response=ReferenceOut,
)
async def reference(request: web.Request) -> web.StreamResponse:
    principal_of(request)
    service: ReferenceService = request.app[keys.REFERENCE]
    ref = service.data
    return json_ok(
        ReferenceOut(
            counties=[CountyOut.model_validate(c) for c in ref.counties.values()],
            windows=[WindowOut.model_validate(w) for w in ref.windows.values()],
            categories=[NamedCodeOut.model_validate(c) for c in ref.categories.values()],
            channels=[NamedCodeOut.model_validate(c) for c in ref.channels.values()],
        )
    )
