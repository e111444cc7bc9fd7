"""Who may call what: every role × every registered endpoint, and county scoping.

The expectations are written out by hand below, from what each role is for (see
DESIGN.md), not computed from ``smeline.auth.permissions``: a change there that
widens or narrows a role has to change this table too.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from smeline import keys
from smeline.webchat.schemas import ChatStartIn
from smeline.webchat.services import ChatService, StartedChat
from smeline.webchat.setup import CHAT_SERVICE
from tests.conftest import STRONG_PASSWORD, Actor, Api, row_counts, ticket_payload

ROLES = ("admin", "county_admin", "supervisor", "agent", "expert", "agency", "editor", "analyst")

EVERYONE = frozenset(ROLES)
ADMIN = frozenset({"admin"})
# The service desk: they open, change and share work orders and see full phone numbers.
DESK = frozenset({"admin", "county_admin", "supervisor", "agent"})
# Experts and agencies work on what is handed to them; analysts only read.
WORKERS = DESK | {"expert", "agency"}
READERS = WORKERS | {"analyst"}
# Listen in on calls, force-pause or log out agents.
SUPERVISE = frozenset({"admin", "county_admin", "supervisor"})


@dataclass(frozen=True)
class Rule:
    allowed: frozenset[str]
    status: int  # on success
    public: bool = False


EXPECTED: dict[tuple[str, str], Rule] = {
    ("GET", "/api/health"): Rule(EVERYONE, 200, public=True),
    ("POST", "/api/auth/login"): Rule(EVERYONE, 200, public=True),
    ("POST", "/api/auth/logout"): Rule(EVERYONE, 204),
    ("GET", "/api/auth/me"): Rule(EVERYONE, 200),
    ("POST", "/api/auth/password"): Rule(EVERYONE, 204),
    ("GET", "/api/users"): Rule(DESK, 200),
    ("POST", "/api/users"): Rule(ADMIN, 201),
    ("GET", "/api/users/{user_id}"): Rule(DESK, 200),
    ("PATCH", "/api/users/{user_id}"): Rule(ADMIN, 200),
    ("POST", "/api/users/{user_id}/reset-password"): Rule(ADMIN, 200),
    ("GET", "/api/reference"): Rule(EVERYONE, 200),
    ("POST", "/api/tickets"): Rule(DESK, 201),
    ("GET", "/api/tickets"): Rule(READERS, 200),
    ("GET", "/api/tickets/by-ref/{ref}"): Rule(READERS, 200),
    ("GET", "/api/tickets/{ticket_id}"): Rule(READERS, 200),
    ("PATCH", "/api/tickets/{ticket_id}"): Rule(DESK, 200),
    ("POST", "/api/tickets/{ticket_id}/actions"): Rule(WORKERS, 200),
    ("GET", "/api/tickets/{ticket_id}/history"): Rule(READERS, 200),
    ("GET", "/api/tickets/{ticket_id}/comments"): Rule(READERS, 200),
    ("POST", "/api/tickets/{ticket_id}/comments"): Rule(WORKERS, 201),
    ("POST", "/api/tickets/{ticket_id}/shares"): Rule(DESK, 201),
    ("GET", "/api/sla/policies"): Rule(READERS, 200),
    ("PUT", "/api/sla/policies"): Rule(ADMIN, 200),
    ("GET", "/api/calendar"): Rule(EVERYONE, 200),
    ("PUT", "/api/calendar/overrides/{day}"): Rule(ADMIN, 204),
    ("DELETE", "/api/calendar/overrides/{day}"): Rule(ADMIN, 204),
    ("POST", "/api/calendar/years/{year}/confirm"): Rule(ADMIN, 204),
    ("GET", "/api/notifications"): Rule(EVERYONE, 200),  # one's own
    # Telephony. This app has no Asterisk: allowed roles get 503
    # telephony_not_configured, everyone else 403 before that.
    ("GET", "/api/telephony/status"): Rule(DESK, 200),
    ("GET", "/api/telephony/agents/me"): Rule(DESK, 200),
    ("GET", "/api/telephony/agents/me/phone"): Rule(DESK, 503),
    ("GET", "/api/screen-pop"): Rule(DESK, 200),
    ("POST", "/api/telephony/agents/me/login"): Rule(DESK, 503),
    ("POST", "/api/telephony/agents/me/state"): Rule(DESK, 503),
    ("POST", "/api/telephony/agents/me/logout"): Rule(DESK, 503),
    ("POST", "/api/telephony/agents/{user_id}/pause"): Rule(SUPERVISE, 503),
    ("POST", "/api/telephony/agents/{user_id}/logout"): Rule(SUPERVISE, 503),
    ("POST", "/api/telephony/calls/{linkedid}/spy"): Rule(SUPERVISE, 503),
    ("POST", "/api/telephony/calls/{linkedid}/transfer"): Rule(DESK, 503),
    ("POST", "/api/tickets/{ticket_id}/call"): Rule(DESK, 503),
    # Supervisors any recording, the desk their own calls' (test_my_calls.py).
    ("GET", "/api/telephony/calls/{linkedid}/recording"): Rule(DESK, 404),
    ("GET", "/api/telephony/calls/mine"): Rule(DESK, 200),
    ("POST", "/api/telephony/calls/{linkedid}/escalations"): Rule(DESK, 503),
    ("POST", "/api/telephony/calls/{linkedid}/escalations/merge"): Rule(DESK, 503),
    ("POST", "/api/telephony/calls/{linkedid}/escalations/leave"): Rule(DESK, 503),
    ("POST", "/api/telephony/calls/{linkedid}/escalations/drop"): Rule(DESK, 503),
    ("POST", "/api/telephony/calls/{linkedid}/escalations/cancel"): Rule(DESK, 503),
    ("GET", "/api/experts"): Rule(DESK, 200),
    ("GET", "/api/experts/available"): Rule(DESK, 200),
    ("POST", "/api/experts"): Rule(ADMIN, 201),
    ("PATCH", "/api/experts/{expert_id}"): Rule(ADMIN, 200),
    # Web chat: visitors carry a chat token (X-Chat-Token), not a login.
    ("POST", "/api/chat/start"): Rule(EVERYONE, 201, public=True),
    ("GET", "/api/chat/{chat_id}"): Rule(EVERYONE, 200, public=True),
    ("POST", "/api/chat/{chat_id}/messages"): Rule(EVERYONE, 201, public=True),
    ("GET", "/api/chat/{chat_id}/messages"): Rule(EVERYONE, 200, public=True),
    ("POST", "/api/chat/{chat_id}/leave-message"): Rule(EVERYONE, 201, public=True),
    ("POST", "/api/chat/{chat_id}/rating"): Rule(EVERYONE, 200, public=True),
    ("POST", "/api/chat/{chat_id}/end"): Rule(EVERYONE, 200, public=True),
    ("GET", "/api/chats"): Rule(DESK, 200),
    ("GET", "/api/chats/seat"): Rule(DESK, 200),
    ("PUT", "/api/chats/seats/{user_id}"): Rule(SUPERVISE, 200),
    ("GET", "/api/chats/{chat_id}"): Rule(DESK, 200),
    ("GET", "/api/chats/{chat_id}/messages"): Rule(DESK, 200),
    ("POST", "/api/chats/{chat_id}/accept"): Rule(DESK, 200),
    ("POST", "/api/chats/{chat_id}/messages"): Rule(DESK, 201),
    ("POST", "/api/chats/{chat_id}/transfer"): Rule(DESK, 200),
    ("POST", "/api/chats/{chat_id}/close"): Rule(DESK, 200),
    # Web chat files, experts in a chat, transfer targets (tests/test_webchat_*.py).
    ("POST", "/api/chat/{chat_id}/attachments"): Rule(EVERYONE, 201, public=True),
    ("GET", "/api/chat/{chat_id}/attachments/{attachment_id}"): Rule(EVERYONE, 200, public=True),
    ("POST", "/api/chats/{chat_id}/attachments"): Rule(DESK, 201),
    ("GET", "/api/chats/{chat_id}/attachments/{attachment_id}"): Rule(DESK, 200),
    ("POST", "/api/chats/{chat_id}/experts"): Rule(DESK, 201),
    ("DELETE", "/api/chats/{chat_id}/experts/{user_id}"): Rule(DESK | {"expert"}, 204),
    ("GET", "/api/chats/invited"): Rule(DESK | {"expert"}, 200),
    ("GET", "/api/chats/agents"): Rule(DESK, 200),
    ("GET", "/api/webchat/ip-ranges"): Rule(DESK, 200),
    ("POST", "/api/webchat/ip-ranges"): Rule(ADMIN, 201),
    ("DELETE", "/api/webchat/ip-ranges/{range_id}"): Rule(ADMIN, 204),
    ("GET", "/api/webchat/canned-replies"): Rule(DESK, 200),
    ("POST", "/api/webchat/canned-replies"): Rule(ADMIN, 201),
    # Wrap-ups and work orders from a contact: the desk, each their own contacts.
    ("POST", "/api/contacts/wrapups"): Rule(DESK, 201),
    ("GET", "/api/contacts/wrapups/pending"): Rule(DESK, 200),
    ("POST", "/api/contacts/ticket"): Rule(DESK, 201),
    # The wallboard: supervisors city-wide, county administrators their county.
    ("GET", "/api/wallboard"): Rule(SUPERVISE, 200),
}

PLACEMENT: dict[str, dict[str, str]] = {
    "county_admin": {"county_code": "441481"},
    "agent": {"window_code": "xingning"},
}


async def new_actor(api: Api, role: str) -> Actor:
    return await api.user(role, **PLACEMENT.get(role, {}))


# --- building a request each role is entitled to, except for its role ----------------


@dataclass
class Req:
    path: str
    json: Any = None
    as_fresh_user: bool = False  # the call ends or changes the session: use a throwaway user
    headers: dict[str, str] = field(default_factory=dict)
    form: Any = None  # a multipart body (aiohttp.FormData) instead of JSON


@dataclass
class World:
    api: Api
    role: str | None  # None: no token at all
    actor: Actor | None
    staff: Actor  # an account the user endpoints act on
    _n: int = field(default=0)
    _chats_ready: bool = field(default=False)

    async def ticket(self) -> dict[str, Any]:
        """A 兴宁 work order in the actor's scope; experts and agencies get it handed over."""
        api = self.api
        status, ticket = await api.call("POST", "/api/tickets", api.admin, json=ticket_payload())
        assert status == 201, ticket
        if self.role in ("expert", "agency"):
            assert self.actor is not None
            status, ticket = await api.call(
                "POST",
                f"/api/tickets/{ticket['id']}/actions",
                api.admin,
                json={"action": "transfer", "to_user_id": self.actor.id},
            )
            assert status == 200, ticket
        return ticket

    def unique(self) -> int:
        self._n += 1
        return self._n

    async def chats(self) -> ChatService:
        """A business morning; the 兴宁 staff agent online with one slot, taken,
        so new 兴宁 chats wait in 兴宁's queue."""
        svc: ChatService = self.api.client.server.app[CHAT_SERVICE]
        if not self._chats_ready:
            self._chats_ready = True
            # The wrap-up rule (tests/test_wrapups.py) is not this matrix's
            # subject: a chat one builder closed must not block the next accept.
            svc.assign_guard = None
            svc.clock = lambda: (
                datetime(2025, 3, 12, 2, 0, tzinfo=UTC) + timedelta(seconds=self.unique())
            )
            await svc.set_capacity(self.staff.id, 1, now=svc.now())
            await svc.agent_online(self.staff.id, now=svc.now())
            await self.queued_chat()
        return svc

    async def queued_chat(self) -> StartedChat:
        svc: ChatService = self.api.client.server.app[CHAT_SERVICE]
        form = ChatStartIn(name="访客", category_code="financing", county_code="441481")
        return await svc.start(form, ip=None, now=svc.now())

    async def served_chat(self) -> StartedChat:
        """Accepted by the caller when the caller may, else by the administrator."""
        svc = await self.chats()
        started = await self.queued_chat()
        acceptor = self.actor if self.actor is not None and self.role in DESK else self.api.admin
        assert acceptor is not None
        await svc.set_capacity(acceptor.id, 50, now=svc.now())
        status, body = await self.api.call("POST", f"/api/chats/{started.chat.id}/accept", acceptor)
        assert status == 200, body
        return started


