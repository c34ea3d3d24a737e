"""Trace every engine step of a vLLM V1 engine core: when it was scheduled, when its output came
back, and what it computed (tokens per request, which requests were new). For measuring the engine
model against a real engine (results/h200-vllm0.25.1-single/README.md, "Fourth session").

Loaded by vLLM itself as a general plugin (entry point group `vllm.general_plugins`, declared by the
dist-info folder beside this package): put this folder on the engine's PYTHONPATH and set
PPD_STEP_TRACE_DIR; every process that runs a scheduler appends JSON lines to
`$PPD_STEP_TRACE_DIR/steps-<pid>.jsonl`:

    {"k": "s", "t": <monotonic s>, "id": <step>, "n": <tokens>, "new": {req: tokens}, "run": {req: tokens},
     "prompts": {req: [prompt tokens, cached tokens, max_tokens]}, "decodes": <n>, "running": <len(running)>,
     "waiting": <len(waiting)>}                                  one per schedule() call
     ("prompts" from commit after 540e9de: the session-4 traces lack it)
    {"k": "o", "t": <monotonic s>, "id": <step>}                 one per update_from_output() call

Request ids are shortened to their last 12 characters. Without PPD_STEP_TRACE_DIR nothing is patched.
A failure to patch or to write a record is printed once and leaves vLLM as it was: the trace must
never break a run.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any

_ID_CHARS = 12


def register() -> None:
    """vLLM's plugin hook: patch the V1 scheduler when a trace folder is set."""
    directory = os.environ.get("PPD_STEP_TRACE_DIR")
    if not directory:
        return
    try:
        from vllm.v1.core.sched.scheduler import Scheduler
    except ImportError as exc:  # not a V1 engine, or another layout: leave it alone
        print(f"ppd_vllm_step_trace: not patched ({exc})", file=sys.stderr)
        return
    if getattr(Scheduler, "_ppd_step_trace", False):
        return
    patch(Scheduler, directory)


def patch(scheduler_class: Any, directory: str) -> None:
    """Wrap scheduler_class.schedule and .update_from_output to log each step (see the module doc)."""
    os.makedirs(directory, exist_ok=True)
    sink = open(os.path.join(directory, f"steps-{os.getpid()}.jsonl"), "a", buffering=1)  # noqa: SIM115
    schedule, update = scheduler_class.schedule, scheduler_class.update_from_output
    step_ids: dict[int, int] = {}
    counter = [0]

    failed = [False]

    def write(make_record: Any) -> None:
        """Write one record; a failure (a bad field, a full disk) is printed once and never raised:
        the trace must never stop the engine."""
        try:
            sink.write(json.dumps(make_record(), separators=(",", ":")) + "\n")
        except Exception as exc:
            if not failed[0]:
                failed[0] = True
                print(
                    f"ppd_vllm_step_trace: a record failed ({exc!r}); later failures are silent",
                    file=sys.stderr,
                )

    def traced_schedule(self: Any, *args: Any, **kwargs: Any) -> Any:
        output = schedule(self, *args, **kwargs)
        counter[0] += 1
        step_ids[id(output)] = counter[0]
        write(lambda: step_record(self, output, counter[0]))
        return output

    def traced_update(self: Any, scheduler_output: Any, *args: Any, **kwargs: Any) -> Any:
        result = update(self, scheduler_output, *args, **kwargs)
        step = step_ids.pop(id(scheduler_output), None)
        write(lambda: {"k": "o", "t": round(time.monotonic(), 6), "id": step})
        return result

    scheduler_class.schedule = traced_schedule
    scheduler_class.update_from_output = traced_update
    scheduler_class._ppd_step_trace = True
    scheduler_class._ppd_step_trace_sink = sink  # open for the process's life; tests close it


def _prompt_of(data: Any) -> list[int | None]:
    """[prompt tokens, tokens already computed (cached) when scheduled, max_tokens] of a
    NewRequestData (None where this vLLM lacks the field)."""
    prompt = getattr(data, "prompt_token_ids", None)
    computed = getattr(data, "num_computed_tokens", None)
    max_tokens = getattr(getattr(data, "sampling_params", None), "max_tokens", None)
    return [
        None if prompt is None else len(prompt),
        None if computed is None else int(computed),
        None if max_tokens is None else int(max_tokens),
    ]


def step_record(scheduler: Any, output: Any, step: int) -> dict[str, Any]:
    """One schedule() call: tokens per request, split into new requests and the others."""
    tokens = {str(req)[-_ID_CHARS:]: int(n) for req, n in output.num_scheduled_tokens.items()}
    new_ids = {str(data.req_id)[-_ID_CHARS:] for data in output.scheduled_new_reqs}
    # a new request's prompt length and the tokens it found cached (absent fields: None)
    prompts = {str(data.req_id)[-_ID_CHARS:]: _prompt_of(data) for data in output.scheduled_new_reqs}
    return {
        "k": "s",
        "t": round(time.monotonic(), 6),
        "id": step,
        "n": int(output.total_num_scheduled_tokens),
        "new": {req: n for req, n in tokens.items() if req in new_ids},
        "prompts": prompts,
        "run": {req: n for req, n in tokens.items() if req not in new_ids and n > 1},
        "decodes": sum(1 for req, n in tokens.items() if req not in new_ids and n == 1),
        "running": len(scheduler.running),
        "waiting": len(scheduler.waiting),
    }
