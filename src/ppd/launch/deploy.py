"""Bring a deployment up (engines, health, warm-up, proxy) and take exactly it down again.

from ppd.launch.deploy import start, stop, sim_up_config
with start(sim_up_config("1p1d", logs_dir=tmp / "logs", state_path=tmp / "state.json")) as deployment:
    ... deployment.proxy_url, deployment.prefill_urls, deployment.decode_urls ...
"""

from __future__ import annotations

import datetime
import os
import sys
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import TracebackType
from typing import Literal

from ppd.errors import UsageError
from ppd.launch import checks, process, readiness, state, warmup
from ppd.launch.proxy import ProxyOptions, Upstreams, check_mode, default_mode, proxy_command
from ppd.launch.readiness import LaunchError, Target
from ppd.launch.sim import SimOptions, sim_command
from ppd.launch.topology import Instance, LayoutOptions, Topology, check_only_host, layout_spec
from ppd.launch.vllm import VllmOptions, vllm_command, vllm_env, vllm_version, write_chat_template
from ppd.modes import Mode

Backend = Literal["sim", "vllm"]
Progress = Callable[[str], None]


def quiet(_: str) -> None:
    """Progress sink that drops every message (the default for the Python API)."""


@dataclass(frozen=True)
class UpConfig:
    """Everything `ppd up` needs; built by the CLI or by sim_up_config."""

    topology: Topology
    backend: Backend
    sim: SimOptions = field(default_factory=SimOptions)
    vllm: VllmOptions | None = None
    mode: str | None = None  # None: pd with P and D instances, replication with replicas only
    logs_dir: Path = Path("logs")
    state_path: Path = state.DEFAULT_STATE_PATH
    only_host: str | None = None
    gpus: tuple[str, ...] | None = None  # None: CUDA_VISIBLE_DEVICES or nvidia-smi (vllm only)
    instances_per_gpu: int = 1  # vllm: >1 shares each GPU (each instance gets its memory share)
    health_timeout_s: float = 60.0
    warmup_handshakes: int = 3
    proxy_args: tuple[str, ...] = ()
    start_proxy: bool = True  # False: engines only (warmed), e.g. to run your own router
    stop_timeout_s: float = 30.0


def sim_up_config(
    topology_spec: str,
    *,
    logs_dir: Path,
    state_path: Path,
    time_scale: float = 0.1,
    mode: str | None = None,
    host: str = "127.0.0.1",
    sim_args: tuple[str, ...] = (),
    warmup_handshakes: int = 1,
    start_proxy: bool = True,
) -> UpConfig:
    """A sim deployment on free ports of `host` (for tests and the demo)."""
    topology = layout_spec(topology_spec, LayoutOptions(host=host, port_base=0, proxy_port=0))
    return UpConfig(
        topology=topology,
        backend="sim",
        sim=SimOptions(time_scale=time_scale, extra_args=sim_args),
        mode=mode,
        logs_dir=logs_dir,
        state_path=state_path,
        warmup_handshakes=warmup_handshakes,
        start_proxy=start_proxy,
    )


@dataclass
class Deployment:
    """A running deployment as recorded in its state file; a context manager that stops it on exit."""

    state: state.DeploymentState
    state_path: Path
    stop_timeout_s: float = 30.0

    @property
    def proxy_url(self) -> str | None:
        """The proxy's base URL (None when another host runs the proxy)."""
        return self.state.proxy_url

    @property
    def prefill_urls(self) -> list[str]:
        """Engines the proxy uses as P (role prefill or both)."""
        return self.state.urls("prefill") + self.state.urls("both")

    @property
    def decode_urls(self) -> list[str]:
        """Engines the proxy uses as D (role decode or both)."""
        return self.state.urls("decode") + self.state.urls("both")

    @property
    def replica_urls(self) -> list[str]:
        """Engines started as replicas."""
        return self.state.urls("replica")

    def stop(self) -> list[str]:
        """Stop everything this deployment started; returns one line per process."""
        return stop(self.state_path, self.stop_timeout_s)

    def __enter__(self) -> Deployment:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()


def start(config: UpConfig, progress: Progress = quiet) -> Deployment:
    """Start this host's part of the topology, wait until healthy, warm P/D pairs, start the proxy."""
    check_only_host(config.topology, config.only_host)
    _refuse_running_deployment(config.state_path)
    config = _with_gpus(config)
    local = _local_instances(config)
    # The proxy's host coordinates: it waits for the other hosts' engines and warms every pair.
    coordinates = config.only_host in (None, config.topology.proxy_host)
    runs_proxy = coordinates and config.start_proxy
    upstreams = _upstreams(config.topology)
    mode = check_mode(config.mode or default_mode(upstreams), upstreams)
    checks.check_ports_free(_local_endpoints(config, local, runs_proxy))
    deployment_state = _initial_state(config, local, mode if runs_proxy else None)
    state.save(deployment_state, config.state_path)
    try:
        _start_engines(config, local, deployment_state, progress)
        if coordinates:
            _wait_remote_and_warm(config, deployment_state, progress)
        if runs_proxy:
            _start_proxy(config, deployment_state, _proxy_options(config, mode), progress)
    except BaseException:
        progress("stopping what was started ...")
        stop(config.state_path, config.stop_timeout_s)
        raise
    return Deployment(deployment_state, config.state_path, config.stop_timeout_s)


