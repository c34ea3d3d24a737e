"""KV-cache blocks as vLLM V1 keeps them: fixed-size blocks, a prefix cache keyed by chained block
hashes, and free blocks evicted least-recently-freed first.

A block that is freed keeps its content (and its place in the prefix cache) until it is reused for
something else, so a later request with the same prefix finds it again.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

# Parent of the first block's hash. Hashing tuples of ints is stable across processes (only str and
# bytes hashing is salted), so a P and a D compute the same hashes for the same tokens.
ROOT_BLOCK_HASH = 0x5EED_B10C


def hash_block(parent_hash: int, token_ids: Sequence[int]) -> int:
    """Hash of one full block, chained to the hash of the block before it."""
    return hash((parent_hash, *token_ids))


def extend_block_hashes(block_hashes: list[int], token_ids: Sequence[int], block_size: int) -> None:
    """Append to block_hashes the hashes of the full blocks of token_ids it does not cover yet."""
    parent = block_hashes[-1] if block_hashes else ROOT_BLOCK_HASH
    for start in range(len(block_hashes) * block_size, len(token_ids) - block_size + 1, block_size):
        parent = hash_block(parent, token_ids[start : start + block_size])
        block_hashes.append(parent)


def block_hashes_of(token_ids: Sequence[int], block_size: int) -> list[int]:
    """Chained hashes of every full block of token_ids."""
    hashes: list[int] = []
    extend_block_hashes(hashes, token_ids, block_size)
    return hashes


@dataclass(slots=True)
class Block:
    block_id: int
    ref_count: int = 0
    block_hash: int | None = None


class KVCache:
    """Owns the blocks: allocation, reference counts, the prefix cache and LRU eviction."""

    def __init__(self, num_blocks: int, block_size: int) -> None:
        self.block_size = block_size
        self.blocks = [Block(block_id) for block_id in range(num_blocks)]
        # Free blocks in eviction order: the first key is evicted first.
        self._free: OrderedDict[int, None] = OrderedDict.fromkeys(range(num_blocks))
        self._cached: dict[int, int] = {}  # block hash -> block id
        self.num_queried_tokens = 0
        self.num_hit_tokens = 0

    @property
    def num_blocks(self) -> int:
        return len(self.blocks)

    @property
    def num_free_blocks(self) -> int:
        return len(self._free)

    @property
    def usage(self) -> float:
        """Fraction of blocks in use by requests (0..1), as vLLM's kv_cache_usage_perc."""
        return 1.0 - len(self._free) / len(self.blocks) if self.blocks else 0.0

    def cached_prefix(self, block_hashes: Sequence[int]) -> list[int]:
        """Block ids of the longest prefix of block_hashes present in the cache."""
        found: list[int] = []
        for block_hash in block_hashes:
            block_id = self._cached.get(block_hash)
            if block_id is None:
                break
            found.append(block_id)
        return found

    def count_cached(self, block_hashes: Sequence[int]) -> int:
        """How many leading blocks of block_hashes are cached."""
        return len(self.cached_prefix(block_hashes))

    def record_query(self, num_queried_tokens: int, num_hit_tokens: int) -> None:
        """Count one prefix-cache lookup (vLLM's prefix_cache_queries / hits, in tokens)."""
        self.num_queried_tokens += num_queried_tokens
        self.num_hit_tokens += num_hit_tokens

    def num_evictable(self, block_ids: Iterable[int]) -> int:
        """How many of block_ids sit in the free queue (taking them uses up free blocks)."""
        return sum(1 for block_id in block_ids if self.blocks[block_id].ref_count == 0)

    def touch(self, block_ids: Iterable[int]) -> None:
        """Take a reference on cached blocks, pulling free ones out of the eviction queue."""
        for block_id in block_ids:
            block = self.blocks[block_id]
            if block.ref_count == 0:
                del self._free[block_id]
            block.ref_count += 1

    def allocate(self, num_blocks: int) -> list[int] | None:
        """Take num_blocks fresh blocks, evicting the least recently freed; None if too few are free."""
        if num_blocks > len(self._free):
            return None
        taken: list[int] = []
        for _ in range(num_blocks):
            block_id, _ = self._free.popitem(last=False)
            block = self.blocks[block_id]
            if block.block_hash is not None:
                if self._cached.get(block.block_hash) == block_id:
                    del self._cached[block.block_hash]
                block.block_hash = None
            block.ref_count = 1
            taken.append(block_id)
        return taken

    def commit(self, block_id: int, block_hash: int) -> None:
        """Enter a block whose tokens are all computed into the prefix cache."""
        block = self.blocks[block_id]
        if block.block_hash is not None:
            return
        block.block_hash = block_hash
        self._cached.setdefault(block_hash, block_id)

    def free(self, block_ids: Sequence[int]) -> None:
        """Drop one reference on each block; unreferenced blocks join the eviction queue tail-first,
        so the end of a sequence is evicted before its (more shareable) beginning."""
        for block_id in reversed(block_ids):
            block = self.blocks[block_id]
            block.ref_count -= 1
            if block.ref_count == 0:
                self._free[block_id] = None

    def reset_prefix_cache(self) -> None:
        """Forget all cached content of free blocks."""
        for block_id in self._free:
            block = self.blocks[block_id]
            if block.block_hash is not None and self._cached.get(block.block_hash) == block_id:
                del self._cached[block.block_hash]
            block.block_hash = None
