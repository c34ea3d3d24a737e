"""One prompt whose path of chunk keys hits many known-history buckets: the cost of one lookup.

A client can line up conversations X[:m chunks] + "z" for m = 1..M (no session id); every later
prompt starting with X then hits M buckets. Each bucket checked used to hash the prompt from byte 0
(M x the lead); now a bucket's digest covers only the text past its whole chunks (< a chunk each).

    python benchmarks/history_buckets.py [--buckets 1024] [--baseline-src DIR]

Prints `history_buckets buckets=M lookup_ms=<f>` (and `history_buckets_baseline ...` for DIR's
src/ppd, e.g. an export of an older commit), each the median of five lookups.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

CHUNK_BYTES = 1024


def measure(num_buckets: int) -> float:
    from ppd.router.chunks import chunk_keys
    from ppd.router.history import PrefixIndex

    index = PrefixIndex(chunk_bytes=CHUNK_BYTES)
    lead = os.urandom(num_buckets * CHUNK_BYTES).replace(b"z", b"y")  # no known text prefixes the prompt
    for m in range(1, num_buckets + 1):
        index.add(m, lead[: m * CHUNK_BYTES] + b"z")
    prompt = lead + b"q"
    times = []
    for _ in range(5):
        start = time.perf_counter()
        assert index.longest_prefix_owner(prompt, chunk_keys(prompt, CHUNK_BYTES)) is None  # keys timed too
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--buckets", type=int, default=1024)
    parser.add_argument("--baseline-src", help="a src/ folder holding another ppd to time beside this one")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(f"{measure(args.buckets):.3f}")
        return 0
    if args.baseline_src:
        env = dict(os.environ, PYTHONPATH=args.baseline_src)
        out = subprocess.run([sys.executable, __file__, "--child", "--buckets", str(args.buckets)], env=env,
                             capture_output=True, text=True, check=True, timeout=600).stdout  # fmt: skip
        print(f"history_buckets_baseline buckets={args.buckets} lookup_ms={float(out):.3f}")
    print(f"history_buckets buckets={args.buckets} lookup_ms={measure(args.buckets):.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
