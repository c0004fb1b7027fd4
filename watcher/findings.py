"""What the static checks of a scene share: the `Finding` each reports, and the parsed source it reads.

Every check in `watcher.validate` (and those it runs: `markdown`, `policy`, `foreign`,
`apicheck`) turns what it sees into findings: one problem at a line and column of the
user's file. They read the module's AST, made here once and never run, so no check
imports Manim or the scene.
"""

from __future__ import annotations

import ast
import warnings
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Finding:
    """One problem in a scene file; line and column are 1-based in the user's file."""

    code: str
    message: str
    line: int | None = None
    column: int | None = None
    # One replacement that fixes it ({"line", "column", "replace", "with"}), when one does.
    suggestion: dict[str, Any] | None = field(default=None, compare=False)

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "line": self.line, "column": self.column}


def finding_at(node: ast.expr | ast.stmt, code: str, message: str) -> Finding:
    """A finding at the start of `node`."""
    return Finding(code, message, node.lineno, node.col_offset + 1)


def parse(text: str, filename: str) -> ast.Module | Finding:
    """The module's AST, or the syntax finding that says why there is none."""
    try:
        # The compiler warns about e.g. invalid escapes in user code; that is not ours to print
        # (and under -W error it would turn into a bogus SyntaxError). catch_warnings is
        # process-wide: a concurrent thread may lose a warning meanwhile, which is harmless.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return ast.parse(text, filename=filename)
    except SyntaxError as e:
        return Finding("syntax", e.msg, e.lineno, e.offset)
    except (ValueError, RecursionError, MemoryError) as e:
        # Deep nesting exhausts the parser's stack before any SyntaxError can be formed.
        reason = str(e) or type(e).__name__
        return Finding("syntax", f"the parser gave up: {reason} (nesting too deep?)")


def in_package(module: str, package: str) -> bool:
    """`module` is `package` or one of its submodules."""
    return module == package or module.startswith(package + ".")


def imports_manim(tree: ast.Module) -> bool:
    """The file imports Manim somewhere (`import manim...` or `from manim... import`)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import) and any(in_package(a.name, "manim") for a in node.names):
            return True
        if isinstance(node, ast.ImportFrom) and node.level == 0 and in_package(node.module or "", "manim"):
            return True
    return False
