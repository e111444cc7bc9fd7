"""Service-level contracts: OpenAPI document, health, event payload schemas, log masking."""

from __future__ import annotations

import json
import logging
import logging.handlers
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient

from smeline import keys
from smeline.app import event_registry
from smeline.logging_setup import JsonFormatter, flush_logs, log_handlers, setup_logging
from smeline.masking import mask_phone, mask_phones_in_text
from smeline.ticketing import events as ev
from tests.conftest import Api, ticket_payload


async def test_openapi_document_lists_every_registered_route(
    client: TestClient[Any, Any],
) -> None:
    resp = await client.get("/api/openapi.json")
    assert resp.status == 200
    doc = await resp.json()
    assert doc["openapi"].startswith("3.")
    documented = {(method.upper(), path) for path, ops in doc["paths"].items() for method in ops}
    registered = {(s.method, s.path) for s in client.server.app[keys.API_SPECS]}  # type: ignore[union-attr]
    assert registered == documented
    create = doc["paths"]["/api/tickets"]["post"]
    schema_ref = create["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    name = schema_ref.rsplit("/", 1)[1]
    assert "subject" in doc["components"]["schemas"][name]["properties"]
    assert "422" in create["responses"] and "401" in create["responses"]
    # Uploads describe their multipart form.
    for path in ("/api/chat/{chat_id}/attachments", "/api/chats/{chat_id}/attachments"):
        upload = doc["paths"][path]["post"]
        form = upload["requestBody"]["content"]["multipart/form-data"]["schema"]
        assert form["required"] == ["file", "client_id"]
        assert form["properties"]["file"]["format"] == "binary"
        assert {"413", "415", "422"} <= set(upload["responses"])


async def test_health_says_telephony_is_not_configured(client: TestClient[Any, Any]) -> None:
    resp = await client.get("/api/health")
    body = await resp.json()
    assert body["telephony"] == "not_configured"
    assert body["database"] == "postgresql"


async def test_unknown_api_path_and_method_get_json_errors(client: TestClient[Any, Any]) -> None:
    resp = await client.get("/api/nothing-here")
    assert resp.status in (401, 404)
    body = await resp.json()
    assert set(body["error"]) >= {"id", "message"}
    resp = await client.delete("/api/health")
    assert resp.status == 405
    assert (await resp.json())["error"]["id"] == "method_not_allowed"


def test_every_ticket_event_has_a_typed_payload_schema() -> None:
    registry = event_registry()
    schemas = registry.json_schemas()
    assert set(ev.EVENTS) <= set(schemas)
    for name in ev.EVENTS:
        props = schemas[name]["properties"]
        assert {"ticket_id", "number", "status", "county_code", "sla_state"} <= set(props)
    sla = schemas[ev.TICKET_SLA_BREACHED]["properties"]
    assert {"clock", "due_at", "escalated_to"} <= set(sla)


async def test_creating_a_work_order_publishes_ticket_created_on_the_bus(api: Api) -> None:
    bus = api.client.server.app[keys.BUS]  # type: ignore[union-attr]
    seen: list[Any] = []

    async def handler(envelope: Any) -> None:
        seen.append(envelope)

    bus.subscribe(handler, [ev.TICKET_CREATED])
    status, t = await api.call("POST", "/api/tickets", api.admin, json=ticket_payload())
    assert status == 201
    await bus.wait_idle()
    assert [e.payload["number"] for e in seen] == [t["number"]]
    assert seen[0].parsed(api.client.server.app[keys.EVENT_REGISTRY]).county_code == "441481"  # type: ignore[union-attr]


def test_phone_numbers_are_masked_to_the_last_four_digits() -> None:
    assert mask_phone("13800001234") == "1380000****"
    assert mask_phone("+86 138-0000-1234") == "861380000****"
    assert mask_phone(None) is None
    assert mask_phones_in_text("caller 13800001234 and 0753-2345678") == (
        "caller 1380000**** and 0753234****"
    )
    assert mask_phones_in_text("ticket 42 on 2026") == "ticket 42 on 2026"
    # Already masked text stays as it is.
    assert mask_phones_in_text("caller 1380000****") == "caller 1380000****"


def test_structured_log_lines_are_json_and_never_hold_a_full_phone_number(
    tmp_path: Path,
) -> None:
    setup_logging(log_dir=tmp_path, level="INFO", retention_days=183, to_stderr=False)
    try:
        args = ["13800001234"]
        logging.getLogger("smeline.test").info("call from %s", *args, extra={"n": 1})
        args[0] = "changed after the call"  # the message was taken at the call
        try:
            raise ValueError("bad number 13912345678")
        except ValueError:
            logging.getLogger("smeline.test").exception("failed for %s", "13912345678")
        # written by the listener thread, not by the caller
        assert all(
            isinstance(h, logging.handlers.QueueHandler)
            for h in logging.getLogger().handlers
            if getattr(h, "_smeline", False)
        )
        flush_logs()
        lines = (tmp_path / "smeline.log").read_text().strip().splitlines()
        failed = json.loads(lines[-1])
        assert failed["level"] == "ERROR" and "ValueError" in failed["exc"]
        assert "13912345678" not in lines[-1]
        line = lines[-2]
        entry = json.loads(line)
        assert entry["msg"] == "call from 1380000****"
        assert entry["logger"] == "smeline.test"
        assert "13800001234" not in line
        file_handlers = [h for h in log_handlers() if getattr(h, "backupCount", None)]
        assert file_handlers[0].backupCount == 183  # type: ignore[attr-defined]
    finally:
        setup_logging(log_dir=None, level="WARNING", retention_days=1, to_stderr=False)


def test_json_formatter_masks_exceptions_too() -> None:
    try:
        raise ValueError("bad number 13912345678")
    except ValueError:
        import sys

        record = logging.LogRecord("x", logging.ERROR, "f", 1, "oops", (), sys.exc_info())
    out = JsonFormatter().format(record)
    assert "13912345678" not in out and "1391234****" in out
