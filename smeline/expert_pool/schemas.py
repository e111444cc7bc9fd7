"""Request and response shapes of the expert pool."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Literal

from pydantic import Field, field_validator

from smeline.api import Out, QuerySchema, Schema

WEEKDAYS: tuple[str, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
_HHMM = re.compile(r"^(?:[01][0-9]|2[0-3]):[0-5][0-9]$|^24:00$")

#: One interval of a day, local time in Asia/Shanghai: ["09:00", "12:00"].
Interval = Annotated[list[str], Field(min_length=2, max_length=2)]
#: Weekly hours; a missing day is a day off. At most 4 intervals a day.
Schedule = dict[Weekday, Annotated[list[Interval], Field(max_length=4)]]

CategoryCode = Annotated[str, Field(min_length=1, max_length=32, pattern=r"^[a-z0-9_]+$")]


def check_schedule(value: Schedule | None) -> Schedule | None:
    """Intervals are "HH:MM" pairs (end may be "24:00"), start < end, ordered,
    non-overlapping. Zero-padded strings compare like the times they name."""
    if value is None:
        return None
    for day, intervals in value.items():
        previous_end = "00:00"
        for start, end in intervals:
            if not _HHMM.match(start) or not _HHMM.match(end) or start == "24:00":
                raise ValueError(f"{day}: times are HH:MM (00:00-23:59, end may be 24:00)")
            if not start < end:
                raise ValueError(f"{day}: an interval must start before it ends")
            if start < previous_end:
                raise ValueError(f"{day}: intervals must be ordered and not overlap")
            previous_end = end
    return value


class ExpertIn(Schema):
    name: str = Field(min_length=1, max_length=64)
    phone: str = Field(min_length=3, max_length=32, description="Any common way of writing it")
    specialties: list[CategoryCode] = Field(min_length=1, max_length=20)
    active: bool = True
    schedule: Schedule | None = Field(
        default=None, description="Weekly hours (Asia/Shanghai); null: business hours"
    )

    _schedule = field_validator("schedule")(check_schedule)


class ExpertPatch(Schema):
    name: str | None = Field(default=None, min_length=1, max_length=64)
    phone: str | None = Field(default=None, min_length=3, max_length=32)
    specialties: list[CategoryCode] | None = Field(default=None, min_length=1, max_length=20)
    active: bool | None = None
    schedule: Schedule | None = Field(
        default=None, description="Explicit null: back to business hours"
    )

    _schedule = field_validator("schedule")(check_schedule)


class AvailableQuery(QuerySchema):
    category: CategoryCode


class ExpertOut(Out):
    id: int
    name: str
    phone_key: str
    specialties: list[str]
    active: bool
    schedule: dict[str, list[list[str]]] | None
    last_consulted_at: datetime | None


class ExpertListOut(Out):
    items: list[ExpertOut]


class ExpertAvailabilityOut(ExpertOut):
    available: bool
    # inactive | no_specialty | off_schedule | on_call
    reasons: list[str]


class AvailabilityOut(Out):
    category: str
    at: datetime
    suggested_expert_id: int | None
    experts: list[ExpertAvailabilityOut]
