"""Per loaded point: the client's view (rows) beside vLLM's own (its /metrics before and after the
point, raw/metrics.tar.gz), and how much of each turn 2's history the prefix cache held.

    python results/h200-vllm0.25.1-single/engine_metrics_summary.py   # with ppd importable

Columns (means over the point's requests, ms): cTTFT = client TTFT; fTTFT = vLLM's
time_to_first_token (API server's arrival to its handling of the first token); queue / prefill =
the engine core's queue time and scheduled-to-first-token time; cDec / eDec = decode time (first to
last token) as the client saw it and as the engine core stamped it. Turn-2 cache: turn 2s whose
uncached part was just the new words plus the partial last block (the whole history cached).
"""

from __future__ import annotations

import statistics
import tarfile
from dataclasses import asdict
from pathlib import Path

from ppd.prometheus import name_starts_with, series_diff, series_values, total
from ppd.results import read_rows

HERE = Path(__file__).resolve().parent


def mean_ms(diff: dict[str, float], name: str) -> float:
    return total(diff, name + "_sum") / max(1.0, total(diff, name + "_count")) * 1e3


def main() -> None:
    with tarfile.open(HERE / "raw" / "metrics.tar.gz") as archive:
        snapshots = {
            Path(m.name).name: archive.extractfile(m).read().decode()  # type: ignore[union-attr]
            for m in archive.getmembers()
            if m.isfile()
        }
    print(f"{'point':10} {'n':>5} {'cTTFT':>7} {'fTTFT':>7} {'queue':>7} {'prefill':>7} "
          f"{'cDec':>8} {'eDec':>8}  turn-2 whole history")  # fmt: skip
    for workload in ("w1", "w2", "w3", "w4"):
        rows = [asdict(row) for row in read_rows(HERE / f"h200-{workload}.jsonl")]
        for qps in sorted({r["qps"] for r in rows}):
            tag = f"h200-{workload}-q{qps:g}"
            before = series_values(snapshots[f"{tag}-before.prom"], name_starts_with("vllm:"))
            after = series_values(snapshots[f"{tag}-after.prom"], name_starts_with("vllm:"))
            diff = series_diff(before, after, ndigits=None)
            ok = [r for r in rows if r["qps"] == qps and r["ok"]]
            turn2 = [r for r in ok if r["turn"] == 2]
            new_words = {"w1": 512, "w2": 4096, "w3": 256, "w4": 8192}[workload]
            whole = sum(1 for r in turn2 if r["prompt_tokens"] - r["cached_tokens"] <= new_words + 16)
            client_ttft_ms = statistics.fmean(r["ttft_ms"] for r in ok)
            print(
                f"{workload.upper()} {qps:<6g} {len(ok):5d} {client_ttft_ms:7.1f} "
                f"{mean_ms(diff, 'vllm:time_to_first_token_seconds'):7.1f} "
                f"{mean_ms(diff, 'vllm:request_queue_time_seconds'):7.1f} "
                f"{mean_ms(diff, 'vllm:request_prefill_time_seconds'):7.1f} "
                f"{statistics.fmean(r['e2e_ms'] - r['ttft_ms'] for r in ok):8.1f} "
                f"{mean_ms(diff, 'vllm:request_decode_time_seconds'):8.1f}  {whole}/{len(turn2)}"
            )


if __name__ == "__main__":
    main()