Builder = Callable[[World], Awaitable[Req]]


async def _health(w: World) -> Req:
    return Req("/api/health")


async def _login(w: World) -> Req:
    user = w.actor or w.api.admin
    assert user is not None
    return Req("/api/auth/login", {"username": user.username, "password": STRONG_PASSWORD})


async def _logout(w: World) -> Req:
    return Req("/api/auth/logout", as_fresh_user=True)


async def _me(w: World) -> Req:
    return Req("/api/auth/me")


async def _password(w: World) -> Req:
    return Req(
        "/api/auth/password",
        {"current_password": STRONG_PASSWORD, "new_password": "Hakka-tea-9931"},
        as_fresh_user=True,
    )


async def _users(w: World) -> Req:
    return Req("/api/users")


async def _create_user(w: World) -> Req:
    name = f"made-{w.unique()}"
    return Req("/api/users", {"username": name, "display_name": "新同事", "role": "analyst"})


async def _user(w: World) -> Req:
    return Req(f"/api/users/{w.staff.id}")


async def _update_user(w: World) -> Req:
    return Req(f"/api/users/{w.staff.id}", {"display_name": "兴宁坐席（改）"})


async def _reset_password(w: World) -> Req:
    return Req(f"/api/users/{w.staff.id}/reset-password")


