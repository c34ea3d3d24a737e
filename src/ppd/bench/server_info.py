"""What the bench asks the server besides turns: model, versions, topology, and the proxy's admin calls.

Probes tolerate servers that lack an endpoint (a bare vLLM has no /status, a sim no /mode); the
admin calls that `--modes` depends on fail loudly.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import aiohttp

from ppd.errors import UsageError

_PROBE_TIMEOUT = aiohttp.ClientTimeout(total=10.0)
_ADMIN_TIMEOUT = aiohttp.ClientTimeout(total=30.0)


@dataclass(frozen=True)
class ServerInfo:
    """What the URL told about itself at the start of an invocation."""

    model: str
    mode: str  # the proxy's current mode, "" when the URL is not a proxy
    engines: list[dict[str, Any]]  # [{"url", "role", "version", "model"}]
    topology: dict[str, Any] | None  # the proxy's GET /status, None otherwise
    max_model_len: int | None = None  # from GET /v1/models, when the server says


async def get_json(session: aiohttp.ClientSession, url: str, headers: dict[str, str] | None = None) -> Any:
    """The JSON of a GET, or None for any failure (missing endpoint, not JSON, unreachable)."""
    try:
        async with session.get(url, timeout=_PROBE_TIMEOUT, headers=headers) as response:
            if response.status != 200:
                return None
            return json.loads(await response.read())
    except (aiohttp.ClientError, TimeoutError, ValueError):
        return None


async def probe(
    session: aiohttp.ClientSession, base_url: str, model: str | None, admin_token: str | None = None
) -> ServerInfo:
    """Ask the URL for its model, mode, engine versions and topology (a proxy started with
    --protect-status shows /status only with its admin token)."""
    base_url = base_url.rstrip("/")
    admin = {"Authorization": f"Bearer {admin_token}"} if admin_token else None
    status = await get_json(session, base_url + "/status", admin)
    topology = status if isinstance(status, dict) else None
    models = await get_json(session, base_url + "/v1/models")
    served_model = model or _first_model(models, base_url)
    if topology is not None:
        engines = engines_from_status(topology, served_model)
        for engine in engines:  # the proxy learns versions on its health checks, maybe not yet
            if engine["version"] is None:
                engine["version"] = _version(await get_json(session, engine["url"] + "/version"))
        mode = str(topology.get("mode") or "")
    else:
        engine_version = _version(await get_json(session, base_url + "/version"))
        engines = [{"url": base_url, "role": "engine", "version": engine_version, "model": served_model}]
        mode = await _current_mode(session, base_url)
    return ServerInfo(served_model, mode, engines, topology, _max_model_len(models, served_model))


def _version(answer: Any) -> str | None:
    version = answer.get("version") if isinstance(answer, dict) else None
    return None if version is None else str(version)


def _first_model(models: Any, base_url: str) -> str:
    try:
        return str(models["data"][0]["id"])
    except (TypeError, KeyError, IndexError):
        raise UsageError(
            f"{base_url}/v1/models lists no model (is the URL right?); pass --model NAME"
        ) from None


def _max_model_len(models: Any, model: str) -> int | None:
    cards = models.get("data") if isinstance(models, dict) else None
    for card in cards if isinstance(cards, list) else []:
        if isinstance(card, dict) and card.get("id") == model and isinstance(card.get("max_model_len"), int):
            return int(card["max_model_len"])
    return None


async def _current_mode(session: aiohttp.ClientSession, base_url: str) -> str:
    answer = await get_json(session, base_url + "/mode")
    return str(answer.get("mode") or "") if isinstance(answer, dict) else ""


def engines_from_status(status: dict[str, Any], model: str) -> list[dict[str, Any]]:
    """The engine list of a proxy /status: every list of dicts that have a "url"."""
    engines = []
    for value in status.values():
        if not isinstance(value, list):
            continue
        for entry in value:
            if isinstance(entry, dict) and "url" in entry:
                roles = entry.get("roles") or [entry.get("role", "engine")]
                role = "+".join(str(role) for role in roles)
                engines.append(
                    {"url": entry["url"], "role": role, "version": entry.get("version"), "model": model}
                )
    return engines


async def admin_post(session: aiohttp.ClientSession, url: str, admin_token: str | None) -> None:
    """POST an admin endpoint of the proxy; UsageError unless it answers 2xx (wrong mode, token, URL)."""
    headers = {"Authorization": f"Bearer {admin_token}"} if admin_token else {}
    try:
        async with session.post(url, headers=headers, timeout=_ADMIN_TIMEOUT) as response:
            if response.status // 100 != 2:
                text = (await response.read())[:300].decode("utf-8", "replace").strip()
                hint = " (pass --admin-token)" if response.status in (401, 403) else ""
                raise UsageError(f"POST {url} answered {response.status}{hint}: {text}")
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise UsageError(
            f"POST {url} failed ({type(exc).__name__}: {exc}); --modes needs a ppd proxy"
        ) from exc


async def prepare_mode(
    session: aiohttp.ClientSession, base_url: str, mode: str, admin_token: str | None
) -> None:
    """Switch the proxy to `mode` and forget its conversations, so each run starts clean."""
    base_url = base_url.rstrip("/")
    await admin_post(session, f"{base_url}/mode/{mode}", admin_token)
    await admin_post(session, f"{base_url}/conversations/clear", admin_token)
