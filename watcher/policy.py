"""The call/import policy: what a scene may not call or import (validation.forbidden_calls/_imports).

A scene draws; it has no business running processes, opening sockets or evaluating code.
Such calls and imports are reported before any render, with where they are and what name
they resolve to (`from os import system as s; s(...)` is `os.system`). This is feedback
for the author, not a security boundary (see threats.md): the render child and the
limits around it are what contain a hostile scene.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator

from .config import Settings
from .findings import Finding, finding_at

# Names that are the usual first step out of a restricted namespace; flagged wherever they appear.
ESCAPE_NAMES = frozenset({"__builtins__", "__subclasses__", "__globals__", "__code__"})


def check_policy(tree: ast.Module, settings: Settings) -> list[Finding]:
    """Every forbidden call, import and escape name in `tree`, in the order of the file."""
    calls = set(settings.validation.forbidden_calls)
    imports = set(settings.validation.forbidden_imports)
    found: list[Finding] = []
    # Local name -> the dotted name it stands for. Scope-blind on purpose: simple, and an
    # alias that shadows is still worth a look.
    aliases: dict[str, str] = {}
    star_modules: list[str] = []
    nodes = list(ast.walk(tree))
    for node in nodes:
        if isinstance(node, ast.Import):
            for a in node.names:
                bound = a.asname or a.name.split(".")[0]  # `import os.path` binds os
                aliases[bound] = a.name if a.asname else bound
                if bad := next((m for m in _prefixes(a.name) if m in imports), None):
                    found.append(finding_at(node, "forbidden-import", f"import of {a.name}{_via(a.name, bad)}"))
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            bad = next((m for m in _prefixes(node.module) if m in imports), None)
            if bad:
                msg = f"import from {node.module}{_via(node.module, bad)}"
                found.append(finding_at(node, "forbidden-import", msg))
            for a in node.names:
                if a.name == "*":
                    star_modules.append(node.module)
                    continue
                aliases[a.asname or a.name] = f"{node.module}.{a.name}"
                if not bad and f"{node.module}.{a.name}" in imports:  # from urllib import request
                    msg = f"import of {node.module}.{a.name} is not allowed"
                    found.append(finding_at(node, "forbidden-import", msg))
    for node in nodes:
        if isinstance(node, ast.Call) and (parts := _dotted(node.func)):
            head, rest = parts
            written = f"{head}.{rest}" if rest else head
            names = [f"{aliases.get(head, head)}.{rest}" if rest else aliases.get(head, head)]
            if head not in aliases and not rest:  # `from os import *` then system(...)
                names += [f"{m}.{head}" for m in star_modules]
            names = [n.removeprefix("builtins.") for n in names]
            if bad := next((n for n in names if n in calls), None):
                via = "" if bad == written else f" (= {bad})"
                found.append(finding_at(node, "forbidden-call", f"call to {written}(){via} is not allowed"))
        elif isinstance(node, ast.Attribute) and node.attr in ESCAPE_NAMES:
            found.append(finding_at(node, "forbidden-call", f"access to .{node.attr} is not allowed"))
        elif isinstance(node, ast.Name) and node.id in ESCAPE_NAMES:
            found.append(finding_at(node, "forbidden-call", f"use of {node.id} is not allowed"))
    return sorted(found, key=lambda f: (f.line or 0, f.column or 0))


def _dotted(node: ast.expr) -> tuple[str, str] | None:
    """`a.b.c` -> ("a", "b.c"); None when the chain does not start at a plain name."""
    attrs: list[str] = []
    while isinstance(node, ast.Attribute):
        attrs.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    return node.id, ".".join(reversed(attrs))


def _prefixes(module: str) -> Iterator[str]:
    parts = module.split(".")
    return (".".join(parts[:i]) for i in range(1, len(parts) + 1))


def _via(module: str, bad: str) -> str:
    return " is not allowed" if module == bad else f" is not allowed ({bad} is forbidden)"