async def _reference(w: World) -> Req:
    return Req("/api/reference")


async def _create_ticket(w: World) -> Req:
    return Req("/api/tickets", ticket_payload())


async def _tickets(w: World) -> Req:
    await w.ticket()
    return Req("/api/tickets")


async def _ticket_by_ref(w: World) -> Req:
    return Req(f"/api/tickets/by-ref/{(await w.ticket())['short_ref']}")


async def _ticket(w: World) -> Req:
    return Req(f"/api/tickets/{(await w.ticket())['id']}")


async def _update_ticket(w: World) -> Req:
    return Req(f"/api/tickets/{(await w.ticket())['id']}", {"priority": "high"})


async def _act(w: World) -> Req:
    return Req(f"/api/tickets/{(await w.ticket())['id']}/actions", {"action": "start"})


async def _history(w: World) -> Req:
    return Req(f"/api/tickets/{(await w.ticket())['id']}/history")


async def _comments(w: World) -> Req:
    return Req(f"/api/tickets/{(await w.ticket())['id']}/comments")


async def _comment(w: World) -> Req:
    return Req(
        f"/api/tickets/{(await w.ticket())['id']}/comments",
        {"kind": "note", "body": "已电话联系企业"},
    )


async def _share(w: World) -> Req:
    return Req(f"/api/tickets/{(await w.ticket())['id']}/shares", {"county_code": "441402"})


async def _policies(w: World) -> Req:
    return Req("/api/sla/policies")


