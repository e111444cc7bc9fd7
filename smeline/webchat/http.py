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
from typing import Any

from aiohttp import BodyPartReader, web
from pydantic import TypeAdapter, ValidationError

from smeline.api import ApiRoutes, json_ok, no_content, parse_body, parse_query, path_int
from smeline.auth.middleware import principal_of
from smeline.auth.models import Role
from smeline.auth.permissions import Permission, Principal
from smeline.errors import (
    BadRequest,
    Forbidden,
    Unauthorized,
    ValidationFailed,
    field_error,
    validation_details,
)
from smeline.webchat import attachments
from smeline.webchat.models import Satisfaction, SenderKind
from smeline.webchat.schemas import (
    AgentChatOut,
    AttachmentOut,
    CannedReplyIn,
    CannedReplyListOut,
    CannedReplyOut,
    CapacityIn,
    ChatListOut,
    ChatListQuery,
    ChatSeatOut,
    ChatStartIn,
    ChatStartOut,
    ClientId,
    ExpertInviteIn,
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
    WindowAgentListOut,
    WindowAgentOut,
    WindowAgentsQuery,
)
from smeline.webchat.services import (
    ChatService,
    ChatView,
    Line,
    NewFile,
    PostedMessage,
    StoredFile,
    VisitorIdentity,
)
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


def _message_out(posted: PostedMessage | Line) -> MessageOut:
    m = posted.message
    a = posted.attachment
    return MessageOut(
        chat_id=m.chat_id,
        seq=m.seq,
        sender_kind=m.sender_kind,
        sender_user_id=m.sender_user_id,
        sender_name=posted.sender_name,
        client_id=m.client_id,
        body=m.body,
        created_at=m.created_at,
        attachment=AttachmentOut.model_validate(a.model_dump()) if a is not None else None,
    )


async def _messages(request: web.Request, chat_id: int) -> web.StreamResponse:
    query = parse_query(request, MessageListQuery)
    rows, last_seq = await _svc(request).messages(chat_id, since=query.since, limit=query.limit)
    return json_ok(MessageListOut(items=[_message_out(line) for line in rows], last_seq=last_seq))


# --- files -----------------------------------------------------------------------------------

#: The upload form in the OpenAPI document (read by :func:`_read_upload`).
UPLOAD_FORM: dict[str, Any] = {
    "type": "object",
    "required": ["file", "client_id"],
    "additionalProperties": False,
    "properties": {
        "file": {
            "type": "string",
            "format": "binary",
            "description": "PNG, JPEG, GIF, WebP, PDF, DOCX, XLSX or UTF-8 text, by its bytes",
        },
        "client_id": {"type": "string", "description": "the sender's own id of the line"},
    },
}

#: Room for the multipart framing and the client_id field around the file.
_FORM_OVERHEAD = 16 * 1024
_CLIENT_ID = TypeAdapter(ClientId)


async def _read_upload(request: web.Request, max_bytes: int) -> tuple[str, NewFile]:
    """The ``multipart/form-data`` of an upload: exactly a ``file`` and a
    ``client_id``. The file is read in chunks and refused as soon as it is
    over the limit; its kind comes from its bytes."""
    if request.content_type != "multipart/form-data":
        raise BadRequest(
            "Content-Type must be multipart/form-data",
            error_id="unsupported_media_type",
            status=415,
        )
    if request.content_length is not None and request.content_length > max_bytes + _FORM_OVERHEAD:
        raise attachments.too_large(max_bytes)
    client_id: str | None = None
    filename: str | None = None
    data: bytes | None = None
    try:
        reader = await request.multipart()
        while (part := await reader.next()) is not None:
            if not isinstance(part, BodyPartReader):
                raise BadRequest("Nested multipart is not accepted", error_id="invalid_multipart")
            if part.name == "file" and data is None:
                filename = part.filename
                buffer = bytearray()
                while chunk := await part.read_chunk(64 * 1024):
                    buffer += chunk
                    if len(buffer) > max_bytes:
                        raise attachments.too_large(max_bytes)
                data = bytes(buffer)
            elif part.name == "client_id" and client_id is None:
                raw = await part.read_chunk(256)
                client_id = raw.decode("utf-8", errors="replace")
            else:
                raise BadRequest(
                    "Only the fields file and client_id are accepted",
                    error_id="attachment_unknown_field",
                    details={"field": part.name},
                )
    except (ValueError, AssertionError, RuntimeError) as exc:
        raise BadRequest("The form is not valid multipart", error_id="invalid_multipart") from exc
    if data is None:
        raise BadRequest("A file is required (field 'file')", error_id="attachment_missing")
    if client_id is None:
        raise ValidationFailed(
            "client_id is required",
            details=[field_error("client_id", "missing", "the sender's own id of the line")],
        )
    try:
        client_id = _CLIENT_ID.validate_python(client_id)
    except ValidationError as exc:
        raise ValidationFailed(
            "client_id is not valid",
            details=[{**d, "field": "client_id"} for d in validation_details(exc)],
        ) from exc
    if not data:
        raise BadRequest("The file is empty", error_id="attachment_empty")
    kind = attachments.sniff(data)
    if kind is None:
        raise attachments.wrong_type()
    return client_id, NewFile(attachments.safe_filename(filename, kind), kind, data)