def stop(target: Deployment | Path, timeout_s: float = 30.0, progress: Progress = quiet) -> list[str]:
    """Stop every process a state file lists, all at once, by pid; then delete the file.

    Returns one line per process; [] when there was nothing to stop. The file is kept when a
    process survived SIGKILL, so a later `ppd down` can try again.
    """
    state_path = target.state_path if isinstance(target, Deployment) else target
    deployment_state = state.load(state_path)
    if deployment_state is None:
        return []
    records = list(reversed(deployment_state.processes))
    outcomes = process.stop_all([process.Started(r.pid, r.identity) for r in records], timeout_s)
    lines = [
        f"{r.name} (pid {r.pid}, {r.url}): {outcome}" for r, outcome in zip(records, outcomes, strict=True)
    ]
    for line in lines:
        progress(line)
    if not any(outcome.startswith(process.STILL_RUNNING) for outcome in outcomes):
        state.remove(state_path)
    return lines


def _refuse_running_deployment(state_path: Path) -> None:
    existing = state.load(state_path)
    if existing is None:
        return
    running = [r.name for r in existing.processes if process.is_running(process.Started(r.pid, r.identity))]
    if running:
        raise UsageError(
            f"a deployment is already running ({', '.join(running)}; state {state_path}): "
            f"run `ppd down --state {state_path}` first"
        )


def _with_gpus(config: UpConfig) -> UpConfig:
    """vLLM instances of this host each get a GPU; sims need none."""
    if config.backend != "vllm":
        return config
    checks.check_memory_share(config.instances_per_gpu, _vllm_options(config).gpu_memory_utilization)
    gpus = checks.available_gpus(config.gpus, os.environ)
    host = _this_host(config)
    local = checks.assign_gpus(config.topology.on_host(host), gpus, config.instances_per_gpu)
    by_name = {i.name: i for i in local}
    instances = tuple(by_name.get(i.name, i) for i in config.topology.instances)
    return replace(config, topology=replace(config.topology, instances=instances))


def _this_host(config: UpConfig) -> str:
    return config.only_host if config.only_host is not None else config.topology.hosts[0]


def _local_instances(config: UpConfig) -> tuple[Instance, ...]:
    return config.topology.on_host(_this_host(config))


def _upstreams(topology: Topology) -> Upstreams:
    def urls(*roles: str) -> tuple[str, ...]:
        return tuple(i.url for i in topology.instances if i.role in roles)

    return Upstreams(prefill=urls("prefill", "both"), decode=urls("decode", "both"), replica=urls("replica"))


def _local_endpoints(
    config: UpConfig, local: tuple[Instance, ...], runs_proxy: bool
) -> list[tuple[str, int, str]]:
    endpoints = [(i.host, i.port, i.name) for i in local]
    if config.backend == "vllm":
        endpoints += [(i.host, i.nixl_port, f"{i.name} NIXL side channel") for i in local]
    if runs_proxy:
        endpoints.append((config.topology.proxy_host, config.topology.proxy_port, "proxy"))
    return endpoints


def _initial_state(config: UpConfig, local: tuple[Instance, ...], mode: str | None) -> state.DeploymentState:
    remote = [
        state.RemoteInstance(i.name, i.role, i.url) for i in config.topology.instances if i not in local
    ]
    return state.DeploymentState(
        backend=config.backend,
        topology=config.topology.source,
        mode=mode,
        remote=remote,
        engine_version=_engine_version(config, local),
        created_at=datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    )


def _engine_version(config: UpConfig, local: tuple[Instance, ...]) -> str | None:
    if not local:
        return None  # a proxy-only host needs no vLLM
    if config.backend == "sim":
        from ppd import __version__

        return f"ppd-sim {__version__}"
    options = _vllm_options(config)
    env = vllm_env(local[0], options, os.environ)
    return f"vllm {vllm_version(options.python, env)}"


def _vllm_options(config: UpConfig) -> VllmOptions:
    if config.vllm is None:
        raise UsageError("--backend vllm needs --model PATH")
    return config.vllm


def _engine_argv_env(
    config: UpConfig, instance: Instance, shares_gpu: bool
) -> tuple[list[str], Mapping[str, str]]:
    if config.backend == "sim":
        return sim_command(instance, config.sim), dict(os.environ, PYTHONUNBUFFERED="1")
    options = _vllm_options(config)
    if options.chat_template_path is None:
        options = replace(options, chat_template_path=write_chat_template(config.logs_dir))
    return vllm_command(instance, options), vllm_env(instance, options, os.environ, shares_gpu)