async def _put_policy(w: World) -> Req:
    return Req(
        "/api/sla/policies",
        {
            "category_code": "legal",
            "priority": "low",
            "first_response_min": 60,
            "resolution_min": 600,
            "handoff_min": 300,
        },
    )


async def _calendar(w: World) -> Req:
    return Req("/api/calendar")


async def _put_override(w: World) -> Req:
    return Req("/api/calendar/overrides/2031-05-06", {"is_workday": False, "note": "调休"})


async def _delete_override(w: World) -> Req:
    status, body = await w.api.call(
        "PUT", "/api/calendar/overrides/2031-05-07", w.api.admin, json={"is_workday": False}
    )
    assert status == 204, body
    return Req("/api/calendar/overrides/2031-05-07")


async def _confirm_year(w: World) -> Req:
    return Req("/api/calendar/years/2031/confirm")


async def _notifications(w: World) -> Req:
    return Req("/api/notifications")


async def _telephony_status(w: World) -> Req:
    return Req("/api/telephony/status")


async def _my_agent(w: World) -> Req:
    return Req("/api/telephony/agents/me")


async def _screen_pop(w: World) -> Req:
    return Req("/api/screen-pop?phone=%2B8613923001234")


async def _my_phone(w: World) -> Req:
    return Req("/api/telephony/agents/me/phone")


async def _agent_login(w: World) -> Req:
    return Req("/api/telephony/agents/me/login", {"window_code": "xingning"})


async def _agent_state(w: World) -> Req:
    return Req("/api/telephony/agents/me/state", {"action": "pause", "reason": "lunch"})


async def _agent_logout(w: World) -> Req:
    return Req("/api/telephony/agents/me/logout")


async def _force_pause(w: World) -> Req:
    return Req(f"/api/telephony/agents/{w.staff.id}/pause", {"reason": "meeting"})


async def _force_logout(w: World) -> Req:
    return Req(f"/api/telephony/agents/{w.staff.id}/logout")


async def _spy(w: World) -> Req:
    return Req("/api/telephony/calls/cctest-1795343657.0/spy", {"mode": "listen"})


async def _transfer(w: World) -> Req:
    return Req("/api/telephony/calls/cctest-1795343657.0/transfer", {"window_code": "city"})


async def _call_contact(w: World) -> Req:
    return Req(f"/api/tickets/{(await w.ticket())['id']}/call")


async def _recording(w: World) -> Req:
    # No such call in this database: allowed roles get 404 (the file tests are
    # in test_recordings.py and test_my_calls.py), the others 403 before any look-up.
    return Req("/api/telephony/calls/cctest-1795343657.0/recording")


async def _my_calls(w: World) -> Req:
    return Req("/api/telephony/calls/mine?limit=5")


async def _escalate(w: World) -> Req:
    return Req(
        "/api/telephony/calls/cctest-1795343657.0/escalations",
        {"target_kind": "city", "consult": False},
    )


def _escalation_step(step: str) -> Builder:
    async def build(w: World) -> Req:
        return Req(f"/api/telephony/calls/cctest-1795343657.0/escalations/{step}")

    return build


async def _experts(w: World) -> Req:
    return Req("/api/experts")


async def _available_experts(w: World) -> Req:
    return Req("/api/experts/available?category=legal")


def _expert_body(w: World) -> dict[str, Any]:
    return {"name": f"专家{w.unique()}", "phone": "13923001234", "specialties": ["legal"]}


async def _create_expert(w: World) -> Req:
    return Req("/api/experts", _expert_body(w))


async def _update_expert(w: World) -> Req:
    status, expert = await w.api.call("POST", "/api/experts", w.api.admin, json=_expert_body(w))
    assert status == 201, expert
    return Req(f"/api/experts/{expert['id']}", {"active": False})


def _visitor(started: StartedChat) -> dict[str, str]:
    return {"X-Chat-Token": started.token}


async def _chat_start(w: World) -> Req:
    await w.chats()
    return Req("/api/chat/start", {"name": "访客", "category_code": "other"})


def _visitor_req(sub: str, body: Any = None, *, served: bool = False) -> Builder:
    async def build(w: World) -> Req:
        await w.chats()
        started = await (w.served_chat() if served else w.queued_chat())
        return Req(f"/api/chat/{started.chat.id}{sub}", body, headers=_visitor(started))

    return build


def _agent_req(sub: str, body: Any = None, *, served: bool = False) -> Builder:
    async def build(w: World) -> Req:
        await w.chats()
        started = await (w.served_chat() if served else w.queued_chat())
        return Req(f"/api/chats/{started.chat.id}{sub}", body)

    return build


_PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32


def _png_form() -> Any:
    import aiohttp

    form = aiohttp.FormData(default_to_multipart=True)
    form.add_field("client_id", "f-1")
    form.add_field("file", _PNG, filename="a.png", content_type="image/png")
    return form


async def _served_with_file(w: World) -> tuple[StartedChat, int]:
    from smeline.webchat.attachments import TEXT
    from smeline.webchat.models import SenderKind
    from smeline.webchat.services import NewFile

    svc = await w.chats()
    started = await w.served_chat()
    posted = await svc.post_message(
        started.chat.id,
        kind=SenderKind.VISITOR,
        client_id=f"file-{w.unique()}",
        body="",
        now=svc.now(),
        file=NewFile("note.txt", TEXT, "备注".encode()),  # Api.call reads the answer as text
    )
    assert posted.attachment is not None
    return started, posted.attachment.id


