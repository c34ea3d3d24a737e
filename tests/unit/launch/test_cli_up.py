import argparse
from pathlib import Path

import pytest

from ppd.errors import UsageError
from ppd.launch import cli_up


def _config(*argv: str):  # type: ignore[no-untyped-def]
    parser = argparse.ArgumentParser()
    cli_up.add_arguments(parser)
    return cli_up.build_config(parser.parse_args(list(argv)))


def test_vllm_flags_reach_the_typed_config() -> None:
    config = _config(
        "--backend", "vllm", "--topology", "1p1d", "--model", "/opt/model", "--load-format", "dummy",
        "--gpus", "0,1", "--env", "PYTHONPATH=/opt/site", "--vllm-arg=--enforce-eager",
        "--vllm-python", "python3", "--max-model-len", "32768",
    )  # fmt: skip
    assert config.backend == "vllm"
    assert config.gpus == ("0", "1")
    assert config.vllm is not None
    assert config.vllm.model == "/opt/model"
    assert config.vllm.load_format == "dummy"
    assert config.vllm.max_model_len == 32768
    assert config.vllm.extra_args == ("--enforce-eager",)
    assert config.vllm.extra_env == (("PYTHONPATH", "/opt/site"),)
    assert config.vllm.python == "python3"
    assert config.health_timeout_s == cli_up.DEFAULT_HEALTH_TIMEOUT_S["vllm"]
    assert [i.port for i in config.topology.instances] == [8100, 8200]


def test_sim_defaults() -> None:
    config = _config("--backend", "sim", "--topology", "2r", "--port-base", "8300", "--proxy-port", "10002")
    assert config.vllm is None
    assert config.state_path == Path(".ppd/state.json")
    assert config.logs_dir == Path("logs")
    assert [i.port for i in config.topology.instances] == [8300, 8400]
    assert config.topology.proxy_port == 10002


def test_topology_file_is_read(tmp_path: Path) -> None:
    path = tmp_path / "t.toml"
    path.write_text('[[instance]]\nport = 9000\nrole = "replica"\n')
    config = _config("--backend", "sim", "--topology", str(path))
    assert [(i.name, i.port) for i in config.topology.instances] == [("worker0", 9000)]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("--backend", "vllm"), "--model"),
        (("--backend", "vllm", "--model", "m", "--port-base", "0"), "sim only"),
        (("--backend", "sim", "--model", "m"), "vllm only"),
        (("--backend", "sim", "--only-host", "h"), "TOML"),
        (("--backend", "sim", "--gpus", ","), "--gpus"),
        (("--backend", "sim", "--time-scale", "0"), "time-scale"),
        (("--backend", "sim", "--topology", "3x"), "not understood"),
        (("--backend", "sim", "--port-base", "70000"), "port"),
    ],
)
def test_bad_flag_combinations(argv: tuple[str, ...], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        _config(*argv)
