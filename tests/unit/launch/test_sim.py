from ppd.launch.sim import SimOptions, sim_command
from ppd.launch.topology import Instance


def test_sim_command_names_the_engine_and_scales_time() -> None:
    instance = Instance("decode1", "decode", "127.0.0.1", 0, None, 5603)
    argv = sim_command(instance, SimOptions(time_scale=0.05, python="py"))
    assert argv == [
        "py", "-m", "ppd", "sim", "--host", "127.0.0.1", "--port", "0",
        "--engine-id", "decode1", "--served-model-name", "llama", "--time-scale", "0.05",
    ]  # fmt: skip


def test_sim_command_optional_flags() -> None:
    instance = Instance("worker0", "replica", "127.0.0.1", 8300, None, 5600)
    options = SimOptions(
        max_model_len=4096, block_size=32, seed=7, extra_args=("--profile", "x"), python="py"
    )
    argv = sim_command(instance, options)
    assert argv[argv.index("--max-model-len") + 1] == "4096"
    assert argv[argv.index("--block-size") + 1] == "32"
    assert argv[argv.index("--seed") + 1] == "7"
    assert argv[-2:] == ["--profile", "x"]
