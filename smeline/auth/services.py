"""Accounts: login with throttling, sessions, password changes, user administration."""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from smeline.auth.models import AuthSession, LoginFailure, Role, User
from smeline.auth.passwords import Passwords
from smeline.auth.permissions import Principal
from smeline.auth.schemas import UserCreateIn, UserListQuery, UserUpdateIn
from smeline.errors import (
    Conflict,
    NotFound,
    TooManyRequests,
    Unauthorized,
    ValidationFailed,
    field_error,
)
from smeline.reference.data import CITY_CODE
from smeline.reference.models import County, Window

logger = logging.getLogger(__name__)


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class LoginResult:
    user: User
    token: str
    csrf_token: str
    expires_at: datetime


@dataclass(frozen=True)
class Authenticated:
    principal: Principal
    csrf_token: str
    expires_at: datetime


class SessionCache:
    """Recently authenticated tokens, kept a few seconds.

    Every API request authenticates; a short cache spares the database a query per
    request. Logout, password changes and deactivation invalidate entries in this
    process at once; other processes notice within ``ttl_seconds``.
    """

    def __init__(self, ttl_seconds: float = 5.0, max_entries: int = 20_000) -> None:
        self._ttl = ttl_seconds
        self._max = max_entries
        self._entries: dict[str, tuple[float, Authenticated]] = {}

    def get(self, digest: str, now: datetime) -> Authenticated | None:
        entry = self._entries.get(digest)
        if entry is None:
            return None
        kept_until, found = entry
        if kept_until < time.monotonic() or found.expires_at <= now:
            self._entries.pop(digest, None)
            return None
        return found

    def put(self, digest: str, found: Authenticated) -> None:
        if self._ttl <= 0:
            return
        if len(self._entries) >= self._max:
            self._entries.clear()
        self._entries[digest] = (time.monotonic() + self._ttl, found)

    def forget_session(self, session_id: int) -> None:
        self._forget(lambda a: a.principal.session_id == session_id)

    def forget_user(self, user_id: int) -> None:
        self._forget(lambda a: a.principal.user_id == user_id)

    def _forget(self, match: Callable[[Authenticated], bool]) -> None:
        for key in [k for k, (_, a) in self._entries.items() if match(a)]:
            del self._entries[key]


