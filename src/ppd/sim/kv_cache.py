"""KV-cache blocks as vLLM V1 keeps them: fixed-size blocks, a prefix cache keyed by chained block
hashes, and free blocks evicted least-recently-freed first.

A block that is freed keeps its content (and its place in the prefix cache) until it is reused for
something else, so a later request with the same prefix finds it again.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Sequence
from typing import Final

# Parent of the first block's hash. Hashing tuples of ints is stable across processes (only str and
# bytes hashing is salted), so a P and a D compute the same hashes for the same tokens.
ROOT_BLOCK_HASH: Final = 0x5EED_B10C


def hash_block(parent_hash: int, token_ids: Sequence[int]) -> int:
    """Hash of one full block, chained to the hash of the block before it."""
    return hash((parent_hash, *token_ids))


def extend_block_hashes(
    block_hashes: list[int], token_ids: Sequence[int], block_size: int, num_tokens: int | None = None
) -> None:
    """Append to block_hashes the hashes of the full blocks of token_ids[:num_tokens] (all of it when
    None) it does not cover yet. The limit saves a caller copying a long prefix to hash one block."""
    end = len(token_ids) if num_tokens is None else min(num_tokens, len(token_ids))
    parent = block_hashes[-1] if block_hashes else ROOT_BLOCK_HASH
    for start in range(len(block_hashes) * block_size, end - block_size + 1, block_size):
        parent = hash((parent, *token_ids[start : start + block_size]))  # hash_block, inlined
        block_hashes.append(parent)


def block_hashes_of(token_ids: Sequence[int], block_size: int) -> list[int]:
    """Chained hashes of every full block of token_ids."""
    hashes: list[int] = []
    extend_block_hashes(hashes, token_ids, block_size)
    return hashes


def block_hashes_after(
    token_ids: list[int], block_size: int, known_token_ids: list[int], known_hashes: list[int]
) -> list[int]:
    """block_hashes_of(token_ids), taking the leading blocks from known_hashes (the chained hashes of
    known_token_ids' leading full blocks) where token_ids starts with the same tokens: a turn's
    prompt starts with the last turn's prompt and answer. Comparing tokens costs far less than
    hashing them; where they differ (an answer's special tokens, which the next prompt's text
    drops), every block is hashed."""
    num_known = min(len(known_hashes), len(token_ids) // block_size)
    end = num_known * block_size
    hashes = known_hashes[:num_known] if token_ids[:end] == known_token_ids[:end] else []
    extend_block_hashes(hashes, token_ids, block_size)
    return hashes


class KVCache:
    """Owns the blocks: allocation, reference counts, the prefix cache and LRU eviction.

    Blocks are built lazily: ids from _num_touched up have never been used and sit, in id order, at
    the head of the eviction order (every freed block queues behind them), so an engine of 25,000
    blocks costs nothing until its blocks are used (a fleet builds many engines per simulation)."""

    def __init__(self, num_blocks: int, block_size: int) -> None:
        self.block_size = block_size
        self._num_blocks = num_blocks
        self._num_touched = 0  # blocks 0.._num_touched-1 have been allocated at least once
        self._ref_counts: list[int] = []  # per touched block
        self._hashes: list[int | None] = []  # per touched block: its content's hash once committed
        # Freed blocks in eviction order (after the never-used ones): the first key is evicted first.
        self._free: OrderedDict[int, None] = OrderedDict()
        self._cached: dict[int, int] = {}  # block hash -> block id
        self.num_queried_tokens = 0
        self.num_hit_tokens = 0

    @property
    def num_blocks(self) -> int:
        return self._num_blocks

    @property
    def num_free_blocks(self) -> int:
        return len(self._free) + self._num_blocks - self._num_touched

    @property
    def usage(self) -> float:
        """Fraction of blocks in use by requests (0..1), as vLLM's kv_cache_usage_perc."""
        return 1.0 - self.num_free_blocks / self._num_blocks if self._num_blocks else 0.0

    def cached_prefix(self, block_hashes: Sequence[int], max_blocks: int | None = None) -> list[int]:
        """Block ids of the longest prefix of block_hashes[:max_blocks] present in the cache (the limit
        spares the caller a copy of a long list)."""
        found: list[int] = []
        get = self._cached.get
        num_hashes = len(block_hashes) if max_blocks is None else min(max_blocks, len(block_hashes))
        for index in range(num_hashes):
            block_id = get(block_hashes[index])
            if block_id is None:
                break
            found.append(block_id)
        return found

    def count_cached(self, block_hashes: Sequence[int], max_blocks: int | None = None) -> int:
        """How many leading blocks of block_hashes[:max_blocks] are cached."""
        return len(self.cached_prefix(block_hashes, max_blocks))

    def record_query(self, num_queried_tokens: int, num_hit_tokens: int) -> None:
        """Count one prefix-cache lookup (vLLM's prefix_cache_queries / hits, in tokens)."""
        self.num_queried_tokens += num_queried_tokens
        self.num_hit_tokens += num_hit_tokens

    def num_evictable(self, block_ids: Iterable[int]) -> int:
        """How many of block_ids sit in the free queue (taking them uses up free blocks)."""
        return list(map(self._ref_counts.__getitem__, block_ids)).count(0)

    def touch(self, block_ids: Iterable[int]) -> None:
        """Take a reference on cached blocks, pulling free ones out of the eviction queue."""
        ref_counts = self._ref_counts
        for block_id in block_ids:
            if ref_counts[block_id] == 0:
                del self._free[block_id]
            ref_counts[block_id] += 1

    def allocate(self, num_blocks: int) -> list[int] | None:
        """Take num_blocks fresh blocks, evicting the least recently freed; None if too few are free."""
        if num_blocks > self.num_free_blocks:
            return None
        num_new = min(num_blocks, self._num_blocks - self._num_touched)
        taken = list(range(self._num_touched, self._num_touched + num_new))  # never used: head of the queue
        self._num_touched += num_new
        self._ref_counts += [1] * num_new
        self._hashes += [None] * num_new
        if num_blocks == num_new:
            return taken
        ref_counts, hashes, cached, popitem = self._ref_counts, self._hashes, self._cached, self._free.popitem
        evicted = [popitem(False)[0] for _ in range(num_blocks - num_new)]
        for block_id in evicted:
            block_hash = hashes[block_id]
            if block_hash is not None:
                # The cache forgets the hash if this block is what it names (another block with the
                # same content may hold the name: it keeps it). The order of _cached means nothing.
                owner = cached.pop(block_hash, None)
                if owner is not None and owner != block_id:
                    cached[block_hash] = owner
                hashes[block_id] = None
            ref_counts[block_id] = 1
        taken += evicted
        return taken

    def commit(self, block_id: int, block_hash: int) -> None:
        """Enter a block whose tokens are all computed into the prefix cache."""
        if self._hashes[block_id] is not None:
            return
        self._hashes[block_id] = block_hash
        self._cached.setdefault(block_hash, block_id)

    def commit_many(self, block_ids: Sequence[int], block_hashes: Sequence[int]) -> None:
        """commit() of each block with its hash, in order (a prefill's end commits a whole prompt)."""
        hashes, cached = self._hashes, self._cached
        for block_id, block_hash in zip(block_ids, block_hashes, strict=True):
            if hashes[block_id] is None:
                hashes[block_id] = block_hash
                cached.setdefault(block_hash, block_id)

    def free(self, block_ids: Sequence[int]) -> None:
        """Drop one reference on each block; unreferenced blocks join the eviction queue tail-first,
        so the end of a sequence is evicted before its (more shareable) beginning."""
        ref_counts, free = self._ref_counts, self._free
        for block_id in reversed(block_ids):
            count = ref_counts[block_id] - 1
            ref_counts[block_id] = count
            if not count:
                free[block_id] = None

    def reset_prefix_cache(self) -> None:
        """Forget all cached content of free blocks."""
        hashes, cached = self._hashes, self._cached
        for block_id in self._free:
            block_hash = hashes[block_id]
            if block_hash is not None and cached.get(block_hash) == block_id:
                del cached[block_hash]
            hashes[block_id] = None
