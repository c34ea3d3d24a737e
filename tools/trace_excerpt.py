"""Cut a Mooncake trace excerpt: whole conversations, so it keeps its linked turns.

Keeps, verbatim, every line of the conversations whose first request arrived in [START, START+SPAN)
s of the trace, up to START+HORIZON s. The shipped excerpt was made with:

    python tools/trace_excerpt.py data/traces/mooncake-conversation_trace.jsonl.gz \\
        src/ppd/traces/data/mooncake-conversation-excerpt.jsonl --start 1200 --span 30 --horizon 900
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ppd.traces.files import read_text
from ppd.traces.links import link_conversations
from ppd.traces.mooncake import read_mooncake


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("trace", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--start", type=float, required=True, help="s of the trace")
    parser.add_argument("--span", type=float, required=True, help="conversations starting within, s")
    parser.add_argument("--horizon", type=float, required=True, help="keep their turns until START+this, s")
    args = parser.parse_args()
    trace = read_mooncake(args.trace)
    links = link_conversations(trace)
    start_s, first_end_s, end_s = args.start, args.start + args.span, args.start + args.horizon
    chosen = {
        links.conversation_of[r.index]
        for r in trace.requests
        if start_s <= r.arrival_s < first_end_s and links.turn_of[r.index] == 1
    }
    keep = {
        r.index for r in trace.requests if links.conversation_of[r.index] in chosen and r.arrival_s < end_s
    }
    lines = [line for line in read_text(args.trace).splitlines() if line.strip()]
    args.out.write_text("".join(lines[index] + "\n" for index in sorted(keep)))
    print(f"{args.out}: {len(keep)} requests of {len(chosen)} conversations")


if __name__ == "__main__":
    main()