class AuthService:
    def __init__(
        self,
        *,
        sessionmaker: async_sessionmaker[AsyncSession],
        passwords: Passwords,
        session_ttl: timedelta,
        max_failures: int,
        failure_window: timedelta,
        cache: SessionCache | None = None,
    ) -> None:
        self._sessionmaker = sessionmaker
        self._cache = cache or SessionCache(ttl_seconds=0)
        self._passwords = passwords
        self._session_ttl = session_ttl
        self._max_failures = max_failures
        self._failure_window = failure_window

    async def login(
        self, username: str, password: str, *, ip: str, user_agent: str | None, now: datetime
    ) -> LoginResult:
        since = now - self._failure_window
        async with self._sessionmaker() as db:
            by_user = await db.scalar(
                select(func.count())
                .select_from(LoginFailure)
                .where(LoginFailure.username == username, LoginFailure.at >= since)
            )
            # An address guessing across many usernames is throttled too, more loosely.
            by_ip = await db.scalar(
                select(func.count())
                .select_from(LoginFailure)
                .where(LoginFailure.ip == ip, LoginFailure.at >= since)
            )
            if (by_user or 0) >= self._max_failures or (by_ip or 0) >= self._max_failures * 10:
                retry = int(self._failure_window.total_seconds())
                logger.warning("login throttled for username=%s ip=%s", username, ip)
                raise TooManyRequests(
                    "Too many failed logins; try again later",
                    error_id="login_throttled",
                    details={"retry_after_seconds": retry},
                    headers={"Retry-After": str(retry)},
                )
            user = await db.scalar(select(User).where(User.username == username))
            ok = await self._passwords.verify(user.password_hash if user else None, password)
            if user is None or not ok or not user.active:
                db.add(LoginFailure(username=username, ip=ip, at=now))
                await db.commit()
                logger.info("login failed for username=%s ip=%s", username, ip)
                raise Unauthorized("Wrong username or password", error_id="login_failed")
            token = secrets.token_urlsafe(32)
            csrf = secrets.token_urlsafe(24)
            expires = now + self._session_ttl
            db.add(
                AuthSession(
                    token_hash=token_digest(token),
                    csrf_token=csrf,
                    user_id=user.id,
                    created_at=now,
                    expires_at=expires,
                    ip=ip[:64],
                    user_agent=(user_agent or "")[:300] or None,
                )
            )
            await db.execute(delete(LoginFailure).where(LoginFailure.username == username))
            await db.commit()
            logger.info("login user_id=%s role=%s", user.id, user.role)
            return LoginResult(user=user, token=token, csrf_token=csrf, expires_at=expires)

    async def authenticate(self, token: str, *, now: datetime) -> Authenticated | None:
        digest = token_digest(token)
        cached = self._cache.get(digest, now)
        if cached is not None:
            return cached
        async with self._sessionmaker() as db:
            row = (
                await db.execute(
                    select(
                        AuthSession.id,
                        AuthSession.csrf_token,
                        AuthSession.expires_at,
                        User.id,
                        User.username,
                        User.role,
                        User.county_code,
                        User.window_code,
                        User.must_change_password,
                        User.active,
                        Window.county_code,
                    )
                    .join(User, User.id == AuthSession.user_id)
                    .outerjoin(Window, Window.code == User.window_code)
                    .where(AuthSession.token_hash == digest)
                )
            ).first()
        if row is None:
            return None
        (
            session_id,
            csrf,
            expires_at,
            user_id,
            username,
            role_name,
            user_county,
            window_code,
            must_change,
            active,
            window_county,
        ) = row
        if expires_at <= now or not active:
            return None
        role = Role(role_name)
        principal = Principal(
            user_id=user_id,
            username=username,
            role=role,
            county_code=user_county if role is Role.COUNTY_ADMIN else window_county,
            window_code=window_code,
            session_id=session_id,
            must_change_password=must_change,
        )
        found = Authenticated(principal=principal, csrf_token=csrf, expires_at=expires_at)
        self._cache.put(digest, found)
        return found

    async def logout(self, session_id: int) -> None:
        self._cache.forget_session(session_id)
        async with self._sessionmaker() as db:
            await db.execute(delete(AuthSession).where(AuthSession.id == session_id))
            await db.commit()

    async def change_password(
        self, principal: Principal, current: str, new: str, *, now: datetime
    ) -> None:
        async with self._sessionmaker() as db:
            user = await db.get(User, principal.user_id)
            if user is None:
                raise NotFound("No such user")
            if not await self._passwords.verify(user.password_hash, current):
                raise Unauthorized("Current password is wrong", error_id="wrong_password")
            check_password_quality(new, user.username)
            if await self._passwords.verify(user.password_hash, new):
                raise ValidationFailed(
                    "New password must differ from the current one",
                    details=[field_error("new_password", "password_reused")],
                )
            user.password_hash = await self._passwords.hash(new)
            user.must_change_password = False
            user.password_changed_at = now
            self._cache.forget_user(user.id)
            # Other sessions of this user end; the current one stays.
            await db.execute(
                delete(AuthSession).where(
                    AuthSession.user_id == user.id, AuthSession.id != principal.session_id
                )
            )
            await db.commit()

    @staticmethod
    def csrf_matches(expected: str, given: str | None) -> bool:
        # compare_digest raises on str with non-ASCII characters; bytes compare fine.
        return given is not None and hmac.compare_digest(
            expected.encode(), given.encode("utf-8", "surrogateescape")
        )


def check_password_quality(password: str, username: str) -> None:
    problems = []
    if len(password) < 10:
        problems.append(field_error("new_password", "too_short", "at least 10 characters"))
    if username.lower() in password.lower():
        problems.append(field_error("new_password", "contains_username"))
    if len(set(password)) < 5:
        problems.append(field_error("new_password", "too_simple"))
    if problems:
        raise ValidationFailed("Password is too weak", details=problems)


