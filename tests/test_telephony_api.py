"""Telephony through the HTTP API, with the app connected to the AMI double."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import select

from smeline import keys
from smeline.telephony.ami_protocol import iter_raw_recording
from smeline.telephony.models import AgentEndpoint, TelephonyAudit
from tests.asterisk_double import RECORDINGS
from tests.asterisk_double.ami_server import AmiDouble
from tests.conftest import Api, ticket_payload
from tests.polling import until, until_async
from tests.telephony_rig import wired_api


@pytest.fixture
async def double() -> AsyncIterator[AmiDouble]:
    double = AmiDouble(bad_login_delay=0.05)
    for window in ("meijiang", "meixian", "xingning", "city", "county-meijiang"):
        double.add_queue(window)
    await double.start()
    yield double
    await double.stop()


@pytest.fixture
async def wired(database_url: str, aiohttp_client: Any, double: AmiDouble) -> Api:
    return await wired_api(database_url, aiohttp_client, double)


async def _audit(api: Api) -> list[TelephonyAudit]:
    async with api.client.server.app[keys.SESSIONMAKER]() as db:
        return list((await db.scalars(select(TelephonyAudit))).all())


async def test_without_asterisk_the_api_says_telephony_is_not_configured(api: Api) -> None:
    agent = await api.user("agent", window_code="xingning")
    status, body = await api.call("POST", "/api/telephony/agents/me/login", agent, json={})
    assert status == 503 and body["error"]["id"] == "telephony_not_configured"
    status, body = await api.call("GET", "/api/telephony/status", agent)
    assert status == 200 and body["configured"] is False and body["connected"] is False


async def test_agent_logs_in_pauses_and_the_wallboard_shows_it(
    wired: Api, double: AmiDouble
) -> None:
    agent = await wired.user("agent", window_code="xingning")
    interface = f"PJSIP/agent-{agent.id}"
    double.add_endpoint(f"agent-{agent.id}", contacts=[f"sip:agent-{agent.id}@127.0.0.1:5070"])
    status, body = await wired.call("POST", "/api/telephony/agents/me/login", agent, json={})
    assert status == 200, body
    assert body["state"] == "ready" and body["window_code"] == "xingning" and body["applied"]
    member = next(m for m in double.queues["xingning"].members if m.interface == interface)
    assert member.state_interface == interface
    status, body = await wired.call(
        "POST", "/api/telephony/agents/me/state", agent, json={"action": "pause", "reason": "lunch"}
    )
    assert status == 200 and body["state"] == "paused" and member.paused

    seen: dict[str, Any] = {}

    async def wallboard_shows_the_pause() -> bool:
        status, body = await wired.call("GET", "/api/telephony/status", agent)
        assert status == 200
        seen.update(next(w for w in body["windows"] if w["code"] == "xingning"))
        return bool(seen["members"]) and seen["members"][0]["paused"]

    await until_async(wallboard_shows_the_pause)
    assert seen["members"][0]["paused_reason"] == "lunch" and seen["ready"] == 0


async def test_agents_log_into_their_own_window_only(wired: Api) -> None:
    agent = await wired.user("agent", window_code="xingning")
    status, body = await wired.call(
        "POST", "/api/telephony/agents/me/login", agent, json={"window_code": "city"}
    )
    assert status == 403 and body["error"]["id"] == "window_scope"


@pytest.mark.parametrize(
    "body",
    [
        {"action": "sleep"},
        {"action": "pause", "reason": "x" * 41},
        {"action": "pause", "reason": "lunch\\r\\nAction: Originate"},
        {"action": "pause", "unknown": 1},
        {"action": 3},
    ],
)
async def test_bad_agent_state_input_is_refused_and_changes_nothing(
    wired: Api, double: AmiDouble, body: dict[str, Any]
) -> None:
    agent = await wired.user("agent", window_code="xingning")
    await wired.call("POST", "/api/telephony/agents/me/login", agent, json={})
    sent = len(double.actions)
    status, reply = await wired.call("POST", "/api/telephony/agents/me/state", agent, json=body)
    assert status == 422, reply
    assert len(double.actions) == sent


async def test_state_change_before_login_is_a_conflict(wired: Api) -> None:
    agent = await wired.user("agent", window_code="xingning")
    status, body = await wired.call(
        "POST", "/api/telephony/agents/me/state", agent, json={"action": "ready"}
    )
    assert status == 409 and body["error"]["id"] == "agent_not_logged_in"


async def test_supervisor_force_pause_is_audited(wired: Api, double: AmiDouble) -> None:
    agent = await wired.user("agent", window_code="xingning")
    supervisor = await wired.user("supervisor")
    await wired.call("POST", "/api/telephony/agents/me/login", agent, json={})
    status, body = await wired.call(
        "POST", f"/api/telephony/agents/{agent.id}/pause", supervisor, json={"reason": "meeting"}
    )
    assert status == 200 and body["state"] == "paused" and body["reason"] == "meeting"
    (row,) = await _audit(wired)
    assert (row.action, row.actor_user_id, row.target) == (
        "force_pause",
        supervisor.id,
        f"user:{agent.id}",
    )


async def _live_call(wired: Api, double: AmiDouble) -> None:
    """The recorded queued call, up to the moment both legs are bridged."""
    messages = [
        m
        for m in iter_raw_recording((RECORDINGS / "recordings--ami-events-call.ami").read_bytes())
        if m.is_event
    ]
    cut = next(i for i, m in enumerate(messages) if m.event == "HangupRequest")
    for message in messages[:cut]:
        await double.emit(message)
    double.add_channel("PJSIP/sipp-00000000", uniqueid="cctest-1795343657.0")
    tracker = wired.client.server.app[keys.TELEPHONY].service.tracker  # type: ignore[union-attr]
    await until(lambda: "cctest-1795343657.0" in tracker.calls)


async def test_supervisor_listen_in_originates_chanspy_on_the_agent_leg_and_is_audited(
    wired: Api, double: AmiDouble
) -> None:
    await _live_call(wired, double)
    supervisor = await wired.user("supervisor")
    status, body = await wired.call(
        "POST",
        "/api/telephony/calls/cctest-1795343657.0/spy",
        supervisor,
        json={"mode": "whisper"},
    )
    assert status == 202, body
    originate = next(a for a in double.actions if a.get("Action") == "Originate")
    assert originate.get("Channel") == f"PJSIP/agent-{supervisor.id}"
    assert originate.get("Application") == "ChanSpy"
    assert originate.get("Data") == "PJSIP/agent1-00000001,qw"
    (row,) = await _audit(wired)
    assert row.action == "spy_whisper" and row.target == "cctest-1795343657.0"


async def test_agents_cannot_listen_in(wired: Api, double: AmiDouble) -> None:
    await _live_call(wired, double)
    agent = await wired.user("agent", window_code="xingning")
    status, _ = await wired.call(
        "POST", "/api/telephony/calls/cctest-1795343657.0/spy", agent, json={"mode": "listen"}
    )
    assert status == 403
    assert not [a for a in double.actions if a.get("Action") == "Originate"]


async def test_transfer_redirects_the_caller_to_the_other_window_queue(
    wired: Api, double: AmiDouble
) -> None:
    await _live_call(wired, double)
    agent = await wired.user("agent", window_code="meijiang")
    status, body = await wired.call(
        "POST",
        "/api/telephony/calls/cctest-1795343657.0/transfer",
        agent,
        json={"window_code": "xingning"},
    )
    assert status == 204, body
    channel = double.channels["PJSIP/sipp-00000000"]
    assert channel.variables["Q_NAME"] == "xingning"
    assert (channel.context, channel.exten) == ("smeline-queue", "wait")
    # QUEUE_PRIO is never touched: the caller keeps their priority.
    assert not any(
        a.get("Action") == "Setvar" and a.get("Variable") == "QUEUE_PRIO" for a in double.actions
    )


async def test_unknown_call_is_404(wired: Api) -> None:
    agent = await wired.user("agent", window_code="meijiang")
    status, body = await wired.call(
        "POST", "/api/telephony/calls/nope-1/transfer", agent, json={"window_code": "city"}
    )
    assert status == 404


async def test_click_to_call_rings_the_agent_then_dials_the_sme_with_the_dial_string(
    wired: Api, double: AmiDouble
) -> None:
    agent = await wired.user("agent", window_code="xingning")
    status, ticket = await wired.call(
        "POST", "/api/tickets", agent, json=ticket_payload(contact_phone="+86 138 0013 8000")
    )
    assert status == 201, ticket
    double.add_extension("smeline-outbound", "013800138000")  # out-of-town mobile: leading 0
    status, body = await wired.call("POST", f"/api/tickets/{ticket['id']}/call", agent)
    assert status == 202, body
    originate = next(a for a in double.actions if a.get("Action") == "Originate")
    assert originate.get("Channel") == f"PJSIP/agent-{agent.id}"
    assert originate.get("Context") == "smeline-outbound"
    assert originate.get("Exten") == "013800138000"
    assert originate.get("Timeout") == "30000"  # milliseconds
    assert originate.get("ChannelId") == body["channel_id"]
    assert f"SMELINE_TICKET={ticket['short_ref']}" in originate.get_all("Variable")


async def test_an_agent_gets_their_own_softphone_settings_and_only_theirs(
    wired: Api, double: AmiDouble
) -> None:
    agent = await wired.user("agent", window_code="xingning")
    other = await wired.user("agent", window_code="meijiang")
    status, body = await wired.call("GET", "/api/telephony/agents/me/phone", agent)
    assert status == 200, body
    assert body["endpoint"] == f"agent-{agent.id}"
    assert body["authorization_user"] == body["endpoint"]
    assert body["sip_uri"].startswith(f"sip:agent-{agent.id}@")
    assert body["ws_url"].endswith("/ws") and body["ice_servers"] == []
    assert body["codecs"] == ["PCMA", "PCMU"] and body["dtmf"] == "rfc4733"
    # the same endpoint and secret every time, and what asterisk-config renders
    status, again = await wired.call("GET", "/api/telephony/agents/me/phone", agent)
    assert again["password"] == body["password"] and len(body["password"]) >= 24
    async with wired.client.server.app[keys.SESSIONMAKER]() as db:
        row = await db.get(AgentEndpoint, agent.id)
    assert row is not None and row.secret == body["password"]
    status, theirs = await wired.call("GET", "/api/telephony/agents/me/phone", other)
    assert theirs["endpoint"] == f"agent-{other.id}" and theirs["password"] != body["password"]
    expert = await wired.user("expert")
    status, _ = await wired.call("GET", "/api/telephony/agents/me/phone", expert)
    assert status == 403


async def test_behind_the_tls_proxy_the_softphone_dials_the_public_host(
    database_url: str, aiohttp_client: Any, double: AmiDouble
) -> None:
    api = await wired_api(
        database_url, aiohttp_client, double, public_url="https://cc.example.cn:8443"
    )
    agent = await api.user("agent", window_code="xingning")
    status, body = await api.call("GET", "/api/telephony/agents/me/phone", agent)
    assert status == 200, body
    assert body["ws_url"] == "wss://cc.example.cn:8443/ws"
    assert body["sip_uri"] == f"sip:agent-{agent.id}@cc.example.cn"
