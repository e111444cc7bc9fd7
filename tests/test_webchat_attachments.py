"""Files in web chat: upload limits (size, kind by the bytes, the form's
fields), who may download, hostile names, and the line that carries a file
reaching the other side over socket.io."""

from __future__ import annotations

import dataclasses
import io
import zipfile
from typing import Any

import aiohttp
import pytest
from sqlalchemy import func, select

from smeline import keys
from smeline.realtime.rooms import AGENT_NAMESPACE
from smeline.webchat.attachments import content_disposition, safe_filename, sniff
from smeline.webchat.models import ChatAttachment, ChatMessage
from smeline.webchat.socket import MessageOut
from tests.polling import until
from tests.socket_rig import Service, Sockets
from tests.test_webchat_socket import XINGNING_IP, console, start_chat, visitor

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + b"\x00" * 64
PDF = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n"


def docx_bytes() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("word/document.xml", "<w:document/>")
    return buffer.getvalue()


def form(
    data: bytes | None,
    *,
    filename: str = "a.png",
    content_type: str = "image/png",
    client_id: str | None = "f-1",
    extra: dict[str, str] | None = None,
) -> aiohttp.FormData:
    # As browsers send it: multipart, names in raw UTF-8.
    fd = aiohttp.FormData(quote_fields=False, default_to_multipart=True)
    if client_id is not None:
        fd.add_field("client_id", client_id)
    if data is not None:
        fd.add_field("file", data, filename=filename, content_type=content_type)
    for name, value in (extra or {}).items():
        fd.add_field(name, value)
    return fd


async def upload(
    svc: Service, path: str, fd: aiohttp.FormData, headers: dict[str, str]
) -> tuple[int, Any]:
    resp = await svc.client.post(path, data=fd, headers=headers)
    return resp.status, await resp.json()


async def served(svc: Service) -> tuple[Any, dict[str, Any], dict[str, str]]:
    agent = await svc.api.user("agent", window_code="xingning")
    await svc.chat.agent_online(agent.id, now=svc.chat.now())
    started = await start_chat(svc, XINGNING_IP)
    assert started["state"] == "assigned", started
    return agent, started, {"X-Chat-Token": started["token"]}


async def stored_counts(svc: Service) -> tuple[int, int]:
    async with svc.client.server.app[keys.SESSIONMAKER]() as db:
        files = await db.scalar(select(func.count()).select_from(ChatAttachment))
        lines = await db.scalar(select(func.count()).select_from(ChatMessage))
    return int(files or 0), int(lines or 0)


@pytest.fixture
async def svc(database_url: str, aiohttp_client: Any) -> Service:
    from tests.test_webchat_socket import start_service

    return await start_service(aiohttp_client, database_url)


# --- the pure parts ---------------------------------------------------------------------------


def test_kinds_come_from_the_bytes_not_the_name() -> None:
    assert sniff(PNG) is not None and sniff(PNG).content_type == "image/png"  # type: ignore[union-attr]
    assert sniff(PDF).content_type == "application/pdf"  # type: ignore[union-attr]
    assert sniff(docx_bytes()).extensions == (".docx",)  # type: ignore[union-attr]
    assert sniff("你好，附件".encode()).content_type.startswith("text/plain")  # type: ignore[union-attr]
    assert sniff(b"MZ\x90\x00\x03\x00\x00\x00") is None  # a Windows executable
    assert sniff(b"PK\x03\x04not really a zip") is None


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("../../etc/passwd", "passwd.png"),
        ("..\\..\\boot.ini.png", "boot.ini.png"),
        ("a\r\nSet-Cookie: x=1.png", "aSet-Cookie: x=1.png"),
        ("..", "attachment.png"),
        ("报告\u202egnp.exe", "报告gnp.exe.png"),
        ("photo.PNG", "photo.PNG"),
    ],
)
def test_hostile_names_are_cleaned(raw: str, expected: str) -> None:
    assert safe_filename(raw, sniff(PNG)) == expected  # type: ignore[arg-type]


def test_content_disposition_quotes_nothing_it_should_not() -> None:
    header = content_disposition('营业执照"; x.png')
    assert header.startswith('attachment; filename="')
    assert "\r" not in header and "\n" not in header
    assert "filename*=UTF-8''%E8%90%A5%E4%B8%9A%E6%89%A7%E7%85%A7%22%3B%20x.png" in header


# --- uploads -----------------------------------------------------------------------------------