async def _visitor_upload(w: World) -> Req:
    await w.chats()
    started = await w.queued_chat()
    return Req(
        f"/api/chat/{started.chat.id}/attachments", headers=_visitor(started), form=_png_form()
    )


async def _visitor_download(w: World) -> Req:
    started, file_id = await _served_with_file(w)
    return Req(f"/api/chat/{started.chat.id}/attachments/{file_id}", headers=_visitor(started))


async def _agent_upload(w: World) -> Req:
    await w.chats()
    started = await w.served_chat()
    return Req(f"/api/chats/{started.chat.id}/attachments", form=_png_form())


async def _agent_download(w: World) -> Req:
    started, file_id = await _served_with_file(w)
    return Req(f"/api/chats/{started.chat.id}/attachments/{file_id}")


async def _invite_expert(w: World) -> Req:
    await w.chats()
    started = await w.served_chat()
    expert = await new_actor(w.api, "expert")
    return Req(f"/api/chats/{started.chat.id}/experts", {"user_id": expert.id})


async def _expert_leaves(w: World) -> Req:
    """The chat's agent lets an expert go; an expert leaves on their own."""
    await w.chats()
    started = await w.served_chat()
    acceptor = w.actor if w.actor is not None and w.role in DESK else w.api.admin
    expert = w.actor if w.actor is not None and w.role == "expert" else None
    if expert is None:
        expert = await new_actor(w.api, "expert")
    status, body = await w.api.call(
        "POST", f"/api/chats/{started.chat.id}/experts", acceptor, json={"user_id": expert.id}
    )
    assert status == 201, body
    return Req(f"/api/chats/{started.chat.id}/experts/{expert.id}")


async def _invited_chats(w: World) -> Req:
    return Req("/api/chats/invited")


async def _window_agents(w: World) -> Req:
    return Req("/api/chats/agents?window_code=xingning")


async def _chats(w: World) -> Req:
    return Req("/api/chats?state=queued")


async def _chat_seat(w: World) -> Req:
    return Req("/api/chats/seat")


async def _set_chat_capacity(w: World) -> Req:
    return Req(f"/api/chats/seats/{w.staff.id}", {"capacity": 2})


async def _ip_ranges(w: World) -> Req:
    return Req("/api/webchat/ip-ranges")


async def _add_ip_range(w: World) -> Req:
    return Req(
        "/api/webchat/ip-ranges", {"cidr": f"10.{w.unique()}.0.0/16", "county_code": "441481"}
    )


async def _delete_ip_range(w: World) -> Req:
    status, row = await w.api.call(
        "POST",
        "/api/webchat/ip-ranges",
        w.api.admin,
        json={"cidr": f"10.{w.unique() + 100}.0.0/16", "county_code": "441481"},
    )
    assert status == 201, row
    return Req(f"/api/webchat/ip-ranges/{row['id']}")


async def _canned(w: World) -> Req:
    return Req("/api/webchat/canned-replies")


async def _add_canned(w: World) -> Req:
    return Req(
        "/api/webchat/canned-replies", {"title": "问候", "body": "您好，请问有什么可以帮您？"}
    )


async def _wallboard(w: World) -> Req:
    return Req("/api/wallboard")


async def _answered_call(w: World) -> str:
    """A 兴宁 call the caller answered (the staff agent's when there is no caller)."""
    from smeline.telephony.models import CallRecord

    owner = w.actor or w.staff
    linkedid = f"authz-{w.unique()}.1"
    ended = datetime.now(UTC)
    async with w.api.client.server.app[keys.SESSIONMAKER]() as db, db.begin():
        db.add(
            CallRecord(
                linkedid=linkedid,
                direction="inbound",
                caller_number="13800001234",
                county_code="441481",
                category_code="financing",
                windows=["xingning"],
                queues=["xingning"],
                started_at=ended - timedelta(minutes=3),
                answered_at=ended - timedelta(minutes=2),
                ended_at=ended,
                agent_user_id=owner.id,
                answered_window="xingning",
                outcome="answered",
            )
        )
    return linkedid


async def _wrapup(w: World) -> Req:
    return Req(
        "/api/contacts/wrapups",
        {
            "contact_kind": "call",
            "linkedid": await _answered_call(w),
            "enterprise_name": "兴宁市某某电子有限公司",
            "category_code": "financing",
            "service_mode": "online",
            "result": "resolved",
        },
    )


async def _pending_wrapups(w: World) -> Req:
    return Req("/api/contacts/wrapups/pending")


async def _contact_ticket(w: World) -> Req:
    return Req(
        "/api/contacts/ticket", {"contact_kind": "call", "linkedid": await _answered_call(w)}
    )


