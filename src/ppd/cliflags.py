"""Flags that several commands take (`ppd bench`, `ppd fleet`, `ppd plan`), each defined once with its
check, so that a flag means the same wherever it is given."""

from __future__ import annotations

from collections.abc import Callable

from ppd.errors import UsageError
from ppd.modes import MODES, Mode, is_mode
from ppd.sim.timing import DEFAULT_PROFILE


# One flag per line reads better than one keyword per line.
# fmt: off
def add_conversation_arguments(add: Callable[..., object]) -> None:
    """How each synthetic conversation is made: --turns, --think-time-s, --seed."""
    add("--turns", type=int, default=2, help="turns per conversation of W1-W4 and IN/OUT (default 2)")
    add("--think-time-s", type=float, default=0.0, help="wait between a turn's end and the next (default 0)")
    add("--seed", type=int, default=0, help="seed of arrivals and prompts (default 0)")


def add_profile_argument(add: Callable[..., object]) -> None:
    """--profile: the engines' time model, as `ppd sim --profile`."""
    add("--profile", default=DEFAULT_PROFILE, help="engine time-model profile, as `ppd sim --profile`")


def add_drain_timeout_argument(add: Callable[..., object]) -> None:
    """--drain-timeout-s: how long in-flight conversations get after the arrival window."""
    add("--drain-timeout-s", type=float, default=120.0,
        help="after the arrival window, in-flight conversations get this long (default 120)")


def add_hops_argument(add: Callable[..., object]) -> None:
    """--hops: what the HTTP path adds around the engines of a fleet (ppd.fleet.config.hops_from_spec)."""
    add("--hops", default="measured", help="HTTP hop costs: 'measured' (ppd/fleet/hops.json), 'zero', "
        "or a JSON file with the keys of ppd.fleet.HopCosts (ms)")


def add_proxy_arguments(add: Callable[..., object]) -> None:
    """--proxy-cpu and --proxy-processes: the proxy's event loop in a fleet (ppd.fleet.proxy_loop)."""
    add("--proxy-cpu", default="measured", help="the proxy's CPU per request and relayed read: 'measured' "
        "(ppd/fleet/proxy_cpu.json), 'zero' (not modelled), or a JSON file with the keys of "
        "ppd.fleet.proxy_loop.ProxyCpu (us)")
    add("--proxy-processes", type=int, default=1,
        help="`ppd proxy` processes the conversations are spread over (default 1, as `ppd up`)")
# fmt: on


def check_at_least_one(values: dict[str, int]) -> None:
    """UsageError `--name must be >= 1` for the first flag (by its dest) below 1."""
    for name, value in values.items():
        if value < 1:
            raise UsageError(f"--{name.replace('_', '-')} must be >= 1")


def check_profile(name: str) -> None:
    """UsageError when no time-model profile has this name (the profile's own message)."""
    from ppd.sim.timing import ProfileError, load_profile

    try:
        load_profile(name)
    except ProfileError as exc:
        raise UsageError(str(exc)) from exc


def parse_mode_list(text: str) -> tuple[Mode, ...]:
    """`--modes pd,ppd` as modes (empty when none is named); UsageError naming a mode that is not one."""
    modes: list[Mode] = []
    for mode in (part.strip() for part in text.split(",") if part.strip()):
        if not is_mode(mode):
            raise UsageError(f"--modes: {mode!r} is not one of {', '.join(MODES)}")
        modes.append(mode)
    return tuple(modes)
