"""Imports between dccsim's packages point one way (DESIGN.md), lazy imports included.

The allowed edges, from the layout table: ``throttle`` and ``cache`` import no other dccsim
package; ``core`` imports them; ``loadgen`` imports ``core``; ``bench`` imports everything.
Every ``import`` in every module is read from its syntax tree, including those inside
functions, so a lazy import cannot hide a back edge.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("throttle", "cache", "core", "loadgen", "bench")
ALLOWED: dict[str, set[str]] = {
    "throttle": set(),
    "cache": set(),
    "core": {"throttle", "cache"},
    "loadgen": {"core"},
    "bench": {"throttle", "cache", "core", "loadgen"},
}


def _imports(path: Path, package: str, module: tuple[str, ...] = ()) -> list[tuple[int, str]]:
    """(line, dccsim package) of every import of another dccsim package in ``path``.

    ``module`` is the module's dotted name split (``("dccsim", "loadgen", "driver")``), to
    resolve relative imports: ``from ..bench import x`` in ``dccsim.loadgen.driver`` is
    ``dccsim.bench``.
    """
    tree = ast.parse(path.read_text(), str(path))
    found = []
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level and module:
            base = list(module[: len(module) - node.level])
            if node.module:
                names = [".".join([*base, node.module])]
            else:  # from .. import bench
                names = [".".join([*base, a.name]) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module]
            if node.module == "dccsim":  # from dccsim import core
                names = [f"dccsim.{a.name}" for a in node.names]
        for name in names:
            parts = name.split(".")
            if parts[0] == "dccsim" and len(parts) > 1 and parts[1] in PACKAGES and parts[1] != package:
                found.append((node.lineno, parts[1]))
    return found


def _modules(package: str) -> list[Path]:
    return sorted(p for p in (ROOT / package).rglob("*.py") if "__pycache__" not in p.parts)


def _name(path: Path) -> tuple[str, ...]:
    """The module's dotted name, split: ``loadgen/driver.py`` is ``dccsim.loadgen.driver``."""
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ("dccsim", *(parts[:-1] if parts[-1] == "__init__" else parts))


@pytest.mark.parametrize("package", PACKAGES)
def test_imports_point_one_way(package: str) -> None:
    wrong = [
        f"{path.relative_to(ROOT)}:{line} imports dccsim.{target}"
        for path in _modules(package)
        for line, target in _imports(path, package, _name(path))
        if target not in ALLOWED[package]
    ]
    assert not wrong, "imports against the layering (DESIGN.md):\n" + "\n".join(wrong)


def test_the_check_sees_lazy_imports(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text(
        "def f():\n    from dccsim.bench.compose import load_run\n    import dccsim.cache.readings\n"
        "    from ..bench import compose\n    from .. import throttle\n    from .workload import x\n"
    )
    here = ("dccsim", "loadgen", "driver")
    assert _imports(module, "loadgen", here) == [(2, "bench"), (3, "cache"), (4, "bench"), (5, "throttle")]
    assert _imports(module, "bench", ("dccsim", "bench", "compose")) == [(3, "cache"), (5, "throttle")]


def test_no_command_module_imports_the_command_group() -> None:
    """The group loads the commands by name; a command importing the group back is a cycle."""
    for path in sorted((ROOT / "bench" / "cli").glob("cmd_*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                target = ("." * node.level) + (node.module or "")
                assert target not in (".main", "dccsim.bench.cli.main", ".", "dccsim.bench.cli"), (
                    f"{path.name}:{node.lineno} imports {target}"
                )
