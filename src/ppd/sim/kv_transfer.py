"""NIXL emulation between sims.

As P, an engine finishes a `do_remote_decode` request by holding its blocks under a lease, answers
with `kv_transfer_params`, and releases the blocks when D pulls them or the lease expires. As D, an
engine pulls from P (over HTTP, at remote_host:remote_port) only the blocks its own prefix cache
lacks, on a FIFO link shared by that engine pair, and spends the modeled transfer time.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp

from ppd.openai_api import ApiError
from ppd.sim.kv_cache import KVCache
from ppd.sim.request import Request
from ppd.sim.timing import Profile, kv_pull_duration_s

PULL_PATH = "/ppd/kv/pull"
_PULL_TIMEOUT_S = 30.0


@dataclass
class KVLease:
    lease_id: str
    block_ids: list[int]
    num_tokens: int
    timer: asyncio.TimerHandle | None = None


class LeaseTable:
    """Blocks held for remote decode instances, each until pulled or until its lease expires."""

    def __init__(self, kv_cache: KVCache, lease_s: float, on_release: Callable[[], None] | None = None):
        self.kv_cache = kv_cache
        self.lease_s = lease_s
        self.on_release = on_release
        self._leases: dict[str, KVLease] = {}
        self._next_id = 0
        self.num_granted = 0
        self.num_pulled = 0
        self.num_expired = 0

    def __len__(self) -> int:
        return len(self._leases)

    def grant(self, request: Request) -> str:
        """Hold the blocks of a finished request; returns the lease id (the remote_request_id)."""
        self._next_id += 1
        lease_id = f"{request.request_id}-{self._next_id}"
        lease = KVLease(lease_id, list(request.block_ids), request.num_prompt_tokens)
        lease.timer = asyncio.get_running_loop().call_later(self.lease_s, self._expire, lease_id)
        self._leases[lease_id] = lease
        self.num_granted += 1
        return lease_id

    def take(self, lease_id: str) -> KVLease | None:
        """Hand a lease to a puller and release its blocks; None if unknown or expired."""
        lease = self._release(lease_id)
        if lease is not None:
            self.num_pulled += 1
        return lease

    def release_all(self) -> None:
        for lease_id in list(self._leases):
            self._release(lease_id)

    def _expire(self, lease_id: str) -> None:
        if self._release(lease_id) is not None:
            self.num_expired += 1

    def _release(self, lease_id: str) -> KVLease | None:
        lease = self._leases.pop(lease_id, None)
        if lease is None:
            return None
        if lease.timer is not None:
            lease.timer.cancel()
        self.kv_cache.free(lease.block_ids)
        if self.on_release is not None:
            self.on_release()
        return lease


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


@dataclass
class _Link:
    """The NIXL link to one remote engine: the first pull pays the connection setup. Transfers are
    serialised by D's engine loop (Engine.occupy), which posts them."""

    connected: bool = False


@dataclass
class PullStats:
    num_pulls: int = 0
    num_failed_pulls: int = 0
    num_blocks_pulled: int = 0
    num_bytes_pulled: int = 0
    transfer_s: float = 0.0


class KVPuller:
    """D's side: fetch a lease from P over HTTP and model the transfer on the pair's link."""

    def __init__(self, profile: Profile, bandwidth_gbps: float, time_scale: float, block_size: int):
        self.profile = profile
        self.bandwidth_gbps = bandwidth_gbps
        self.time_scale = time_scale
        self.block_size = block_size
        self.stats = PullStats()
        self._links: dict[str, _Link] = {}
        self._session: aiohttp.ClientSession | None = None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def pull(
        self, remote: RemotePrefill, num_cached_blocks: int, occupy: Callable[[float], Awaitable[None]]
    ) -> int:
        """Pull the blocks after the first num_cached_blocks; returns how many blocks moved.

        `occupy(seconds)` holds D's engine loop for the transfer (Engine.occupy): vLLM's D posts the
        NIXL read from its worker, one copy per descriptor, before its next step."""
        wanted = remote.remote_block_ids[num_cached_blocks:]
        try:
            await self._claim(remote, len(wanted))
        except ApiError:
            self.stats.num_failed_pulls += 1
            raise
        link = self._links.setdefault(remote.remote_engine_id, _Link())
        wait_s = self.profile.kv_handshake_ms * 1e-3
        if not link.connected:
            link.connected = True
            wait_s += self.profile.kv_first_connect_ms * 1e-3
        await asyncio.sleep(wait_s * self.time_scale)
        num_tokens = len(wanted) * self.block_size
        busy_s = kv_pull_duration_s(self.profile, len(wanted), self.block_size, self.bandwidth_gbps)
        await occupy(busy_s)  # FIFO on D's loop, so pulls of one D never overlap
        self._count(len(wanted), num_tokens, wait_s + busy_s)
        return len(wanted)

    def _count(self, num_blocks: int, num_tokens: int, transfer_s: float) -> None:
        self.stats.num_pulls += 1
        self.stats.num_blocks_pulled += num_blocks
        self.stats.num_bytes_pulled += num_tokens * self.profile.kv_bytes_per_token
        self.stats.transfer_s += transfer_s

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
