"""One request inside the engine: its tokens, how far it is computed, its KV blocks, its output."""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

from ppd.sim.kv_cache import KVBlock
from ppd.tokens import FIRST_RESERVED_TOKEN_ID, NUM_RESERVED_TOKENS, NUM_WORD_TOKENS

# Answer word k of a request is (answer_seed + k * _ANSWER_STRIDE) mod the vocabulary, shifted past
# w0 (the GPU tokenizer's unknown-word token). A large odd stride makes consecutive words look random.
# (Final constants: the compiled build inlines them instead of looking them up per use.)
_ANSWER_STRIDE: Final = 2_654_435_761
_NUM_ANSWER_WORDS: Final = NUM_WORD_TOKENS - 1


class RequestStatus(enum.Enum):
    WAITING = "waiting"
    RUNNING = "running"
    FINISHED = "finished"
    ABORTED = "aborted"


@dataclass(eq=False, slots=True)
class Request:
    """A request as the scheduler sees it. token_ids holds the prompt followed by the output."""

    request_id: str
    token_ids: list[int]
    num_prompt_tokens: int
    max_tokens: int
    block_hashes: list[int]  # chained hashes of the full blocks of token_ids computed so far
    answer_seed: int
    special_token_rate: float = 0.0  # SimConfig.special_token_rate
    arrival_s: float = 0.0
    ready_s: float = 0.0  # modeled loop time at which the engine may first see it (after the API)
    num_external_tokens: int = 0  # prompt tokens whose KV was pulled from a remote P (act as D)
    hold_kv_on_finish: bool = False  # keep the blocks for a remote decode instance (act as P)
    status: RequestStatus = RequestStatus.WAITING
    num_computed_tokens: int = 0
    num_cached_tokens: int = -1  # set when first scheduled, as vLLM reports it
    num_committed_blocks: int = 0  # leading blocks already entered into the prefix cache
    blocks: list[KVBlock] = field(default_factory=list)  # its KV blocks, in token order
    num_preemptions: int = 0
    first_token_s: float | None = None
    lease_id: str | None = None  # set when acting as P: the blocks are held under this id
    # The asyncio driver's signal (output_ready); made on first use: virtual-clock drivers never wait.
    _output_ready: asyncio.Event | None = field(default=None, init=False, repr=False)
    # When set, called synchronously with each step's new token instead of setting output_ready.
    on_token: Callable[[Request], None] | None = None
    # on_token reads only the first and the last token's deliveries (no per-token stamps, no special
    # tokens to look back past): a driver may skip the deliveries in between.
    on_token_ends_only: bool = False

    @property
    def output_ready(self) -> asyncio.Event:
        """Set when the request has new tokens, finished or was aborted (ppd sim's asyncio driver)."""
        if self._output_ready is None:
            self._output_ready = asyncio.Event()
        return self._output_ready

    @property
    def block_ids(self) -> list[int]:
        """The ids of its KV blocks (P's remote_block_ids)."""
        return [block.block_id for block in self.blocks]

    @property
    def num_tokens(self) -> int:
        return len(self.token_ids)

    @property
    def num_output_tokens(self) -> int:
        return len(self.token_ids) - self.num_prompt_tokens

    @property
    def output_token_ids(self) -> list[int]:
        return self.token_ids[self.num_prompt_tokens :]

    @property
    def is_finished(self) -> bool:
        return self.status in (RequestStatus.FINISHED, RequestStatus.ABORTED)

    def next_answer_token(self) -> int:
        """The deterministic next output token: a word w1..w127999, or with special_token_rate's
        chance a reserved special token (never an end-of-text token, so the answer keeps its length)."""
        step = self.answer_seed + self.num_output_tokens * _ANSWER_STRIDE
        if self.special_token_rate and _unit_interval(step) < self.special_token_rate:
            return FIRST_RESERVED_TOKEN_ID + step % NUM_RESERVED_TOKENS
        return 1 + step % _NUM_ANSWER_WORDS

    def next_answer_tokens(self, count: int) -> list[int]:
        """The next `count` answer tokens at once (next_answer_token, `count` times over)."""
        first = self.answer_seed + (len(self.token_ids) - self.num_prompt_tokens) * _ANSWER_STRIDE
        end = first + count * _ANSWER_STRIDE
        rate, num_words = self.special_token_rate, _NUM_ANSWER_WORDS
        if not rate:  # range() in the loop itself: the compiled build makes it a C loop
            return [1 + step % num_words for step in range(first, end, _ANSWER_STRIDE)]
        steps = range(first, end, _ANSWER_STRIDE)
        return [
            FIRST_RESERVED_TOKEN_ID + step % NUM_RESERVED_TOKENS
            if _unit_interval(step) < rate
            else 1 + step % num_words
            for step in steps
        ]


_MASK_64: Final = 0xFFFF_FFFF_FFFF_FFFF


def _unit_interval(value: int) -> float:
    """A number in [0, 1) from an integer, independent from one value to the next (splitmix64's
    finalizer). A multiplicative hash would not do: the answer's steps are an arithmetic sequence,
    and multiplying one turns it into evenly spaced values, so special tokens would come every
    1/rate tokens instead of at random (geometric) gaps."""
    z = (value + 0x9E37_79B9_7F4A_7C15) & _MASK_64
    z = ((z ^ (z >> 30)) * 0xBF58_476D_1CE4_E5B9) & _MASK_64
    z = ((z ^ (z >> 27)) * 0x94D0_49BB_1331_11EB) & _MASK_64
    return (z ^ (z >> 31)) / 2.0**64
