"""The `ppd` command's dispatch: only the named subcommand's module is imported."""

from __future__ import annotations

import subprocess
import sys

import pytest

from ppd.cli import SUBCOMMANDS, main, named_command

# In a fresh interpreter: parse `ppd sim --help` and list which subcommand modules got imported.
PROBE = """
import sys
from ppd.cli import SUBCOMMANDS, main
try:
    main(["sim", "--help"])
except SystemExit:
    pass
print("imported:", sorted(n for n, (m, _) in SUBCOMMANDS.items() if m in sys.modules))
"""


def test_a_subcommand_imports_no_other_subcommands_module() -> None:
    done = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=30, check=True
    )
    assert done.stdout.splitlines()[-1] == "imported: ['sim']", done.stdout + done.stderr


@pytest.mark.parametrize(
    ("argv", "command"),
    [(["sim", "--port", "0"], "sim"), (["--version"], None), (["bogus", "sim"], None), ([], None)],
)
def test_the_named_command_is_the_first_word_that_is_not_an_option(
    argv: list[str], command: str | None
) -> None:
    assert named_command(argv) == command


def test_top_level_help_and_errors_still_list_every_subcommand(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    assert all(name in out for name in SUBCOMMANDS)
    with pytest.raises(SystemExit) as exit_info:
        main(["bogus"])
    assert exit_info.value.code == 2 and "invalid choice: 'bogus'" in capsys.readouterr().err
