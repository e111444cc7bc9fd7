"""Room names and who may be in which room.

| room | namespace | who is in it |
|---|---|---|
| ``agent:<user id>`` | ``/agent`` | that staff member's consoles (joined on connect) |
| ``window:<code>`` | ``/agent`` | consoles following a window (``window.join``, in scope) |
| ``supervisors`` | ``/supervisor`` | city-wide supervisors and admins (on connect) |
| ``supervisors:<county>`` | ``/supervisor`` | that county's administrators (on connect) |
| ``chat:<chat id>`` | ``/visitor`` | the visitor of that chat (on connect, from the token) |

Nobody names a room they want: the server derives every room from the
authenticated identity, and ``window.join`` is checked against the scope
below. So a visitor cannot be in another visitor's chat room and an agent
cannot follow another county's window.
"""

from __future__ import annotations

from collections.abc import Mapping

from smeline.auth.permissions import Permission, Principal

AGENT_NAMESPACE = "/agent"
SUPERVISOR_NAMESPACE = "/supervisor"
VISITOR_NAMESPACE = "/visitor"
NAMESPACES = (AGENT_NAMESPACE, SUPERVISOR_NAMESPACE, VISITOR_NAMESPACE)

SUPERVISORS = "supervisors"


def agent_room(user_id: int) -> str:
    return f"agent:{user_id}"


def window_room(window_code: str) -> str:
    return f"window:{window_code}"


def county_supervisors_room(county_code: str) -> str:
    return f"{SUPERVISORS}:{county_code}"


def chat_room(chat_id: int | str) -> str:
    return f"chat:{chat_id}"


def windows_in_scope(principal: Principal, windows: Mapping[str, str]) -> frozenset[str]:
    """The windows whose room ``principal`` may join; ``windows`` maps window
    code → county code. The same scope as work orders (``TicketService._visibility``):
    city-wide roles every window, a county administrator their county's
    windows, an agent their own window."""
    if principal.can(Permission.TICKETS_READ_ALL):
        return frozenset(windows)
    if principal.window_code is not None:
        return frozenset({principal.window_code} & windows.keys())
    if principal.county_code is not None:
        return frozenset(
            code for code, county in windows.items() if county == principal.county_code
        )
    return frozenset()


def supervisor_room_of(principal: Principal) -> str | None:
    """The one supervisors' room of a principal allowed on ``/supervisor``;
    None when they supervise no county (and are refused)."""
    if not principal.can(Permission.TELEPHONY_SUPERVISE):
        return None
    if principal.can(Permission.TICKETS_READ_ALL):
        return SUPERVISORS
    if principal.county_code is not None:
        return county_supervisors_room(principal.county_code)
    return None
