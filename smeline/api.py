"""Thin HTTP helpers shared by every subpackage's ``http.py``.

Each handler is registered through an :class:`ApiRoutes` table that also records
its request and response models, so the OpenAPI document (``openapi.py``) is
built from the same declarations that validate traffic.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Annotated, Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from smeline.errors import (
    BadRequest,
    NotFound,
    ValidationFailed,
    field_error,
    validation_details,
)

M = TypeVar("M", bound=BaseModel)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


# Ids are PostgreSQL bigints: a larger number would only fail later, in the database driver.
RowId = Annotated[int, Field(ge=1, le=2**63 - 1)]


class Schema(BaseModel):
    """Request bodies: unknown fields are an error, types are not coerced."""

    model_config = ConfigDict(extra="forbid", strict=True, str_strip_whitespace=True)


class QuerySchema(BaseModel):
    """Query strings arrive as text, so values are coerced; unknown keys are still errors."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


@dataclass
class RouteSpec:
    method: str
    path: str
    handler: Handler
    summary: str
    tag: str
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    response: type[BaseModel] | None = None
    status: int = 200
    public: bool = False
    errors: tuple[int, ...] = ()
    #: A multipart/form-data body, as the OpenAPI schema of its fields (uploads).
    form: dict[str, Any] | None = None


API_SPECS = web.AppKey("api_specs", list[RouteSpec])


@dataclass
class ApiRoutes:
    tag: str
    specs: list[RouteSpec] = field(default_factory=list)

    def route(
        self,
        method: str,
        path: str,
        *,
        summary: str,
        body: type[BaseModel] | None = None,
        query: type[BaseModel] | None = None,
        response: type[BaseModel] | None = None,
        status: int = 200,
        public: bool = False,
        errors: tuple[int, ...] = (),
        form: dict[str, Any] | None = None,
    ) -> Callable[[Handler], Handler]:
        def decorate(handler: Handler) -> Handler:
            self.specs.append(
                RouteSpec(
                    method=method,
                    path=path,
                    handler=handler,
                    summary=summary,
                    tag=self.tag,
                    body=body,
                    query=query,
                    response=response,
                    status=status,
                    public=public,
                    errors=errors,
                    form=form,
                )
            )
            return handler

        return decorate

    def get(self, path: str, **kw: Any) -> Callable[[Handler], Handler]:
        return self.route("GET", path, **kw)

    def post(self, path: str, **kw: Any) -> Callable[[Handler], Handler]:
        return self.route("POST", path, **kw)

    def put(self, path: str, **kw: Any) -> Callable[[Handler], Handler]:
        return self.route("PUT", path, **kw)

    def patch(self, path: str, **kw: Any) -> Callable[[Handler], Handler]:
        return self.route("PATCH", path, **kw)

    def delete(self, path: str, **kw: Any) -> Callable[[Handler], Handler]:
        return self.route("DELETE", path, **kw)

    def register(self, app: web.Application) -> None:
        specs = app.setdefault(API_SPECS, [])
        for spec in self.specs:
            app.router.add_route(spec.method, spec.path, spec.handler)
            specs.append(spec)


async def parse_body(request: web.Request, model: type[M]) -> M:
    if request.content_type != "application/json":
        raise BadRequest(
            "Content-Type must be application/json", error_id="unsupported_media_type", status=415
        )
    raw = await request.read()
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        # RecursionError: a body of nothing but "[[[[…" nests deeper than the parser goes.
        raise BadRequest("Body is not valid JSON", error_id="invalid_json") from exc
    if not isinstance(data, dict):
        raise ValidationFailed(
            "Body must be a JSON object",
            details=[field_error("", "object_type", "expected an object")],
        )
    _refuse_nul(data)
    try:
        # JSON-mode validation: strict about types, yet ISO dates and enum
        # values arrive as strings as JSON has them.
        return model.model_validate_json(raw)
    except ValidationError as exc:
        raise ValidationFailed("Request is not valid", details=validation_details(exc)) from exc


def parse_query(request: web.Request, model: type[M]) -> M:
    data: dict[str, Any] = {}
    for key in request.query:
        values = request.query.getall(key)
        data[key] = values if len(values) > 1 else values[0]
    _refuse_nul(data)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ValidationFailed("Query is not valid", details=validation_details(exc)) from exc


def _refuse_nul(data: dict[str, Any]) -> None:
    """PostgreSQL text cannot hold NUL, and no honest client sends one: refuse it up front."""
    stack: list[tuple[str, Any]] = [("", data)]
    while stack:
        path, value = stack.pop()
        if isinstance(value, dict):
            stack.extend((f"{path}.{k}" if path else str(k), v) for k, v in value.items())
        elif isinstance(value, list):
            stack.extend((f"{path}.{i}", v) for i, v in enumerate(value))
        elif isinstance(value, str) and "\x00" in value:
            raise ValidationFailed(
                "Text may not contain NUL characters",
                details=[field_error(path, "nul_character", "contains NUL")],
            )


def path_int(request: web.Request, name: str) -> int:
    raw = request.match_info[name]
    if not raw.isascii() or not raw.isdigit() or len(raw) > 18:
        raise NotFound(f"No such {name}", error_id="not_found")
    return int(raw)


def json_ok(payload: BaseModel | dict[str, Any] | list[Any], status: int = 200) -> web.Response:
    if isinstance(payload, BaseModel):
        text = payload.model_dump_json()
    else:
        text = json.dumps(payload, ensure_ascii=False, default=str)
    return web.Response(text=text, status=status, content_type="application/json")


def no_content() -> web.Response:
    return web.Response(status=204)
