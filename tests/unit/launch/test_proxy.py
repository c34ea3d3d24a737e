import pytest

from ppd.errors import UsageError
from ppd.launch.proxy import ProxyOptions, Upstreams, check_mode, default_mode, proxy_command

PD = Upstreams(prefill=("http://p0", "http://p1"), decode=("http://d0",), replica=())
REPLICAS = Upstreams(prefill=(), decode=(), replica=("http://w0", "http://w1"))


def test_proxy_command_lists_every_upstream() -> None:
    argv = proxy_command(ProxyOptions("127.0.0.1", 10001, "ppd", ("--admin-token", "t"), "py"), PD)
    assert argv == [
        "py", "-m", "ppd", "proxy", "--host", "127.0.0.1", "--port", "10001", "--mode", "ppd",
        "--prefill", "http://p0", "--prefill", "http://p1", "--decode", "http://d0",
        "--admin-token", "t",
    ]  # fmt: skip


def test_default_mode() -> None:
    assert default_mode(PD) == "pd"
    assert default_mode(REPLICAS) == "replication"


def test_check_mode() -> None:
    for mode in ("pd", "ppd", "replication"):
        check_mode(mode, PD)
    check_mode("replication", REPLICAS)
    with pytest.raises(UsageError, match="replicas only"):
        check_mode("ppd", REPLICAS)
    with pytest.raises(UsageError, match="not one of"):
        check_mode("fastest", PD)
