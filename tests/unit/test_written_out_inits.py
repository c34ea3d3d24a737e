"""Every dataclass whose __init__ is written out (init=False, for mypyc: docs/fleet.md) sets every
one of its fields there. A field the hand-written __init__ forgets is an AttributeError (slots) or a
stale class default at the first read, and no dataclass machinery would notice."""

from __future__ import annotations

import ast
import dataclasses
import importlib
import inspect
import textwrap
from pathlib import Path

import pytest

import ppd

SRC = Path(ppd.__file__).parent


def _written_out_dataclasses() -> list[type]:
    found = []
    for path in sorted(SRC.rglob("*.py")):
        if "dataclass(init=False" not in path.read_text():
            continue
        module = importlib.import_module(".".join(("ppd", *path.relative_to(SRC).with_suffix("").parts)))
        for _, cls in inspect.getmembers(module, inspect.isclass):
            written_out = dataclasses.is_dataclass(cls) and not cls.__dataclass_params__.init  # type: ignore[attr-defined]
            if cls.__module__ == module.__name__ and written_out:
                found.append(cls)
    return found


def _assigned(init: ast.FunctionDef) -> set[str]:
    """Names set on self in __init__: `self.x = ...`, `self.x: T = ...`, `self.x = self.y = ...`,
    `object.__setattr__(self, "x", ...)`."""
    names = set()
    for node in ast.walk(init):
        targets: list[ast.expr] = []
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, ast.AnnAssign | ast.AugAssign):
            targets = [node.target]
        elif (
            isinstance(node, ast.Call)
            and ast.unparse(node.func) == "object.__setattr__"
            and len(node.args) >= 2
            and isinstance(node.args[1], ast.Constant)
        ):
            names.add(str(node.args[1].value))
        for target in targets:
            elements = target.elts if isinstance(target, ast.Tuple) else [target]
            for element in elements:
                if isinstance(element, ast.Attribute) and ast.unparse(element.value) == "self":
                    names.add(element.attr)
    return names


CLASSES = _written_out_dataclasses()


def test_the_written_out_dataclasses_are_found() -> None:
    # The sim's and the router's hot classes (core.Step, request.Request, ...) are among them.
    assert len(CLASSES) >= 20
    assert {"Step", "Request", "KVBlock"} <= {cls.__name__ for cls in CLASSES}


@pytest.mark.parametrize("cls", CLASSES, ids=lambda cls: f"{cls.__module__}.{cls.__qualname__}")
def test_a_written_out_init_sets_every_field(cls: type) -> None:
    assert "__init__" in vars(cls), f"{cls.__qualname__} is init=False but writes no __init__"
    source = textwrap.dedent(inspect.getsource(vars(cls)["__init__"]))
    init = ast.parse(source).body[0]
    assert isinstance(init, ast.FunctionDef)
    fields = {field.name for field in dataclasses.fields(cls)}
    missing = fields - _assigned(init)
    assert not missing, f"{cls.__qualname__}.__init__ does not set {sorted(missing)}"