def _start_engines(
    config: UpConfig, local: tuple[Instance, ...], deployment_state: state.DeploymentState, progress: Progress
) -> None:
    """Start the engines wave by wave (instances that share a GPU one after the other), each wave
    healthy before the next starts."""
    per_gpu = Counter(instance.gpu for instance in local if instance.gpu is not None)
    shared = {gpu for gpu, count in per_gpu.items() if count > 1}
    for wave in checks.start_waves(local):
        targets = [
            _start_engine(config, instance, instance.gpu in shared, deployment_state, progress)
            for instance in wave
        ]
        progress(
            f"waiting for {len(targets)} engine(s) to answer /health (timeout {config.health_timeout_s:g} s)"
        )
        bound = readiness.wait_ready(targets, config.health_timeout_s, progress)
        deployment_state.processes[:] = [
            replace(r, url=bound.get(r.name, r.url)) for r in deployment_state.processes
        ]
        state.save(deployment_state, config.state_path)


def _start_engine(
    config: UpConfig,
    instance: Instance,
    shares_gpu: bool,
    deployment_state: state.DeploymentState,
    progress: Progress,
) -> Target:
    argv, env = _engine_argv_env(config, instance, shares_gpu)
    log_path = log_path_in(config.logs_dir, instance.name)
    gpu = f", GPU {instance.gpu}" if instance.gpu is not None else ""
    where = f"{instance.host}:{instance.port}{gpu}"
    progress(f"starting {instance.name} ({instance.role}) on {where} -> {log_path}")
    started = _spawn(argv, env, log_path)
    deployment_state.processes.append(
        state.ProcessRecord(
            instance.name, instance.role, instance.url, started.pid, started.identity, str(log_path), argv
        )
    )
    state.save(deployment_state, config.state_path)
    return Target(instance.name, instance.url, started, log_path)


def _spawn(argv: list[str], env: Mapping[str, str], log_path: Path) -> process.Started:
    try:
        return process.spawn(argv, env, log_path)
    except OSError as exc:
        raise LaunchError(f"cannot start {argv[0]}: {exc}") from exc


def _wait_remote_and_warm(
    config: UpConfig, deployment_state: state.DeploymentState, progress: Progress
) -> None:
    if deployment_state.remote:
        remote_targets = [Target(r.name, r.url) for r in deployment_state.remote]
        progress(f"waiting for {len(remote_targets)} engine(s) on other hosts to answer /health")
        readiness.wait_ready(remote_targets, config.health_timeout_s, progress)
    prefill_urls, decode_urls = _pd_urls(deployment_state)
    if config.warmup_handshakes > 0 and prefill_urls and decode_urls:
        num_pairs = len(prefill_urls) * len(decode_urls)
        progress(f"warming {num_pairs} P/D pair(s), {config.warmup_handshakes} handshakes each")
        for pair in warmup.warm_pairs(prefill_urls, decode_urls, config.warmup_handshakes):
            times = ", ".join(f"{ms:.0f}" for ms in pair.durations_ms)
            progress(f"  {pair.prefill_url} -> {pair.decode_url}: {times} ms")


def _pd_urls(deployment_state: state.DeploymentState) -> tuple[list[str], list[str]]:
    prefill_urls = deployment_state.urls("prefill") + deployment_state.urls("both")
    decode_urls = deployment_state.urls("decode") + deployment_state.urls("both")
    return prefill_urls, decode_urls


def _proxy_options(config: UpConfig, mode: Mode) -> ProxyOptions:
    host, port = config.topology.proxy_host, config.topology.proxy_port
    return ProxyOptions(host, port, mode, config.proxy_args, sys.executable)


def _start_proxy(
    config: UpConfig, deployment_state: state.DeploymentState, options: ProxyOptions, progress: Progress
) -> None:
    prefill_urls, decode_urls = _pd_urls(deployment_state)
    upstreams = Upstreams(tuple(prefill_urls), tuple(decode_urls), tuple(deployment_state.urls("replica")))
    argv = proxy_command(options, upstreams)
    log_path = config.logs_dir / "proxy.log"
    progress(f"starting proxy ({options.mode}) on {options.host}:{options.port} -> {log_path}")
    started = _spawn(argv, dict(os.environ, PYTHONUNBUFFERED="1"), log_path)
    url = f"http://{options.host}:{options.port}"
    record = state.ProcessRecord("proxy", "proxy", url, started.pid, started.identity, str(log_path), argv)
    deployment_state.processes.append(record)
    state.save(deployment_state, config.state_path)
    bound = readiness.wait_ready([Target("proxy", url, started, log_path)], config.health_timeout_s, progress)
    deployment_state.processes[-1] = replace(record, url=bound["proxy"])
    deployment_state.proxy_url = bound["proxy"]
    state.save(deployment_state, config.state_path)


def log_path_in(logs_dir: Path, name: str) -> Path:
    """`logs_dir/name.log`; UsageError when the name would put it anywhere else (`../x`, `/x`)."""
    log_path = logs_dir / f"{name}.log"
    if log_path.parent != logs_dir or log_path.name != f"{name}.log" or name.startswith("."):
        raise UsageError(f"instance name {name!r} would put its log outside {logs_dir}")
    return log_path