class UserService:
    def __init__(
        self,
        *,
        sessionmaker: async_sessionmaker[AsyncSession],
        passwords: Passwords,
        cache: SessionCache | None = None,
    ) -> None:
        self._sessionmaker = sessionmaker
        self._passwords = passwords
        self._cache = cache or SessionCache(ttl_seconds=0)

    async def create(self, data: UserCreateIn, *, now: datetime) -> tuple[User, str]:
        password = self._passwords.one_time_password()
        async with self._sessionmaker() as db:
            county, window = await self._placement(
                db, Role(data.role), data.county_code, data.window_code
            )
            user = User(
                username=data.username,
                display_name=data.display_name,
                role=data.role.value,
                county_code=county,
                window_code=window,
                phone=data.phone,
                email=data.email,
                password_hash=await self._passwords.hash(password),
                must_change_password=True,
                active=True,
                created_at=now,
            )
            db.add(user)
            try:
                await db.commit()
            except IntegrityError as exc:
                raise Conflict(
                    "Username is taken",
                    error_id="username_taken",
                    details=[field_error("username", "taken")],
                ) from exc
            logger.info("user created user_id=%s role=%s", user.id, user.role)
            return user, password

    async def update(self, user_id: int, data: UserUpdateIn) -> User:
        fields = data.model_fields_set
        async with self._sessionmaker() as db:
            user = await db.get(User, user_id)
            if user is None:
                raise NotFound("No such user", error_id="user_not_found")
            role = Role(data.role) if data.role is not None else Role(user.role)
            county = data.county_code if "county_code" in fields else user.county_code
            window = data.window_code if "window_code" in fields else user.window_code
            if data.role is not None and data.role.value != user.role:
                # A role change clears a placement that belonged to the old role.
                county = data.county_code if "county_code" in fields else None
                window = data.window_code if "window_code" in fields else None
            user.county_code, user.window_code = await self._placement(db, role, county, window)
            user.role = role.value
            for name in ("display_name", "phone", "email", "active"):
                if name in fields:
                    value = getattr(data, name)
                    if value is None and name in ("display_name", "active"):
                        raise ValidationFailed(
                            "Field may not be null", details=[field_error(name, "null")]
                        )
                    setattr(user, name, value)
            if "active" in fields and data.active is False:
                await db.execute(delete(AuthSession).where(AuthSession.user_id == user.id))
            await db.commit()
            self._cache.forget_user(user.id)
            return user

    async def reset_password(self, user_id: int) -> tuple[User, str]:
        password = self._passwords.one_time_password()
        async with self._sessionmaker() as db:
            user = await db.get(User, user_id)
            if user is None:
                raise NotFound("No such user", error_id="user_not_found")
            user.password_hash = await self._passwords.hash(password)
            user.must_change_password = True
            await db.execute(delete(AuthSession).where(AuthSession.user_id == user.id))
            await db.commit()
            self._cache.forget_user(user.id)
            return user, password

    async def get(self, user_id: int) -> User:
        async with self._sessionmaker() as db:
            user = await db.get(User, user_id)
            if user is None:
                raise NotFound("No such user", error_id="user_not_found")
            return user

    async def list(self, query: UserListQuery) -> list[User]:
        stmt = select(User).order_by(User.id)
        if query.role is not None:
            stmt = stmt.where(User.role == query.role.value)
        if query.county_code is not None:
            stmt = stmt.where(User.county_code == query.county_code)
        if query.window_code is not None:
            stmt = stmt.where(User.window_code == query.window_code)
        if query.active is not None:
            stmt = stmt.where(User.active == query.active)
        async with self._sessionmaker() as db:
            return list((await db.scalars(stmt)).all())

    async def count(self) -> int:
        async with self._sessionmaker() as db:
            return int(await db.scalar(select(func.count()).select_from(User)) or 0)

    @staticmethod
    async def _placement(
        db: AsyncSession, role: Role, county_code: str | None, window_code: str | None
    ) -> tuple[str | None, str | None]:
        """County admins belong to one county, agents to one window; others to neither."""
        if role is Role.COUNTY_ADMIN:
            if county_code is None or county_code == CITY_CODE:
                raise ValidationFailed(
                    "A county admin needs one county",
                    details=[field_error("county_code", "missing", "one of the eight counties")],
                )
            if await db.get(County, county_code) is None:
                raise ValidationFailed(
                    "Unknown county", details=[field_error("county_code", "unknown")]
                )
            return county_code, None
        if role is Role.AGENT:
            if window_code is None:
                raise ValidationFailed(
                    "An agent needs a window", details=[field_error("window_code", "missing")]
                )
            if await db.get(Window, window_code) is None:
                raise ValidationFailed(
                    "Unknown window", details=[field_error("window_code", "unknown")]
                )
            return None, window_code
        if county_code is not None or window_code is not None:
            field = "county_code" if county_code is not None else "window_code"
            raise ValidationFailed(
                f"Role {role.value} has no county or window",
                details=[field_error(field, "not_allowed")],
            )
        return None, None


async def system_principal(
    sessionmaker: async_sessionmaker[AsyncSession],
    *,
    username: str,
    display_name: str,
    window_code: str,
) -> Principal:
    """The account a channel's automatic work orders are created by (the
    hotline IVR, web chat): a real row, since work orders reference their
    creator, that can never log in — inactive, and a password hash that is not
    an argon2 hash, so no password matches it. Created on first use."""
    async with sessionmaker() as db, db.begin():
        user = await db.scalar(select(User).where(User.username == username))
        if user is None:
            user = User(
                username=username,
                display_name=display_name,
                role=Role.AGENT.value,
                window_code=window_code,
                county_code=CITY_CODE,
                password_hash="!",
                must_change_password=False,
                active=False,
            )
            db.add(user)
            await db.flush()
        return Principal(
            user_id=user.id,
            username=user.username,
            role=Role.AGENT,
            county_code=user.county_code,
            window_code=user.window_code,
            session_id=0,
        )
