"""The pure parts of tools/api_probe.py (the probe itself runs against an engine: see its docstring)."""

from __future__ import annotations

import pytest

from helpers import load_tool

probe = load_tool("api_probe")


def test_intake_offsets_are_evenly_spaced_inside_the_cell() -> None:
    assert probe.intake_offsets_s(2, 5) == [0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5]
    assert len(probe.intake_offsets_s(32, 5)) == 160
    assert probe.intake_offsets_s(0, 5) == []
    assert probe.intake_offsets_s(0.5, 3) == [0.0, 2.0]


def test_stream_answers_stay_within_the_kv_budget() -> None:
    assert probe.stream_max_tokens(32) == 8192
    assert probe.stream_max_tokens(256) == 600_000 // 256
    assert probe.stream_max_tokens(0) == 8192
    assert probe.stream_max_tokens(100_000) == 64


def test_text_tokens_counts_words_of_merged_chunks() -> None:
    assert probe.text_tokens(" w12") == 1
    assert probe.text_tokens(" w12 w12 w7") == 3
    assert probe.text_tokens("") == 0


def test_parse_pids_reads_names_and_rejects_bad_entries() -> None:
    assert probe.parse_pids("api=12, core=345") == {"api": 12, "core": 345}
    assert probe.parse_pids("") == {}
    with pytest.raises(ValueError, match="'api'"):
        probe.parse_pids("api")
    with pytest.raises(ValueError, match="x=y"):
        probe.parse_pids("x=y")


def test_cpu_seconds_of_stat_counts_fields_after_a_name_with_spaces() -> None:
    # pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime ...
    line = "4242 (VLLM::Engine Core) S 1 2 3 4 5 6 7 8 9 10 250 50 0 0 20 0 12"
    assert probe.cpu_seconds_of_stat(line, 100) == pytest.approx(3.0)


def test_histogram_mean_and_counter_delta_sum_all_label_sets() -> None:
    diff = {
        'vllm:time_to_first_token_seconds_sum{model_name="llama"}': 0.5,
        'vllm:time_to_first_token_seconds_count{model_name="llama"}': 10.0,
        'vllm:time_to_first_token_seconds_bucket{le="0.1"}': 3.0,
        'vllm:generation_tokens_total{model_name="llama"}': 300.0,
        "vllm:generation_tokens_created": 1.0,
    }
    assert probe.histogram_mean_ms(diff, "vllm:time_to_first_token_seconds") == 50.0
    assert probe.histogram_mean_ms(diff, "vllm:request_queue_time_seconds") is None
    assert probe.counter_delta(diff, "vllm:generation_tokens_total") == 300.0
    summary = probe.engine_summary(diff, 2.0)
    assert summary["engine_tokens_per_s"] == 150.0 and summary["vllm_ttft_ms_mean"] == 50.0


def test_window_stream_stats_counts_only_what_arrived_inside_the_window() -> None:
    streams = [
        [(0.9, 1), (1.0, 1), (1.1, 2), (1.3, 1), (2.0, 1)],  # 1.0, 1.1, 1.3 inside [1, 2)
        [(1.5, 1)],
        [(0.1, 1)],  # nothing inside
    ]
    stats = probe.window_stream_stats(streams, 1.0, 2.0)
    assert stats["streams_receiving"] == 2
    assert stats["client_tokens"] == 5 and stats["client_tokens_per_s"] == 5.0
    assert stats["chunks_per_token"] == pytest.approx(4 / 5)
    assert stats["gap_ms_median"] == pytest.approx(150.0)  # gaps 100 and 200 ms


def test_intake_summary_splits_halves_and_skips_failures() -> None:
    intakes = [{"headers_ms": 5.0, "ttft_ms": float(t), "second_token_gap_ms": 6.0, "error": None}
               for t in (10, 20, 30, 40)]  # fmt: skip
    intakes.append({"headers_ms": None, "ttft_ms": None, "second_token_gap_ms": None, "error": "HTTP 500"})
    summary = probe.intake_summary(intakes)
    assert summary["sent"] == 5 and summary["ok"] == 4
    assert summary["ttft_ms"]["max"] == 40.0 and summary["headers_ms"]["p50"] == 5.0
    assert summary["ttft_ms_p50_first_half"] in (10.0, 20.0)
    assert summary["ttft_ms_p50_second_half"] in (30.0, 40.0)
    assert probe.quantile([], 0.5) is None
