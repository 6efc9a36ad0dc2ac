"""The code's shape stays as pgrl.loops / pgrl.algos intend (see ../shared/ARCHITECTURE.md).

Guards that a refactor cannot quietly undo: algorithm files stay small, no module outside an
algorithm's own file branches on its name, checkpoint.py imports no algorithm, and every
algorithm declares its capabilities and is in the registry the CLI lists.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import pgrl
from pgrl.algos.base import Algorithm
from pgrl.algos.common import Capabilities

SRC = Path(pgrl.__file__).parent


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


@pytest.mark.parametrize("name", ["base.py", "a3c.py"])
def test_small_algorithm_files(name):
    lines = len((SRC / "algos" / name).read_text().splitlines())
    assert lines <= 200, f"algos/{name} has {lines} lines; move shared code to pgrl.algos.common or pgrl.loops"


def test_checkpoint_imports_no_algorithm():
    algo_modules = {m for m in _imports(SRC / "checkpoint.py") if m.startswith("pgrl.algos")}
    assert not algo_modules, f"checkpoint.py imports {sorted(algo_modules)}"


def test_algorithm_files_import_no_runner_logger_or_cli():
    for path in (SRC / "algos").glob("*.py"):
        bad = {m for m in _imports(path)
               if m.startswith(("pgrl.loops", "pgrl.logging", "pgrl.cli", "pgrl.runs", "gymnasium"))
               or m == "gymnasium"}
        if path.name == "base.py":  # the facade's learn/collect hand over to pgrl.loops (imported lazily)
            bad -= {"pgrl.loops", "pgrl.loops.collection"}
        assert not bad, f"algos/{path.name} imports {sorted(bad)}"


def test_no_algorithm_name_checks_outside_its_own_file():
    names = set(pgrl.ALGORITHMS)
    offenders = []
    for path in SRC.rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Compare):
                for part in [node.left, *node.comparators]:
                    if isinstance(part, ast.Constant) and part.value in names:
                        own = path.name == f"{part.value}.py"
                        if not own:
                            offenders.append(f"{path.relative_to(SRC)}:{node.lineno} compares with {part.value!r}")
    assert not offenders, "capabilities, not names: " + "; ".join(offenders)


def test_every_algorithm_is_registered_with_capabilities():
    assert set(pgrl.ALGORITHMS) == set(Algorithm.registry)
    for name, cls in pgrl.ALGORITHMS.items():
        assert cls.name == name and isinstance(cls.capabilities, Capabilities)
        assert cls.capabilities.runner in ("synchronous", "hogwild")
        assert cls.learn is Algorithm.learn, f"{name} re-owns the loop; declare capabilities.runner instead"
