"""How many elements a JSON text can hold and how deeply its values nest, checked cheaply.

`json.loads` costs ~0.3 µs per element and more per array or object, all on the event loop: a
16 MiB body of `[],[],...` took 7.5 s to parse, and 541k one-word chat messages froze the proxy
for 2.1 s. So the number of elements is bounded from the bytes first, piece by piece as they
arrive, in C-speed passes, and only a text within the bound is parsed; the depth is then measured
on the parsed value, whose size is bounded.
"""

from __future__ import annotations

from typing import Any

# What opens, closes, separates and quotes JSON elements; every other byte is dropped before counting.
_STRUCTURE = b'[]{},"'
_NOT_STRUCTURE = bytes(byte for byte in range(256) if byte not in _STRUCTURE)


class JsonSizeError(ValueError):
    """The text can hold more elements than allowed; the message says which bound it passed."""


class JsonSizeCounter:
    """Counts, over a JSON text fed in pieces, the bytes that bound how many elements it holds;
    raises JsonSizeError as soon as a bound is passed, so a body over it need not even be read whole.

    The bounds, from the bytes alone: at most max_elements values (quotes / 2 + commas + opening
    brackets + 1: strings and keys, numbers, literals, arrays, objects) and at most
    max_elements // 10 arrays and objects (each costs json.loads and a walk several times what a
    number or string does). Brackets, commas and quotes inside strings count too, so a prompt of
    plain text passes however long it is, and one full of them passes up to some 100k (far more
    than a model context of text holds). One C-speed `translate` per piece, then counts over what
    is left, which is small unless the bound is passed.
    """

    def __init__(self, max_elements: int) -> None:
        self.max_elements = max_elements
        self.max_containers = max_elements // 10
        self.num_containers = 0  # opening brackets so far
        self._num_separators = 0  # quotes / 2 + commas so far, times two
        self._num_structure_bytes = 0

    def feed(self, data: bytes) -> None:
        """Count one more piece of the text; JsonSizeError once it is over a bound."""
        skeleton = data.translate(None, _NOT_STRUCTURE)
        self._num_structure_bytes += len(skeleton)
        # Each element adds at most two structural bytes (a string's quotes, a container's
        # brackets) plus one comma: a longer skeleton is over the bound, whatever it holds.
        if self._num_structure_bytes > 3 * (self.max_elements + 1):
            raise JsonSizeError(f"more than {self.max_elements} elements")
        self.num_containers += skeleton.count(b"[") + skeleton.count(b"{")
        if self.num_containers > self.max_containers:
            raise JsonSizeError(f"more than {self.max_containers} arrays and objects")
        self._num_separators += skeleton.count(b'"') + 2 * skeleton.count(b",")
        if self._num_separators // 2 + self.num_containers + 1 > self.max_elements:
            raise JsonSizeError(f"more than {self.max_elements} elements")


def check_json_size(raw: bytes, max_elements: int) -> int:
    """JsonSizeCounter over a whole text: the number of opening brackets (an upper bound on its
    arrays and objects), or JsonSizeError."""
    counter = JsonSizeCounter(max_elements)
    counter.feed(raw)
    return counter.num_containers


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
