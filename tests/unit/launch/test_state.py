import json
from pathlib import Path

import pytest

from ppd.errors import UsageError
from ppd.launch import state


def _state() -> state.DeploymentState:
    return state.DeploymentState(
        backend="sim",
        topology="1p1d",
        mode="pd",
        processes=[
            state.ProcessRecord(
                "prefill0", "prefill", "http://127.0.0.1:8100", 11, "t1", "logs/prefill0.log", ["a"]
            ),
            state.ProcessRecord(
                "proxy", "proxy", "http://127.0.0.1:10001", 12, "t2", "logs/proxy.log", ["b"]
            ),
        ],
        remote=[state.RemoteInstance("decode0", "decode", "http://10.0.0.2:8200")],
        proxy_url="http://127.0.0.1:10001",
    )


def test_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "state.json"
    state.save(_state(), path)
    loaded = state.load(path)
    assert loaded == _state()
    assert json.loads(path.read_text())["version"] == state.STATE_VERSION
    assert loaded is not None
    assert loaded.urls("prefill") == ["http://127.0.0.1:8100"]
    assert loaded.urls("decode") == ["http://10.0.0.2:8200"]


def test_missing_file_is_none_and_remove_is_idempotent(tmp_path: Path) -> None:
    path = tmp_path / ".ppd" / "state.json"
    assert state.load(path) is None
    state.save(_state(), path)
    state.remove(path)
    state.remove(path)
    assert not path.parent.exists()


@pytest.mark.parametrize("text", ["{", '{"version": 99}', '{"version": 1, "processes": [{"x": 1}]}'])
def test_bad_files_are_usage_errors(tmp_path: Path, text: str) -> None:
    path = tmp_path / "state.json"
    path.write_text(text)
    with pytest.raises(UsageError, match="state file"):
        state.load(path)


def _state_with(**record_changes: object) -> dict:
    return {"version": 1, "backend": "sim", "topology": "1p1d", "mode": None,
            "processes": [_record(**record_changes)]}  # fmt: skip


def _record(**changes: object) -> dict:
    record = {"name": "proxy", "role": "proxy", "url": "http://127.0.0.1:1", "pid": 4242, "identity": "t",
              "log_path": "logs/proxy.log", "argv": ["ppd"]}  # fmt: skip
    return {**record, **changes}


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ([1, 2], "not a JSON object"),
        ("a string", "not a JSON object"),
        (_state_with(pid=0),
         r"processes\[0\]\.pid must be a process id > 1, got 0"),
        (_state_with(pid=-1),
         "pid must be a process id > 1"),
        (_state_with(pid=1),
         "pid must be a process id > 1"),
        (_state_with(pid="123"),
         "pid has the wrong type"),
        (_state_with(pid=12.5),
         "pid has the wrong type"),
        (_state_with(pid=True),
         "pid has the wrong type"),
        (_state_with(argv="x"),
         "argv"),
        ({"version": 1, "backend": "sim", "topology": "1p1d", "mode": None, "processes": ["x"]},
         "processes.0. must be an object"),
        ({"version": 1, "backend": "sim", "topology": "1p1d", "mode": None, "processes": {}},
         "processes has the wrong type"),
        ({"version": 1, "backend": 5, "topology": "1p1d", "mode": None, "processes": []}, "backend"),
        ({"version": 1, "backend": "sim", "topology": "1p1d", "mode": None, "processes": [], "x": 1},
         "unknown field"),
        ({"version": 1, "topology": "1p1d", "mode": None, "processes": []}, "backend is missing"),
    ],
)  # fmt: skip
def test_a_state_file_of_the_wrong_shape_is_one_usage_error(
    tmp_path: Path, payload: object, message: str
) -> None:
    path = tmp_path / "state.json"
    path.write_text(json.dumps(payload))
    with pytest.raises(UsageError, match=message):
        state.load(path)
