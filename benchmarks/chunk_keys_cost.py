"""What the router's chunk keys (router/chunks.py) cost: the time to key one large prompt, which a
request without a session id pays on the proxy's event loop, and the memory of one key in an
instance's index. Prints one line:

    chunk_keys prompt_mib=8 keys=8192 key_ms=... index_bytes_per_key=...

Run: python benchmarks/chunk_keys_cost.py [--prompt-mib 8] [--keys 60000]
"""

from __future__ import annotations

import argparse
import os
import time
import tracemalloc

from ppd.router.chunks import CHUNK_BYTES, ChunkIndex, chunk_keys

KEYS_PER_PROMPT = 60  # ~60 KiB prompts: the Mooncake trace's size class


def key_ms(prompt: bytes, repeats: int) -> float:
    """Best of `repeats` wall times of keying `prompt`, ms."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        chunk_keys(prompt)
        times.append(time.perf_counter() - start)
    return min(times) * 1e3


def index_bytes_per_key(num_keys: int) -> float:
    """Python heap the index grows by per key, keys added KEYS_PER_PROMPT per owner."""
    keys = chunk_keys(os.urandom(num_keys * CHUNK_BYTES))
    index = ChunkIndex(max_chunks=num_keys)
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for start in range(0, len(keys), KEYS_PER_PROMPT):
        owner_keys = keys[start : start + KEYS_PER_PROMPT]
        index.add(("conversation", start), "http://127.0.0.1:8200", owner_keys, True)
    grown = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    return grown / len(index)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompt-mib", type=int, default=8)
    parser.add_argument("--keys", type=int, default=60_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    if args.prompt_mib < 1 or args.keys < KEYS_PER_PROMPT or args.repeats < 1:
        parser.error(f"--prompt-mib and --repeats must be >= 1, --keys >= {KEYS_PER_PROMPT}")
    prompt = os.urandom(args.prompt_mib * 2**20)
    print(
        f"chunk_keys prompt_mib={args.prompt_mib} keys={len(prompt) // CHUNK_BYTES} "
        f"key_ms={key_ms(prompt, args.repeats):.1f} index_bytes_per_key={index_bytes_per_key(args.keys):.0f}"
    )


if __name__ == "__main__":
    main()