BUILDERS: dict[tuple[str, str], Builder] = {
    ("GET", "/api/health"): _health,
    ("POST", "/api/auth/login"): _login,
    ("POST", "/api/auth/logout"): _logout,
    ("GET", "/api/auth/me"): _me,
    ("POST", "/api/auth/password"): _password,
    ("GET", "/api/users"): _users,
    ("POST", "/api/users"): _create_user,
    ("GET", "/api/users/{user_id}"): _user,
    ("PATCH", "/api/users/{user_id}"): _update_user,
    ("POST", "/api/users/{user_id}/reset-password"): _reset_password,
    ("GET", "/api/reference"): _reference,
    ("POST", "/api/tickets"): _create_ticket,
    ("GET", "/api/tickets"): _tickets,
    ("GET", "/api/tickets/by-ref/{ref}"): _ticket_by_ref,
    ("GET", "/api/tickets/{ticket_id}"): _ticket,
    ("PATCH", "/api/tickets/{ticket_id}"): _update_ticket,
    ("POST", "/api/tickets/{ticket_id}/actions"): _act,
    ("GET", "/api/tickets/{ticket_id}/history"): _history,
    ("GET", "/api/tickets/{ticket_id}/comments"): _comments,
    ("POST", "/api/tickets/{ticket_id}/comments"): _comment,
    ("POST", "/api/tickets/{ticket_id}/shares"): _share,
    ("GET", "/api/sla/policies"): _policies,
    ("PUT", "/api/sla/policies"): _put_policy,
    ("GET", "/api/calendar"): _calendar,
    ("PUT", "/api/calendar/overrides/{day}"): _put_override,
    ("DELETE", "/api/calendar/overrides/{day}"): _delete_override,
    ("POST", "/api/calendar/years/{year}/confirm"): _confirm_year,
    ("GET", "/api/notifications"): _notifications,
    ("GET", "/api/telephony/status"): _telephony_status,
    ("GET", "/api/telephony/agents/me"): _my_agent,
    ("GET", "/api/telephony/agents/me/phone"): _my_phone,
    ("GET", "/api/screen-pop"): _screen_pop,
    ("POST", "/api/telephony/agents/me/login"): _agent_login,
    ("POST", "/api/telephony/agents/me/state"): _agent_state,
    ("POST", "/api/telephony/agents/me/logout"): _agent_logout,
    ("POST", "/api/telephony/agents/{user_id}/pause"): _force_pause,
    ("POST", "/api/telephony/agents/{user_id}/logout"): _force_logout,
    ("POST", "/api/telephony/calls/{linkedid}/spy"): _spy,
    ("POST", "/api/telephony/calls/{linkedid}/transfer"): _transfer,
    ("POST", "/api/tickets/{ticket_id}/call"): _call_contact,
    ("GET", "/api/telephony/calls/{linkedid}/recording"): _recording,
    ("GET", "/api/telephony/calls/mine"): _my_calls,
    ("POST", "/api/telephony/calls/{linkedid}/escalations"): _escalate,
    ("POST", "/api/telephony/calls/{linkedid}/escalations/merge"): _escalation_step("merge"),
    ("POST", "/api/telephony/calls/{linkedid}/escalations/leave"): _escalation_step("leave"),
    ("POST", "/api/telephony/calls/{linkedid}/escalations/drop"): _escalation_step("drop"),
    ("POST", "/api/telephony/calls/{linkedid}/escalations/cancel"): _escalation_step("cancel"),
    ("GET", "/api/experts"): _experts,
    ("GET", "/api/experts/available"): _available_experts,
    ("POST", "/api/experts"): _create_expert,
    ("PATCH", "/api/experts/{expert_id}"): _update_expert,
    ("POST", "/api/chat/start"): _chat_start,
    ("GET", "/api/chat/{chat_id}"): _visitor_req(""),
    ("POST", "/api/chat/{chat_id}/messages"): _visitor_req(
        "/messages", {"client_id": "c-1", "body": "您好"}
    ),
    ("GET", "/api/chat/{chat_id}/messages"): _visitor_req("/messages?since=0"),
    ("POST", "/api/chat/{chat_id}/leave-message"): _visitor_req(
        "/leave-message", {"body": "请回电"}
    ),
    ("POST", "/api/chat/{chat_id}/rating"): _visitor_req(
        "/rating", {"satisfaction": "satisfied"}, served=True
    ),
    ("POST", "/api/chat/{chat_id}/end"): _visitor_req("/end"),
    ("GET", "/api/chats"): _chats,
    ("GET", "/api/chats/seat"): _chat_seat,
    ("PUT", "/api/chats/seats/{user_id}"): _set_chat_capacity,
    ("GET", "/api/chats/{chat_id}"): _agent_req(""),
    ("GET", "/api/chats/{chat_id}/messages"): _agent_req("/messages"),
    ("POST", "/api/chats/{chat_id}/accept"): _agent_req("/accept"),
    ("POST", "/api/chats/{chat_id}/messages"): _agent_req(
        "/messages", {"client_id": "a-1", "body": "您好，请讲"}, served=True
    ),
    ("POST", "/api/chats/{chat_id}/transfer"): _agent_req(
        "/transfer", {"window_code": "city"}, served=True
    ),
    ("POST", "/api/chats/{chat_id}/close"): _agent_req("/close", served=True),
    ("POST", "/api/chat/{chat_id}/attachments"): _visitor_upload,
    ("GET", "/api/chat/{chat_id}/attachments/{attachment_id}"): _visitor_download,
    ("POST", "/api/chats/{chat_id}/attachments"): _agent_upload,
    ("GET", "/api/chats/{chat_id}/attachments/{attachment_id}"): _agent_download,
    ("POST", "/api/chats/{chat_id}/experts"): _invite_expert,
    ("DELETE", "/api/chats/{chat_id}/experts/{user_id}"): _expert_leaves,
    ("GET", "/api/chats/invited"): _invited_chats,
    ("GET", "/api/chats/agents"): _window_agents,
    ("GET", "/api/webchat/ip-ranges"): _ip_ranges,
    ("POST", "/api/webchat/ip-ranges"): _add_ip_range,
    ("DELETE", "/api/webchat/ip-ranges/{range_id}"): _delete_ip_range,
    ("GET", "/api/webchat/canned-replies"): _canned,
    ("GET", "/api/wallboard"): _wallboard,
    ("POST", "/api/webchat/canned-replies"): _add_canned,
    ("POST", "/api/contacts/wrapups"): _wrapup,
    ("GET", "/api/contacts/wrapups/pending"): _pending_wrapups,
    ("POST", "/api/contacts/ticket"): _contact_ticket,
}


