"""Web chat over HTTP.

Visitors (``/api/chat/…``) have no account: ``POST /api/chat/start`` returns a
visitor token, sent back as the ``X-Chat-Token`` header; it opens that one chat
and nothing else (another chat's id answers 404, as if it did not exist).
Agents (``/api/chats/…``) are staff with the desk permission, scoped like
work orders. Administrators edit the IP table and canned replies
(``/api/webchat/…``).
"""

from __future__ import annotations

import ipaddress

from aiohttp import web

from smeline.api import ApiRoutes, json_ok, no_content, parse_body, parse_query, path_int
from smeline.auth.middleware import principal_of
from smeline.auth.models import Role
from smeline.auth.permissions import Permission, Principal
from smeline.errors import Forbidden, Unauthorized
from smeline.webchat.models import Satisfaction, SenderKind
from smeline.webchat.schemas import (
    AgentChatOut,
    CannedReplyIn,
    CannedReplyListOut,
    CannedReplyOut,
    CapacityIn,
    ChatListOut,
    ChatListQuery,
    ChatSeatOut,
    ChatStartIn,
    ChatStartOut,
    IpRangeIn,
    IpRangeListOut,
    IpRangeOut,
    LeaveMessageIn,
    LeaveMessageOut,
    MessageIn,
    MessageListOut,
    MessageListQuery,
    MessageOut,
    RatingIn,
    TransferIn,
    VisitorChatOut,
)
from smeline.webchat.services import ChatService, ChatView, PostedMessage, VisitorIdentity
from smeline.webchat.setup import CHAT_SERVICE, TRUSTED_PROXIES

TOKEN_HEADER = "X-Chat-Token"

visitor_routes = ApiRoutes(tag="web chat (visitors)")
agent_routes = ApiRoutes(tag="web chat (agents)")
admin_routes = ApiRoutes(tag="web chat (administration)")


def _svc(request: web.Request) -> ChatService:
    return request.app[CHAT_SERVICE]


def visitor_address(request: web.Request) -> str | None:
    """The visitor's address: the peer, or — when the peer is a trusted reverse
    proxy — the nearest untrusted address of X-Forwarded-For."""
    trusted = request.app[TRUSTED_PROXIES]
    peer = request.remote
    hops = [peer] if peer else []
    forwarded = request.headers.get("X-Forwarded-For", "")
    if forwarded:
        hops = [h.strip() for h in forwarded.split(",") if h.strip()][-20:] + hops
    for hop in reversed(hops):
        try:
            address = ipaddress.ip_address(hop)
        except ValueError:
            return None  # garbage from the proxy chain: believe nothing
        if not any(address in network for network in trusted):
            return str(address)
    return hops[0] if hops else None


async def _visitor(request: web.Request) -> VisitorIdentity:
    token = request.headers.get(TOKEN_HEADER, "")
    if not token:
        raise Unauthorized("Chat token required", error_id="chat_token_required")
    identity = await _svc(request).authenticate(token, now=_svc(request).now())
    if identity is None:
        raise Unauthorized("Chat token unknown or expired", error_id="chat_token_invalid")
    chat_id = path_int(request, "chat_id")
    ChatService.own_chat(identity, chat_id)
    return identity


def _visitor_out(svc: ChatService, view: ChatView) -> VisitorChatOut:
    c = view.chat
    return VisitorChatOut(
        id=c.id,
        visitor_id=c.visitor_id,
        state=c.state,
        end_reason=c.end_reason,
        closed=c.end_reason == "closed",
        window_code=c.window_code,
        window_name=svc.window_name(c.window_code),
        queue_position=view.queue_position,
        agent_name=view.agent_name,
        created_at=c.created_at,
        assigned_at=c.assigned_at,
        ended_at=c.ended_at,
        satisfaction=c.satisfaction,
        ticket_ref=ChatService.ticket_ref(c),
        last_seq=c.last_seq,
    )


def _message_out(posted: PostedMessage) -> MessageOut:
    m = posted.message
    return MessageOut(
        chat_id=m.chat_id,
        seq=m.seq,
        sender_kind=m.sender_kind,
        sender_user_id=m.sender_user_id,
        sender_name=posted.sender_name,
        client_id=m.client_id,
        body=m.body,
        created_at=m.created_at,
    )


async def _messages(request: web.Request, chat_id: int) -> web.StreamResponse:
    query = parse_query(request, MessageListQuery)
    rows, last_seq = await _svc(request).messages(chat_id, since=query.since, limit=query.limit)
    return json_ok(
        MessageListOut(
            items=[_message_out(PostedMessage(m, False, name)) for m, name in rows],
            last_seq=last_seq,
        )
    )


