"""tools/vllm_step_trace: the vLLM plugin's patch, on a stand-in scheduler class (no vLLM here)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "tools" / "vllm_step_trace"))
import ppd_vllm_step_trace as trace


class StandInScheduler:
    """What the trace reads of vLLM's Scheduler and its SchedulerOutput."""

    def __init__(self) -> None:
        self.running = ["a", "b", "c"]
        self.waiting = ["d"]
        self.updates: list[Any] = []

    def schedule(self) -> SimpleNamespace:
        return SimpleNamespace(
            num_scheduled_tokens={"req-new-0001": 4040, "req-old-0002": 64, "req-dec-0003": 1},
            scheduled_new_reqs=[
                SimpleNamespace(
                    req_id="req-new-0001",
                    prompt_token_ids=list(range(8320)),
                    num_computed_tokens=4208,
                    sampling_params=SimpleNamespace(max_tokens=128),
                )
            ],
            total_num_scheduled_tokens=4105,
        )

    def update_from_output(self, scheduler_output: Any, model_output: Any) -> str:
        self.updates.append((scheduler_output, model_output))
        return "outputs"


def test_patch_logs_each_schedule_and_its_output(tmp_path: Path) -> None:
    cls = type("Scheduler", (StandInScheduler,), {})
    trace.patch(cls, str(tmp_path))
    scheduler = cls()
    output = scheduler.schedule()
    assert scheduler.update_from_output(output, "model") == "outputs"  # the original's result
    assert scheduler.updates == [(output, "model")]
    cls._ppd_step_trace_sink.close()
    (log,) = tmp_path.glob("steps-*.jsonl")
    scheduled, done = (json.loads(line) for line in log.read_text().splitlines())
    assert scheduled["k"] == "s" and scheduled["id"] == 1 and scheduled["n"] == 4105
    assert scheduled["new"] == {"req-new-0001"[-12:]: 4040}
    assert scheduled["run"] == {"req-old-0002"[-12:]: 64}
    assert scheduled["decodes"] == 1
    assert scheduled["prompts"] == {"req-new-0001"[-12:]: [8320, 4208, 128]}
    assert (scheduled["running"], scheduled["waiting"]) == (3, 1)
    assert done == {"k": "o", "t": done["t"], "id": 1}
    assert done["t"] >= scheduled["t"]


def test_register_does_nothing_without_a_trace_folder(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PPD_STEP_TRACE_DIR", raising=False)
    trace.register()  # no vLLM here: it must not even try to import it


def test_register_without_vllm_leaves_a_note(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: Any
) -> None:
    monkeypatch.setenv("PPD_STEP_TRACE_DIR", str(tmp_path))
    monkeypatch.setitem(sys.modules, "vllm", None)  # import fails
    trace.register()
    assert "not patched" in capsys.readouterr().err


def test_prompt_fields_missing_from_a_vllm_version_are_none() -> None:
    assert trace._prompt_of(SimpleNamespace(req_id="r")) == [None, None, None]
    assert trace._prompt_of(SimpleNamespace(prompt_token_ids=[1, 2, 3], num_computed_tokens=0)) == [
        3,
        0,
        None,
    ]


def test_a_failing_sink_never_breaks_the_scheduler(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cls = type("Scheduler", (StandInScheduler,), {})
    trace.patch(cls, str(tmp_path))
    cls._ppd_step_trace_sink.close()  # every write now raises ValueError
    scheduler = cls()
    for _ in range(2):
        output = scheduler.schedule()
        assert scheduler.update_from_output(output, "model") == "outputs"
    assert capsys.readouterr().err.count("a record failed") == 1