async def test_every_registered_endpoint_has_an_expectation_and_a_request(api: Api) -> None:
    registered = {(s.method, s.path) for s in api.client.server.app[keys.API_SPECS]}
    assert registered - EXPECTED.keys() == set(), "endpoints without an expectation"
    assert EXPECTED.keys() - registered == set(), "expectations of endpoints that are gone"
    assert BUILDERS.keys() == EXPECTED.keys()
    public = {(s.method, s.path) for s in api.client.server.app[keys.API_SPECS] if s.public}
    assert public == {k for k, rule in EXPECTED.items() if rule.public}


@pytest.mark.parametrize("role", [*ROLES, None], ids=[*ROLES, "no_token"])
async def test_each_role_reaches_exactly_the_endpoints_of_the_matrix(
    api: Api, role: str | None
) -> None:
    actor = await new_actor(api, role) if role else None
    staff = await new_actor(api, "agent")
    world = World(api=api, role=role, actor=actor, staff=staff)
    mismatches = []
    for spec in api.client.server.app[keys.API_SPECS]:
        key = (spec.method, spec.path)
        rule = EXPECTED.get(key)
        builder = BUILDERS.get(key)
        if rule is None or builder is None:
            mismatches.append(f"{key}: no expectation in the matrix")
            continue
        req = await builder(world)
        caller = actor
        if req.as_fresh_user and role is not None:
            caller = await new_actor(api, role)
        if role is None:
            expected = rule.status if rule.public else 401
        else:
            expected = rule.status if role in rule.allowed else 403
        before = await row_counts(api) if spec.method != "GET" and expected >= 400 else None
        # The client keeps cookies from earlier logins; only the bearer header may count.
        api.client.session.cookie_jar.clear()
        status, body = await api.call(
            spec.method, req.path, caller, json=req.json, headers=req.headers, data=req.form
        )
        if status != expected:
            mismatches.append(f"{key}: expected {expected}, got {status} {body}")
            continue
        if status >= 400:
            assert set(body) == {"error"} and {"id", "message"} <= set(body["error"]), body
            if status == 401:
                assert body["error"]["id"] == "not_authenticated", body
        if before is not None:
            assert await row_counts(api) == before, f"{key} refused yet changed the database"
    assert not mismatches, "\n".join(mismatches)


# --- county scoping ---------------------------------------------------------------------


async def _open(api: Api, county_code: str) -> dict[str, Any]:
    status, ticket = await api.call(
        "POST", "/api/tickets", api.admin, json=ticket_payload(county_code=county_code)
    )
    assert status == 201, ticket
    return ticket


async def _listed(api: Api, actor: Actor) -> set[int]:
    status, page = await api.call("GET", "/api/tickets", actor)
    assert status == 200, page
    return {t["id"] for t in page["items"]}


async def _sees(api: Api, actor: Actor, ticket_id: int) -> bool:
    status, body = await api.call("GET", f"/api/tickets/{ticket_id}", actor)
    assert status in (200, 404), body
    history_status, _ = await api.call("GET", f"/api/tickets/{ticket_id}/history", actor)
    comments_status, _ = await api.call("GET", f"/api/tickets/{ticket_id}/comments", actor)
    # One answer for the work order and everything under it.
    assert history_status == comments_status == status
    return status == 200


async def test_xingning_county_admin_and_agent_see_only_xingning_work_orders(api: Api) -> None:
    xingning = await _open(api, "441481")
    meijiang = await _open(api, "441402")
    county_admin = await api.user("county_admin", county_code="441481")
    agent = await api.user("agent", window_code="xingning")
    for actor in (county_admin, agent):
        assert await _listed(api, actor) == {xingning["id"]}
        assert await _sees(api, actor, xingning["id"])
        assert not await _sees(api, actor, meijiang["id"])
        status, body = await api.call("GET", f"/api/tickets/by-ref/{meijiang['short_ref']}", actor)
        assert status == 404, body
        status, body = await api.call(
            "GET", "/api/tickets", actor, params={"county_code": "441402"}
        )
        assert status == 200 and body["items"] == []


