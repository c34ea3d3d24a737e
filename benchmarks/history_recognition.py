"""How many of a trace's later turns does the router recognise without session ids, and at what cost
per request? The Mooncake conversation trace replayed through the router core's ConversationStore
(what `ppd proxy` and `ppd fleet` use), in arrival order, each request committed before the next, as
under `ppd bench --no-session-id` (a later turn waits for the turn before it).

Prompts are the bench's (ppd.traces.prompts, one seed); each answer is the trace's output length in
words, so the whole-history index (history.py) holds what a proxy's would. A new conversation's
holder is one of four instances in turn; a recognised one keeps its holder.

Recognition is compared with the trace's link rule (ppd.traces.links: what `ppd bench` sends with
one X-Session-ID): of the rule's later turns, how many the router put in the rule's conversation
(`recognised`), in another one (`wrong`), or took for a new conversation (`missed`); and how many of
the rule's first turns it took for a later turn (`false_links`).

Cost, per request, side by side in the same run: today's lookup (session-id-free history only:
`_find_by_history`), then the whole `recognise` (chunk keys of the prompt + the history lookup + the
chunk lookup), and `commit_turn` (which indexes the keys). Timing: run under the exclusive lock.

    flock /work/cpu.lock python benchmarks/history_recognition.py [--trace FILE] [--limit N]
        [--chunk-bytes 1024] [--common-share 0.5] [--chunks-per-instance 65536] [--keyed-bytes 1048576]

It ends with

    history_recognition linked=L recognised=R share=S wrong=W missed=M false_links=F
        lookup_us_mean=A recognise_us_mean=B commit_us_mean=C
"""

from __future__ import annotations

import argparse
import itertools
import platform
import statistics
import sys
import time
from pathlib import Path

from ppd.router.chunks import CHUNK_BYTES, CHUNKS_PER_INSTANCE, COMMON_SHARE, KEYED_BYTES, ChunkIndex
from ppd.router.conversations import ConversationStore, Identity, TurnOutcome
from ppd.traces import prompts as prompt_words
from ppd.traces.formats import read_trace_spec
from ppd.traces.prompts import PromptMaker

DEFAULT_TRACE = Path(__file__).resolve().parents[1] / "data/traces/mooncake-conversation_trace.jsonl.gz"
INSTANCES = ("i0", "i1", "i2", "i3")


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trace", type=Path, default=DEFAULT_TRACE)
    parser.add_argument("--limit", type=int, default=0, help="only the first N requests (0: all)")
    parser.add_argument("--chunk-bytes", type=int, default=CHUNK_BYTES)
    parser.add_argument("--common-share", type=float, default=COMMON_SHARE)
    parser.add_argument("--chunks-per-instance", type=int, default=CHUNKS_PER_INSTANCE, help="the LRU cap")
    parser.add_argument("--keyed-bytes", type=int, default=KEYED_BYTES, help="a prompt's keyed lead")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    linked = read_trace_spec(f"mooncake:{args.trace}")
    requests = linked.trace.requests[: args.limit or None]
    links = linked.links
    maker = PromptMaker(args.seed, linked.trace.block_size)
    prompt_words.prepare()
    chunks = ChunkIndex(
        args.chunk_bytes, args.chunks_per_instance * len(INSTANCES), args.common_share, args.keyed_bytes
    )
    store = ConversationStore(100_000, 3600.0, clock=lambda: 0.0, chunks=chunks)
    new_holders = itertools.cycle(INSTANCES)
    rule_conversation_of_key: dict[str, int] = {}  # router conversation -> the rule's, of its first turn
    counts = dict.fromkeys(("linked", "recognised", "wrong", "missed", "false_links"), 0)
    by_history = 0
    lookup_us: list[float] = []
    recognise_us: list[float] = []
    commit_us: list[float] = []
    prompt_bytes_total = 0
    for request in requests:
        prompt = maker.prompt(request.index, request.num_input_tokens, request.block_ids).encode()
        prompt_bytes_total += len(prompt)
        identity = Identity(prompt_bytes=prompt)
        now_s = request.arrival_s

        keys, num_text_bytes = store._lead_keys(identity)  # recognise makes them for both lookups
        started = time.perf_counter()
        store._find_by_history(identity, keys, num_text_bytes)  # the history lookup, alone
        lookup_us.append((time.perf_counter() - started) * 1e6)

        started = time.perf_counter()
        recognition = store.recognise(identity, now_s)
        recognise_us.append((time.perf_counter() - started) * 1e6)

        conversation = recognition.conversation
        holder = conversation.holder_url if conversation is not None else next(new_holders)
        answer = " ".join(f"w{n % 1000}" for n in range(request.num_output_tokens))
        started = time.perf_counter()
        committed = store.commit_turn(
            identity,
            recognition,
            TurnOutcome(holder or INSTANCES[0], request.num_input_tokens, request.num_output_tokens, answer),
            now_s,
        )
        commit_us.append((time.perf_counter() - started) * 1e6)

        rule_conversation = links.conversation_of[request.index]
        is_later_turn = links.turn_of[request.index] > 1
        by_history += recognition.by == "history"
        if is_later_turn:
            counts["linked"] += 1
            if conversation is None:
                counts["missed"] += 1
            elif rule_conversation_of_key.get(conversation.key) == rule_conversation:
                counts["recognised"] += 1
            else:
                counts["wrong"] += 1
        elif conversation is not None:
            counts["false_links"] += 1
        rule_conversation_of_key.setdefault(committed.key, rule_conversation)

    share = counts["recognised"] / counts["linked"] if counts["linked"] else 0.0
    print(
        f"# {args.trace.name}: {len(requests)} requests ({prompt_bytes_total / len(requests) / 1024:.1f} KiB "
        f"of prompt each on average), chunk {args.chunk_bytes} B, keyed lead {args.keyed_bytes} B, "
        f"common share {args.common_share:g}, "
        f"{len(chunks)} keys indexed at the end (cap {chunks.max_chunks}: {args.chunks_per_instance} x "
        f"{len(INSTANCES)} instances); Python {platform.python_version()}"
    )
    print(
        f"link rule: {counts['linked']} later turns; router without session ids: {counts['recognised']} in "
        f"the rule's conversation ({share:.1%}), {counts['wrong']} in another, {counts['missed']} taken "
        f"for new; {counts['false_links']} of the rule's first turns taken for later turns; "
        f"{by_history} found by whole history"
    )
    print(f"{'per request':>28} {'mean us':>9} {'p50 us':>9} {'p99 us':>9}")
    for label, values in (
        ("history lookup (today)", lookup_us),
        ("recognise (keys + both)", recognise_us),
        ("commit_turn (indexing)", commit_us),
    ):
        print(
            f"{label:>28} {statistics.fmean(values):>9.1f} {percentile(values, 0.5):>9.1f} "
            f"{percentile(values, 0.99):>9.1f}"
        )
    print(
        f"history_recognition linked={counts['linked']} recognised={counts['recognised']} share={share:.4f} "
        f"wrong={counts['wrong']} missed={counts['missed']} false_links={counts['false_links']} "
        f"lookup_us_mean={statistics.fmean(lookup_us):.1f} "
        f"recognise_us_mean={statistics.fmean(recognise_us):.1f} "
        f"commit_us_mean={statistics.fmean(commit_us):.1f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
