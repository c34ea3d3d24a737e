"""The fifth session's vLLM step trace as the sixth session's scripts read it: session5/step_trace.py
(its reader and figures), loaded by path because a results folder is not a package, and one point's
traced steps. Imported by the scripts beside it (run as `python .../session6/<script>.py`)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

SESSION5 = Path(__file__).resolve().parent.parent / "session5"
TRACE = SESSION5 / "steps-async-7points.jsonl.gz"


def load(name: str, path: Path) -> Any:
    """The module at path, registered as name (dataclasses need their module in sys.modules)."""
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def step_trace() -> Any:
    """session5/step_trace.py."""
    return load("session5_step_trace", SESSION5 / "step_trace.py")


def point_steps(point: str) -> tuple[list[dict[str, Any]], dict[int, float]]:
    """One of the trace's seven points ("W4:2.5"): its traced steps, and the trace's output times."""
    module = step_trace()
    steps, outputs = module.read_trace(str(TRACE))
    names = module.POINTS.split()
    return module.split_points(steps, names)[names.index(point)], outputs
