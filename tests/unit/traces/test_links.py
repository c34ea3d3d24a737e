"""The conversation rule: a shared prefix beyond the common head links a request to its history."""

from __future__ import annotations

from ppd.traces.links import common_head, link_conversations
from ppd.traces.records import Trace, TraceRequest


def _trace(*block_lists: tuple[int, ...]) -> Trace:
    requests = tuple(
        TraceRequest(index, float(index), 512 * len(blocks), 1, blocks)
        for index, blocks in enumerate(block_lists)
    )
    return Trace("t", "t", "mooncake", 512, requests)


def test_common_head_is_what_more_than_half_start_with() -> None:
    trace = _trace((0, 7, 1), (0, 7, 2), (0, 7), (0, 3), (5,))
    assert common_head(trace.requests) == (0, 7)
    assert common_head(_trace((1,), (2,)).requests) == ()


def test_a_shared_prefix_beyond_the_head_links_even_when_the_last_block_changed() -> None:
    trace = _trace(
        (0, 1, 2, 3),  # conversation A, turn 1 (block 3 partial)
        (0, 4, 5),  # conversation B
        (0, 1, 2, 6, 7),  # A turn 2: repeats 0 1 2, its history's last block became 6
        (0, 8),  # only the common head: a new conversation
        (0, 1, 2, 6, 9),  # A turn 3
        (0, 4, 10),  # B turn 2
    )
    links = link_conversations(trace)
    assert links.common_head == (0,)
    assert links.conversation_of == (0, 1, 0, 3, 0, 1)
    assert links.turn_of == (1, 1, 2, 1, 3, 2)
    assert links.num_linked == 3 and links.linked_share == 0.5 and links.num_conversations == 3
    assert links.shared_blocks_of == (0, 0, 3, 0, 4, 2)


def test_the_longest_shared_prefix_wins_then_the_latest() -> None:
    trace = _trace((0, 1, 2), (0, 1, 3), (0, 1, 2, 4), (0, 1, 5), (0, 6), (0, 7), (0, 8), (0, 9))
    links = link_conversations(trace)
    # request 1 shares (0, 1) with 0; request 2 shares (0, 1, 2) with 0 (a branch, numbered after 1);
    # request 3 shares (0, 1) with 0, 1 and 2 and takes the latest.
    assert links.common_head == (0,)
    assert links.conversation_of[:4] == (0, 0, 0, 0)
    assert links.turn_of[:4] == (1, 2, 3, 4)


def test_requests_without_block_ids_never_link() -> None:
    trace = Trace("a", "a", "azure", 0, tuple(TraceRequest(i, float(i), 10, 1) for i in range(3)))
    links = link_conversations(trace)
    assert links.turn_of == (1, 1, 1) and links.num_linked == 0
