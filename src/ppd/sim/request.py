"""One request inside the engine: its tokens, how far it is computed, its KV blocks, its output."""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

from ppd.sim.kv_cache import ROOT_BLOCK_HASH, KVBlock, extend_block_hashes, hash_block_at
from ppd.tokens import FIRST_RESERVED_TOKEN_ID, NUM_RESERVED_TOKENS, NUM_WORD_TOKENS

# Answer word k of a request is (answer_seed + k * _ANSWER_STRIDE) mod the vocabulary, shifted past
# w0 (the GPU tokenizer's unknown-word token). A large odd stride makes consecutive words look random.
# (Final constants: the compiled build inlines them instead of looking them up per use.)
_ANSWER_STRIDE: Final = 2_654_435_761
_NUM_ANSWER_WORDS: Final = NUM_WORD_TOKENS - 1
_ANSWER_STRIDE_REMAINDER: Final = _ANSWER_STRIDE % _NUM_ANSWER_WORDS


class RequestStatus(enum.Enum):
    WAITING = "waiting"
    RUNNING = "running"
    FINISHED = "finished"
    ABORTED = "aborted"


@dataclass(init=False, eq=False, slots=True)
class Request:
    """A request as the scheduler sees it: its prompt, then its output.

    Of the prompt it keeps what the engine reads after admission: the chained hashes of its full
    blocks (the prefix cache's names for them, made before the request) and the tokens after the
    last of them, which the first output tokens complete into a block. Not its whole token list: a
    fleet of engines then costs no prompt copy per engine, and its client need not make the int
    objects of every prompt token (docs/fleet.md, "Speed and memory")."""

    request_id: str
    num_prompt_tokens: int
    prompt_tail_token_ids: list[int]  # the prompt's tokens after its last full block
    output_token_ids: list[int]
    max_tokens: int
    # Chained hashes of the full blocks (prompt, then output): every full prompt block's from the
    # start, then the output's as they are computed.
    block_hashes: list[int]
    answer_seed: int
    special_token_rate: float  # SimConfig.special_token_rate
    arrival_s: float
    ready_s: float  # modeled loop time at which the engine may first see it (after the API)
    num_external_tokens: int  # prompt tokens whose KV was pulled from a remote P (act as D)
    hold_kv_on_finish: bool  # keep the blocks for a remote decode instance (act as P)
    status: RequestStatus
    num_computed_tokens: int
    num_cached_tokens: int  # set when first scheduled, as vLLM reports it (-1 before)
    num_committed_blocks: int  # leading blocks already entered into the prefix cache
    blocks: list[KVBlock]  # its KV blocks, in token order
    num_preemptions: int
    first_token_s: float | None
    lease_id: str | None  # set when acting as P: the blocks are held under this id
    # The asyncio driver's signal (output_ready); made on first use: virtual-clock drivers never wait.
    _output_ready: asyncio.Event | None = field(repr=False)
    # When set, called synchronously with each step's new token instead of setting output_ready.
    on_token: Callable[[Request], None] | None
    # on_token reads only the first and the last token's deliveries (no per-token stamps, no special
    # tokens to look back past): a driver may skip the deliveries in between.
    on_token_ends_only: bool

    # Written out (init=False): mypyc runs a dataclass's generated __init__ interpreted (docs/fleet.md).
    def __init__(
        self,
        request_id: str,
        num_prompt_tokens: int,
        prompt_tail_token_ids: list[int],
        max_tokens: int,
        block_hashes: list[int],
        answer_seed: int,
        special_token_rate: float = 0.0,
        arrival_s: float = 0.0,
        ready_s: float = 0.0,
        num_external_tokens: int = 0,
        hold_kv_on_finish: bool = False,
    ) -> None:
        self.request_id = request_id
        self.num_prompt_tokens = num_prompt_tokens
        self.prompt_tail_token_ids = prompt_tail_token_ids
        self.output_token_ids = []
        self.max_tokens = max_tokens
        self.block_hashes = block_hashes
        self.answer_seed = answer_seed
        self.special_token_rate = special_token_rate
        self.arrival_s = arrival_s
        self.ready_s = ready_s
        self.num_external_tokens = num_external_tokens
        self.hold_kv_on_finish = hold_kv_on_finish
        self.status = RequestStatus.WAITING
        self.num_computed_tokens = 0
        self.num_cached_tokens = -1
        self.num_committed_blocks = 0
        self.blocks = []
        self.num_preemptions = 0
        self.first_token_s = None
        self.lease_id = None
        self._output_ready = None
        self.on_token = None
        self.on_token_ends_only = False

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
        return self.num_prompt_tokens + len(self.output_token_ids)

    @property
    def num_output_tokens(self) -> int:
        return len(self.output_token_ids)

    def block_hash_at(self, parent_hash: object, start: int, block_size: int) -> int:
        """hash_block_at over the prompt's tail followed by the output: the full block from token
        `start` (past the prompt's full blocks), chained to parent_hash."""
        num_prompt, tail = self.num_prompt_tokens, self.prompt_tail_token_ids
        if start >= num_prompt:
            return hash_block_at(parent_hash, self.output_token_ids, start - num_prompt, block_size)
        tail_start = num_prompt - len(tail)
        if start < tail_start:
            raise ValueError(f"block at token {start}: the prompt's full blocks are hashed with the request")
        joined = tail[start - tail_start :] + self.output_token_ids[: start + block_size - num_prompt]
        return hash_block_at(parent_hash, joined, 0, block_size)

    def extend_block_hashes(self, block_size: int, num_tokens: int) -> None:
        """Append to block_hashes the hashes of the full blocks of the first num_tokens tokens they do
        not cover yet (those past the prompt's full blocks): the one that joins the prompt's tail to
        the output, then the output's own (kv_cache.extend_block_hashes)."""
        hashes = self.block_hashes
        start, num_prompt = len(hashes) * block_size, self.num_prompt_tokens
        if start < num_prompt and start + block_size <= num_tokens:
            parent: object = hashes[-1] if hashes else ROOT_BLOCK_HASH
            hashes.append(self.block_hash_at(parent, start, block_size))
        extend_block_hashes(hashes, self.output_token_ids, block_size, num_tokens, offset=num_prompt)

    @property
    def is_finished(self) -> bool:
        return self.status in (RequestStatus.FINISHED, RequestStatus.ABORTED)

    def next_answer_token(self) -> int:
        """The deterministic next output token: a word w1..w127999, or with special_token_rate's
        chance a reserved special token (never an end-of-text token, so the answer keeps its length)."""
        if not self.special_token_rate:  # the word from the stride's remainder (append_answer_tokens)
            word = self.answer_seed + self.num_output_tokens * _ANSWER_STRIDE_REMAINDER
            return 1 + word % _NUM_ANSWER_WORDS
        step = self.answer_seed + self.num_output_tokens * _ANSWER_STRIDE
        if _unit_interval(step) < self.special_token_rate:
            return FIRST_RESERVED_TOKEN_ID + step % NUM_RESERVED_TOKENS
        return 1 + step % _NUM_ANSWER_WORDS

    def append_answer_tokens(self, count: int) -> None:
        """Append the next `count` answer tokens to the output (next_answer_token, `count` times
        over), with no list of them in between (a decode run's tokens, per request per run)."""
        tokens = self.output_token_ids
        num_output_tokens = len(tokens)
        rate = self.special_token_rate
        if not rate:
            # 1 + step % _NUM_ANSWER_WORDS for each step, the remainder kept up to date by adding
            # the stride's (one comparison per token instead of a division). The first remainder
            # from the stride's: the compiled build multiplies natively only factors below 2**30.
            word = self.answer_seed + num_output_tokens * _ANSWER_STRIDE_REMAINDER
            word %= _NUM_ANSWER_WORDS
            for _ in range(count):
                tokens.append(1 + word)
                word += _ANSWER_STRIDE_REMAINDER
                if word >= _NUM_ANSWER_WORDS:
                    word -= _NUM_ANSWER_WORDS
            return
        num_words = _NUM_ANSWER_WORDS
        first = self.answer_seed + num_output_tokens * _ANSWER_STRIDE
        for step in range(first, first + count * _ANSWER_STRIDE, _ANSWER_STRIDE):
            if _unit_interval(step) < rate:
                tokens.append(FIRST_RESERVED_TOKEN_ID + step % NUM_RESERVED_TOKENS)
            else:
                tokens.append(1 + step % num_words)


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
