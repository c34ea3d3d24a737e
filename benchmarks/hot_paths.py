"""Two hot paths timed beside the code they replaced (kept in this file as the baseline), same run.

    flock /work/cpu.lock python benchmarks/hot_paths.py [--reps 21]

history lookup   ppd.router.history.PrefixIndex.longest_prefix_owner, completions recognition: 2,000
                 conversations whose known texts share their first 300 bytes (so one HEAD_BYTES=256
                 bucket) with lengths 300 + 500*i bytes (up to ~1 MB), and a prompt continuing the
                 longest one. Baseline: the lookup before commit abfe7cb, which hashed the prompt
                 once per known length (text_digest of each prefix, memoised per length only).
prompt build     ppd.traces.prompts.PromptMaker.prompt, a Mooncake-sized prompt (`--prompt-words`,
                 12,288 = 24 blocks of 512) of block ids never seen before. Baseline: the maker
                 before commit 797c1e7, which drew each block's words from a generator seeded by
                 (seed, block id) and joined them (with its LRU of block texts, which fresh ids miss).

Each figure: median and p90 over `--reps` calls, baseline and current interleaved call by call.
Ends with: hot_paths lookup_ms old=<f> new=<f> prompt_ms old=<f> new=<f>
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from functools import lru_cache
from typing import Any

import numpy as np

from ppd.router.chunks import CHUNK_BYTES, chunk_keys
from ppd.router.history import HEAD_BYTES, PrefixIndex, text_digest
from ppd.tokens import NUM_WORD_TOKENS
from ppd.traces import prompts
from ppd.traces.prompts import PromptMaker

# ---------------------------------------------------------------- baselines, as they were


def old_longest_long_prefix(index: PrefixIndex, prompt: bytes) -> Hashable | None:
    """PrefixIndex._longest_long_prefix before abfe7cb: one text_digest per known length."""
    if len(prompt) < HEAD_BYTES:
        return None
    bucket = index._long.get(prompt[:HEAD_BYTES])
    if not bucket:
        return None
    view = memoryview(prompt)
    digest_by_length: dict[int, bytes] = {}
    best_owner: Hashable | None = None
    best_length = -1
    for owner, known in bucket.items():
        if best_length < known.num_bytes <= len(prompt):
            digest = digest_by_length.get(known.num_bytes)
            if digest is None:
                digest = digest_by_length[known.num_bytes] = text_digest(view[: known.num_bytes])
            if digest == known.digest:
                best_owner, best_length = owner, known.num_bytes
    return best_owner


@lru_cache(maxsize=1)
def _old_words() -> np.ndarray[Any, np.dtype[np.object_]]:
    return np.array([f"w{i}" for i in range(NUM_WORD_TOKENS)], dtype=object)


def _old_block_token_ids(seed: int, block_id: int, block_size: int) -> np.ndarray[Any, np.dtype[np.int64]]:
    rng = np.random.default_rng((seed, block_id))
    return rng.integers(0, NUM_WORD_TOKENS, block_size)


class OldPromptMaker:
    """PromptMaker before 797c1e7 (its block-id path)."""

    def __init__(self, seed: int, block_size: int, max_cached_blocks: int = 4096) -> None:
        self.seed = seed
        self.block_size = block_size
        self._max_cached_blocks = max_cached_blocks
        self._block_texts: OrderedDict[int, str] = OrderedDict()

    def prompt(self, request_index: int, num_input_tokens: int, block_ids: tuple[int, ...]) -> str:
        full_blocks, rest = divmod(num_input_tokens, self.block_size)
        parts = [self._block_text(block_id) for block_id in block_ids[:full_blocks]]
        if rest:
            last_ids = _old_block_token_ids(self.seed, block_ids[-1], self.block_size)[:rest]
            parts.append(" ".join(_old_words()[last_ids]))
        return " ".join(parts)

    def _block_text(self, block_id: int) -> str:
        text = self._block_texts.get(block_id)
        if text is not None:
            self._block_texts.move_to_end(block_id)
            return text
        text = " ".join(_old_words()[_old_block_token_ids(self.seed, block_id, self.block_size)])
        self._block_texts[block_id] = text
        if len(self._block_texts) > self._max_cached_blocks:
            self._block_texts.popitem(last=False)
        return text


# ---------------------------------------------------------------- timing


def interleaved_ms(calls: dict[str, Callable[[int], object]], reps: int) -> dict[str, list[float]]:
    samples: dict[str, list[float]] = {name: [] for name in calls}
    for rep in range(reps):
        for name, call in calls.items():
            started = time.perf_counter()
            call(rep)
            samples[name].append(1000.0 * (time.perf_counter() - started))
    return samples


def summary(values: list[float]) -> str:
    return f"median {statistics.median(values):9.3f} ms  p90 {float(np.percentile(values, 90)):9.3f} ms"


def history_lookup(reps: int, num_conversations: int) -> dict[str, list[float]]:
    # "old" and "new" compare lookups within one head bucket: an index whose chunk is larger than any
    # text keeps every text there, as it was before texts of whole chunks were bucketed by their last
    # chunk's key (router/chunks.py), which "chunked" (the index as the router builds it) adds.
    index = PrefixIndex(chunk_bytes=1 << 62)
    chunked = PrefixIndex()
    head = b"s" * 300
    for owner in range(num_conversations):
        index.add(owner, head + b"x" * (owner * 500))
        chunked.add(owner, head + b"x" * (owner * 500))
    longest = num_conversations - 1
    prompt = head + b"x" * (longest * 500) + b" new words"
    found = (
        index.longest_prefix_owner(prompt, chunk_keys(prompt, index.chunk_bytes)),
        old_longest_long_prefix(index, prompt),
        chunked.longest_prefix_owner(prompt, chunk_keys(prompt, chunked.chunk_bytes)),
    )
    if found != (longest, longest, longest):
        raise RuntimeError("the lookups disagree with the index's contents")
    print(
        f"history lookup: {num_conversations} conversations in one head bucket, prompt {len(prompt)} bytes, "
        f"{reps} reps"
    )
    return interleaved_ms(
        {
            "old": lambda _: old_longest_long_prefix(index, prompt),
            # the keys are made in the timed call, as the lookup made them itself before
            "new": lambda _: index.longest_prefix_owner(prompt, chunk_keys(prompt, index.chunk_bytes)),
            "chunked": lambda _: chunked.longest_prefix_owner(prompt, chunk_keys(prompt, CHUNK_BYTES)),
        },
        reps,
    )


def prompt_build(reps: int, num_words: int, block_size: int) -> dict[str, list[float]]:
    num_blocks = -(-num_words // block_size)
    new_maker, old_maker = (
        PromptMaker(seed=1, block_size=block_size),
        OldPromptMaker(seed=1, block_size=block_size),
    )
    started = time.perf_counter()
    prompts.prepare()
    _old_words()
    print(
        f"prompt build: corpus and word table built once in {time.perf_counter() - started:.2f} s (not timed)"
    )

    def ids(rep: int, base: int) -> tuple[int, ...]:
        return tuple(range(base + rep * num_blocks, base + (rep + 1) * num_blocks))  # never seen before

    if len(new_maker.prompt(-1, num_words, ids(0, 10**9)).split(" ")) != num_words:
        raise RuntimeError("PromptMaker made a prompt of the wrong length")
    print(f"prompt build: {num_words} words = {num_blocks} fresh blocks of {block_size}, {reps} reps")
    return interleaved_ms(
        {
            "old": lambda rep: old_maker.prompt(rep, num_words, ids(rep, 0)),
            "new": lambda rep: new_maker.prompt(rep, num_words, ids(rep, 0)),
        },
        reps,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=21)
    parser.add_argument("--conversations", type=int, default=2000)
    parser.add_argument("--prompt-words", type=int, default=12_288)
    parser.add_argument("--block-size", type=int, default=512)
    args = parser.parse_args()
    print(
        f"hot_paths: python {sys.version.split()[0]}, numpy {np.__version__}, load average {os.getloadavg()}"
    )
    lookup = history_lookup(args.reps, args.conversations)
    for name, values in lookup.items():
        print(f"  {name:<7} {summary(values)}")
    build = prompt_build(args.reps, args.prompt_words, args.block_size)
    for name, values in build.items():
        print(f"  {name:<4} {summary(values)}")
    print(f"load average after: {os.getloadavg()}")
    medians = {
        f"{part}_{name}": statistics.median(values[name])
        for part, values in (("lookup", lookup), ("prompt", build))
        for name in values
    }
    print(
        f"hot_paths lookup_ms old={medians['lookup_old']:.3f} new={medians['lookup_new']:.3f} "
        f"prompt_ms old={medians['prompt_old']:.3f} new={medians['prompt_new']:.3f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
