"""A stand-in for one upstream instance, as the proxy's pure routing rules read it (policies.Instance)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Inst:
    url: str
    healthy: bool = True
    outstanding_requests: int = 0
    outstanding_prefill_tokens: int = 0
    running_decodes: int = 0
