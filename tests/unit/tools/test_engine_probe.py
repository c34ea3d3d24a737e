"""The pure parts of tools/engine_probe.py (the probe itself runs against an engine: see its docstring)."""

from __future__ import annotations

import pytest

from helpers import load_tool

probe = load_tool("engine_probe")


def _decoder(times_ms: list[float]) -> object:
    record = probe.Stream(0.0)
    record.chunks = [t / 1e3 for t in times_ms]
    return record


def test_stall_measures_the_decoders_window_around_one_injection() -> None:
    # decode steps every 10 ms; the injection is sent at 1,003 ms, a 100-ms prefill step runs from
    # 1,010 to 1,110, its first token arrives at 1,112; decoding resumes at 10 ms steps
    times = [float(t) for t in range(0, 1011, 10)] + [1110.0 + 10 * k for k in range(10)]
    decoders = [_decoder(times), _decoder([t + 0.5 for t in times])]
    injected = probe.Stream(1.003)
    injected.chunks = [1.112, 1.113]
    result = probe.stall(decoders, [injected])
    assert result["decoders"] == 2
    assert result["decode_step_ms"] == pytest.approx(10.0)
    # from the last chunk before the send (1,000) to the first after the first token (1,120)
    assert result["window_ms"] == pytest.approx(120.0)
    assert result["gaps"] == 3
    assert result["longest_gaps_ms"] == pytest.approx([100.0, 10.0, 10.0])


def test_stall_is_empty_when_an_injection_got_no_token_or_no_decoder_spans_it() -> None:
    decoders = [_decoder([0.0, 10.0, 20.0, 30.0])]
    unanswered = probe.Stream(0.025)
    assert probe.stall(decoders, [unanswered]) == {}
    late = probe.Stream(0.5)
    late.chunks = [0.6]
    assert probe.stall(decoders, [late]) == {}  # no decoder chunk after the first token


def test_loaded_is_an_opt_in_section() -> None:
    assert "loaded" in probe.ALL_SECTIONS
    assert "loaded" not in probe.SECTIONS  # calibration runs (sim_calibration.py) keep their sections
