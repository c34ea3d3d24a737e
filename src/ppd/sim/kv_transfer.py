"""NIXL emulation between sims.

The lease and link bookkeeping is kv_handoff.py (no I/O); this module is the HTTP part. As P, an
engine finishes a `do_remote_decode` request by holding its blocks under a lease, answers
with `kv_transfer_params`, and releases the blocks when D pulls them or the lease expires. As D, an
engine pulls from P (over HTTP, at remote_host:remote_port) only the blocks its own prefix cache
lacks, on a FIFO link shared by that engine pair, and spends the modeled transfer time.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp

from ppd.openai_api import ApiError
from ppd.sim.kv_handoff import PullPlan, PullStats
from ppd.sim.timing import Profile

PULL_PATH = "/ppd/kv/pull"
_PULL_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class RemotePrefill:
    """The kv_transfer_params a D receives: where P holds the prompt's blocks."""

    remote_engine_id: str
    remote_request_id: str
    remote_block_ids: list[int]
    remote_host: str
    remote_port: int


def parse_kv_transfer_params(value: Any) -> tuple[bool, RemotePrefill | None]:
    """(act as P?, what to pull as D) from a request's kv_transfer_params; ApiError(400) if malformed."""
    if value is None:
        return False, None
    if not isinstance(value, dict):
        raise ApiError(400, "kv_transfer_params must be an object", "kv_transfer_params")
    remote_decode, remote_prefill = value.get("do_remote_decode"), value.get("do_remote_prefill")
    if not isinstance(remote_decode, bool | None) or not isinstance(remote_prefill, bool | None):
        raise ApiError(400, "kv_transfer_params.do_remote_decode/do_remote_prefill must be booleans")
    if remote_decode and remote_prefill:
        raise ApiError(400, "kv_transfer_params: do_remote_decode and do_remote_prefill are exclusive")
    if not remote_prefill:
        return bool(remote_decode), None
    return False, _parse_remote_prefill(value)


def _parse_remote_prefill(value: dict[str, Any]) -> RemotePrefill:
    engine_id, request_id = value.get("remote_engine_id"), value.get("remote_request_id")
    host, port, groups = value.get("remote_host"), value.get("remote_port"), value.get("remote_block_ids")
    if not isinstance(engine_id, str) or not isinstance(request_id, str) or not isinstance(host, str):
        raise ApiError(
            400,
            "kv_transfer_params with do_remote_prefill need string remote_engine_id, "
            "remote_request_id and remote_host",
            "kv_transfer_params",
        )
    if not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536:
        raise ApiError(400, "kv_transfer_params.remote_port must be a port number", "kv_transfer_params")
    block_ids = _flatten_block_ids(groups)
    return RemotePrefill(engine_id, request_id, block_ids, host, port)


def _flatten_block_ids(groups: Any) -> list[int]:
    # vLLM sends one list of block ids per KV-cache group; Llama has one group.
    if isinstance(groups, list) and groups and all(isinstance(g, list) for g in groups):
        groups = groups[0]
    if not isinstance(groups, list) or not all(isinstance(b, int) for b in groups):
        raise ApiError(400, "kv_transfer_params.remote_block_ids must be a list of lists of block ids")
    return list(groups)


class KVPuller:
    """D's side over HTTP: claim a lease from P, then spend the modeled transfer on D's clock."""

    def __init__(self, profile: Profile, time_scale: float) -> None:
        self.profile = profile
        self.time_scale = time_scale
        self.stats = PullStats()
        self._session: aiohttp.ClientSession | None = None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def pull(
        self,
        remote: RemotePrefill,
        num_cached_blocks: int,
        plan_pull: Callable[[str, int], PullPlan],
        occupy: Callable[[float], Awaitable[None]],
    ) -> int:
        """Pull the blocks after the first num_cached_blocks; returns how many blocks moved.

        `plan_pull` prices it on D's links (EngineCore.plan_pull); `occupy(seconds)` holds D's engine
        loop for the transfer (Engine.occupy): vLLM's D posts the NIXL read from its worker, one copy
        per descriptor, before its next step."""
        num_wanted = len(remote.remote_block_ids) - num_cached_blocks
        try:
            await self._claim(remote, num_wanted)
        except ApiError:
            self.stats.num_failed_pulls += 1
            raise
        plan = plan_pull(remote.remote_engine_id, num_wanted)
        await asyncio.sleep(plan.wait_s * self.time_scale)
        await occupy(plan.hold_s)  # FIFO on D's loop, so pulls of one D never overlap
        self.stats.count(plan, self.profile.kv_bytes_per_token)
        return plan.num_blocks

    async def release(self, remote: RemotePrefill) -> None:
        """Tell P to free the blocks it holds for a request this D will not serve (rejected, or
        aborted before its pull), as vLLM's D notifies P when it aborts a remote-prefill request
        that never ran; P then need not hold them until the lease expires. Failures are ignored:
        the lease expires anyway."""
        with contextlib.suppress(ApiError):
            await self._claim(remote, 0)

    async def _claim(self, remote: RemotePrefill, num_blocks: int) -> None:
        """Ask P to hand over its lease; P frees the blocks, as it does when NIXL reports the read."""
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=_PULL_TIMEOUT_S))
        url = f"http://{remote.remote_host}:{remote.remote_port}{PULL_PATH}"
        body = {"remote_request_id": remote.remote_request_id, "num_blocks": num_blocks}
        try:
            async with self._session.post(url, json=body) as response:
                answer = await response.json(content_type=None)
                status = response.status
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise ApiError(503, f"KV pull from {remote.remote_engine_id} at {url} failed: {exc!r}") from exc
        if status != 200:
            message = answer.get("error", {}).get("message", "") if isinstance(answer, dict) else ""
            status_to_client = 400 if status < 500 else 503
            raise ApiError(status_to_client, f"KV pull from {remote.remote_engine_id} failed: {message}")
