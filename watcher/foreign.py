"""Imports a Manim scene cannot have: another library's script, or a module not installed here.

What generators send instead of a Manim Community scene is often recognisable by its
imports alone: `bpy` is a Blender script, `pygame` a game, `manimlib` ManimGL (the
libraries are listed in `watcher.renames.FOREIGN`). And a scene that imports a Manim
plugin or any other module not installed fails in the render child at its first line,
with no rename that helps. Both are found statically, before any render.
"""

from __future__ import annotations

import ast
import importlib.util

from . import renames
from .findings import Finding, finding_at, imports_manim


def check_foreign(tree: ast.Module, skip_manimlib: bool) -> Finding | None:
    """A finding when the file is a script for another library (Blender, pygame...), not Manim."""
    if imports_manim(tree):
        return None
    for node in ast.walk(tree):
        if not isinstance(node, (ast.Import, ast.ImportFrom)):
            continue
        for module in _modules(node):
            top = module.split(".")[0]
            if top in renames.FOREIGN and not (skip_manimlib and top == "manimlib"):
                msg = f"this is {renames.FOREIGN[top]} (it imports {module}), not a Manim Community scene"
                return finding_at(node, "not-manim", msg)
    return None


def check_plugins(tree: ast.Module) -> list[Finding]:
    """Imports of modules that are not installed (Manim plugins named as such): the scene cannot
    import, and no rename helps. Old Manim and foreign modules have findings of their own."""
    found: list[Finding] = []
    tries = [t for t in ast.walk(tree) if isinstance(t, ast.Try) and t.handlers]
    guarded = {id(n) for t in tries for b in t.body for n in ast.walk(b)}
    for node in ast.walk(tree):
        if id(node) in guarded:  # `try: import x` / `except ImportError`: the scene copes without it
            continue
        if not isinstance(node, (ast.Import, ast.ImportFrom)):
            continue
        for module in _modules(node):
            top = module.split(".")[0]
            if renames.module_rename(module) or top in renames.FOREIGN or _installed(top):
                continue
            if top in renames.PLUGINS:
                msg = f"{module} is the Manim plugin {renames.PLUGINS[top]}, which is not installed here"
            else:
                msg = f"{module} is not installed here: scenes can use Manim, NumPy and Python's standard library"
            found.append(finding_at(node, "plugin", msg))
    return found


def _modules(node: ast.Import | ast.ImportFrom) -> list[str]:
    """The modules an absolute import names (none for a relative one)."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    return [node.module] if node.module and node.level == 0 else []


def _installed(top: str) -> bool:
    """Whether a top-level module can be imported here (the render child has the same Python)."""
    try:
        # find_spec of a top-level name looks on sys.path without importing anything.
        return importlib.util.find_spec(top) is not None
    except (ImportError, ValueError):
        return False
