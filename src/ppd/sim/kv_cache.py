"""KV-cache blocks as vLLM V1 keeps them: fixed-size blocks, a prefix cache keyed by chained block
hashes, and free blocks evicted least-recently-freed first.

A block that is freed keeps its content (and its place in the prefix cache) until it is reused for
something else, so a later request with the same prefix finds it again.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Sequence
from typing import Any, Final

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
    # Any: each hash is made into an int object once, which the list and the next tuple share (the
    # compiled build would make one for each)
    parent: Any = block_hashes[-1] if block_hashes else ROOT_BLOCK_HASH
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
    blocks costs nothing until its blocks are used (a fleet builds many engines per simulation).

    The free queue is vLLM's order (freed blocks at the tail, evicted from the head, a prefix hit
    takes a block out) kept as a deque with lazy deletion: a hit leaves the block's entry where it
    is, and an entry is skipped when it is taken if the block is in use again or was queued again
    later (_num_queued counts each block's entries). Queueing and evicting are then a deque append
    and pop, not an ordered dict's hashing and node per block."""

    def __init__(self, num_blocks: int, block_size: int) -> None:
        self.block_size = block_size
        self._num_blocks = num_blocks
        self._num_touched = 0  # blocks 0.._num_touched-1 have been allocated at least once
        self._ref_counts: list[int] = []  # per touched block
        self._hashes: list[int | None] = []  # per touched block: its content's hash once committed
        # Freed blocks in eviction order (after the never-used ones), with stale entries (above).
        self._free_queue: deque[int] = deque()
        self._num_queued: list[int] = []  # per touched block: its entries in _free_queue
        self._num_free = 0  # touched blocks with no reference: each has its last entry in the queue
        self._cached: dict[int, int] = {}  # block hash -> block id
        self.num_queried_tokens = 0
        self.num_hit_tokens = 0

    @property
    def num_blocks(self) -> int:
        return self._num_blocks

    @property
    def num_free_blocks(self) -> int:
        return self._num_free + self._num_blocks - self._num_touched

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
        """Take a reference on cached blocks, taking free ones out of the eviction order (their
        queue entries go stale)."""
        ref_counts = self._ref_counts
        num_taken = 0
        for block_id in block_ids:
            count = ref_counts[block_id]
            num_taken += not count
            ref_counts[block_id] = count + 1
        self._num_free -= num_taken

    def allocate(self, num_blocks: int) -> list[int] | None:
        """Take num_blocks fresh blocks, evicting the least recently freed; None if too few are free."""
        if num_blocks > self.num_free_blocks:
            return None
        num_new = min(num_blocks, self._num_blocks - self._num_touched)
        taken = list(range(self._num_touched, self._num_touched + num_new))  # never used: head of the queue
        self._num_touched += num_new
        self._ref_counts += [1] * num_new
        self._hashes += [None] * num_new
        self._num_queued += [0] * num_new
        num_evict = num_blocks - num_new
        if not num_evict:
            return taken
        self._num_free -= num_evict
        ref_counts, hashes, cached = self._ref_counts, self._hashes, self._cached
        num_queued, take = self._num_queued, self._free_queue.popleft
        while num_evict:
            # The id is kept as the object it is (the compiled build would make a new int to keep an
            # unboxed one) and indexes as an int.
            block_object: Any = take()
            block_id: int = block_object
            num_left = num_queued[block_id] - 1
            num_queued[block_id] = num_left
            if num_left or ref_counts[block_id]:
                continue  # stale: queued again later, or in use again after a prefix hit
            num_evict -= 1
            block_hash = hashes[block_id]
            if block_hash is not None:
                # The cache forgets the hash if this block is what it names (another block with the
                # same content may hold the name: it keeps it). The order of _cached means nothing.
                owner = cached.pop(block_hash, None)
                if owner is not None and owner != block_id:
                    cached[block_hash] = owner
                hashes[block_id] = None
            ref_counts[block_id] = 1
            taken.append(block_object)
        return taken

    def commit(self, block_id: int, block_hash: int) -> None:
        """Enter a block whose tokens are all computed into the prefix cache."""
        if self._hashes[block_id] is not None:
            return
        hash_object: Any = block_hash  # one int object for both (the compiled build made two)
        self._hashes[block_id] = hash_object
        self._cached.setdefault(hash_object, block_id)

    def commit_many(self, block_ids: Sequence[int], block_hashes: Sequence[int]) -> None:
        """commit() of each block with its hash, in order (a prefill's end commits a whole prompt)."""
        hashes, cached = self._hashes, self._cached
        pairs: Any = zip(block_ids, block_hashes, strict=True)  # Any: ids and hashes kept as objects
        for block_object, block_hash in pairs:
            block_id: int = block_object
            if hashes[block_id] is None:
                hashes[block_id] = block_hash
                cached.setdefault(block_hash, block_object)

    def free(self, block_ids: Sequence[int]) -> None:
        """Drop one reference on each block; unreferenced blocks join the eviction queue tail-first,
        so the end of a sequence is evicted before its (more shareable) beginning."""
        ref_counts, num_queued, queue = self._ref_counts, self._num_queued, self._free_queue.append
        num_freed = 0
        ids: Any = reversed(block_ids)  # Any: each id queued as the object it is, indexing as an int
        for block_object in ids:
            block_id: int = block_object
            count = ref_counts[block_id] - 1
            ref_counts[block_id] = count
            if not count:
                queue(block_object)
                num_queued[block_id] += 1
                num_freed += 1
        self._num_free += num_freed
        if len(self._free_queue) > 2 * self._num_free + _MIN_QUEUE_TO_COMPACT:
            self._compact_free_queue()

    def _compact_free_queue(self) -> None:
        """Drop the stale entries (blocks hit and freed again while the cache was not full, so never
        evicted, would make the queue grow with simulated time); the order of the rest stays."""
        ref_counts, num_queued = self._ref_counts, self._num_queued
        kept: deque[int] = deque()
        entries: Any = self._free_queue
        for block_object in entries:
            block_id: int = block_object
            num_left = num_queued[block_id] - 1
            num_queued[block_id] = num_left
            if not num_left and not ref_counts[block_id]:
                kept.append(block_object)
        for block_id in kept:
            num_queued[block_id] = 1
        self._free_queue = kept

    def free_block_ids(self) -> list[int]:
        """The free blocks that were used before, in eviction order (the never-used ones go first)."""
        self._compact_free_queue()  # now exactly those blocks, each once
        return list(self._free_queue)

    def reset_prefix_cache(self) -> None:
        """Forget all cached content of free blocks."""
        hashes, cached = self._hashes, self._cached
        self._compact_free_queue()
        for block_id in self._free_queue:
            block_hash = hashes[block_id]
            if block_hash is not None and cached.get(block_hash) == block_id:
                del cached[block_hash]
            hashes[block_id] = None


# Compact the free queue only past twice its live entries and this many: rarely, and never in a
# small cache.
_MIN_QUEUE_TO_COMPACT: Final = 4096
