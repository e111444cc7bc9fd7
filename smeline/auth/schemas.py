"""Request and response models of the account endpoints."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import Field, StringConstraints

from smeline.api import Out, QuerySchema, Schema
from smeline.auth.models import Role

Username = Annotated[
    str, StringConstraints(min_length=3, max_length=64, pattern=r"^[A-Za-z0-9_.\-]+$")
]
DisplayName = Annotated[str, StringConstraints(min_length=1, max_length=100)]
Phone = Annotated[str, StringConstraints(min_length=3, max_length=32, pattern=r"^\+?[0-9\- ]+$")]
Email = Annotated[
    str, StringConstraints(max_length=254, pattern=r"^[^@\s<>\"']+@[^@\s<>\"']+\.[^@\s<>\"']+$")
]
# Passwords are taken exactly as typed: no whitespace stripping.
Password = Annotated[str, StringConstraints(min_length=1, max_length=256, strip_whitespace=False)]
NewPassword = Annotated[
    str, StringConstraints(min_length=10, max_length=256, strip_whitespace=False)
]


class LoginIn(Schema):
    username: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    password: Password


class UserOut(Out):
    id: int
    username: str
    display_name: str
    role: Role
    county_code: str | None
    window_code: str | None
    phone: str | None
    email: str | None
    active: bool
    must_change_password: bool
    created_at: datetime


class LoginOut(Out):
    user: UserOut
    token: str = Field(description="Bearer token; the same value is set as an HttpOnly cookie")
    csrf_token: str = Field(description="Send as X-CSRF-Token with cookie-authenticated writes")
    expires_at: datetime


class PasswordChangeIn(Schema):
    current_password: Password
    new_password: NewPassword


class UserCreateIn(Schema):
    username: Username
    display_name: DisplayName
    role: Role
    county_code: str | None = Field(default=None, max_length=6)
    window_code: str | None = Field(default=None, max_length=32)
    phone: Phone | None = None
    email: Email | None = None


class UserUpdateIn(Schema):
    display_name: DisplayName | None = None
    role: Role | None = None
    county_code: str | None = Field(default=None, max_length=6)
    window_code: str | None = Field(default=None, max_length=32)
    phone: Phone | None = None
    email: Email | None = None
    active: bool | None = None


class UserCreatedOut(Out):
    user: UserOut
    one_time_password: str = Field(description="Shown once; the user must change it at login")


class UserListOut(Out):
    items: list[UserOut]


class UserListQuery(QuerySchema):
    role: Role | None = None
    county_code: str | None = Field(default=None, max_length=6)
    window_code: str | None = Field(default=None, max_length=32)
    active: bool | None = None
