"""Command line of one simulated engine (`ppd sim`), started with this Python interpreter."""

from __future__ import annotations

import sys
from dataclasses import dataclass

from ppd.launch.topology import Instance


@dataclass(frozen=True)
class SimOptions:
    """What `ppd up --backend sim` passes to each `ppd sim`."""

    time_scale: float = 1.0
    served_model_name: str = "llama"
    max_model_len: int | None = None
    block_size: int | None = None
    seed: int | None = None
    extra_args: tuple[str, ...] = ()
    python: str = sys.executable


def sim_command(instance: Instance, options: SimOptions) -> list[str]:
    """argv of `ppd sim` for one instance; port 0 lets the engine pick a free port."""
    argv = [options.python, "-m", "ppd", "sim", "--host", instance.host, "--port", str(instance.port)]
    argv += ["--engine-id", instance.name, "--served-model-name", options.served_model_name]
    argv += ["--time-scale", repr(options.time_scale)]
    if options.max_model_len is not None:
        argv += ["--max-model-len", str(options.max_model_len)]
    if options.block_size is not None:
        argv += ["--block-size", str(options.block_size)]
    if options.seed is not None:
        argv += ["--seed", str(options.seed)]
    return argv + list(options.extra_args)