# --- visitors ------------------------------------------------------------------------------


@visitor_routes.post(
    "/api/chat/start",
    summary="Start a chat (the pre-chat form): routing result, queue position or closed",
    body=ChatStartIn,
    response=ChatStartOut,
    status=201,
    public=True,
    errors=(422, 429),
)
async def start_chat(request: web.Request) -> web.StreamResponse:
    data = await parse_body(request, ChatStartIn)
    svc = _svc(request)
    started = await svc.start(data, ip=visitor_address(request), now=_svc(request).now())
    c = started.chat
    return json_ok(
        ChatStartOut(
            chat_id=c.id,
            visitor_id=c.visitor_id,
            token=started.token,
            state=c.state,
            closed=c.end_reason == "closed",
            window_code=c.window_code,
            window_name=svc.window_name(c.window_code),
            wanted_window_code=c.wanted_window_code,
            county_code=c.county_code,
            routing_reason=c.routing_reason,
            overflowed=started.overflowed,
            ip_area=c.ip_area,
            queue_position=started.queue_position,
        ),
        status=201,
    )


@visitor_routes.get(
    "/api/chat/{chat_id}",
    summary="The visitor's chat: state, queue position, agent",
    response=VisitorChatOut,
    public=True,
    errors=(401, 404),
)
async def visitor_chat(request: web.Request) -> web.StreamResponse:
    identity = await _visitor(request)
    svc = _svc(request)
    return json_ok(_visitor_out(svc, await svc.view(identity.chat_id)))


@visitor_routes.post(
    "/api/chat/{chat_id}/messages",
    summary="Send a line (idempotent by client_id: a resend answers 200 with the stored line)",
    body=MessageIn,
    response=MessageOut,
    status=201,
    public=True,
    errors=(401, 404, 409, 422, 429),
)
async def visitor_message(request: web.Request) -> web.StreamResponse:
    identity = await _visitor(request)
    data = await parse_body(request, MessageIn)
    posted = await _svc(request).post_message(
        identity.chat_id,
        kind=SenderKind.VISITOR,
        client_id=data.client_id,
        body=data.body,
        now=_svc(request).now(),
    )
    return json_ok(_message_out(posted), status=201 if posted.created else 200)


@visitor_routes.get(
    "/api/chat/{chat_id}/messages",
    summary="The conversation after line `since` (re-fetch after a reconnect)",
    query=MessageListQuery,
    response=MessageListOut,
    public=True,
    errors=(401, 404, 422),
)
async def visitor_messages(request: web.Request) -> web.StreamResponse:
    identity = await _visitor(request)
    return await _messages(request, identity.chat_id)


@visitor_routes.post(
    "/api/chat/{chat_id}/leave-message",
    summary="Leave a message: a work order whose short reference the visitor keeps",
    body=LeaveMessageIn,
    response=LeaveMessageOut,
    status=201,
    public=True,
    errors=(401, 404, 409, 422),
)
async def leave_message(request: web.Request) -> web.StreamResponse:
    identity = await _visitor(request)
    data = await parse_body(request, LeaveMessageIn)
    svc = _svc(request)
    before = (await svc.view(identity.chat_id)).chat.ticket_id
    chat = await svc.leave_message(
        identity.chat_id, body=data.body, phone=data.phone, now=_svc(request).now()
    )
    ref = ChatService.ticket_ref(chat)
    assert ref is not None
    return json_ok(
        LeaveMessageOut(chat_id=chat.id, state=chat.state, ticket_ref=ref),
        status=200 if before is not None else 201,
    )


@visitor_routes.post(
    "/api/chat/{chat_id}/rating",
    summary="Rate the chat 满意 / 一般 / 不满意 (ends it if it is still going)",
    body=RatingIn,
    response=VisitorChatOut,
    public=True,
    errors=(401, 404, 409, 422),
)
async def rate_chat(request: web.Request) -> web.StreamResponse:
    identity = await _visitor(request)
    data = await parse_body(request, RatingIn)
    svc = _svc(request)
    await svc.rate(
        identity.chat_id,
        satisfaction=Satisfaction(data.satisfaction),
        comment=data.comment,
        now=_svc(request).now(),
    )
    return json_ok(_visitor_out(svc, await svc.view(identity.chat_id)))


