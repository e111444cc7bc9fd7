"""API errors: exceptions carrying ``status``, a stable ``error_id`` and ``details``.

One middleware (``error_middleware``) turns them, validation failures and
aiohttp's own HTTP errors into the same JSON shape::

    {"error": {"id": "ticket_transition_forbidden", "message": "...", "details": {...}}}
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from pydantic import ValidationError

logger = logging.getLogger(__name__)


class ApiError(Exception):
    status = 400
    error_id = "bad_request"

    def __init__(
        self,
        message: str,
        *,
        details: Any = None,
        error_id: str | None = None,
        status: int | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.details = details
        self.headers = headers or {}
        if error_id is not None:
            self.error_id = error_id
        if status is not None:
            self.status = status


class BadRequest(ApiError):
    status = 400
    error_id = "bad_request"


class Unauthorized(ApiError):
    status = 401
    error_id = "not_authenticated"


class Forbidden(ApiError):
    status = 403
    error_id = "forbidden"


class NotFound(ApiError):
    status = 404
    error_id = "not_found"


class Conflict(ApiError):
    status = 409
    error_id = "conflict"


class ValidationFailed(ApiError):
    status = 422
    error_id = "validation_failed"


class TooManyRequests(ApiError):
    status = 429
    error_id = "too_many_requests"


def field_error(field: str, kind: str, message: str | None = None) -> dict[str, str]:
    """One entry of ``details`` of a 422: the same shape as pydantic's field errors."""
    return {"field": field, "type": kind, "message": message or kind.replace("_", " ")}


def validation_details(exc: ValidationError) -> list[dict[str, Any]]:
    """Field messages without echoing the (possibly huge or hostile) input back."""
    return [
        {
            "field": ".".join(str(p) for p in err["loc"]),
            "type": err["type"],
            "message": err["msg"],
        }
        for err in exc.errors(include_url=False, include_input=False, include_context=False)
    ]


def error_body(error_id: str, message: str, details: Any = None) -> dict[str, Any]:
    body: dict[str, Any] = {"id": error_id, "message": message}
    if details is not None:
        body["details"] = details
    return {"error": body}


def error_response(
    status: int,
    error_id: str,
    message: str,
    details: Any = None,
    headers: dict[str, str] | None = None,
) -> web.Response:
    return web.json_response(
        error_body(error_id, message, details),
        status=status,
        headers=headers,
        dumps=lambda obj: json.dumps(obj, ensure_ascii=False, default=str),
    )


_HTTP_IDS = {
    400: "bad_request",
    401: "not_authenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "body_too_large",
    415: "unsupported_media_type",
}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as exc:
        return error_response(exc.status, exc.error_id, exc.message, exc.details, exc.headers)
    except ValidationError as exc:
        return error_response(
            422, "validation_failed", "Request is not valid", validation_details(exc)
        )
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        error_id = _HTTP_IDS.get(exc.status, "http_error")
        headers = {k: v for k, v in exc.headers.items() if k.lower() == "allow"}
        return error_response(exc.status, error_id, exc.reason, headers=headers)
    except Exception:
        logger.exception("unhandled error on %s %s", request.method, request.path)
        return error_response(500, "internal_error", "Internal server error")