async def test_work_orders_of_other_counties_cannot_be_changed_either(api: Api) -> None:
    meijiang = await _open(api, "441402")
    agent = await api.user("agent", window_code="xingning")
    before = await row_counts(api)
    path = f"/api/tickets/{meijiang['id']}"
    for method, sub, payload in (
        ("PATCH", "", {"priority": "high"}),
        ("POST", "/actions", {"action": "start"}),
        ("POST", "/comments", {"kind": "note", "body": "越权"}),
        ("POST", "/shares", {"county_code": "441481"}),
    ):
        status, body = await api.call(method, path + sub, agent, json=payload)
        assert status == 404, (method, sub, body)
        assert body["error"]["id"] == "ticket_not_found"
    assert await row_counts(api) == before


async def test_sharing_with_a_user_makes_a_work_order_visible_to_that_user_only(
    api: Api,
) -> None:
    meijiang = await _open(api, "441402")
    agent = await api.user("agent", window_code="xingning")
    other_agent = await api.user("agent", window_code="xingning")
    county_admin = await api.user("county_admin", county_code="441481")
    status, share = await api.call(
        "POST", f"/api/tickets/{meijiang['id']}/shares", api.admin, json={"user_id": agent.id}
    )
    assert status == 201, share
    assert await _sees(api, agent, meijiang["id"])
    assert meijiang["id"] in await _listed(api, agent)
    for outsider in (other_agent, county_admin):
        assert not await _sees(api, outsider, meijiang["id"])
        assert meijiang["id"] not in await _listed(api, outsider)


async def test_sharing_with_a_county_makes_a_work_order_visible_to_that_county(
    api: Api,
) -> None:
    meijiang = await _open(api, "441402")
    county_admin = await api.user("county_admin", county_code="441481")
    agent = await api.user("agent", window_code="xingning")
    pingyuan_admin = await api.user("county_admin", county_code="441426")
    status, share = await api.call(
        "POST",
        f"/api/tickets/{meijiang['id']}/shares",
        api.admin,
        json={"county_code": "441481"},
    )
    assert status == 201, share
    for insider in (county_admin, agent):
        assert await _sees(api, insider, meijiang["id"])
        assert meijiang["id"] in await _listed(api, insider)
    assert not await _sees(api, pingyuan_admin, meijiang["id"])


async def test_expert_and_agency_see_only_what_was_transferred_to_them(api: Api) -> None:
    first = await _open(api, "441481")
    second = await _open(api, "441402")
    expert = await api.user("expert")
    agency = await api.user("agency")
    for actor in (expert, agency):
        assert await _listed(api, actor) == set()
        assert not await _sees(api, actor, first["id"])
    status, body = await api.call(
        "POST",
        f"/api/tickets/{first['id']}/actions",
        api.admin,
        json={"action": "transfer", "to_user_id": expert.id},
    )
    assert status == 200, body
    assert await _listed(api, expert) == {first["id"]}
    assert await _sees(api, expert, first["id"])
    assert not await _sees(api, expert, second["id"])
    assert await _listed(api, agency) == set()
    assert not await _sees(api, agency, first["id"])


async def test_analyst_sees_every_county(api: Api) -> None:
    tickets = [await _open(api, code) for code in ("441481", "441402", "441424")]
    analyst = await api.user("analyst")
    supervisor = await api.user("supervisor")
    for actor in (analyst, supervisor):
        assert await _listed(api, actor) == {t["id"] for t in tickets}
        for ticket in tickets:
            assert await _sees(api, actor, ticket["id"])


@pytest.mark.parametrize(
    ("role", "phone"),
    [
        ("admin", "13800001234"),
        ("supervisor", "13800001234"),
        ("county_admin", "13800001234"),
        ("agent", "13800001234"),
        ("expert", "1380000****"),
        ("agency", "1380000****"),
        ("analyst", "1380000****"),
    ],
)
async def test_phone_numbers_are_shown_in_full_only_to_the_desk(
    api: Api, role: str, phone: str
) -> None:
    ticket = await _open(api, "441481")
    actor = await new_actor(api, role)
    if role in ("expert", "agency"):
        status, body = await api.call(
            "POST",
            f"/api/tickets/{ticket['id']}/actions",
            api.admin,
            json={"action": "transfer", "to_user_id": actor.id},
        )
        assert status == 200, body
    status, one = await api.call("GET", f"/api/tickets/{ticket['id']}", actor)
    assert status == 200, one
    assert one["contact_phone"] == phone
    status, page = await api.call("GET", "/api/tickets", actor)
    assert [t["contact_phone"] for t in page["items"]] == [phone]
    # Searching by the full number must not confirm it to a role that sees it masked.
    status, found = await api.call("GET", "/api/tickets", actor, params={"q": "13800001234"})
    assert status == 200
    assert len(found["items"]) == (1 if phone == "13800001234" else 0)
