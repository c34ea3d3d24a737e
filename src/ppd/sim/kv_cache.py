"""KV-cache blocks as vLLM V1 keeps them: fixed-size blocks, a prefix cache keyed by chained block
hashes, and free blocks evicted least-recently-freed first.

A block that is freed keeps its content (and its place in the prefix cache) until it is reused for
something else, so a later request with the same prefix finds it again.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Final, cast

# Parent of the first block's hash. Hashing tuples of ints is stable across processes (only str and
# bytes hashing is salted), so a P and a D compute the same hashes for the same tokens.
ROOT_BLOCK_HASH: Final = 0x5EED_B10C


def hash_block_at(parent_hash: object, token_ids: list[int], start: int, block_size: int) -> int:
    """Hash of the full block token_ids[start : start + block_size], chained to the hash of the block
    before it: hash((parent_hash, *block)).

    The tokens are read as the int objects they are (the compiled build would unbox each and make a
    new object to put it in the tuple). For vLLM's default block size the tuple is built from the
    tokens read one by one: no slice is made and freed for it (compiled, 327 against 383 ns a block
    with the slice unpacked into the tuple, and 720 with a list [parent_hash] extended by the slice
    and copied into a tuple)."""
    tokens = cast("list[object]", token_ids)
    if block_size == 16:
        s = start
        # fmt: off
        return hash((
            parent_hash,
            tokens[s], tokens[s + 1], tokens[s + 2], tokens[s + 3], tokens[s + 4], tokens[s + 5],
            tokens[s + 6], tokens[s + 7], tokens[s + 8], tokens[s + 9], tokens[s + 10], tokens[s + 11],
            tokens[s + 12], tokens[s + 13], tokens[s + 14], tokens[s + 15],
        ))
        # fmt: on
    return hash((parent_hash, *tokens[start : start + block_size]))


def extend_block_hashes(
    block_hashes: list[int],
    token_ids: list[int],
    block_size: int,
    num_tokens: int | None = None,
    offset: int = 0,
) -> None:
    """Append to block_hashes (the chained hashes of a sequence's leading full blocks) those of the
    sequence's full blocks up to num_tokens (all of it when None) it does not cover yet. token_ids
    is the sequence from token `offset` on (a multiple of block_size, at most what block_hashes
    covers): a later turn's prompt is hashed past the blocks it shares with the last turn without
    a copy of them, and a limit saves a caller copying a long prefix to hash one block."""
    end = len(token_ids) if num_tokens is None else min(num_tokens - offset, len(token_ids))
    # Each hash is made into an int object once, which the list and the next tuple share (the
    # compiled build would make one for each)
    hashes = cast("list[object]", block_hashes)
    parent: object = hashes[-1] if hashes else ROOT_BLOCK_HASH
    start = len(hashes) * block_size - offset
    while start + block_size <= end:
        parent = hash_block_at(parent, token_ids, start, block_size)
        hashes.append(parent)
        start += block_size


def block_hashes_of(token_ids: list[int], block_size: int) -> list[int]:
    """Chained hashes of every full block of token_ids."""
    hashes: list[int] = []
    extend_block_hashes(hashes, token_ids, block_size)
    return hashes


@dataclass(init=False, eq=False, slots=True)
class KVBlock:
    """One block of the pool, as vLLM's KVCacheBlock. Requests hold blocks rather than ids, so all of
    a block's state is one small object: a block operation reads one place in memory instead of an
    entry in each of several per-block lists (and the id's int object to index them), which is what
    such an operation costs on a pool that does not fit the CPU caches."""

    block_id: int
    ref_count: int  # requests using it; 0: free, in the eviction order
    # Its content's hash once committed: the prefix cache's name for it (kept as the int object the
    # caller made, which the cache's dictionary keys share).
    block_hash: int | None
    num_queued: int  # its entries in the free queue (KVCache's lazy deletion)

    # Written out (init=False): mypyc runs a dataclass's generated __init__ interpreted (docs/fleet.md).
    def __init__(self, block_id: int, ref_count: int = 0) -> None:
        self.block_id = block_id
        self.ref_count = ref_count
        self.block_hash = None
        self.num_queued = 0


class KVCache:
    """Owns the blocks: allocation, reference counts, the prefix cache and LRU eviction.

    Blocks are built lazily: ids from _num_used up have never been used and sit, in id order, at
    the head of the eviction order (every freed block queues behind them), so an engine of 25,000
    blocks costs nothing until its blocks are used (a fleet builds many engines per simulation).

    The free queue is vLLM's order (freed blocks at the tail, evicted from the head, a prefix hit
    takes a block out) kept as a deque with lazy deletion: a hit leaves the block's entry where it
    is, and an entry is skipped when it is taken if the block is in use again or was queued again
    later (KVBlock.num_queued counts a block's entries). Queueing and evicting are then a deque
    append and pop, not an ordered dict's hashing and node per block."""

    def __init__(self, num_blocks: int, block_size: int) -> None:
        self.block_size = block_size
        self._num_blocks = num_blocks
        # Blocks 0.._num_used-1 have been used at least once (each is then held by a request or a
        # lease, or queued as free: nothing else needs to keep them).
        self._num_used = 0
        # Freed blocks in eviction order (after the never-used ones), with stale entries (above).
        self._free_queue: deque[KVBlock] = deque()
        self._num_free = 0  # used blocks with no reference: each has its last entry in the queue
        self._cached: dict[int, KVBlock] = {}  # block hash -> the block that holds that content
        self.num_queried_tokens = 0
        self.num_hit_tokens = 0

    @property
    def num_blocks(self) -> int:
        return self._num_blocks

    @property
    def num_free_blocks(self) -> int:
        return self._num_free + self._num_blocks - self._num_used

    @property
    def usage(self) -> float:
        """Fraction of blocks in use by requests (0..1), as vLLM's kv_cache_usage_perc."""
        return 1.0 - self.num_free_blocks / self._num_blocks if self._num_blocks else 0.0

    def cached_prefix(self, block_hashes: list[int], max_blocks: int | None = None) -> list[KVBlock]:
        """The blocks of the longest prefix of block_hashes[:max_blocks] present in the cache (the
        limit spares the caller a copy of a long list)."""
        found: list[KVBlock] = []
        # The hashes are looked up as the int objects they are (compiled, an int-typed read would
        # unbox each and make a new object to look it up).
        cached = cast("dict[object, KVBlock]", self._cached)
        hashes = cast("list[object]", block_hashes)
        num_hashes = len(hashes) if max_blocks is None else min(max_blocks, len(hashes))
        for index in range(num_hashes):
            block = cached.get(hashes[index])
            if block is None:
                break
            found.append(block)
        return found

    def count_cached(self, block_hashes: list[int], max_blocks: int | None = None) -> int:
        """How many leading blocks of block_hashes[:max_blocks] are cached."""
        return len(self.cached_prefix(block_hashes, max_blocks))

    def record_query(self, num_queried_tokens: int, num_hit_tokens: int) -> None:
        """Count one prefix-cache lookup (vLLM's prefix_cache_queries / hits, in tokens)."""
        self.num_queried_tokens += num_queried_tokens
        self.num_hit_tokens += num_hit_tokens

    def num_evictable(self, blocks: list[KVBlock]) -> int:
        """How many of blocks sit in the free queue (taking them uses up free blocks)."""
        num_free = 0
        for block in blocks:
            num_free += not block.ref_count
        return num_free

    def touch(self, blocks: list[KVBlock]) -> None:
        """Take a reference on cached blocks, taking free ones out of the eviction order (their
        queue entries go stale)."""
        num_taken = 0
        for block in blocks:
            num_taken += not block.ref_count
            block.ref_count += 1
        self._num_free -= num_taken

    def allocate(self, num_blocks: int) -> list[KVBlock] | None:
        """Take num_blocks fresh blocks, evicting the least recently freed; None if too few are free."""
        if num_blocks > self.num_free_blocks:
            return None
        num_used = self._num_used
        num_new = min(num_blocks, self._num_blocks - num_used)
        # never used: the head of the queue, in id order
        taken = [KVBlock(block_id, ref_count=1) for block_id in range(num_used, num_used + num_new)]
        self._num_used += num_new
        num_evict = num_blocks - num_new
        if not num_evict:
            return taken
        self._num_free -= num_evict
        cached = cast("dict[object, KVBlock]", self._cached)  # hashes as the objects they are
        take = self._free_queue.popleft
        while num_evict:
            block = take()
            block.num_queued -= 1
            if block.num_queued or block.ref_count:
                continue  # stale: queued again later, or in use again after a prefix hit
            num_evict -= 1
            block_hash: object = block.block_hash
            if block_hash is not None:
                # The cache forgets the hash if this block is what it names (another block with the
                # same content may hold the name: it keeps it). A lookup and a deletion: the
                # compiled build has no dict.pop of its own (it would call the method by name).
                if cached.get(block_hash) is block:
                    del cached[block_hash]
                block.block_hash = None
            block.ref_count = 1
            taken.append(block)
        return taken

    def commit(self, block: KVBlock, block_hash: object) -> None:
        """Enter a block whose tokens are all computed into the prefix cache under block_hash (an
        int; typed object so that the block and the cache keep the caller's int object)."""
        if block.block_hash is not None:
            return
        block.block_hash = cast("int | None", block_hash)
        cast("dict[object, KVBlock]", self._cached).setdefault(block_hash, block)

    def commit_many(self, blocks: list[KVBlock], block_hashes: list[int], first: int, end: int) -> None:
        """commit() of blocks[first:end], blocks[i] with block_hashes[i], in order (a prefill's end
        commits a whole prompt)."""
        cached = cast("dict[object, KVBlock]", self._cached)
        hashes = cast("list[object]", block_hashes)  # the objects they are (cached_prefix)
        for index in range(first, end):
            block = blocks[index]
            if block.block_hash is None:
                block_hash = hashes[index]
                block.block_hash = cast("int | None", block_hash)
                cached.setdefault(block_hash, block)

    def free(self, blocks: list[KVBlock]) -> None:
        """Drop one reference on each block; unreferenced blocks join the eviction queue tail-first,
        so the end of a sequence is evicted before its (more shareable) beginning."""
        queue = self._free_queue.append
        num_freed = 0
        for index in range(len(blocks) - 1, -1, -1):
            block = blocks[index]
            block.ref_count -= 1
            if not block.ref_count:
                queue(block)
                block.num_queued += 1
                num_freed += 1
        self._num_free += num_freed
        if len(self._free_queue) > 2 * self._num_free + _MIN_QUEUE_TO_COMPACT:
            self._compact_free_queue()

    def _compact_free_queue(self) -> None:
        """Drop the stale entries (blocks hit and freed again while the cache was not full, so never
        evicted, would make the queue grow with simulated time); the order of the rest stays."""
        kept: deque[KVBlock] = deque()
        for block in self._free_queue:
            block.num_queued -= 1
            if not block.num_queued and not block.ref_count:
                kept.append(block)
        for block in kept:
            block.num_queued = 1
        self._free_queue = kept

    def free_block_ids(self) -> list[int]:
        """The free blocks that were used before, in eviction order (the never-used ones go first)."""
        self._compact_free_queue()  # now exactly those blocks, each once
        return [block.block_id for block in self._free_queue]

    def reset_prefix_cache(self) -> None:
        """Forget all cached content of free blocks."""
        cached = self._cached
        self._compact_free_queue()
        for block in self._free_queue:
            block_hash = block.block_hash
            if block_hash is not None and cached.get(block_hash) is block:
                del cached[block_hash]
            block.block_hash = None


# Compact the free queue only past twice its live entries and this many: rarely, and never in a
# small cache.
_MIN_QUEUE_TO_COMPACT: Final = 4096
