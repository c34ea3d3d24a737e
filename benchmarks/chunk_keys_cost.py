"""What recognising a conversation without a session id costs the proxy's event loop, for one large
prompt, and the memory of one chunk key (router/chunks.py) in an instance's index.

Each call of the router core's conversation store (`recognise` when a request arrives, `commit_turn`
when its answer completed) runs in one step of the event loop: nothing else is served meanwhile. For
a prompt of `--prompt-mib` MiB of words (as the bench's), completions and chat, and a chat turn whose
user message is a short question and an image part carrying that many MiB of data URL (chat-image),
four calls are timed
on a fresh store that knows three other conversations: turn 1's recognise (a new conversation) and
commit, then turn 2 (turn 1's prompt + answer + a question) recognise, and how it was found (`by2`:
its whole history, or its leading chunks), and commit. Each figure is the best of
`--repeats` fresh stores. With --baseline-src DIR (another checkout's src/, e.g. `git archive REV src
| tar -x -C DIR`), the same calls are timed on that code too, in a child process, in the same run.
Lines:

    chunk_steps src=this|baseline api=completions|chat|chat-image prompt_mib=8 recognise1_ms=.. commit1_ms=..
        recognise2_ms=.. commit2_ms=.. by2=history longest_ms=..
    chunk_keys prompt_mib=8 keys=K key_ms=.. index_bytes_per_key=..

The last line is this tree's `chunk_keys` (every key it makes for the prompt) and the Python heap
one key adds to an index.

Run: flock /work/cpu.lock python benchmarks/chunk_keys_cost.py [--prompt-mib 8] [--baseline-src DIR]
     [--apis completions,chat,chat-image]
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

SRC = Path(__file__).resolve().parents[1] / "src"
if "--src" in sys.argv:  # a child timing another checkout's code (--baseline-src)
    SRC = Path(sys.argv[sys.argv.index("--src") + 1])
sys.path.insert(0, str(SRC))

KEYS_PER_PROMPT = 60  # ~60 KiB prompts: the Mooncake trace's size class
OTHER_TAGS = ("x", "y", "z")  # conversations known before the timed one
OTHER_PROMPT_BYTES = 64 * 1024
ANSWER = " ".join(f"w{n}" for n in range(200))
APIS = ("completions", "chat", "chat-image")


def words_text(num_bytes: int, tag: str = "w") -> str:
    """About num_bytes of distinct `w<N>` words, as the bench's prompts (another tag: other words)."""
    words: list[str] = []
    size = 0
    n = 0
    while size < num_bytes:
        word = f"{tag}{n % 100_003}"
        words.append(word)
        size += len(word) + 1
        n += 1
    return " ".join(words)


def identities(api: str, prompt: str) -> tuple[Any, Any]:
    """Turn 1's and turn 2's identities (turn 2: turn 1's history + ANSWER + a question)."""
    from ppd.router.conversations import Identity

    if api in ("chat", "chat-image"):
        first = [{"role": "user", "content": prompt}]
        if api == "chat-image":  # a data URL as long as the prompt (prompt characters stand in for base64)
            image = {"type": "image_url", "image_url": {"url": "data:image/png;base64," + prompt}}
            first = [{"role": "user", "content": [{"type": "text", "text": "what is in it?"}, image]}]
        second = [*first, {"role": "assistant", "content": ANSWER}, {"role": "user", "content": "go on"}]
        return Identity(chat_messages=first), Identity(chat_messages=second)
    return (
        Identity(prompt_bytes=prompt.encode()),
        Identity(prompt_bytes=f"{prompt} {ANSWER} and then?".encode()),
    )


def commit(store: Any, identity: Any, recognition: Any, outcome: Any) -> None:
    """commit_turn with what recognise() made, as the router core does, in this tree's signature or a
    baseline's (which took the conversation, chunk keys and, later, the text length one by one)."""
    parameters = inspect.signature(store.commit_turn).parameters
    if "recognition" in parameters:
        store.commit_turn(identity, recognition, outcome, 0.0)
        return
    measured = {"num_text_bytes": recognition.num_text_bytes} if "num_text_bytes" in parameters else {}
    store.commit_turn(identity, recognition.conversation, outcome, 0.0, recognition.chunk_keys, **measured)