def _file_response(stored: StoredFile) -> web.StreamResponse:
    return web.Response(
        body=stored.data,
        headers={
            "Content-Type": stored.content_type,
            "Content-Disposition": attachments.content_disposition(stored.filename),
            "X-Content-Type-Options": "nosniff",
            # Opened directly, a file renders as nothing active.
            "Content-Security-Policy": "default-src 'none'; img-src 'self'; sandbox",
            "Cache-Control": "private, max-age=3600",
        },
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
    "/api/chat/{chat_id}/attachments",
    summary="Send a file (multipart: file, client_id; PNG, JPEG, GIF, WebP, PDF, DOCX, "
    "XLSX or UTF-8 text by its bytes; idempotent by client_id)",
    response=MessageOut,
    status=201,
    public=True,
    errors=(400, 401, 404, 409, 413, 415, 422, 429),
    form=UPLOAD_FORM,
)
async def visitor_attachment(request: web.Request) -> web.StreamResponse:
    identity = await _visitor(request)
    svc = _svc(request)
    client_id, file = await _read_upload(request, svc.options.attachment_max_bytes)
    posted = await svc.post_message(
        identity.chat_id,
        kind=SenderKind.VISITOR,
        client_id=client_id,
        body="",
        now=svc.now(),
        file=file,
    )
    return json_ok(_message_out(posted), status=201 if posted.created else 200)


@visitor_routes.get(
    "/api/chat/{chat_id}/attachments/{attachment_id}",
    summary="Download a file of the chat (Content-Disposition: attachment)",
    public=True,
    errors=(401, 404),
)
async def visitor_download(request: web.Request) -> web.StreamResponse:
    identity = await _visitor(request)
    stored = await _svc(request).attachment(identity.chat_id, path_int(request, "attachment_id"))
    return _file_response(stored)


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
        joint=c.joint,
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


@agent_routes.get(
    "/api/chats/agents",
    summary="A window's agents as transfer targets: online for chat, chats against capacity",
    query=WindowAgentsQuery,
    response=WindowAgentListOut,
    errors=(403, 422),
)
async def window_agents(request: web.Request) -> web.StreamResponse:
    p = principal_of(request)
    query = parse_query(request, WindowAgentsQuery)
    seats = await _svc(request).window_agents(p, query.window_code)
    return json_ok(
        WindowAgentListOut(
            items=[
                WindowAgentOut(
                    user_id=s.user_id,
                    display_name=s.display_name,
                    window_code=s.window_code,
                    online=s.online,
                    capacity=s.capacity,
                    active_chats=s.active_chats,
                    free=max(0, s.capacity - s.active_chats),
                )
                for s in seats
            ]
        )
    )


@agent_routes.get(
    "/api/chats/invited",
    summary="The going chats I was invited to as an expert",
    response=ChatListOut,
    errors=(403,),
)
async def invited_chats(request: web.Request) -> web.StreamResponse:
    p = principal_of(request)
    if p.role is not Role.EXPERT and not p.can(Permission.TELEPHONY_AGENT):
        raise Forbidden(
            "Only experts and the desk have chats",
            error_id="permission_denied",
            details={"role": p.role.value},
        )
    views = await _svc(request).invited_chats(p)
    return json_ok(ChatListOut(items=[agent_chat_out(p, v) for v in views]))


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
    "/api/chats/{chat_id}/attachments",
    summary="Send a file (multipart: file, client_id; the kinds and limit of the visitors')",
    response=MessageOut,
    status=201,
    errors=(400, 403, 404, 409, 413, 415, 422, 429),
    form=UPLOAD_FORM,
)
async def agent_attachment(request: web.Request) -> web.StreamResponse:
    p = principal_of(request)
    chat_id = path_int(request, "chat_id")
    svc = _svc(request)
    # Scope first: a stranger's upload is refused before its body is read.
    await svc.check_agent_scope(p, chat_id)
    client_id, file = await _read_upload(request, svc.options.attachment_max_bytes)
    posted = await svc.agent_reply(
        p, chat_id, client_id=client_id, body="", now=svc.now(), file=file
    )
    return json_ok(_message_out(posted), status=201 if posted.created else 200)


@agent_routes.get(
    "/api/chats/{chat_id}/attachments/{attachment_id}",
    summary="Download a file of the chat: its agent, its experts, supervisors in scope",
    errors=(403, 404),
)
async def agent_download(request: web.Request) -> web.StreamResponse:
    p = principal_of(request)
    stored = await _svc(request).staff_attachment(
        p, path_int(request, "chat_id"), path_int(request, "attachment_id")
    )
    return _file_response(stored)


@agent_routes.post(
    "/api/chats/{chat_id}/experts",
    summary="Invite an expert (a user with the expert role) into the chat: it becomes joint",
    body=ExpertInviteIn,
    response=AgentChatOut,
    status=201,
    errors=(403, 404, 409, 422),
)
async def invite_expert(request: web.Request) -> web.StreamResponse:
    p = principal_of(request)
    chat_id = path_int(request, "chat_id")
    data = await parse_body(request, ExpertInviteIn)
    svc = _svc(request)
    await svc.invite_expert(p, chat_id, data.user_id, now=svc.now())
    return json_ok(agent_chat_out(p, await svc.get_for_agent(p, chat_id)), status=201)


@agent_routes.delete(
    "/api/chats/{chat_id}/experts/{user_id}",
    summary="An expert leaves the chat (themselves, or let go by its agent or a supervisor)",
    status=204,
    errors=(403, 404),
)
async def remove_expert(request: web.Request) -> web.StreamResponse:
    p = principal_of(request)
    svc = _svc(request)
    await svc.remove_expert(
        p, path_int(request, "chat_id"), path_int(request, "user_id"), now=svc.now()
    )
    return no_content()


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
