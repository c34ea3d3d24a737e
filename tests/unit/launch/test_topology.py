from pathlib import Path

import pytest

from ppd.errors import UsageError
from ppd.launch.topology import LayoutOptions, check_only_host, layout_spec, load_file, parse_spec


def test_parse_spec_counts_roles() -> None:
    assert parse_spec("1p1d") == {"prefill": 1, "decode": 1, "replica": 0}
    assert parse_spec("2P3D") == {"prefill": 2, "decode": 3, "replica": 0}
    assert parse_spec("4r") == {"prefill": 0, "decode": 0, "replica": 4}
    assert parse_spec("1p1d2r") == {"prefill": 1, "decode": 1, "replica": 2}


@pytest.mark.parametrize("spec", ["", "p1d", "1p", "1d", "0p1d", "1p0d", "0r", "2x", "1p1d1"])
def test_parse_spec_rejects_bad_specs(spec: str) -> None:
    with pytest.raises(UsageError):
        parse_spec(spec)


def test_layout_follows_the_seed_ports() -> None:
    topology = layout_spec("1p1d", LayoutOptions())
    assert [(i.name, i.role, i.port, i.nixl_port) for i in topology.instances] == [
        ("prefill0", "prefill", 8100, 5600),
        ("decode0", "decode", 8200, 5601),
    ]
    assert (topology.proxy_host, topology.proxy_port) == ("127.0.0.1", 10001)
    replication = layout_spec("2r", LayoutOptions(port_base=8300, proxy_port=10002))
    assert [(i.name, i.role, i.port) for i in replication.instances] == [
        ("worker0", "replica", 8300),
        ("worker1", "replica", 8400),
    ]


def test_layout_2p2d_orders_prefill_then_decode() -> None:
    topology = layout_spec("2p2d", LayoutOptions())
    assert [i.name for i in topology.instances] == ["prefill0", "prefill1", "decode0", "decode1"]
    assert [i.port for i in topology.instances] == [8100, 8200, 8300, 8400]
    assert all(i.gpu is None for i in topology.instances)


def test_layout_port_base_zero_means_free_ports() -> None:
    topology = layout_spec("1p1d", LayoutOptions(port_base=0, proxy_port=0))
    assert [i.port for i in topology.instances] == [0, 0]


TWO_HOSTS = """
[proxy]
host = "10.0.0.1"
port = 10001

[[instance]]
host = "10.0.0.1"
port = 8100
role = "prefill"
gpu = 0

[[instance]]
host = "10.0.0.2"
port = 8100
role = "decode"
gpu = "1"

[[instance]]
host = "10.0.0.2"
port = 8200
role = "both"
"""


def test_load_file_reads_instances(tmp_path: Path) -> None:
    path = tmp_path / "t.toml"
    path.write_text(TWO_HOSTS)
    topology = load_file(path)
    assert [(i.name, i.role, i.host, i.port, i.gpu, i.nixl_port) for i in topology.instances] == [
        ("prefill0", "prefill", "10.0.0.1", 8100, "0", 5600),
        ("decode0", "decode", "10.0.0.2", 8100, "1", 5600),
        ("engine0", "both", "10.0.0.2", 8200, None, 5601),
    ]
    assert topology.hosts == ("10.0.0.1", "10.0.0.2")
    assert [i.name for i in topology.on_host("10.0.0.2")] == ["decode0", "engine0"]


def test_multi_host_topology_needs_only_host(tmp_path: Path) -> None:
    path = tmp_path / "t.toml"
    path.write_text(TWO_HOSTS)
    topology = load_file(path)
    with pytest.raises(UsageError, match="--only-host"):
        check_only_host(topology, None)
    with pytest.raises(UsageError, match="not in the topology"):
        check_only_host(topology, "10.0.0.9")
    check_only_host(topology, "10.0.0.2")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[[instance]]\nport = 8100\nrole = "boss"\n', "role"),
        ('[[instance]]\nport = 8100\nrole = "prefill"\ncolour = 1\n', "unknown keys"),
        ('[[instance]]\nport = 70000\nrole = "prefill"\n', "port"),
        ('[[instance]]\nrole = "prefill"\n', "port"),
        (
            '[[instance]]\nport = 8100\nrole = "prefill"\n[[instance]]\nport = 8100\nrole = "decode"\n',
            "twice",
        ),
        ("[proxy]\nport = 1\n", "at least one"),
        ('extra = 1\n[[instance]]\nport = 8100\nrole = "prefill"\n', "top-level"),
        ("[[instance]\n", "cannot read"),
        ('[[instance]]\nport = 8100\nrole = "both"\nname = "../../evil"\n', "plain file name"),
        ('[[instance]]\nport = 8100\nrole = "both"\nname = "/tmp/evil"\n', "plain file name"),
        ('[[instance]]\nport = 8100\nrole = "both"\nname = ".hidden"\n', "plain file name"),
        ('[[instance]]\nport = 8100\nrole = "both"\nname = "a\\nb"\n', "plain file name"),
        ('[proxy]\nport = 70000\n[[instance]]\nport = 8100\nrole = "both"\n', "proxy.port"),
    ],
)
def test_load_file_rejects_bad_files(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "t.toml"
    path.write_text(text)
    with pytest.raises(UsageError, match=message):
        load_file(path)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (LayoutOptions(port_base=65500), "--port-base 65500 gives 2 engine.s. ports up to 65600"),
        (LayoutOptions(port_base=-5), "--port-base -5"),
        (LayoutOptions(proxy_port=70000), "--proxy-port 70000"),
        (LayoutOptions(proxy_port=-1), "--proxy-port -1"),
        (LayoutOptions(nixl_port_base=65535), "--nixl-port-base 65535"),
        (LayoutOptions(nixl_port_base=0), "--nixl-port-base 0"),
    ],
)
def test_layout_ports_beyond_the_port_range_are_usage_errors(options: LayoutOptions, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        layout_spec("1p1d", options)


def test_the_highest_port_base_that_fits_is_accepted() -> None:
    topology = layout_spec("1p1d", LayoutOptions(port_base=65435, proxy_port=65535))
    assert [i.port for i in topology.instances] == [65435, 65535]


def test_logs_stay_under_the_logs_directory(tmp_path: Path) -> None:
    from ppd.launch.deploy import log_path_in

    assert log_path_in(tmp_path, "decode0") == tmp_path / "decode0.log"
    for name in ("../../evil", "/tmp/evil", "a/b", ".hidden"):
        with pytest.raises(UsageError, match="outside"):
            log_path_in(tmp_path, name)
