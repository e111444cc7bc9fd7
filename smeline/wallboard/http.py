"""``GET /api/wallboard``: the snapshot a supervisor's wallboard starts from
(and re-fetches after a reconnect); the same JSON is pushed as
``wallboard.update`` afterwards."""

from __future__ import annotations

from aiohttp import web

from smeline.api import ApiRoutes, QuerySchema, json_ok, parse_query
from smeline.auth.middleware import principal_of
from smeline.wallboard.schemas import WallboardOut
from smeline.wallboard.services import Scope
from smeline.wallboard.setup import WALLBOARD

routes = ApiRoutes(tag="wallboard")


class WallboardQuery(QuerySchema):
    """No parameters: the scope comes from the login, never from the request
    (``?county_code=`` is refused rather than ignored)."""


@routes.get(
    "/api/wallboard",
    summary="The supervisors' wallboard: queues, agents, today's figures, SLA board, trends",
    query=WallboardQuery,
    response=WallboardOut,
    errors=(403, 422),
)
async def wallboard(request: web.Request) -> web.StreamResponse:
    scope = Scope.of(principal_of(request))
    parse_query(request, WallboardQuery)
    return json_ok(await request.app[WALLBOARD].snapshot(scope))
