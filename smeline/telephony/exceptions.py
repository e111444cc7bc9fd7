"""Errors of telephony actions as the API reports them, and the two checks
every action makes before it talks to Asterisk."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

from smeline.errors import ApiError
from smeline.telephony.ami import AmiActions, AmiError, AmiResult

_A = TypeVar("_A", bound=AmiActions)


class TelephonyNotConfigured(ApiError):
    status = 503
    error_id = "telephony_not_configured"


class TelephonyUnavailable(ApiError):
    status = 503
    error_id = "telephony_unavailable"


def require_connected(ami: _A | None) -> _A:
    """The AMI client, if there is one and it is logged in."""
    if ami is None:
        raise TelephonyNotConfigured("Telephony is not configured (no Asterisk)")
    if not ami.connected:
        raise TelephonyUnavailable("Asterisk is not connected right now")
    return ami


async def send_checked(
    ami: AmiActions | None, action: str, fields: Sequence[tuple[str, str]]
) -> AmiResult:
    """Send an action; Asterisk's refusal becomes a 503 that says why."""
    client = require_connected(ami)
    try:
        return await client.send_action(action, fields, check=True)
    except AmiError as exc:
        raise TelephonyUnavailable(
            f"Asterisk refused {action}", details={"reason": str(exc)}
        ) from exc