async def test_visitor_sends_a_picture_and_the_agent_downloads_it(svc: Service) -> None:
    agent, started, token = await served(svc)
    chat_id = started["chat_id"]
    status, line = await upload(
        svc, f"/api/chat/{chat_id}/attachments", form(PNG, filename="../../营业执照.png"), token
    )
    assert status == 201, line
    assert line["sender_kind"] == "visitor" and line["body"] == "营业执照.png"
    file = line["attachment"]
    assert (file["filename"], file["content_type"], file["size"]) == (
        "营业执照.png",
        "image/png",
        len(PNG),
    )
    # The same client id again: the stored line, nothing stored twice.
    before = await stored_counts(svc)
    status, again = await upload(
        svc, f"/api/chat/{chat_id}/attachments", form(PDF, filename="x.pdf"), token
    )
    assert status == 200 and again["attachment"]["id"] == file["id"]
    assert await stored_counts(svc) == before
    # In the conversation, in order, for both sides.
    status, page = await svc.api.call("GET", f"/api/chats/{chat_id}/messages", agent)
    assert status == 200 and page["items"][-1]["attachment"]["id"] == file["id"]

    resp = await svc.client.get(
        f"/api/chats/{chat_id}/attachments/{file['id']}", headers=agent.headers
    )
    assert resp.status == 200
    assert await resp.read() == PNG
    assert resp.headers["Content-Type"] == "image/png"
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert resp.headers["Content-Disposition"].startswith("attachment;")
    assert "filename*=UTF-8''%E8%90%A5" in resp.headers["Content-Disposition"]
    resp = await svc.client.get(f"/api/chat/{chat_id}/attachments/{file['id']}", headers=token)
    assert resp.status == 200 and await resp.read() == PNG


async def test_agent_sends_a_word_file(svc: Service) -> None:
    agent, started, token = await served(svc)
    chat_id = started["chat_id"]
    status, line = await upload(
        svc,
        f"/api/chats/{chat_id}/attachments",
        form(docx_bytes(), filename="申请表.docx", content_type="application/octet-stream"),
        agent.headers,
    )
    assert status == 201, line
    assert line["sender_kind"] == "agent"
    assert line["attachment"]["content_type"].endswith("wordprocessingml.document")
    status, page = await svc.api.call(
        "GET", f"/api/chat/{chat_id}/messages", headers=token, params={"since": 0}
    )
    assert page["items"][-1]["attachment"]["filename"] == "申请表.docx"


async def test_a_file_over_the_limit_is_refused_with_413_and_nothing_stored(
    svc: Service,
) -> None:
    svc.chat.options = dataclasses.replace(svc.chat.options, attachment_max_bytes=2048)
    _agent, started, token = await served(svc)
    before = await stored_counts(svc)
    big = PNG + b"\x00" * 40_000  # over the limit and its form allowance: refused unread
    status, body = await upload(
        svc, f"/api/chat/{started['chat_id']}/attachments", form(big), token
    )
    assert status == 413 and body["error"]["id"] == "attachment_too_large"
    assert body["error"]["details"]["max_bytes"] == 2048
    # Over the limit, under the form allowance: refused while reading.
    status, body = await upload(
        svc, f"/api/chat/{started['chat_id']}/attachments", form(PNG + b"\x00" * 4000), token
    )
    assert status == 413 and body["error"]["id"] == "attachment_too_large"
    assert await stored_counts(svc) == before


async def test_a_lying_content_type_does_not_make_an_executable_a_picture(
    svc: Service,
) -> None:
    _agent, started, token = await served(svc)
    before = await stored_counts(svc)
    status, body = await upload(
        svc,
        f"/api/chat/{started['chat_id']}/attachments",
        form(b"MZ\x90\x00\x03\x00\x00\x00\x04\x00", filename="photo.png", content_type="image/png"),
        token,
    )
    assert status == 415 and body["error"]["id"] == "attachment_type"
    assert "png" in body["error"]["details"]["allowed"]
    assert await stored_counts(svc) == before


async def test_the_form_must_have_a_file_a_client_id_and_nothing_else(svc: Service) -> None:
    _agent, started, token = await served(svc)
    path = f"/api/chat/{started['chat_id']}/attachments"
    status, body = await upload(svc, path, form(None), token)
    assert status == 400 and body["error"]["id"] == "attachment_missing"
    status, body = await upload(svc, path, form(PNG, extra={"body": "hi"}), token)
    assert status == 400 and body["error"]["id"] == "attachment_unknown_field"
    assert body["error"]["details"]["field"] == "body"
    status, body = await upload(svc, path, form(PNG, client_id=None), token)
    assert status == 422 and body["error"]["details"][0]["field"] == "client_id"
    status, body = await upload(svc, path, form(PNG, client_id="bad id/../"), token)
    assert status == 422
    status, body = await upload(svc, path, form(b""), token)
    assert status == 400 and body["error"]["id"] == "attachment_empty"
    status, body = await svc.api.call("POST", path, json={"file": "x"}, headers=token)
    assert status == 415 and body["error"]["id"] == "unsupported_media_type"


