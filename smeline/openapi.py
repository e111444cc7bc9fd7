"""The OpenAPI 3.1 document, built from the route declarations of every ``http.py``."""

from __future__ import annotations

import re
from typing import Any, Literal

from aiohttp import web
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from smeline import __version__, keys
from smeline.api import RouteSpec, json_ok

_PARAM = re.compile(r"\{(\w+)\}")

_ERROR_SCHEMA = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["id", "message"],
            "properties": {
                "id": {"type": "string", "description": "Stable error identifier"},
                "message": {"type": "string"},
                "details": {},
            },
        }
    },
}

_STATUS_TEXT = {
    400: "Bad request",
    401: "Not authenticated",
    403: "Forbidden",
    404: "Not found",
    409: "Conflict with the current state",
    413: "Body too large",
    422: "Validation failed",
    429: "Too many requests",
}


def build_openapi(specs: list[RouteSpec]) -> dict[str, Any]:
    models: set[type[BaseModel]] = set()
    for spec in specs:
        for model in (spec.body, spec.response):
            if model is not None:
                models.add(model)
    Mode = Literal["validation", "serialization"]
    pairs: list[tuple[type[BaseModel], Mode]] = [
        (m, "validation") for m in models if any(s.body is m for s in specs)
    ]
    pairs += [(m, "serialization") for m in models if any(s.response is m for s in specs)]
    key_map, defs = models_json_schema(
        sorted(pairs, key=lambda p: (p[0].__name__, p[1])),
        ref_template="#/components/schemas/{model}",
    )
    schemas: dict[str, Any] = dict(defs.get("$defs", {}))
    schemas["Error"] = _ERROR_SCHEMA

    paths: dict[str, dict[str, Any]] = {}
    for spec in specs:
        op: dict[str, Any] = {
            "summary": spec.summary,
            "tags": [spec.tag],
            "operationId": spec.handler.__name__,
            "responses": {},
        }
        params: list[dict[str, Any]] = [
            {
                "name": name,
                "in": "path",
                "required": True,
                "schema": {
                    "type": "integer" if name.endswith("_id") or name == "year" else "string"
                },
            }
            for name in _PARAM.findall(spec.path)
        ]
        if spec.query is not None:
            qschema = spec.query.model_json_schema()
            required = set(qschema.get("required", []))
            for name, prop in qschema.get("properties", {}).items():
                params.append(
                    {
                        "name": name,
                        "in": "query",
                        "required": name in required,
                        "schema": prop,
                        **({"explode": True} if "anyOf" in prop else {}),
                    }
                )
        if params:
            op["parameters"] = params
        if spec.body is not None:
            op["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": key_map[(spec.body, "validation")]}},
            }
        elif spec.form is not None:
            op["requestBody"] = {
                "required": True,
                "content": {"multipart/form-data": {"schema": spec.form}},
            }
        ok: dict[str, Any] = {"description": "OK"}
        if spec.response is not None:
            ok["content"] = {
                "application/json": {"schema": key_map[(spec.response, "serialization")]}
            }
        op["responses"][str(spec.status)] = ok
        errors = set(spec.errors) | ({400, 422} if spec.body or spec.query or spec.form else set())
        if not spec.public:
            errors |= {401, 403}
            op["security"] = [{"bearer": []}, {"cookie": []}]
        for status in sorted(errors):
            op["responses"][str(status)] = {
                "description": _STATUS_TEXT.get(status, "Error"),
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
            }
        path = paths.setdefault(spec.path, {})
        path[spec.method.lower()] = op
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "smeline",
            "version": __version__,
            "description": "Contact centre of the SME public service platform",
        },
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "cookie": {"type": "apiKey", "in": "cookie", "name": "smeline_session"},
            },
        },
    }


async def openapi_handler(request: web.Request) -> web.StreamResponse:
    return json_ok(request.app[keys.OPENAPI_DOCUMENT])
