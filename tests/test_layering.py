"""The package's shape: stages import only downward (import-linter's contracts in pyproject.toml,
the order of docs/ARCHITECTURE.md's stage table), without cycles, without function-level imports
of project modules that would hide one, and only engines/ reads an engine's capability flags."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "warehouse_rca"
ROOT = PACKAGE.parent
FLAGS = {"WRITE_STRATEGY", "ROW_LEVEL_DML", "TRANSACTIONAL_DDL", "SUPPORTS_SCHEMAS"}


def _modules() -> dict[str, ast.Module]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        name = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        out[name] = ast.parse(path.read_text(encoding="utf-8"))
    return out


def _project_imports(node: ast.AST) -> list[str]:
    if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
        if node.module == "warehouse_rca":
            return [f"warehouse_rca.{a.name}" for a in node.names]
        return [node.module] if node.module.startswith("warehouse_rca.") else []
    if isinstance(node, ast.Import):
        return [a.name for a in node.names if a.name.startswith("warehouse_rca.")]
    return []


def test_import_linter_contracts_are_kept() -> None:
    # lint-imports, run from the checkout so it reads this tree and its pyproject.toml
    run = subprocess.run(
        [sys.executable, "-c", "from importlinter.cli import lint_imports_command as main; main()"],
        check=False, cwd=ROOT, capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "2 kept, 0 broken" in run.stdout, run.stdout


def test_no_function_level_import_of_a_project_module() -> None:
    hidden = []
    for name, tree in _modules().items():
        top = {id(n) for n in tree.body}
        for node in ast.walk(tree):
            if _project_imports(node) and id(node) not in top:
                hidden.append(f"{name}:{node.lineno}")
    assert not hidden, hidden


def test_module_imports_have_no_cycle() -> None:
    modules = _modules()
    graph: dict[str, set[str]] = {}
    for name, tree in modules.items():
        targets = set()
        for node in tree.body:
            for target in _project_imports(node):
                # `from pkg import submodule` is an edge to the submodule
                while target not in modules and "." in target:
                    target = target.rsplit(".", 1)[0]
                targets.add(target)
        graph[name] = targets - {name}
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                raise AssertionError(" -> ".join(path[path.index(nxt):] + [nxt]))
            elif nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])


def test_only_engines_read_capability_flags_or_name_a_dialect() -> None:
    # Everything else hands the engine a sql.Template (the engine renders it for its DIALECT) and
    # calls its write strategies. The CLI's `sql --dialect` renders for a user-named dialect
    # without any engine: it passes that string, never an engine's DIALECT.
    readers = set()
    for name, tree in _modules().items():
        if name.startswith("warehouse_rca.engines"):
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr in FLAGS | {"DIALECT"}:
                readers.add(f"{name}.{node.attr}")
    assert not readers, sorted(readers)
