"""KV hand-off between engines without I/O: P's leases on finished prompts' blocks, and D's links
that price a pull. Both drivers of the engine core (asyncio `ppd sim`, the virtual-clock fleet) use
these; the HTTP side of NIXL emulation is kv_transfer.py.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from ppd.sim.kv_cache import KVBlock, KVCache
from ppd.sim.request import Request
from ppd.sim.timing import Profile, kv_pull_duration_s


@dataclass(init=False)
class KVLease:
    lease_id: str
    blocks: list[KVBlock]
    num_tokens: int
    expires_s: float  # on the engine's clock

    # Written out (init=False): mypyc runs a dataclass's generated __init__ interpreted (docs/fleet.md).
    def __init__(self, lease_id: str, blocks: list[KVBlock], num_tokens: int, expires_s: float) -> None:
        self.lease_id = lease_id
        self.blocks = blocks
        self.num_tokens = num_tokens
        self.expires_s = expires_s

    @property
    def block_ids(self) -> list[int]:
        return [block.block_id for block in self.blocks]


class LeaseTable:
    """Blocks held for remote decode instances, each until pulled or until its lease expires.

    Pure bookkeeping on the caller's clock: `grant` stamps the expiry, `expire_due(now_s)` ends the
    leases past it. The asyncio engine calls it from a timer; a virtual-clock driver when it likes."""

    def __init__(self, kv_cache: KVCache, lease_s: float) -> None:
        self.kv_cache = kv_cache
        self.lease_s = lease_s
        self._leases: dict[str, KVLease] = {}
        # Leases in grant order; with one lease_s that is also expiry order. Taken ones stay until
        # their expiry passes (skipped then), so taking is O(1).
        self._by_expiry: deque[KVLease] = deque()
        self._next_id = 0
        self.num_granted = 0
        self.num_pulled = 0
        self.num_expired = 0

    def __len__(self) -> int:
        return len(self._leases)

    def grant(self, request: Request, now_s: float) -> str:
        """Hold the blocks of a finished request; returns the lease id (the remote_request_id)."""
        self._next_id += 1
        lease_id = f"{request.request_id}-{self._next_id}"
        lease = KVLease(lease_id, list(request.blocks), request.num_prompt_tokens, now_s + self.lease_s)
        self._leases[lease_id] = lease
        self._by_expiry.append(lease)
        self.num_granted += 1
        return lease_id

    def take(self, lease_id: str) -> KVLease | None:
        """Hand a lease to a puller and release its blocks; None if unknown or expired."""
        lease = self._release(lease_id)
        if lease is not None:
            self.num_pulled += 1
        return lease

    def expire_due(self, now_s: float) -> int:
        """End every lease whose time is up at now_s; returns how many held blocks that released."""
        num_expired = 0
        while self._by_expiry and self._by_expiry[0].expires_s <= now_s:
            lease = self._by_expiry.popleft()
            if self._release(lease.lease_id) is not None:
                self.num_expired += 1
                num_expired += 1
        return num_expired

    def expire(self, lease_id: str) -> bool:
        """End one lease now (a driver's timer for it fired); False if it was already taken."""
        if self._release(lease_id) is None:
            return False
        self.num_expired += 1
        return True

    def next_expiry_s(self) -> float | None:
        """When the oldest lease still in the queue expires (it may have been taken already)."""
        return self._by_expiry[0].expires_s if self._by_expiry else None

    def release_all(self) -> None:
        for lease_id in list(self._leases):
            self._release(lease_id)
        self._by_expiry.clear()

    def _release(self, lease_id: str) -> KVLease | None:
        lease = self._leases.pop(lease_id, None)
        if lease is None:
            return None
        self.kv_cache.free(lease.blocks)
        while self._by_expiry and self._by_expiry[0].lease_id not in self._leases:
            self._by_expiry.popleft()  # ended leases at the head: keep the queue as short as the table
        return lease


@dataclass(init=False, frozen=True, slots=True)
class PullPlan:
    """What one KV pull costs D, in modeled seconds (before time scaling)."""

    num_blocks: int  # blocks D lacks and moves
    num_tokens: int
    wait_s: float  # handshake (+ the first connection of the pair), D's loop keeps stepping
    hold_s: float  # posting the descriptors: holds D's step loop (EngineCore.queue_hold)

    # Written out (init=False): mypyc runs a dataclass's generated __init__ interpreted (docs/fleet.md).
    def __init__(self, num_blocks: int, num_tokens: int, wait_s: float, hold_s: float) -> None:
        object.__setattr__(self, "num_blocks", num_blocks)
        object.__setattr__(self, "num_tokens", num_tokens)
        object.__setattr__(self, "wait_s", wait_s)
        object.__setattr__(self, "hold_s", hold_s)


class KVLinks:
    """D's NIXL links to remote engines: the first pull of a pair pays the connection setup, and
    every pull its handshake and transfer (timing.kv_pull_duration_s). No I/O: both drivers use it."""

    def __init__(self, profile: Profile, bandwidth_gbps: float, block_size: int) -> None:
        self.profile = profile
        self.bandwidth_gbps = bandwidth_gbps
        self.block_size = block_size
        self._connected: set[str] = set()

    def connect(self, remote_engine_id: str) -> None:
        """Set the pair's connection up ahead of time (what `ppd up`'s warm-up handshakes do)."""
        self._connected.add(remote_engine_id)

    def plan(self, remote_engine_id: str, num_blocks: int) -> PullPlan:
        """The cost of pulling num_blocks from remote_engine_id; marks the pair connected."""
        wait_s = self.profile.kv_handshake_ms * 1e-3
        if remote_engine_id not in self._connected:
            self._connected.add(remote_engine_id)
            wait_s += self.profile.kv_first_connect_ms * 1e-3
        hold_s = kv_pull_duration_s(self.profile, num_blocks, self.block_size, self.bandwidth_gbps)
        return PullPlan(num_blocks, num_blocks * self.block_size, wait_s, hold_s)


@dataclass
class PullStats:
    num_pulls: int = 0
    num_failed_pulls: int = 0
    num_blocks_pulled: int = 0
    num_bytes_pulled: int = 0
    transfer_s: float = 0.0

    def count(self, plan: PullPlan, kv_bytes_per_token: int) -> None:
        """Count one finished pull."""
        self.num_pulls += 1
        self.num_blocks_pulled += plan.num_blocks
        self.num_bytes_pulled += plan.num_tokens * kv_bytes_per_token
        self.transfer_s += plan.wait_s + plan.hold_s
