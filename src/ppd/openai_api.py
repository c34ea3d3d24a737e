"""OpenAI/vLLM API conventions shared by sim, proxy and bench: errors and server-sent events."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

SSE_DONE = b"data: [DONE]\n\n"

# The kv_transfer_params that make a vLLM NixlConnector instance act as P: prefill, then hold the
# KV blocks for a remote decode (DESIGN.md, "vLLM NixlConnector P/D handshake").
PREFILL_KV_TRANSFER_PARAMS: dict[str, Any] = {
    "do_remote_decode": True,
    "do_remote_prefill": False,
    "remote_engine_id": None,
    "remote_block_ids": None,
    "remote_host": None,
    "remote_port": None,
}

# vLLM names the error type after the HTTP status; clients read `error.message` and the status.
_ERROR_TYPES = {
    400: "BadRequestError",
    401: "UnauthorizedError",
    403: "ForbiddenError",
    404: "NotFoundError",
    405: "MethodNotAllowedError",
    408: "RequestTimeoutError",
    409: "ConflictError",
    413: "RequestEntityTooLargeError",
    415: "UnsupportedMediaTypeError",
    422: "UnprocessableEntityError",
    429: "TooManyRequestsError",
    500: "InternalServerError",
    502: "BadGatewayError",
    503: "ServiceUnavailableError",
    504: "GatewayTimeoutError",
}


class ApiError(Exception):
    """An error to answer with an OpenAI-style JSON body and the given HTTP status."""

    def __init__(self, status: int, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param


def error_body(status: int, message: str, param: str | None = None) -> dict[str, Any]:
    """The JSON body vLLM sends with an error: {"error": {"message", "type", "param", "code"}}."""
    error_type = _ERROR_TYPES.get(status, "BadRequestError" if status < 500 else "InternalServerError")
    return {"error": {"message": message, "type": error_type, "param": param, "code": status}}


def error_response(status: int, message: str, param: str | None = None) -> web.Response:
    """An aiohttp response carrying an OpenAI-style error."""
    return web.json_response(error_body(status, message, param), status=status)


def api_error_response(exc: ApiError) -> web.Response:
    """The response for a raised ApiError."""
    return error_response(exc.status, exc.message, exc.param)


def sse_event(payload: dict[str, Any]) -> bytes:
    """One server-sent event line for a JSON payload."""
    return b"data: " + json.dumps(payload, separators=(",", ":")).encode() + b"\n\n"
