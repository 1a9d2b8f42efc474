"""The house rules of DESIGN.md, checked on the source: who may import whom, and that a driver
kind is named only inside controller/drivers/ (points 1, 6 and 11)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from controller.drivers.kinds import POOL_KINDS

ROOT = Path(__file__).resolve().parents[2] / "controller"


def _modules(folder: str) -> list[Path]:
    return sorted((ROOT / folder).rglob("*.py")) if folder else sorted(ROOT.rglob("*.py"))


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def _ours(names: set[str], *prefixes: str) -> set[str]:
    return {n for n in names if any(n == p or n.startswith(p + ".") for p in prefixes)}


@pytest.mark.parametrize("path", _modules("core"), ids=lambda p: p.name)
def test_the_core_imports_only_pure_modules(path: Path) -> None:
    allowed = ("controller.core", "controller.model", "controller.config",
               "controller.config_model", "controller.drivers.kinds")  # fmt: skip
    ours = {n for n in _imports(path) if n.startswith("controller")}
    assert ours <= {n for n in ours if any(n == a or n.startswith(a + ".") for a in allowed)}
    third_party = {n.split(".")[0] for n in _imports(path)} & {
        "aiomqtt", "pymodbus", "prometheus_client", "structlog", "sqlite3", "asyncio", "time",
    }  # fmt: skip
    assert not third_party, f"{path.name} imports {third_party}: the core has no I/O and no clock"


@pytest.mark.parametrize("path", _modules("adapters"), ids=lambda p: p.name)
def test_adapters_carry_bytes_not_decisions(path: Path) -> None:
    assert not _ours(_imports(path), "controller.core", "controller.runtime", "controller.drivers")


@pytest.mark.parametrize("path", _modules("drivers"), ids=lambda p: p.name)
def test_drivers_never_reach_into_the_runtime_or_the_core(path: Path) -> None:
    assert not _ours(_imports(path), "controller.core", "controller.runtime")


def _kind_comparisons(path: Path) -> list[int]:
    """Lines comparing something to a pool driver kind's name (`x == "mqtt"`, `in (...)`)."""
    lines = []
    for node in ast.walk(ast.parse(path.read_text())):
        if not isinstance(node, ast.Compare):
            continue
        operands = [node.left, *node.comparators]
        consts = [o for o in operands if isinstance(o, ast.Constant)]
        consts += [e for o in operands if isinstance(o, ast.Tuple | ast.Set | ast.List)
                   for e in o.elts if isinstance(e, ast.Constant)]  # fmt: skip
        if any(c.value in POOL_KINDS for c in consts):
            lines.append(node.lineno)
    return lines


def test_no_code_outside_drivers_branches_on_a_driver_kind() -> None:
    found = {
        str(path.relative_to(ROOT)): lines
        for path in _modules("")
        if "drivers" not in path.relative_to(ROOT).parts and (lines := _kind_comparisons(path))
    }
    assert not found, f"driver kinds compared outside controller/drivers/: {found}"
