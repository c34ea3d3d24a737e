"""How many elements a JSON text can hold and how deeply its values nest, checked cheaply.

`json.loads` costs ~0.3 µs per element and more per array or object, all on the event loop: a
16 MiB body of `[],[],...` took 7.5 s to parse, and 541k one-word chat messages froze the proxy
for 2.1 s. So the number of elements is bounded from the bytes first, in one C-speed pass, and only
a text within the bound is parsed; the depth is then measured on the parsed value, whose size is
bounded.
"""

from __future__ import annotations

from typing import Any

# What opens, closes, separates and quotes JSON elements; every other byte is dropped before counting.
_STRUCTURE = b'[]{},"'
_NOT_STRUCTURE = bytes(byte for byte in range(256) if byte not in _STRUCTURE)


class JsonSizeError(ValueError):
    """The text can hold more elements than allowed; the message says which bound it passed."""


def check_json_size(raw: bytes, max_elements: int) -> int:
    """The number of opening brackets in `raw` (an upper bound on its arrays and objects); raise
    JsonSizeError when `raw` may hold more than max_elements values (strings and keys,
    numbers, literals, arrays, objects), or more than max_elements // 10 arrays and objects (each
    costs json.loads and a walk several times what a number or string does).

    The counts are upper bounds from the bytes alone: quotes / 2 + commas + opening brackets + 1,
    brackets, commas and quotes inside strings included. So a prompt of plain text passes however
    long it is, and one full of quotes, commas and brackets passes up to some 100k of them (far
    more than a model context of text holds). One pass over the bytes, then counts over what is
    left, which is small unless the check fails.
    """
    skeleton = raw.translate(None, _NOT_STRUCTURE)
    # Each element adds at most two structural bytes (a string's quotes, a container's brackets)
    # plus one comma after it: a longer skeleton is over the bound, whatever it holds.
    if len(skeleton) > 3 * (max_elements + 1):
        raise JsonSizeError(f"more than {max_elements} elements")
    num_containers = skeleton.count(b"[") + skeleton.count(b"{")
    max_containers = max_elements // 10
    if num_containers > max_containers:
        raise JsonSizeError(f"more than {max_containers} arrays and objects")
    if skeleton.count(b'"') // 2 + skeleton.count(b",") + num_containers + 1 > max_elements:
        raise JsonSizeError(f"more than {max_elements} elements")
    return num_containers


def nests_deeper_than(value: Any, max_depth: int) -> bool:
    """Whether lists and objects nest more than max_depth levels deep in a parsed JSON value.

    Level by level, each level one comprehension over its children: no recursion, and one cheap
    step per element (a stack of (item, depth) tuples cost ~4 µs per array).
    """
    level = [value] if isinstance(value, (dict, list)) else []
    for _ in range(max_depth):
        if not level:
            return False
        level = [
            child
            for item in level
            for child in (item.values() if isinstance(item, dict) else item)
            if isinstance(child, (dict, list))
        ]
    return bool(level)
