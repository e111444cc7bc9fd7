"""The embedded default (SQLite, no Redis, no Asterisk): what a newcomer gets from scripts/run."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from smeline.app import create_app
from smeline.migrate import upgrade
from tests.conftest import STRONG_PASSWORD, Api, make_settings, ticket_payload


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen[str], list[str]]]:
    port = _free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("SMELINE_")},
        "SMELINE_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/smeline.db",
        "SMELINE_PORT": str(port),
        "SMELINE_LOG_DIR": str(tmp_path / "log"),
        "SMELINE_LOG_TO_STDERR": "false",
        "SMELINE_ARGON2_TIME_COST": "1",
        "SMELINE_ARGON2_MEMORY_KIB": "64",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "smeline", "serve"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    assert proc.stdout is not None
    # Read the banner until the service says where it listens.
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        if "smeline on http://" in line:
            break
    try:
        yield base, proc, lines
    finally:
        proc.terminate()
        proc.wait(timeout=20)


async def _wait_healthy(base: str) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    async with aiohttp.ClientSession() as http:
        while True:
            try:
                async with http.get(f"{base}/api/health") as resp:
                    if resp.status == 200:
                        body: dict[str, Any] = await resp.json()
                        return body
            except aiohttp.ClientConnectionError:
                if time.monotonic() > deadline:
                    raise
            if time.monotonic() > deadline:
                raise TimeoutError("service did not become healthy")


async def test_newcomer_starts_the_embedded_service_logs_in_and_opens_a_work_order(
    served: tuple[str, subprocess.Popen[str], list[str]],
) -> None:
    base, _proc, lines = served
    banner = "".join(lines)
    match = re.search(r"One-time password:\s+(\S+)", banner)
    assert match, banner
    assert "Telephony is not configured" in banner
    health = await _wait_healthy(base)
    assert health["database"] == "sqlite"
    assert health["telephony"] == "not_configured"
    async with aiohttp.ClientSession(base_url=base) as http:
        async with http.post(
            "/api/auth/login", json={"username": "admin", "password": match.group(1)}
        ) as resp:
            assert resp.status == 200
            token = (await resp.json())["token"]
        auth = {"Authorization": f"Bearer {token}"}
        async with http.post(
            "/api/auth/password",
            json={"current_password": match.group(1), "new_password": STRONG_PASSWORD},
            headers=auth,
        ) as resp:
            assert resp.status == 204
        async with http.get("/api/reference", headers=auth) as resp:
            ref = await resp.json()
        assert len(ref["windows"]) == 9
        assert {c["name"] for c in ref["categories"]} >= {"信息咨询", "融资担保", "法律维权"}
        assert len(ref["counties"]) == 9
        async with http.post("/api/tickets", json=ticket_payload(), headers=auth) as resp:
            assert resp.status == 201
            created = await resp.json()
        async with http.get("/api/tickets?county_code=441481", headers=auth) as resp:
            page = await resp.json()
        assert [t["number"] for t in page["items"]] == [created["number"]]


async def test_one_time_password_is_never_written_to_the_log(
    served: tuple[str, subprocess.Popen[str], list[str]], tmp_path: Path
) -> None:
    base, _proc, lines = served
    await _wait_healthy(base)
    match = re.search(r"One-time password:\s+(\S+)", "".join(lines))
    assert match
    logs = "".join(p.read_text() for p in (tmp_path / "log").glob("*"))
    assert "smeline started" in logs
    assert match.group(1) not in logs


@pytest.fixture
async def sqlite_api(tmp_path: Path, aiohttp_client: Any) -> Api:
    url = f"sqlite+aiosqlite:///{tmp_path}/inproc.db"
    await upgrade(url)
    client: TestClient[Any, Any] = await aiohttp_client(
        create_app(make_settings(url), background=False)
    )
    api = Api(client)
    await api.bootstrap_admin()
    return api


async def test_sqlite_work_order_moves_through_its_life(sqlite_api: Api) -> None:
    api = sqlite_api
    agent = await api.user("agent", window_code="xingning")
    status, t = await api.call("POST", "/api/tickets", agent, json=ticket_payload())
    assert status == 201, t
    for action, extra in (
        ("assign", {"assignee_id": agent.id}),
        ("start", {}),
        ("wait_customer", {}),
        ("resume", {}),
        ("resolve", {"resolution": "已电话告知办理流程"}),
        ("close", {}),
    ):
        status, t = await api.call(
            "POST", f"/api/tickets/{t['id']}/actions", agent, json={"action": action, **extra}
        )
        assert status == 200, (action, t)
    assert t["status"] == "closed"
    status, hist = await api.call("GET", f"/api/tickets/{t['id']}/history", agent)
    statuses = [
        h["to_value"] for h in hist["items"] if h["action"] in ("created", "status_changed")
    ]
    assert statuses == [
        "new",
        "assigned",
        "in_progress",
        "waiting_customer",
        "in_progress",
        "resolved",
        "closed",
    ]


async def test_sqlite_history_refuses_update_and_delete(sqlite_api: Api) -> None:
    from sqlalchemy import text
    from sqlalchemy.exc import IntegrityError

    from smeline import keys

    api = sqlite_api
    status, t = await api.call("POST", "/api/tickets", api.admin, json=ticket_payload())
    assert status == 201
    sessionmaker = api.client.server.app[keys.SESSIONMAKER]  # type: ignore[union-attr]
    for sql in ("UPDATE ticket_history SET note = 'x'", "DELETE FROM ticket_history"):
        async with sessionmaker() as db:
            with pytest.raises(IntegrityError, match="append-only"):
                await db.execute(text(sql))
    async with sessionmaker() as db:
        count = await db.scalar(text("SELECT count(*) FROM ticket_history"))
    assert count == 1