async def test_a_visitor_cannot_upload_to_or_read_another_visitors_chat(svc: Service) -> None:
    agent, mine, my_token = await served(svc)
    other = await start_chat(svc, XINGNING_IP, name="王女士")
    status, line = await upload(
        svc,
        f"/api/chat/{other['chat_id']}/attachments",
        form(PNG),
        {"X-Chat-Token": other["token"]},
    )
    assert status == 201, line
    before = await stored_counts(svc)
    status, body = await upload(
        svc, f"/api/chat/{other['chat_id']}/attachments", form(PNG), my_token
    )
    assert status == 404 and body["error"]["id"] == "chat_not_found"
    assert await stored_counts(svc) == before
    file_id = line["attachment"]["id"]
    # Another chat's token, and this chat's path with another chat's file.
    resp = await svc.client.get(
        f"/api/chat/{other['chat_id']}/attachments/{file_id}", headers=my_token
    )
    assert resp.status == 404
    resp = await svc.client.get(
        f"/api/chat/{mine['chat_id']}/attachments/{file_id}", headers=my_token
    )
    assert resp.status == 404
    resp = await svc.client.get(f"/api/chat/{other['chat_id']}/attachments/{file_id}")
    assert resp.status == 401


async def test_only_the_chats_agent_or_a_supervisor_downloads(svc: Service) -> None:
    agent, started, token = await served(svc)
    chat_id = started["chat_id"]
    status, line = await upload(svc, f"/api/chat/{chat_id}/attachments", form(PNG), token)
    assert status == 201
    path = f"/api/chats/{chat_id}/attachments/{line['attachment']['id']}"
    colleague = await svc.api.user("agent", window_code="xingning")  # same window, not theirs
    stranger = await svc.api.user("agent", window_code="meijiang")
    expert = await svc.api.user("expert")
    county = await svc.api.user("county_admin", county_code="441481")
    other_county = await svc.api.user("county_admin", county_code="441402")
    for actor, expected in (
        (agent, 200),
        (colleague, 403),
        (stranger, 404),
        (expert, 403),  # not invited
        (county, 200),
        (other_county, 404),
    ):
        resp = await svc.client.get(path, headers=actor.headers)
        assert resp.status == expected, (actor.role, actor.window_code, await resp.text())
    svc.client.session.cookie_jar.clear()  # the logins above left a session cookie
    resp = await svc.client.get(path)
    assert resp.status == 401


# --- over socket.io ---------------------------------------------------------------------------


async def test_a_file_line_reaches_the_agent_over_the_socket(
    svc: Service, sockets: Sockets
) -> None:
    agent = await svc.api.user("agent", window_code="xingning")
    desk = await console(svc, sockets, agent, window="xingning")
    started = await start_chat(svc, XINGNING_IP)
    widget = await visitor(svc, sockets, started)
    status, line = await upload(
        svc,
        f"/api/chat/{started['chat_id']}/attachments",
        form(PDF, filename="合同.pdf", client_id="v-file"),
        {"X-Chat-Token": started["token"]},
    )
    assert status == 201, line

    def heard(sock: Any) -> list[MessageOut]:
        return [
            m
            for m in (MessageOut.model_validate(x) for x in sock.received("chat.message"))
            if m.client_id == "v-file"
        ]

    await until(lambda: heard(desk), what="the agent hears the file line")
    await until(lambda: heard(widget), what="the visitor's other tabs hear it too")
    pushed = heard(desk)[0]
    assert pushed.attachment is not None
    assert (pushed.attachment.id, pushed.attachment.filename) == (
        line["attachment"]["id"],
        "合同.pdf",
    )
    assert pushed.attachment.content_type == "application/pdf"
    # chat.fetch after a reconnect returns it with its file.
    fetched = await desk.call("chat.fetch", {"chat_id": started["chat_id"], "since": 0})
    assert fetched["ok"], fetched
    files = [m["attachment"] for m in fetched["data"]["messages"] if m["attachment"]]
    assert [f["id"] for f in files] == [line["attachment"]["id"]]
    assert AGENT_NAMESPACE == desk.namespace