def step_ms(api: str, prompt_mib: float, repeats: int) -> dict[str, Any]:
    """The best time of each of the four store calls over `repeats` fresh stores, ms."""
    from ppd.router.conversations import ConversationStore, TurnOutcome

    first, second = identities(api, words_text(int(prompt_mib * 2**20)))
    others = [identities(api, words_text(OTHER_PROMPT_BYTES, tag))[0] for tag in OTHER_TAGS]
    best: dict[str, float] = {}
    by2 = None
    for _ in range(repeats):
        store = ConversationStore(100, 3600.0, clock=lambda: 0.0)
        for other in others:  # other conversations first, so the prompt's keys are its own, not common
            commit(
                store,
                other,
                store.recognise(other, 0.0),
                TurnOutcome("http://127.0.0.1:8300", 10, 200, ANSWER),
            )
        times: dict[str, float] = {}
        for turn, identity in ((1, first), (2, second)):
            started = time.perf_counter()
            recognition = store.recognise(identity, 0.0)
            times[f"recognise{turn}_ms"] = (time.perf_counter() - started) * 1e3
            outcome = TurnOutcome("http://127.0.0.1:8200", 1000, 200, ANSWER)
            started = time.perf_counter()
            commit(store, identity, recognition, outcome)
            times[f"commit{turn}_ms"] = (time.perf_counter() - started) * 1e3
            if turn == 2:
                by2 = recognition.by
        for name, value in times.items():
            best[name] = min(value, best.get(name, value))
    return {**best, "by2": by2, "longest_ms": max(best.values())}


def key_ms(prompt: bytes, repeats: int) -> float:
    """Best of `repeats` wall times of chunk_keys over the whole prompt, ms."""
    from ppd.router.chunks import chunk_keys

    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        chunk_keys(prompt)
        times.append(time.perf_counter() - start)
    return min(times) * 1e3


def index_bytes_per_key(num_keys: int) -> float:
    """Python heap the index grows by per key, keys added KEYS_PER_PROMPT per owner."""
    from ppd.router.chunks import CHUNK_BYTES, ChunkIndex, chunk_keys

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


def steps_line(label: str, api: str, prompt_mib: float, figures: dict[str, Any]) -> str:
    numbers = " ".join(
        f"{name}={figures[name]:.2f}"
        for name in ("recognise1_ms", "commit1_ms", "recognise2_ms", "commit2_ms", "longest_ms")
    )
    return f"chunk_steps src={label} api={api} prompt_mib={prompt_mib:g} {numbers} by2={figures['by2']}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompt-mib", type=float, default=8.0)
    parser.add_argument("--keys", type=int, default=60_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--baseline-src", type=Path, help="also time another checkout's src/")
    parser.add_argument("--src", type=Path, help=argparse.SUPPRESS)  # the child's tree
    parser.add_argument("--apis", default=",".join(APIS), help="comma-separated, of %(default)s")
    parser.add_argument("--child", choices=APIS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.prompt_mib <= 0 or args.keys < KEYS_PER_PROMPT or args.repeats < 1:
        parser.error(f"--prompt-mib must be > 0, --repeats >= 1, --keys >= {KEYS_PER_PROMPT}")
    apis = args.apis.split(",")
    if not set(apis) <= set(APIS):
        parser.error(f"--apis: each of {', '.join(APIS)}, not {args.apis!r}")
    if args.child:
        print(json.dumps(step_ms(args.child, args.prompt_mib, args.repeats)))
        return
    if args.baseline_src is not None and not (args.baseline_src / "ppd" / "router").is_dir():
        parser.error(f"--baseline-src {args.baseline_src} has no ppd/router package")
    for api in apis:
        sources = [("baseline", args.baseline_src)] if args.baseline_src else []
        for label, src in [*sources, ("this", SRC)]:
            argv = [sys.executable, __file__, "--src", str(src), "--child", api]
            argv += ["--prompt-mib", str(args.prompt_mib), "--repeats", str(args.repeats)]
            figures = json.loads(subprocess.run(argv, check=True, capture_output=True, text=True).stdout)
            print(steps_line(label, api, args.prompt_mib, figures), flush=True)
    prompt = os.urandom(int(args.prompt_mib * 2**20))
    from ppd.router.chunks import CHUNK_BYTES

    print(
        f"chunk_keys prompt_mib={args.prompt_mib:g} keys={len(prompt) // CHUNK_BYTES} "
        f"key_ms={key_ms(prompt, args.repeats):.1f} index_bytes_per_key={index_bytes_per_key(args.keys):.0f}"
    )


if __name__ == "__main__":
    main()
