"""What each role may do. Endpoints check these; ticket scoping lives in ticketing."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from smeline.auth.models import Role
from smeline.errors import Forbidden


class Permission(StrEnum):
    USERS_READ = "users.read"
    USERS_MANAGE = "users.manage"
    TICKETS_READ = "tickets.read"
    TICKETS_CREATE = "tickets.create"
    TICKETS_WORK = (
        "tickets.work"  # comment, change fields, transitions allowed by the state machine
    )
    TICKETS_READ_ALL = "tickets.read_all"  # not limited to one county or window
    SLA_MANAGE = "sla.manage"
    CALENDAR_MANAGE = "calendar.manage"
    NOTIFICATIONS_READ = "notifications.read"
    PHONE_NUMBERS = "phone_numbers"  # sees full phone numbers
    TELEPHONY_AGENT = "telephony.agent"  # log into a window's queue, take calls
    TELEPHONY_SUPERVISE = "telephony.supervise"  # listen in, force pause / logout


_STAFF_WORK = {
    Permission.USERS_READ,
    Permission.TICKETS_READ,
    Permission.TICKETS_CREATE,
    Permission.TICKETS_WORK,
    Permission.PHONE_NUMBERS,
    Permission.TELEPHONY_AGENT,
}

ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.ADMIN: frozenset(Permission),
    Role.SUPERVISOR: frozenset(
        _STAFF_WORK
        | {
            Permission.TICKETS_READ_ALL,
            Permission.NOTIFICATIONS_READ,
            Permission.TELEPHONY_SUPERVISE,
        }
    ),
    Role.COUNTY_ADMIN: frozenset(_STAFF_WORK | {Permission.TELEPHONY_SUPERVISE}),
    Role.AGENT: frozenset(_STAFF_WORK),
    # Experts and agencies work on what is handed to them; they do not need the SME's number.
    Role.EXPERT: frozenset({Permission.TICKETS_READ, Permission.TICKETS_WORK}),
    Role.AGENCY: frozenset({Permission.TICKETS_READ, Permission.TICKETS_WORK}),
    Role.ANALYST: frozenset({Permission.TICKETS_READ, Permission.TICKETS_READ_ALL}),
    Role.EDITOR: frozenset(),
}


@dataclass(frozen=True)
class Principal:
    """The authenticated staff member behind a request."""

    user_id: int
    username: str
    role: Role
    county_code: str | None  # county_admin: their county; agent: their window's county
    window_code: str | None
    session_id: int
    must_change_password: bool = False

    def can(self, permission: Permission) -> bool:
        return permission in ROLE_PERMISSIONS[self.role]

    def require(self, permission: Permission) -> None:
        if not self.can(permission):
            raise Forbidden(
                f"Role {self.role.value} may not do this",
                error_id="permission_denied",
                details={"permission": permission.value, "role": self.role.value},
            )
