"""What `ppd plan` writes: plan.json (every point measured), plan.md (the answer, the table, the
method), plan.png (SLO goodput against offered rate per deployment) and the terminal table."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from rich.table import Table

from ppd.bench.resultset import tool_info
from ppd.plan.deployments import up_command
from ppd.plan.ranking import Planned, disaggregation_verdict, tied_with_best


@dataclass(frozen=True)
class PlanSummary:
    """Everything the outputs need: the inputs, the ranked deployments, and how long it took."""

    num_gpus: int
    workload: str
    slo_ttft_ms: float
    slo_tpot_ms: float
    profile: str
    target_attainment: float
    tolerance: float
    settings: dict[str, Any]  # the search and evaluation settings, for the record
    command: str  # the `ppd plan` command line that made it
    ranked: list[Planned]
    wall_s: float
    trace: bool = False  # rates are a trace slice's mean request rates, not conversation rates

    @property
    def rate_unit(self) -> str:
        """The unit of every rate: conversations/s, or requests/s of a trace."""
        return "requests/s" if self.trace else "conversations/s"

    @property
    def short_unit(self) -> str:
        """The unit in table headers: conv/s or req/s."""
        return "req/s" if self.trace else "conv/s"

    @property
    def winner(self) -> Planned:
        """The best deployment."""
        return self.ranked[0]

    def winner_command(self) -> str:
        """The exact `ppd up` command of the winner."""
        return up_command(self.winner.deployment, self.slo_ttft_ms, self.slo_tpot_ms)


def plan_json(summary: PlanSummary) -> dict[str, Any]:
    """plan.json: inputs, tool versions, every deployment with every point, the ranking."""
    return {
        "tool": tool_info(),
        "command": summary.command,
        "inputs": {
            "gpus": summary.num_gpus,
            "workload": summary.workload,
            "slo_ttft_ms": summary.slo_ttft_ms,
            "slo_tpot_ms": summary.slo_tpot_ms,
            "profile": summary.profile,
            "target_attainment": summary.target_attainment,
            "tolerance": summary.tolerance,
            **summary.settings,
        },
        "goodput_definition": (
            f"the highest {'trace request' if summary.trace else 'conversation arrival'} rate "
            f"({summary.rate_unit}) at which at least {summary.target_attainment:.0%} of sent turns met "
            "both SLOs, per GPU"
        ),
        "winner": {"deployment": summary.winner.deployment.label, "up_command": summary.winner_command()},
        "ranking": [_planned_json(rank, item) for rank, item in enumerate(summary.ranked, start=1)],
        "wall_s": round(summary.wall_s, 2),
        "num_evaluations": sum(len(item.search.points) for item in summary.ranked),
    }


def _planned_json(rank: int, item: Planned) -> dict[str, Any]:
    deployment, search = item.deployment, item.search
    return {
        "rank": rank,
        "deployment": deployment.label,
        "topology": deployment.topology,
        "mode": deployment.mode,
        "num_prefill": deployment.num_prefill,
        "num_decode": deployment.num_decode,
        "num_replica": deployment.num_replica,
        "max_qps": search.max_qps,
        "max_qps_per_gpu": item.goodput_per_gpu,
        "fail_qps": search.fail_qps,
        "capped": search.capped,
        "at_max": asdict(search.at_max) if search.at_max is not None else None,
        "points": [asdict(point) for point in search.points],
    }


def verdict_text(summary: PlanSummary) -> str:
    """One paragraph: whether disaggregation (pd / ppd / auto on xPyD) beats replication here."""
    verdict = disaggregation_verdict(summary.ranked, summary.tolerance)
    best_d, best_r = verdict.best_disaggregated, verdict.best_replicated
    if best_d is None or best_r is None:
        return "Only one family of deployments was searched; no comparison of disaggregation and replication."
    d_text = f"{best_d.deployment.label} ({best_d.goodput_per_gpu:.3g} {summary.short_unit}/GPU)"
    r_text = f"{best_r.deployment.label} ({best_r.goodput_per_gpu:.3g} {summary.short_unit}/GPU)"
    if verdict.ratio is None:
        return f"No deployment met the SLOs at any rate searched ({d_text}, {r_text})."
    if verdict.beats:
        return (
            f"Disaggregation beats replication here: the best xPyD deployment, {d_text}, sustains "
            f"{verdict.ratio:.2f}x the goodput of the best on replicas, {r_text}."
        )
    if verdict.ratio >= 1.0 - summary.tolerance:
        return (
            f"Disaggregation does not beat replication here: the best xPyD deployment, {d_text}, is "
            f"within the search tolerance ({summary.tolerance:.0%}) of the best on replicas, {r_text}."
        )
    return (
        f"Disaggregation does not beat replication here: the best xPyD deployment, {d_text}, sustains "
        f"{verdict.ratio:.2f}x the goodput of the best on replicas, {r_text}."
    )


def _row_cells(rank: int, item: Planned, best: float) -> list[str]:
    search, at_max = item.search, item.search.at_max
    metrics = at_max.metrics if at_max is not None else {}
    relative = f"{item.goodput_per_gpu / best:.0%}" if best > 0 else "-"
    max_text = f">={search.max_qps:.3g}" if search.capped else f"{search.max_qps:.3g}"
    return [
        str(rank),
        item.deployment.label,
        max_text,
        f"{item.goodput_per_gpu:.3g}",
        relative,
        _fmt(
            at_max.slo_attainment * 100 if at_max and at_max.slo_attainment is not None else None, "{:.0f}%"
        ),
        _fmt(at_max.goodput_rps if at_max else None, "{:.3g}"),
        _fmt(metrics.get("ttft_p50_ms"), "{:.0f}"),
        _fmt(metrics.get("ttft_p99_ms"), "{:.0f}"),
        _fmt(metrics.get("tpot_p50_ms"), "{:.1f}"),
        _fmt(_percent(metrics.get("proxy_busy_share")), "{:.0f}%"),
        str(len(search.points)),
    ]


def _percent(share: float | None) -> float | None:
    return None if share is None else share * 100


def _headers(summary: PlanSummary) -> list[str]:
    unit = summary.short_unit
    return [
        "#",
        "deployment",
        f"max {unit}",
        f"{unit}/GPU",
        "vs best",
        "SLO met",
        "good turns/s",
        "TTFT p50 ms",
        "TTFT p99 ms",
        "TPOT p50 ms",
        "proxy CPU",
        "runs",
    ]


def _fmt(value: float | None, pattern: str) -> str:
    return "-" if value is None else pattern.format(value)


def terminal_table(summary: PlanSummary) -> Table:
    """The ranking as a rich table (figures at each deployment's highest passing rate)."""
    table = Table(title=_title(summary), title_justify="left")
    for header in _headers(summary):
        table.add_column(header, justify="left" if header == "deployment" else "right")
    best = summary.winner.goodput_per_gpu
    for rank, item in enumerate(summary.ranked, start=1):
        table.add_row(*_row_cells(rank, item, best), style="bold" if rank == 1 else None)
    return table


def _title(summary: PlanSummary) -> str:
    return (
        f"ppd plan: {summary.num_gpus} GPUs, {summary.workload}, SLO TTFT <= {summary.slo_ttft_ms:g} ms "
        f"and TPOT <= {summary.slo_tpot_ms:g} ms for >= {summary.target_attainment:.0%} of turns"
    )


def _proxy_note(summary: PlanSummary) -> str:
    """What the rates assume of the proxy: how many processes share the conversations."""
    processes = summary.settings.get("proxy_processes", 1)
    if processes == 1:
        return (
            "The rates are those of one `ppd proxy` process, as `ppd up` starts: its event loop relays "
            "every token (`proxy CPU` in the table)."
        )
    return (
        f"The rates assume {processes} `ppd proxy` processes, each serving its share of the conversations "
        "(`--proxy-processes`); `ppd up` starts one, so the others and a front that keeps a "
        "conversation on one process are yours to run."
    )


def plan_markdown(summary: PlanSummary, plot_name: str) -> str:
    """plan.md: the recommendation, the disaggregation verdict, the table, the method."""
    best = summary.winner.goodput_per_gpu
    ties = [item.deployment.label for item in tied_with_best(summary.ranked, summary.tolerance)[1:]]
    lines = [
        f"# {_title(summary)}",
        "",
        f"**Recommendation: {summary.winner.deployment.label}**, "
        f"{summary.winner.max_qps:.3g} {summary.rate_unit} ({best:.3g} per GPU) within the SLOs.",
        "",
        "```",
        summary.winner_command(),
        "```",
        "",
        _proxy_note(summary),
        "",
    ]
    if ties:
        lines += [f"Within the search tolerance ({summary.tolerance:.0%}) of it: {', '.join(ties)}.", ""]
    headers = _headers(summary)
    lines += [verdict_text(summary), "", "| " + " | ".join(headers) + " |", "|" + " --- |" * len(headers)]
    for rank, item in enumerate(summary.ranked, start=1):
        lines.append("| " + " | ".join(_row_cells(rank, item, best)) + " |")
    tool = tool_info()
    lines += [
        "",
        "Figures at each deployment's highest passing rate. `>=`: it passed at the search's upper bound. "
        "A `proxy CPU` near 100% means the proxy, not the engines, set the rate: give more processes "
        "(`--proxy-processes`).",
        "",
        f"![goodput against offered rate]({plot_name})",
        "",
        "## Method",
        "",
        f"- Each deployment of {summary.num_gpus} engines (one GPU each) is simulated by `ppd fleet`: the "
        f"`ppd sim` engine model with profile `{summary.profile}` for every engine, the proxy's own router "
        "core on a virtual clock, the measured HTTP hop costs, the proxy's event loop (its CPU per "
        f"request and relayed read, shared by {summary.settings.get('proxy_processes', 1)} proxy "
        "process(es); `proxy CPU` is the busiest one's share of a core at the top rate), and "
        + (
            "the trace slice replayed by the bench's rules (its requests at the trace's times scaled to "
            "the rate, linked into conversations)."
            if summary.trace
            else "the bench's open-loop Poisson conversation arrivals."
        ),
        f"- Goodput: the highest {'request' if summary.trace else 'conversation'} rate at which at least "
        f"{summary.target_attainment:.0%} of the "
        "turns sent after the warm-up met both SLOs (failed and cut-off turns are misses), per GPU.",
        "- Search per deployment: bracket by doubling or halving the rate from a start, then geometric "
        f"bisection until the bracket [pass, fail) is narrower than {summary.tolerance:.0%} of its lower "
        "end; the reported rate is the highest measured to pass, so at most that much below the boundary.",
        "- Every evaluation of a deployment uses the same seed (same arrivals and prompts, scaled in time); "
        "attainment near the boundary is noisy, so deployments within the tolerance are a tie.",
        f"- Settings: {', '.join(f'{k}={v}' for k, v in summary.settings.items())}.",
        f"- {sum(len(item.search.points) for item in summary.ranked)} fleet runs, {summary.wall_s:.0f} s "
        f"wall; ppd {tool['version']} ({tool['git_commit'] or 'commit unknown'}).",
        "",
        "```",
        summary.command,
        "```",
        "",
    ]
    return "\n".join(lines)


def plot_goodput(summary: PlanSummary, path: Path) -> Path:
    """plan.png: good turns/s against offered conversations/s, one line per deployment, one panel per
    mode; each deployment's highest passing rate is marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    modes = list(dict.fromkeys(item.deployment.mode for item in summary.ranked))
    fig, axes = plt.subplots(1, len(modes), figsize=(4.2 * len(modes), 3.8), squeeze=False, sharey=True)
    for ax, mode in zip(axes[0], modes, strict=True):
        items = sorted((i for i in summary.ranked if i.deployment.mode == mode), key=lambda i: i.deployment)
        for item in items:
            points = sorted(item.search.points, key=lambda p: p.qps)
            xs = [p.qps for p in points]
            ys = [(p.goodput_rps or 0.0) / summary.num_gpus for p in points]
            (line,) = ax.plot(xs, ys, marker=".", linewidth=1.2, label=item.deployment.topology)
            at_max = item.search.at_max
            if at_max is not None:
                y = (at_max.goodput_rps or 0.0) / summary.num_gpus
                ax.plot([at_max.qps], [y], marker="*", markersize=11, color=line.get_color())
        ax.set_title(mode)
        ax.set_xlabel(f"offered {summary.rate_unit}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, ncol=2)
    axes[0][0].set_ylabel("good turns/s per GPU (both SLOs met)")
    fig.suptitle(_title(summary), fontsize=9)
    fig.text(0.01, 0.01, "star: the highest rate with >= target SLO attainment", fontsize=7)
    fig.tight_layout(rect=(0, 0.03, 1, 0.95))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
