"""The names ppd routes and deploys by, typed once: modes, instance roles, route kinds, auto decisions.

The proxy, the router core, the bench, the report, launch, the fleet and the planner all use these
instead of raw strings, so a new mode or role is added here and the type checker finds every place
that must learn it.

    Mode        how the router serves turns: pd | ppd | replication | auto
    Role        what the router may use an instance for: prefill | decode | replica
    DeployRole  what `ppd up` starts an instance as: a Role, or both (prefill and decode, kv_both)
    RouteKind   how one turn was served (the x-ppd-route header): pd | ppd-direct | replica |
                pd-fallback (D alone: no healthy P, or P failed)
    Decision    auto mode's choice (the x-ppd-decision header): auto-direct | auto-replica | auto-pd
"""

from __future__ import annotations

from typing import Literal, TypeGuard, get_args

Mode = Literal["pd", "ppd", "replication", "auto"]
MODES: tuple[Mode, ...] = get_args(Mode)

# Modes that need prefill and decode instances (the others can run on replicas alone).
PD_MODES: tuple[Mode, ...] = ("pd", "ppd")

Role = Literal["prefill", "decode", "replica"]
ROLES: tuple[Role, ...] = get_args(Role)

DeployRole = Literal["prefill", "decode", "replica", "both"]
DEPLOY_ROLES: tuple[DeployRole, ...] = get_args(DeployRole)

RouteKind = Literal["pd", "ppd-direct", "replica", "pd-fallback"]
ROUTE_PD: RouteKind = "pd"
ROUTE_PPD_DIRECT: RouteKind = "ppd-direct"
ROUTE_REPLICA: RouteKind = "replica"
ROUTE_PD_FALLBACK: RouteKind = "pd-fallback"
# The kinds the modes' own rules produce (pd-fallback only appears after a failure).
ROUTE_KINDS: tuple[RouteKind, ...] = (ROUTE_PD, ROUTE_PPD_DIRECT, ROUTE_REPLICA)

Decision = Literal["auto-direct", "auto-replica", "auto-pd"]
AUTO_DIRECT: Decision = "auto-direct"
AUTO_REPLICA: Decision = "auto-replica"
AUTO_PD: Decision = "auto-pd"
AUTO_DECISIONS: tuple[Decision, ...] = (AUTO_DIRECT, AUTO_PD, AUTO_REPLICA)


def is_mode(value: object) -> TypeGuard[Mode]:
    """Whether `value` names a mode."""
    return value in MODES


def parse_mode(value: str) -> Mode:
    """`value` as a Mode; ValueError naming the allowed modes otherwise."""
    if not is_mode(value):
        raise ValueError(f"unknown mode {value!r}; allowed: {', '.join(MODES)}")
    return value


def mode_unavailable(mode: Mode, has_prefill_and_decode: bool) -> str | None:
    """Why `mode` cannot route on these instances, or None when it can."""
    if mode in PD_MODES and not has_prefill_and_decode:
        return f"mode {mode} needs prefill and decode instances; this deployment has replicas only"
    return None
