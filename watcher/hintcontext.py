"""What every hint of the render child works from: the scene's source around the failing line.

A hint is only as good as where it points: `Context` finds where a name, an attribute or
a keyword is written at or after the failing line, and makes the `suggestion`
{"line", "column", "replace", "with"} that replaces it there. Also here: Manim as the
render child loaded it, the wording of a rename, and the general hint when nothing more
specific is known. Pure, like `watcher.hints`: Manim is looked up, never imported.
"""

from __future__ import annotations

import ast
import re
import sys
from typing import Any

from . import renames

Suggestion = dict[str, Any]
Namespace = dict[str, Any]

API = "Manim Community 0.22"


class Context:
    """The user's source and the failing line, for finding where a name is written."""

    def __init__(self, source: str, line: int | None):
        self.lines = source.splitlines()
        self.line = line
        self.source = source

    def code(self) -> str:
        if self.line is None or not 0 < self.line <= len(self.lines):
            return ""
        return self.lines[self.line - 1]

    def find(self, pattern: str, start: int | None = None, span: int = 6) -> tuple[int, int] | None:
        """(line, column) of `pattern` at or after the failing line (a call may span lines), 1-based."""
        first = start or self.line
        if first is None:
            return None
        for n in range(first, min(first + span, len(self.lines) + 1)):
            if m := re.search(pattern, self.lines[n - 1]):
                return n, m.start() + 1
        return None

    def replace(self, old: str, new: str, pattern: str | None = None, start: int | None = None) -> Suggestion | None:
        where = self.find(pattern or rf"(?<![\w.]){re.escape(old)}\b", start)
        if where is None:
            return None
        return {"line": where[0], "column": where[1], "replace": old, "with": new}

    def replace_attribute(self, old: str, new: str) -> Suggestion | None:
        """Like `replace` for an attribute: `.old` is found, the column is the name's, past the dot."""
        suggestion = self.replace(old, new, rf"\.{re.escape(old)}\b")
        if suggestion:
            suggestion["column"] += 1
        return suggestion

    def calls(self) -> list[ast.Call]:
        """The calls that start on the failing line, outermost first."""
        try:
            tree = ast.parse(self.source)
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            return []
        line = self.line or 0
        found = [
            n for n in ast.walk(tree) if isinstance(n, ast.Call) and n.lineno <= line <= (n.end_lineno or n.lineno)
        ]
        return sorted(found, key=lambda n: (n.lineno, n.col_offset))


def general_hint(exc: BaseException, phase: str) -> str | None:
    """The hint when nothing more specific is known about `exc`."""
    if isinstance(exc, NameError):
        return "is the name spelled right and imported? `from manim import *` brings Manim's names"
    if isinstance(exc, (AttributeError, TypeError)) and phase == "render":
        return f"check the call against the {API} API"
    return None


def loaded_manim() -> Any:
    """The manim module the render child imported; None when it has not."""
    return sys.modules.get("manim")


def rename_text(entry: renames.Rename) -> str:
    return f"`{entry.old}` is not in {API}: use `{entry.new}` ({entry.note})"


def quoted(text: str, last: bool = False) -> str:
    """The first (or last) 'quoted' part of an exception's message; empty when there is none."""
    found = re.findall(r"'([^']+)'", text)
    return (found[-1] if last else found[0]) if found else ""
