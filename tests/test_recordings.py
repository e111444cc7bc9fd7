"""Recordings: audited play and download, confined to the recordings
directory, purged after the retention period."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from smeline import keys
from smeline.app import create_app
from smeline.db import utcnow
from smeline.telephony.models import CallRecord, TelephonyAudit
from smeline.telephony.recordings import RecordingArchive
from tests.conftest import Api, make_settings

WAV = b"RIFF\x24\x00\x00\x00WAVEfmt " + bytes(28)


@pytest.fixture
async def rec_api(database_url: str, aiohttp_client: Any, tmp_path: Path) -> Api:
    settings = make_settings(database_url, recordings_dir=tmp_path / "rec")
    client = await aiohttp_client(create_app(settings, background=False))
    api = Api(client)
    await api.bootstrap_admin()
    return api


async def _call(api: Api, linkedid: str, recording: str | None, county: str = "441481") -> None:
    async with api.client.server.app[keys.SESSIONMAKER]() as db, db.begin():
        db.add(
            CallRecord(
                linkedid=linkedid,
                direction="inbound",
                caller_number="075341234567",
                caller_key="075341234567",
                caller_name="",
                county_code=county,
                windows=["xingning"],
                queues=["xingning"],
                started_at=utcnow(),
                outcome="answered",
                recording_file=recording,
                escalations=[],
            )
        )


async def _audit(api: Api) -> list[TelephonyAudit]:
    async with api.client.server.app[keys.SESSIONMAKER]() as db:
        return list((await db.scalars(select(TelephonyAudit).order_by(TelephonyAudit.id))).all())


async def test_supervisor_plays_and_downloads_a_recording_and_each_access_is_audited(
    rec_api: Api, tmp_path: Path
) -> None:
    root = tmp_path / "rec"
    root.mkdir()
    (root / "20261207-cctest-1.0.wav").write_bytes(WAV)
    await _call(rec_api, "cctest-1.0", str(root / "20261207-cctest-1.0.wav"))
    supervisor = await rec_api.user("supervisor")
    resp = await rec_api.client.get(
        "/api/telephony/calls/cctest-1.0/recording", headers=supervisor.headers
    )
    assert resp.status == 200 and await resp.read() == WAV
    assert resp.headers["Content-Disposition"].startswith("inline")
    resp = await rec_api.client.get(
        "/api/telephony/calls/cctest-1.0/recording?disposition=attachment",
        headers=supervisor.headers,
    )
    assert resp.status == 200 and resp.headers["Content-Disposition"].startswith("attachment")
    rows = await _audit(rec_api)
    assert [(r.action, r.actor_user_id, r.target) for r in rows] == [
        ("recording_play", supervisor.id, "cctest-1.0"),
        ("recording_download", supervisor.id, "cctest-1.0"),
    ]


async def test_a_recording_path_outside_the_directory_is_never_served(
    rec_api: Api, tmp_path: Path
) -> None:
    (tmp_path / "rec").mkdir()
    secret = tmp_path / "secret.wav"
    secret.write_bytes(WAV)
    await _call(rec_api, "cctest-2.0", str(tmp_path / "rec" / ".." / "secret.wav"))
    supervisor = await rec_api.user("supervisor")
    status, body = await rec_api.call(
        "GET", "/api/telephony/calls/cctest-2.0/recording", supervisor
    )
    assert status == 404 and body["error"]["id"] == "recording_not_found"
    assert await _audit(rec_api) == []


async def test_county_admin_hears_only_their_county(rec_api: Api, tmp_path: Path) -> None:
    root = tmp_path / "rec"
    root.mkdir()
    (root / "a.wav").write_bytes(WAV)
    await _call(rec_api, "cctest-3.0", str(root / "a.wav"), county="441402")
    other = await rec_api.user("county_admin", county_code="441481")
    status, _ = await rec_api.call("GET", "/api/telephony/calls/cctest-3.0/recording", other)
    assert status == 403
    assert await _audit(rec_api) == []


async def test_bad_disposition_is_refused(rec_api: Api) -> None:
    supervisor = await rec_api.user("supervisor")
    status, _ = await rec_api.call(
        "GET", "/api/telephony/calls/cctest-1.0/recording?disposition=exec", supervisor
    )
    assert status == 422


async def test_recordings_older_than_the_retention_period_are_purged(tmp_path: Path) -> None:
    root = tmp_path / "rec"
    (root / "2026" / "01").mkdir(parents=True)
    now = datetime(2026, 12, 2, tzinfo=UTC)
    old = root / "2026" / "01" / "old.wav"
    fresh = root / "fresh.wav"
    note = root / "README.txt"
    for path in (old, fresh, note):
        path.write_bytes(WAV)
    day = 86400
    os.utime(old, (now.timestamp() - 200 * day,) * 2)
    os.utime(note, (now.timestamp() - 400 * day,) * 2)
    os.utime(fresh, (now.timestamp() - 10 * day,) * 2)
    archive = RecordingArchive(root=root, retention_days=180, now=lambda: now)
    assert await archive.purge() == 1
    assert not old.exists() and fresh.exists() and note.exists()
    assert await archive.purge() == 0


async def test_purge_of_a_missing_directory_does_nothing(tmp_path: Path) -> None:
    archive = RecordingArchive(
        root=tmp_path / "nowhere", retention_days=1, now=lambda: datetime.now(UTC)
    )
    assert await archive.purge() == 0
