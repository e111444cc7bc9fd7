"""The work-order state machine: which action leads where, and who may take it.

::

    new ──assign──► assigned ──start──► in_progress ──wait_customer──► waiting_customer
     │                 ▲  │                  │    ▲                          │
     │                 │  └──────resolve─────┼────┼──────────resume──────────┘
     └──transfer───────┘                     ▼    │
                                          resolved ──close──► closed ──archive──► archived
                                             │                  │
                                             └────reopen────────┴──► reopened ──► start, assign …

``transfer`` hands the work order to a department, agency, expert or another
seat with its own handling deadline; ``return`` hands it back.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from smeline.auth.models import Role
from smeline.ticketing.models import TicketStatus as S


class Action(StrEnum):
    ASSIGN = "assign"
    START = "start"
    WAIT_CUSTOMER = "wait_customer"
    RESUME = "resume"
    RESOLVE = "resolve"
    CLOSE = "close"
    REOPEN = "reopen"
    ARCHIVE = "archive"
    TRANSFER = "transfer"
    RETURN = "return"


_DESK = frozenset({Role.ADMIN, Role.SUPERVISOR, Role.COUNTY_ADMIN, Role.AGENT})
# Experts and agencies act only on work orders handed to them (checked in services).
_HANDLERS = _DESK | {Role.EXPERT, Role.AGENCY}


@dataclass(frozen=True)
class Transition:
    sources: frozenset[S]
    target: S | None  # None: decided by the service (return goes back to "assigned")
    roles: frozenset[Role]


TRANSITIONS: dict[Action, Transition] = {
    Action.ASSIGN: Transition(
        frozenset({S.NEW, S.ASSIGNED, S.IN_PROGRESS, S.WAITING_CUSTOMER, S.REOPENED}),
        S.ASSIGNED,
        _DESK,
    ),
    Action.START: Transition(frozenset({S.NEW, S.ASSIGNED, S.REOPENED}), S.IN_PROGRESS, _HANDLERS),
    Action.WAIT_CUSTOMER: Transition(frozenset({S.IN_PROGRESS}), S.WAITING_CUSTOMER, _HANDLERS),
    Action.RESUME: Transition(frozenset({S.WAITING_CUSTOMER}), S.IN_PROGRESS, _HANDLERS),
    Action.RESOLVE: Transition(
        frozenset({S.ASSIGNED, S.IN_PROGRESS, S.WAITING_CUSTOMER, S.REOPENED}),
        S.RESOLVED,
        _HANDLERS,
    ),
    Action.CLOSE: Transition(frozenset({S.RESOLVED}), S.CLOSED, _DESK),
    Action.REOPEN: Transition(frozenset({S.RESOLVED, S.CLOSED}), S.REOPENED, _DESK),
    Action.ARCHIVE: Transition(frozenset({S.CLOSED}), S.ARCHIVED, frozenset({Role.ADMIN})),
    Action.TRANSFER: Transition(
        frozenset({S.NEW, S.ASSIGNED, S.IN_PROGRESS, S.WAITING_CUSTOMER, S.REOPENED}),
        S.ASSIGNED,
        _DESK,
    ),
    Action.RETURN: Transition(
        frozenset({S.ASSIGNED, S.IN_PROGRESS, S.WAITING_CUSTOMER}),
        S.ASSIGNED,
        frozenset({Role.ADMIN, Role.SUPERVISOR, Role.EXPERT, Role.AGENCY}),
    ),
}

# Roles that may receive a transfer (and so a handling deadline of their own).
TRANSFER_TARGET_ROLES = frozenset(
    {Role.AGENCY, Role.EXPERT, Role.AGENT, Role.COUNTY_ADMIN, Role.SUPERVISOR}
)
ASSIGNABLE_ROLES = frozenset({Role.AGENT, Role.COUNTY_ADMIN, Role.SUPERVISOR, Role.ADMIN})
