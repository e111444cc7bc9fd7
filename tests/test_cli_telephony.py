"""`smeline asterisk-config` renders Asterisk's files from the database."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from smeline.auth.models import Role, User
from smeline.cli import main
from smeline.db import make_engine, make_sessionmaker
from smeline.reference.services import ReferenceService
from smeline.telephony.phones import PhoneBook


async def _agent_with_phone(database_url: str) -> tuple[int, str]:
    engine = make_engine(database_url)
    try:
        sessionmaker = make_sessionmaker(engine)
        await ReferenceService(sessionmaker=sessionmaker).seed()
        async with sessionmaker() as db, db.begin():
            user = User(
                username="a1", display_name="兴宁坐席", role=Role.AGENT.value, password_hash="!"
            )
            db.add(user)
            await db.flush()
            user_id = user.id
        phone = await PhoneBook(sessionmaker=sessionmaker).ensure(user_id, "xingning")
        return user_id, phone.secret
    finally:
        await engine.dispose()


def test_asterisk_config_renders_queues_and_agent_endpoints_from_the_database(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    user_id, secret = asyncio.run(_agent_with_phone(database_url))
    monkeypatch.setenv("SMELINE_DATABASE_URL", database_url)
    monkeypatch.setenv("SMELINE_HOTLINE_NUMBER", "075312345")
    monkeypatch.setenv("SMELINE_AMI_SECRET", "s3cret-AMI-long-enough")
    assert main(["asterisk-config", "--out", str(tmp_path)]) == 0
    queues = (tmp_path / "smeline_queues.conf").read_text(encoding="utf-8")
    for window in ("meijiang", "xingning", "wuhua", "city"):
        assert f"[{window}]" in queues
    agents = (tmp_path / "smeline_agents.conf").read_text(encoding="utf-8")
    assert f"agent-{user_id}" in agents and secret in agents
    assert "075312345" in (tmp_path / "smeline_globals.conf").read_text(encoding="utf-8")
    assert (tmp_path / "extensions.conf").exists()
    assert oct((tmp_path / "smeline_agents.conf").stat().st_mode & 0o777) == "0o640"


def test_asterisk_config_without_a_hotline_number_is_a_clear_error(
    database_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("SMELINE_DATABASE_URL", database_url)
    monkeypatch.delenv("SMELINE_HOTLINE_NUMBER", raising=False)
    assert main(["asterisk-config", "--out", str(tmp_path)]) == 2
    assert "error" in capsys.readouterr().err
    assert not (tmp_path / "smeline_agents.conf").exists()
