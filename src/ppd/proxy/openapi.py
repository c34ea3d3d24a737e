"""The proxy's OpenAPI 3.0 description, served at GET /openapi.json and used by the fuzz tests.

It describes what the proxy itself checks and answers; fields it only forwards (temperature,
top_p, ...) are left open (`additionalProperties`), since the engine judges them.
"""

from __future__ import annotations

from typing import Any

from ppd import __version__
from ppd.modes import MODES
from ppd.proxy.inputs import MAX_SESSION_ID_CHARS

_ERROR = {"$ref": "#/components/schemas/Error"}
_ERROR_STATUSES = {
    "400": "bad input (JSON, types the proxy relies on)",
    "401": "admin endpoint without the admin token",
    "404": "unknown path, or an engine's 404 passed through (e.g. unknown model)",
    "405": "wrong method",
    "408": "the request body did not arrive within --body-timeout-s",
    "409": "the proxy lacks the instances the mode needs",
    "413": "request body over --max-body-bytes",
    "502": "upstream failed before streaming",
    "503": "no healthy instance of a needed role",
}


def openapi_description(max_body_bytes: int) -> dict[str, Any]:
    """The OpenAPI 3.0.3 document of every proxy endpoint."""
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "ppd proxy",
            "version": __version__,
            "description": "One router for PD, PPD and replication in front of vLLM (docs/proxy.md). "
            f"Request bodies over {max_body_bytes} bytes are refused with 413.",
        },
        "paths": {
            "/v1/completions": {"post": _generation("CompletionRequest", "a completion, routed and relayed")},
            "/v1/chat/completions": {"post": _generation("ChatCompletionRequest", "a chat turn, routed")},
            "/mode": {"get": _get("the routing mode", {"$ref": "#/components/schemas/Mode"})},
            "/mode/{mode}": {"post": _mode_switch()},
            "/conversations/clear": {"post": _admin("forget every conversation", ["cleared"])},
            "/metrics/clear": {"post": _admin("zero counters and histograms", ["cleared"])},
            "/status": {"get": _get("topology and live state", {"type": "object"})},
            "/health": {"get": _get("the proxy is up", {"type": "object", "required": ["status"]})},
            "/version": {"get": _get("the proxy's version", {"type": "object", "required": ["version"]})},
            "/metrics": {"get": _text("Prometheus text format")},
            "/v1/models": {"get": _get("models of the first healthy instance", {"type": "object"}, "503")},
            "/openapi.json": {"get": _get("this description", {"type": "object"})},
        },
        "components": {
            "schemas": _schemas(),
            "securitySchemes": {"adminToken": {"type": "http", "scheme": "bearer"}},
        },
    }


def _schemas() -> dict[str, Any]:
    token_limit = {"type": "integer", "minimum": 1}
    common = {
        "model": {"type": "string"},
        "stream": {"type": "boolean"},
        "max_tokens": token_limit,
        "conversation_id": {"type": "string", "minLength": 1, "maxLength": MAX_SESSION_ID_CHARS},
    }
    prompt = {
        "oneOf": [
            {"type": "string", "minLength": 1},
            {"type": "array", "minItems": 1, "items": {"type": "integer", "minimum": 0}},
        ]
    }
    message = {
        "type": "object",
        "required": ["role", "content"],
        "properties": {"role": {"type": "string"}, "content": {"type": "string"}},
    }
    return {
        "CompletionRequest": {
            "type": "object",
            "required": ["prompt"],
            "properties": {**common, "prompt": prompt},
            "additionalProperties": True,
        },
        "ChatCompletionRequest": {
            "type": "object",
            "required": ["messages"],
            "properties": {
                **common,
                "max_completion_tokens": token_limit,
                "messages": {"type": "array", "minItems": 1, "items": message},
            },
            "additionalProperties": True,
        },
        "Mode": {"type": "object", "required": ["mode"], "properties": {"mode": {"enum": list(MODES)}}},
        "Error": {
            "type": "object",
            "required": ["error"],
            "properties": {
                "error": {
                    "type": "object",
                    "required": ["message", "type", "code"],
                    "properties": {
                        "message": {"type": "string"},
                        "type": {"type": "string"},
                        "code": {"type": "integer"},
                        "param": {"type": "string", "nullable": True},
                    },
                }
            },
        },
    }


def _errors(*statuses: str) -> dict[str, Any]:
    return {
        status: {"description": _ERROR_STATUSES[status], "content": {"application/json": {"schema": _ERROR}}}
        for status in statuses
    }


def _generation(schema: str, summary: str) -> dict[str, Any]:
    return {
        "summary": summary,
        "parameters": [
            {
                "name": "X-Session-ID",
                "in": "header",
                "required": False,
                "schema": {"type": "string", "minLength": 1, "maxLength": MAX_SESSION_ID_CHARS},
            }
        ],
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}},
        },
        "responses": {
            "200": {
                "description": "the engine's answer (JSON, or server-sent events when stream is true)",
                "content": {"application/json": {"schema": {"type": "object"}}, "text/event-stream": {}},
            },
            **_errors("400", "404", "408", "413", "502", "503"),
        },
    }


def _get(summary: str, schema: dict[str, Any], *errors: str) -> dict[str, Any]:
    ok = {"description": summary, "content": {"application/json": {"schema": schema}}}
    return {"summary": summary, "responses": {"200": ok, **_errors(*errors)}}


def _text(summary: str) -> dict[str, Any]:
    ok = {"description": summary, "content": {"text/plain": {"schema": {"type": "string"}}}}
    return {"summary": summary, "responses": {"200": ok}}


def _admin(summary: str, required: list[str]) -> dict[str, Any]:
    ok = {
        "description": summary,
        "content": {"application/json": {"schema": {"type": "object", "required": required}}},
    }
    return {"summary": summary, "security": [{"adminToken": []}], "responses": {"200": ok, **_errors("401")}}


def _mode_switch() -> dict[str, Any]:
    operation = _admin("switch the routing mode at runtime", ["mode", "previous"])
    operation["parameters"] = [
        {"name": "mode", "in": "path", "required": True, "schema": {"type": "string", "enum": list(MODES)}}
    ]
    operation["responses"].update(_errors("400", "409"))
    return operation
