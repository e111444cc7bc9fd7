"""我的通话: an agent's own recent calls (GET /api/telephony/calls/mine) and
playback of their recordings, audited, never another agent's."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from smeline import keys
from smeline.app import create_app
from smeline.telephony.calls import CallDirection, CallOutcome, CallRecordData
from smeline.telephony.models import CallRecord, TelephonyAudit
from smeline.telephony.records import CallRecordStore
from tests.conftest import Actor, Api, make_settings

WAV = b"RIFF\x24\x00\x00\x00WAVEfmt " + bytes(28)
T0 = datetime(2026, 12, 2, 2, 0, tzinfo=UTC)


@pytest.fixture
async def rec_api(database_url: str, aiohttp_client: Any, tmp_path: Path) -> Api:
    settings = make_settings(database_url, recordings_dir=tmp_path / "rec")
    (tmp_path / "rec").mkdir()
    client = await aiohttp_client(create_app(settings, background=False))
    api = Api(client)
    await api.bootstrap_admin()
    return api


async def _call(
    api: Api,
    linkedid: str,
    *,
    agent: Actor | None,
    minutes_ago: int,
    recording: str | None = None,
    by_interface: bool = False,
) -> None:
    """A call answered by ``agent`` (by user id, or only by the phone's
    interface as rows written before ``agent_user_id`` was filled)."""
    async with api.client.server.app[keys.SESSIONMAKER]() as db, db.begin():
        db.add(
            CallRecord(
                linkedid=linkedid,
                direction="inbound",
                caller_number="13800001234",
                caller_key="13800001234",
                caller_name="",
                county_code="441481",
                category_code="financing",
                windows=["xingning"],
                queues=["xingning"],
                started_at=T0 - timedelta(minutes=minutes_ago),
                answered_at=T0 - timedelta(minutes=minutes_ago - 1),
                ended_at=T0 - timedelta(minutes=minutes_ago - 3),
                talk_seconds=120,
                agent_interface=f"PJSIP/agent-{agent.id}" if agent else None,
                agent_user_id=None if agent is None or by_interface else agent.id,
                answered_window="xingning",
                outcome="answered",
                recording_file=recording,
                escalations=[],
            )
        )


async def _audit(api: Api) -> list[TelephonyAudit]:
    async with api.client.server.app[keys.SESSIONMAKER]() as db:
        return list((await db.scalars(select(TelephonyAudit).order_by(TelephonyAudit.id))).all())


async def _agents(api: Api) -> tuple[Actor, Actor]:
    mine = await api.user("agent", window_code="xingning")
    other = await api.user("agent", window_code="xingning")
    return mine, other


async def test_an_agent_sees_only_their_own_calls_newest_first_with_recording_presence(
    rec_api: Api, tmp_path: Path
) -> None:
    me, other = await _agents(rec_api)
    (tmp_path / "rec" / "mine-new.wav").write_bytes(WAV)
    await _call(rec_api, "mine-old.1", agent=me, minutes_ago=60, by_interface=True)
    await _call(rec_api, "mine-new.1", agent=me, minutes_ago=5, recording="mine-new.wav")
    # A recording file that was purged is not offered for playback.
    await _call(rec_api, "mine-purged.1", agent=me, minutes_ago=30, recording="gone.wav")
    await _call(rec_api, "theirs.1", agent=other, minutes_ago=10, recording="mine-new.wav")
    await _call(rec_api, "abandoned.1", agent=None, minutes_ago=1)

    status, body = await rec_api.call("GET", "/api/telephony/calls/mine", me)
    assert status == 200, body
    assert [c["linkedid"] for c in body["items"]] == ["mine-new.1", "mine-purged.1", "mine-old.1"]
    assert [c["has_recording"] for c in body["items"]] == [True, False, False]
    assert body["items"][0]["caller_number"] == "13800001234"
    assert body["items"][0]["talk_seconds"] == 120
    assert body["next_cursor"] is None

    status, body = await rec_api.call("GET", "/api/telephony/calls/mine", other)
    assert [c["linkedid"] for c in body["items"]] == ["theirs.1"]


async def test_my_calls_are_paged_with_a_cursor(rec_api: Api) -> None:
    me, _ = await _agents(rec_api)
    for n in range(5):
        await _call(rec_api, f"page-{n}.1", agent=me, minutes_ago=10 + n)
    seen: list[str] = []
    path = "/api/telephony/calls/mine?limit=2"
    while True:
        status, body = await rec_api.call("GET", path, me)
        assert status == 200, body
        assert len(body["items"]) <= 2
        seen += [c["linkedid"] for c in body["items"]]
        if body["next_cursor"] is None:
            break
        path = f"/api/telephony/calls/mine?limit=2&cursor={body['next_cursor']}"
    assert seen == [f"page-{n}.1" for n in range(5)]


@pytest.mark.parametrize(
    "query",
    ["limit=0", "limit=101", "limit=ten", "cursor=abc", "cursor=12_x", "cursor=1_2_3", "page=2"],
)
async def test_bad_query_parameters_are_refused_clearly(rec_api: Api, query: str) -> None:
    me, _ = await _agents(rec_api)
    status, body = await rec_api.call("GET", f"/api/telephony/calls/mine?{query}", me)
    assert status == 422, body
    assert body["error"]["id"] == "validation_failed"


async def test_roles_off_the_desk_have_no_calls(rec_api: Api) -> None:
    expert = await rec_api.user("expert")
    status, body = await rec_api.call("GET", "/api/telephony/calls/mine", expert)
    assert status == 403 and body["error"]["id"] == "permission_denied"


async def test_an_agent_plays_their_own_recording_and_the_play_is_audited(
    rec_api: Api, tmp_path: Path
) -> None:
    me, _ = await _agents(rec_api)
    (tmp_path / "rec" / "own.wav").write_bytes(WAV)
    await _call(rec_api, "own.1", agent=me, minutes_ago=5, recording="own.wav", by_interface=True)
    resp = await rec_api.client.get("/api/telephony/calls/own.1/recording", headers=me.headers)
    assert resp.status == 200 and await resp.read() == WAV
    assert resp.headers["Cache-Control"] == "no-store"
    rows = await _audit(rec_api)
    assert [(r.action, r.actor_user_id, r.target) for r in rows] == [
        ("recording_play", me.id, "own.1")
    ]


async def test_an_agent_may_not_fetch_another_agents_recording_and_nothing_is_served(
    rec_api: Api, tmp_path: Path
) -> None:
    me, other = await _agents(rec_api)
    (tmp_path / "rec" / "theirs.wav").write_bytes(WAV)
    await _call(rec_api, "theirs.2", agent=other, minutes_ago=5, recording="theirs.wav")
    await _call(rec_api, "nobodys.2", agent=None, minutes_ago=5, recording="theirs.wav")
    for linkedid in ("theirs.2", "nobodys.2"):
        status, body = await rec_api.call(
            "GET", f"/api/telephony/calls/{linkedid}/recording?disposition=attachment", me
        )
        assert status == 403, body
        assert body["error"]["id"] == "not_your_call"
    assert await _audit(rec_api) == []
    # A supervisor still may, and that is audited too.
    supervisor = await rec_api.user("supervisor")
    resp = await rec_api.client.get(
        "/api/telephony/calls/theirs.2/recording", headers=supervisor.headers
    )
    assert resp.status == 200
    assert [(r.action, r.actor_user_id) for r in await _audit(rec_api)] == [
        ("recording_play", supervisor.id)
    ]


async def test_call_records_name_the_answering_agent_when_the_interface_is_a_known_user(
    rec_api: Api,
) -> None:
    me, _ = await _agents(rec_api)
    store = CallRecordStore(
        sessionmaker=rec_api.client.server.app[keys.SESSIONMAKER], caller_key=lambda n: n
    )

    def record(linkedid: str, interface: str | None) -> CallRecordData:
        return CallRecordData(
            linkedid=linkedid,
            direction=CallDirection.INBOUND,
            caller_channel="PJSIP/trunk-1",
            caller_uniqueid=linkedid,
            caller_number="13800001234",
            caller_name="",
            started_at=T0,
            agent_interface=interface,
            outcome=CallOutcome.ANSWERED,
        )

    await store.save(
        [
            record("known.3", f"PJSIP/agent-{me.id}"),
            # No such user: stored without one rather than failing the batch.
            record("stray.3", "PJSIP/agent-999999"),
            record("other.3", "SIP/desk-1"),
        ]
    )
    async with rec_api.client.server.app[keys.SESSIONMAKER]() as db:
        rows = {r.linkedid: r.agent_user_id for r in (await db.scalars(select(CallRecord))).all()}
    assert rows == {"known.3": me.id, "stray.3": None, "other.3": None}
    status, body = await rec_api.call("GET", "/api/telephony/calls/mine", me)
    assert [c["linkedid"] for c in body["items"]] == ["known.3"]
