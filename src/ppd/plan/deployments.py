"""Which deployments of N engines the planner compares, and the `ppd up` command that starts one.

For N engines (one GPU each):

    nR            replication, and auto on the same N replicas
    xPyD, x+y=N   pd, ppd and auto on each split (x = 1 .. N-1); auto may also use every P and D
                  as a replica, as the proxy does when no --replica is given

so 2 + 3(N-1) deployments; 23 for N = 8.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from ppd.modes import MODES, PD_MODES, Mode


@dataclass(frozen=True, order=True)
class Deployment:
    """N engines in one layout, routed by one mode."""

    num_prefill: int
    num_decode: int
    num_replica: int
    mode: Mode

    @property
    def num_gpus(self) -> int:
        """Engines (one GPU each)."""
        return self.num_prefill + self.num_decode + self.num_replica

    @property
    def topology(self) -> str:
        """The `ppd up --topology` spec: 3p5d, 8r."""
        if self.num_replica:
            return f"{self.num_replica}r"
        return f"{self.num_prefill}p{self.num_decode}d"

    @property
    def label(self) -> str:
        """A short name: `3p5d pd`, `8r replication`."""
        return f"{self.topology} {self.mode}"

    @property
    def is_disaggregated(self) -> bool:
        """Whether it has separate prefill and decode instances."""
        return self.num_replica == 0


def enumerate_deployments(num_gpus: int, modes: tuple[Mode, ...] = MODES) -> list[Deployment]:
    """Every deployment of `num_gpus` engines in the given modes (see the module docstring)."""
    if num_gpus < 1:
        raise ValueError(f"--gpus must be >= 1, got {num_gpus}")
    unknown = [mode for mode in modes if mode not in MODES]
    if unknown:
        raise ValueError(f"unknown modes {unknown}; allowed: {', '.join(MODES)}")
    deployments = [Deployment(0, 0, num_gpus, mode) for mode in ("replication", "auto") if mode in modes]
    for num_prefill in range(1, num_gpus):
        for mode in (*PD_MODES, "auto"):
            if mode in modes:
                deployments.append(Deployment(num_prefill, num_gpus - num_prefill, 0, mode))
    return deployments


def restrict_to_topologies(deployments: list[Deployment], topologies: tuple[str, ...]) -> list[Deployment]:
    """The deployments whose `ppd up` topology is one of `topologies` (`4r`, `1p3d`; case-insensitive),
    in their enumeration order. ValueError names a topology that matches none of them (a typo, or a
    split of another GPU count), so a restriction never silently plans less than it was asked to."""
    wanted = {topology.strip().lower() for topology in topologies if topology.strip()}
    if not wanted:
        raise ValueError("--deployments: give at least one topology, e.g. 4r,1p3d")
    unmatched = sorted(wanted - {deployment.topology for deployment in deployments})
    if unmatched:
        known = ", ".join(dict.fromkeys(deployment.topology for deployment in deployments))
        raise ValueError(
            f"--deployments: {', '.join(unmatched)} is not among the deployments planned ({known})"
        )
    return [deployment for deployment in deployments if deployment.topology in wanted]


def up_command(
    deployment: Deployment, slo_ttft_ms: float | None = None, slo_tpot_ms: float | None = None
) -> str:
    """The exact `ppd up` command that starts `deployment` on vLLM (auto with the SLOs it was planned for)."""
    argv = ["ppd", "up", "--backend", "vllm", "--model", "MODEL", "--topology", deployment.topology]
    argv += ["--mode", deployment.mode]
    if deployment.mode == "auto":
        if slo_ttft_ms is not None:
            argv.append(f"--proxy-arg=--slo-ttft-ms={slo_ttft_ms:g}")
        if slo_tpot_ms is not None:
            argv.append(f"--proxy-arg=--slo-tpot-ms={slo_tpot_ms:g}")
    return shlex.join(argv)
