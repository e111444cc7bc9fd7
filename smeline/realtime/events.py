"""What travels on the sockets: the names and payloads smeline's socket.io
layer adds to the bus events it forwards.

Bus events (``call.answered``, ``ticket.sla_warning`` ...) reach the browser
under their own names (``smeline.bus`` is the one registry), each wrapped in a
:class:`PushedEvent`. The names below are the socket layer's own.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

# Server → client: something the client sent (or its session) was refused.
ERROR = "error"

# Client → server, namespace /agent.
WINDOW_JOIN = "window.join"
WINDOW_LEAVE = "window.leave"


class ErrorCode:
    """Stable codes of the ``error`` event and of refused connections; the
    browser apps translate them through their zh-CN catalogue. Errors raised by
    a service (``smeline.errors.ApiError``) keep their own ``error_id``."""

    AUTHENTICATION_REQUIRED = "authentication_required"
    FORBIDDEN = "forbidden"
    RATE_LIMITED = "rate_limited"
    BAD_REQUEST = "bad_request"
    INTERNAL_ERROR = "internal_error"


class SocketError(BaseModel):
    """Payload of the ``error`` event, of a refused connection's ``data`` and
    of a failed acknowledgement (``{"ok": false, "error": SocketError}``)."""

    model_config = ConfigDict(extra="forbid")

    code: str
    message: str
    event: str | None = None  # the inbound event this answers, when there is one
    details: Any = None


class PushedEvent(BaseModel):
    """A bus event as a browser receives it (socket.io event name = ``name``).

    ``id`` is the bus envelope's id: a client that hears the same id twice
    (it should not) can drop the second.
    """

    model_config = ConfigDict(extra="forbid")

    id: str
    name: str
    at: datetime
    payload: dict[str, Any]


class WindowRoomIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    window_code: str = Field(min_length=1, max_length=32, pattern=r"^[a-z][a-z0-9_]*$")


class RoomOut(BaseModel):
    model_config = ConfigDict(extra="forbid")

    room: str
