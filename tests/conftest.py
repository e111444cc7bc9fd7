"""Test fixtures: a real PostgreSQL database per test run, emptied before every test.

PostgreSQL and Redis are real, never mocked. ``SMELINE_TEST_PG`` (an admin URL of
a PostgreSQL server) and ``SMELINE_TEST_REDIS`` point elsewhere if needed.
"""

from __future__ import annotations

import asyncio
import os
import time as time_module
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient

from smeline import keys
from smeline.app import create_app
from smeline.config import Settings
from smeline.migrate import upgrade_sync

PG_ADMIN = os.environ.get("SMELINE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("SMELINE_TEST_REDIS", "redis://127.0.0.1:6379/0")
STRONG_PASSWORD = "Meizhou-2026-secret"


def _db_url(name: str, driver: str = "postgresql+asyncpg") -> str:
    base = PG_ADMIN.rsplit("/", 1)[0].split("://", 1)[1]
    return f"{driver}://{base}/{name}"


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    name = f"smeline_test_{os.getpid()}_{uuid.uuid4().hex[:6]}"

    async def create() -> None:
        conn = await asyncpg.connect(PG_ADMIN)
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()

    async def drop() -> None:
        conn = await asyncpg.connect(PG_ADMIN)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()

    asyncio.run(create())
    url = _db_url(name)
    upgrade_sync(url)
    try:
        yield url
    finally:
        asyncio.run(drop())


async def _truncate(url: str) -> None:
    conn = await asyncpg.connect(url.replace("postgresql+asyncpg", "postgresql"))
    try:
        tables = [
            r["tablename"]
            for r in await conn.fetch(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
                "AND tablename <> 'alembic_version'"
            )
        ]
        # History is append-only even against TRUNCATE; replica mode skips those
        # triggers for this test-only cleanup connection.
        await conn.execute("SET session_replication_role = replica")
        await conn.execute(
            "TRUNCATE " + ", ".join(f'"{t}"' for t in tables) + " RESTART IDENTITY CASCADE"
        )
    finally:
        await conn.close()


@pytest.fixture
def database_url(pg_database: str) -> str:
    asyncio.run(_truncate(pg_database))
    return pg_database


def make_settings(database_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": database_url,
        "redis_url": None,
        "argon2_time_cost": 1,
        "argon2_memory_kib": 64,
        "log_to_stderr": False,
        "scheduler_enabled": False,
    }
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
def settings(database_url: str) -> Settings:
    return make_settings(database_url)


@dataclass
class Actor:
    id: int
    username: str
    role: str
    token: str
    county_code: str | None = None
    window_code: str | None = None

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@dataclass
class Api:
    """Drives the service over HTTP the way a client would."""

    client: TestClient[Any, Any]
    admin: Actor | None = None
    _n: int = 0
    actors: dict[str, Actor] = field(default_factory=dict)

    async def call(
        self,
        method: str,
        path: str,
        actor: Actor | None = None,
        json: Any = None,
        **kw: Any,
    ) -> tuple[int, Any]:
        headers = dict(kw.pop("headers", {}))
        if actor is not None:
            headers.update(actor.headers)
        resp = await self.client.request(method, path, json=json, headers=headers, **kw)
        body: Any = None
        if resp.status != 204:
            body = (
                await resp.json() if resp.content_type == "application/json" else await resp.text()
            )
        return resp.status, body

    async def login(self, username: str, password: str) -> tuple[int, Any]:
        return await self.call(
            "POST", "/api/auth/login", json={"username": username, "password": password}
        )

    async def bootstrap_admin(self) -> Actor:
        from smeline.auth.models import Role
        from smeline.auth.schemas import UserCreateIn
        from smeline.auth.services import UserService
        from smeline.db import utcnow

        users: UserService = self.client.server.app[keys.USERS]
        user, otp = await users.create(
            UserCreateIn(username="root-admin", display_name="Admin", role=Role.ADMIN),
            now=utcnow(),
        )
        self.admin = await self._activate(user.id, "root-admin", "admin", otp)
        return self.admin

    async def _activate(self, user_id: int, username: str, role: str, otp: str, **kw: Any) -> Actor:
        status, body = await self.login(username, otp)
        assert status == 200, body
        token = body["token"]
        status, body = await self.call(
            "POST",
            "/api/auth/password",
            headers={"Authorization": f"Bearer {token}"},
            json={"current_password": otp, "new_password": STRONG_PASSWORD},
        )
        assert status == 204, body
        return Actor(id=user_id, username=username, role=role, token=token, **kw)

    async def user(
        self,
        role: str,
        *,
        county_code: str | None = None,
        window_code: str | None = None,
        username: str | None = None,
        **extra: Any,
    ) -> Actor:
        assert self.admin is not None
        self._n += 1
        username = username or f"{role}{self._n}"
        payload: dict[str, Any] = {"username": username, "display_name": username, "role": role}
        if county_code:
            payload["county_code"] = county_code
        if window_code:
            payload["window_code"] = window_code
        payload.update(extra)
        status, body = await self.call("POST", "/api/users", self.admin, json=payload)
        assert status == 201, body
        return await self._activate(
            body["user"]["id"],
            username,
            role,
            body["one_time_password"],
            county_code=county_code,
            window_code=window_code,
        )


@pytest.fixture
async def client(settings: Settings, aiohttp_client: Any) -> AsyncIterator[TestClient[Any, Any]]:
    app = create_app(settings, background=False)
    yield await aiohttp_client(app)


@pytest.fixture
async def api(client: TestClient[Any, Any]) -> Api:
    api = Api(client)
    await api.bootstrap_admin()
    return api


def ticket_payload(**overrides: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "subject": "咨询小微企业贷款贴息",
        "description": "企业想了解贴息申请条件和材料。",
        "source": "phone",
        "category_code": "financing",
        "county_code": "441481",
        "enterprise_name": "兴宁市某某电子有限公司",
        "contact_name": "李先生",
        "contact_phone": "13800001234",
    }
    payload.update(overrides)
    return payload


async def row_counts(api: Api) -> dict[str, int]:
    url = api.client.server.app[keys.SETTINGS].database_url
    conn = await asyncpg.connect(url.replace("postgresql+asyncpg", "postgresql"))
    try:
        tables = [
            r["tablename"]
            for r in await conn.fetch(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
                "AND tablename <> 'alembic_version' ORDER BY tablename"
            )
        ]
        counts = {}
        for table in tables:
            counts[table] = await conn.fetchval(f'SELECT count(*) FROM "{table}"')  # noqa: S608
        return counts
    finally:
        await conn.close()


@pytest.fixture
def process_tz_utc() -> Iterator[None]:
    """Run the test with the process time zone set to UTC, restoring it afterwards."""
    previous = os.environ.get("TZ")
    os.environ["TZ"] = "UTC"
    time_module.tzset()
    try:
        yield
    finally:
        if previous is None:
            del os.environ["TZ"]
        else:
            os.environ["TZ"] = previous
        time_module.tzset()


@pytest.fixture
async def sockets() -> AsyncIterator[Any]:
    """socket.io clients (tests/socket_rig.py), all closed at the end."""
    from tests.socket_rig import Sockets

    opened = Sockets()
    try:
        yield opened
    finally:
        await opened.close()
