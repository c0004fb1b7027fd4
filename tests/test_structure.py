"""The package's shape: no import cycle (lazy imports count), no module that grew past a size one can read."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import watcher

PACKAGE = Path(watcher.__file__).parent
MAX_LINES = 450  # about 400: one concept per module


def _imports(path: Path) -> set[str]:
    """The package modules `path` imports, at any depth (inside functions too)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            if node.module:
                found.add(node.module.split(".")[0])
            else:  # from . import a, b
                found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("watcher."):
            found.add(node.module.split(".")[1])
    return found


def _graph() -> dict[str, set[str]]:
    modules = {p.stem: p for p in PACKAGE.glob("*.py") if p.stem != "__init__"}
    return {name: {m for m in _imports(path) if m in modules and m != name} for name, path in modules.items()}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_no_module_imports_itself_back():
    cycle = _cycle(_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_the_checker_finds_a_cycle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_no_module_is_too_long_to_read():
    sizes = {p.name: len(p.read_text(encoding="utf-8").splitlines()) for p in PACKAGE.glob("*.py")}
    assert {name: n for name, n in sizes.items() if n > MAX_LINES} == {}


def test_the_package_says_it_is_typed():
    assert (PACKAGE / "py.typed").is_file()  # PEP 561: mypy checks callers against our annotations


def _tool(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *argv], cwd=PACKAGE.parent, capture_output=True, text=True, timeout=600
    )


def test_ruff_finds_nothing():
    run = _tool("ruff", "check", "--no-cache", "watcher", "tests", "bench", "examples", "scripts")
    assert run.returncode == 0, run.stdout + run.stderr
    run = _tool("ruff", "format", "--check", "--no-cache", "watcher", "tests", "bench", "examples", "scripts")
    assert run.returncode == 0, run.stdout + run.stderr


def test_mypy_finds_nothing():
    run = _tool("mypy", "--config-file", "pyproject.toml")  # its [tool.mypy] names the package
    assert run.returncode == 0, run.stdout + run.stderr
