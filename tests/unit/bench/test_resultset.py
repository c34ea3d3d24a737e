from __future__ import annotations

import json

from ppd.bench.resultset import row_line
from ppd.results import TurnRow, row_from_dict, row_to_json


def test_row_line_is_the_contract_line() -> None:
    row = TurnRow(
        "ppd",
        "W3",
        16.0,
        0,
        1,
        "c1",
        2,
        True,
        True,
        200,
        None,
        1.5,
        1.6,
        100.0,
        10.0,
        1000.0,
        9.0,
        [9.1234, 0.5],
        1280,
        752,
        256,
        "ppd-direct",
        "http://d",
        None,
        False,
    )
    assert row_line(row) == row_to_json(row)
    failed = TurnRow(
        "pd",
        "W1",
        1.0,
        2,
        0,
        "c0",
        3,
        False,
        False,
        None,
        "not sent: turn 2 failed",
        4.0,
        None,
        None,
        None,
        None,
        None,
    )
    assert row_line(failed) == row_to_json(failed)
    assert row_from_dict(json.loads(row_line(row))) == row