@visitor_routes.post(
    "/api/chat/{chat_id}/end",
    summary="The visitor leaves the chat (without a rating: no answer)",
    response=VisitorChatOut,
    public=True,
    errors=(401, 404),
)
async def end_chat(request: web.Request) -> web.StreamResponse:
    identity = await _visitor(request)
    svc = _svc(request)
    await svc.visitor_end(identity.chat_id, now=_svc(request).now())
    return json_ok(_visitor_out(svc, await svc.view(identity.chat_id)))


# --- agents --------------------------------------------------------------------------------


def agent_chat_out(p: Principal, view: ChatView) -> AgentChatOut:
    c = view.chat
    return AgentChatOut(
        id=c.id,
        visitor_id=c.visitor_id,
        visitor_name=c.visitor_name,
        company=c.company,
        phone=ChatService.shown_phone(p, c.phone),
        member_id=c.member_id,
        chosen_county_code=c.chosen_county_code,
        county_code=c.county_code,
        category_code=c.category_code,
        wanted_window_code=c.wanted_window_code,
        window_code=c.window_code,
        routing_reason=c.routing_reason,
        ip_area=c.ip_area,
        visitor_ip=c.visitor_ip,
        state=c.state,
        end_reason=c.end_reason,
        agent_id=c.agent_id,
        created_at=c.created_at,
        assigned_at=c.assigned_at,
        first_agent_reply_at=c.first_agent_reply_at,
        ended_at=c.ended_at,
        requeued=c.requeued,
        queue_position=view.queue_position,
        satisfaction=c.satisfaction,
        satisfaction_comment=c.satisfaction_comment,
        ticket_id=c.ticket_id,
        ticket_ref=ChatService.ticket_ref(c),
        last_seq=c.last_seq,
    )


@agent_routes.get(
    "/api/chats",
    summary="Chats in my scope: my window's queue (state=queued), mine (mine=true) …",
    query=ChatListQuery,
    response=ChatListOut,
    errors=(403, 422),
)
async def list_chats(request: web.Request) -> web.StreamResponse:
    p = principal_of(request)
    p.require(Permission.TELEPHONY_AGENT)
    query = parse_query(request, ChatListQuery)
    views = await _svc(request).list_chats(p, query)
    return json_ok(ChatListOut(items=[agent_chat_out(p, v) for v in views]))


@agent_routes.get(
    "/api/chats/seat",
    summary="My chat seat: capacity, online, chats in hand",
    response=ChatSeatOut,
    errors=(403,),
)
async def my_seat(request: web.Request) -> web.StreamResponse:
    p = principal_of(request)
    p.require(Permission.TELEPHONY_AGENT)
    seat = await _svc(request).seat(p.user_id)
    return json_ok(ChatSeatOut.model_validate(seat))


@agent_routes.put(
    "/api/chats/seats/{user_id}",
    summary="Set an agent's chat capacity (supervisors)",
    body=CapacityIn,
    response=ChatSeatOut,
    errors=(403, 404, 422),
)
async def set_capacity(request: web.Request) -> web.StreamResponse:
    p = principal_of(request)
    p.require(Permission.TELEPHONY_SUPERVISE)
    user_id = path_int(request, "user_id")
    data = await parse_body(request, CapacityIn)
    svc = _svc(request)
    await svc.set_capacity_for(p, user_id, data.capacity, now=_svc(request).now())
    return json_ok(ChatSeatOut.model_validate(await svc.seat(user_id)))


@agent_routes.get(
    "/api/chats/{chat_id}", summary="One chat", response=AgentChatOut, errors=(403, 404)
)
async def get_chat(request: web.Request) -> web.StreamResponse:
    p = principal_of(request)
    view = await _svc(request).get_for_agent(p, path_int(request, "chat_id"))
    return json_ok(agent_chat_out(p, view))


@agent_routes.get(
    "/api/chats/{chat_id}/messages",
    summary="The conversation after line `since`",
    query=MessageListQuery,
    response=MessageListOut,
    errors=(403, 404, 422),
)
async def agent_messages(request: web.Request) -> web.StreamResponse:
    p = principal_of(request)
    chat_id = path_int(request, "chat_id")
    await _svc(request).check_agent_scope(p, chat_id)
    return await _messages(request, chat_id)


@agent_routes.post(
    "/api/chats/{chat_id}/accept",
    summary="Take a queued chat (within my free capacity)",
    response=AgentChatOut,
    errors=(403, 404, 409),
)
async def accept_chat(request: web.Request) -> web.StreamResponse:
    p = principal_of(request)
    svc = _svc(request)
    chat = await svc.accept(p, path_int(request, "chat_id"), now=_svc(request).now())
    return json_ok(agent_chat_out(p, await svc.get_for_agent(p, chat.id)))


@agent_routes.post(
    "/api/chats/{chat_id}/messages",
    summary="Reply (idempotent by client_id: a resend answers 200 with the stored line)",
    body=MessageIn,
    response=MessageOut,
    status=201,
    errors=(403, 404, 409, 422, 429),
)
async def agent_reply(request: web.Request) -> web.StreamResponse:
    p = principal_of(request)
    chat_id = path_int(request, "chat_id")
    data = await parse_body(request, MessageIn)
    posted = await _svc(request).agent_reply(
        p, chat_id, client_id=data.client_id, body=data.body, now=_svc(request).now()
    )
    return json_ok(_message_out(posted), status=201 if posted.created else 200)


@agent_routes.post(
    "/api/chats/{chat_id}/transfer",
    summary="Transfer to another agent (their free capacity) or to a window's queue",
    body=TransferIn,
    response=AgentChatOut,
    errors=(403, 404, 409, 422),
)
async def transfer_chat(request: web.Request) -> web.StreamResponse:
    p = principal_of(request)
    chat_id = path_int(request, "chat_id")
    data = await parse_body(request, TransferIn)
    svc = _svc(request)
    chat = await svc.transfer(p, chat_id, data, now=_svc(request).now())
    return json_ok(agent_chat_out(p, await svc.view(chat.id)))


@agent_routes.post(
    "/api/chats/{chat_id}/close",
    summary="End the chat (the visitor may still rate it)",
    response=AgentChatOut,
    errors=(403, 404, 409),
)
async def close_chat(request: web.Request) -> web.StreamResponse:
    p = principal_of(request)
    svc = _svc(request)
    chat = await svc.close(p, path_int(request, "chat_id"), now=_svc(request).now())
    return json_ok(agent_chat_out(p, await svc.view(chat.id)))


# --- administration ------------------------------------------------------------------------


def _require_admin(p: Principal) -> None:
    # Like users and SLA policies: an administrator's job.
    if p.role is not Role.ADMIN:
        raise Forbidden(
            "Only administrators edit this",
            error_id="permission_denied",
            details={"role": p.role.value},
        )


@admin_routes.get(
    "/api/webchat/ip-ranges",
    summary="The IP ranges → county table of web-chat routing",
    response=IpRangeListOut,
    errors=(403,),
)
async def list_ip_ranges(request: web.Request) -> web.StreamResponse:
    p = principal_of(request)
    p.require(Permission.TELEPHONY_AGENT)
    rows = await _svc(request).list_ip_ranges()
    return json_ok(IpRangeListOut(items=[IpRangeOut.model_validate(r) for r in rows]))


@admin_routes.post(
    "/api/webchat/ip-ranges",
    summary="Add a network → county (administrators)",
    body=IpRangeIn,
    response=IpRangeOut,
    status=201,
    errors=(403, 409, 422),
)
async def add_ip_range(request: web.Request) -> web.StreamResponse:
    p = principal_of(request)
    _require_admin(p)
    data = await parse_body(request, IpRangeIn)
    row = await _svc(request).add_ip_range(data, now=_svc(request).now())
    return json_ok(IpRangeOut.model_validate(row), status=201)


@admin_routes.delete(
    "/api/webchat/ip-ranges/{range_id}",
    summary="Remove a network (administrators)",
    errors=(403, 404),
    status=204,
)
async def delete_ip_range(request: web.Request) -> web.StreamResponse:
    p = principal_of(request)
    _require_admin(p)
    await _svc(request).delete_ip_range(path_int(request, "range_id"))
    return no_content()


@admin_routes.get(
    "/api/webchat/canned-replies",
    summary="Canned replies for my window and for all",
    response=CannedReplyListOut,
    errors=(403,),
)
async def list_canned(request: web.Request) -> web.StreamResponse:
    p = principal_of(request)
    rows = await _svc(request).canned_replies(p)
    return json_ok(CannedReplyListOut(items=[CannedReplyOut.model_validate(r) for r in rows]))


@admin_routes.post(
    "/api/webchat/canned-replies",
    summary="Add a canned reply (administrators)",
    body=CannedReplyIn,
    response=CannedReplyOut,
    status=201,
    errors=(403, 422),
)
async def add_canned(request: web.Request) -> web.StreamResponse:
    p = principal_of(request)
    _require_admin(p)
    data = await parse_body(request, CannedReplyIn)
    row = await _svc(request).add_canned_reply(p, data, now=_svc(request).now())
    return json_ok(CannedReplyOut.model_validate(row), status=201)


ROUTE_TABLES = (visitor_routes, agent_routes, admin_routes)
