"""Checks against Manim's API (validation.api_check): names from older Manim, and names and keywords it lacks.

Two kinds of mistake a code generator makes, each reported at every place before any render:

- old names (`ShowCreation`, `axes.get_graph`, `Axes(x_min=...)`, `from manimlib import *`),
  from the table in `watcher.renames`, each with what Manim Community 0.22 has instead;
- names defined nowhere and keyword arguments Manim's callables do not take, against the
  snapshot of Manim's public API (`watcher.apisnapshot`), with the close name when one is.

Neither imports Manim: the first needs only the table, the second the snapshot (and is
skipped while there is none yet).
"""

from __future__ import annotations

import ast
import builtins
import sys
from dataclasses import dataclass, field

from . import apisnapshot, renames
from .config import Settings
from .findings import Finding, in_package
from .spelling import best, close

API = "Manim Community 0.22"
SNAPSHOT_CODES = ("undefined-name", "unknown-keyword")


def check_api(tree: ast.Module, text: str, settings: Settings) -> list[Finding]:
    """The old names in `tree` (its source `text`), then its mistakes against the snapshot."""
    return _check_old_names(tree, text) + _check_snapshot(tree, settings)


# -- names from older Manim and ManimGL ---------------------------------------------------------


@dataclass
class FileNames:
    """What a scene file names itself, for telling its own names from Manim's (old ones included)."""

    stored: set[str] = field(default_factory=set)  # assigned, defined (def, class) or a parameter
    deleted: set[str] = field(default_factory=set)  # `del x`
    imports: set[str] = field(default_factory=set)  # bound by `import x` / `import x as y`
    foreign: set[str] = field(default_factory=set)  # bound by `from <not manim> import ...`
    methods: set[str] = field(default_factory=set)  # every function's name
    numpy: set[str] = field(default_factory=lambda: {"np", "numpy"})  # `from manim import *` brings np
    star: bool = False  # `from manim import *`


def file_names(tree: ast.Module) -> FileNames:
    """One pass over `tree` collecting `FileNames` (scope-blind on purpose: a name bound anywhere counts)."""
    names = FileNames()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.stored.add(node.id)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Del):
            names.deleted.add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            names.methods.add(node.name)
            names.stored.add(node.name)
            names.stored.update(a.arg for a in ast.walk(node.args) if isinstance(a, ast.arg))
        elif isinstance(node, ast.ClassDef):
            names.stored.add(node.name)
        elif isinstance(node, ast.Import):
            for a in node.names:
                names.imports.add(a.asname or a.name.split(".")[0])
                if a.name == "numpy":
                    names.numpy.add(a.asname or a.name)
        elif isinstance(node, ast.ImportFrom):
            from_manim = node.level == 0 and (node.module or "").split(".")[0] == "manim"
            names.star = names.star or (from_manim and node.module == "manim" and node.names[0].name == "*")
            if not from_manim:  # a name of another library's is not Manim's old one
                names.foreign.update(a.asname or a.name for a in node.names if a.name != "*")
    return names


def _check_old_names(tree: ast.Module, text: str) -> list[Finding]:
    """Every use of an old Manim name (watcher.renames), each with its replacement."""
    names = file_names(tree)
    # The file's own names: a class ShowCreation of its own is not Manim's.
    bound, methods, numpy = names.stored | names.imports, names.methods, names.numpy
    found: list[Finding] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load) and node.id not in bound:
            if entry := renames.NAMES.get(node.id):
                found.append(_old(entry, node.lineno, node.col_offset + 1))
        elif isinstance(node, ast.Attribute) and (entry := renames.ATTRS.get(node.attr)):
            if entry.owners == ("numpy",):
                if isinstance(node.value, ast.Name) and node.value.id in numpy:
                    found.append(_old(entry, node.lineno, node.col_offset + 1, f"{node.value.id}.{node.attr}"))
            elif node.attr not in methods and node.end_col_offset is not None:
                found.append(_old(entry, node.end_lineno or node.lineno, node.end_col_offset - len(node.attr) + 1))
        elif isinstance(node, ast.Call) and node.keywords:
            callee = node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", None)
            for kw in node.keywords:
                if kw.arg and callee and (entry := renames.kwarg_rename(kw.arg, callee)):
                    found.append(_old(entry, kw.lineno, kw.col_offset + 1, owner=callee))
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            found += _old_imports(node, text.splitlines())
    return sorted(found, key=lambda f: (f.line or 0, f.column or 0))


def _old_imports(node: ast.Import | ast.ImportFrom, lines: list[str]) -> list[Finding]:
    found: list[Finding] = []
    if isinstance(node, ast.ImportFrom):
        if node.level or not node.module:
            return found
        modules = [node.module]
        if in_package(node.module, "manim"):  # from manim import ShowCreation
            for a in node.names:
                if entry := renames.NAMES.get(a.name):
                    found.append(_old(entry, a.lineno, a.col_offset + 1))
    else:
        modules = [a.name for a in node.names]
    for module in modules:
        if entry := renames.module_rename(module):
            line = lines[node.lineno - 1] if node.lineno <= len(lines) else ""
            column = line.find(entry.old, node.col_offset) + 1 or node.col_offset + 1  # the module, not `from`
            found.append(_old(entry, node.lineno, column, entry.old))
    return found


def _old(entry: renames.Rename, line: int, column: int, written: str | None = None, owner: str = "") -> Finding:
    """A finding for one old name at line:column, with the replacement when it is the whole fix."""
    written = written or entry.old
    what = {"kwarg": f"{owner}({entry.old}=...)", "attr": f".{entry.old}"}.get(entry.kind, written)
    if entry.kind == "attr" and written != entry.old:  # np.math
        what = written
    message = f"{what} is not in Manim Community 0.22: use {entry.new} ({entry.note})"
    suggestion = {"line": line, "column": column, "replace": written, "with": entry.new} if entry.exact else None
    return Finding("old-api", message, line, column, suggestion)


# -- names and keyword arguments, against a snapshot of Manim's API (watcher.apisnapshot) ----------

# What a module's code can read besides its own names and the builtins (and a method, __class__).
_MODULE_NAMES = frozenset(
    "__name__ __file__ __doc__ __builtins__ __spec__ __loader__ __package__ __debug__ __class__ "
    "__annotations__ __qualname__ __module__ __dict__".split()
)
# A file that reaches its namespace through these can bind names no static look finds.
_DYNAMIC = frozenset({"globals", "locals", "vars", "exec", "eval", "__import__", "__builtins__"})


def _check_snapshot(tree: ast.Module, settings: Settings) -> list[Finding]:
    """Undefined names and unknown keyword arguments of Manim's callables; none without a snapshot."""
    stars = [
        n.module if n.level == 0 else None
        for n in ast.walk(tree)
        if isinstance(n, ast.ImportFrom) and any(a.name == "*" for a in n.names)
    ]
    explicit = _manim_imports(tree)
    if "manim" not in stars and not explicit:
        return []
    snap = apisnapshot.get(settings)
    if snap is None:
        return []
    found: list[Finding] = []
    bound, own = _bindings(tree, explicit)
    # Manim's names as the file sees them: a star import brings all, `from manim import X as Y` brings Y.
    manim = {local: name for local, name in explicit.items() if local not in own}
    if "manim" in stars:
        manim |= {name: name for name in snap.names if name not in own}
    others = [m for m in stars if m != "manim"]
    known_stars = all(m in snap.modules for m in others)
    shadowed = set().union(*(snap.modules[m] for m in others if m in snap.modules))
    names = [n for n in ast.walk(tree) if isinstance(n, ast.Name)]
    dynamic = any(n.id in _DYNAMIC for n in names)
    if "manim" in stars and known_stars and not dynamic:
        found += _undefined_names(tree, bound | set(snap.names) | shadowed)
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.keywords):
            continue
        callee = node.func.id
        if callee not in manim or callee in shadowed or (not known_stars and callee not in explicit):
            # Another star import may bring the name after Manim's.
            continue
        keywords = snap.keywords(manim[callee])
        if keywords is None or keywords.open:
            continue
        for kw in node.keywords:
            if kw.arg and kw.arg not in keywords.names and not renames.kwarg_rename(kw.arg, manim[callee]):
                found.append(_unknown_keyword(node, callee, kw, keywords.names))
    return sorted(found, key=lambda f: (f.line or 0, f.column or 0))


def _manim_imports(tree: ast.Module) -> dict[str, str]:
    """Local name -> Manim's name, for `from manim import X [as Y]`."""
    out: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module == "manim":
            out |= {a.asname or a.name: a.name for a in node.names if a.name != "*"}
    return out


def _bindings(tree: ast.Module, explicit: dict[str, str]) -> tuple[set[str], set[str]]:
    """Every name the module binds anywhere (scope-blind on purpose), and those bound other than by Manim's import."""
    bound: set[str] = set()
    own: set[str] = set()
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Name) and not isinstance(node.ctx, ast.Load):
            names = [node.id]
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names = [node.name]
        elif isinstance(node, ast.arg):
            names = [node.arg]
        elif isinstance(node, (ast.Global, ast.Nonlocal)):
            names = list(node.names)
        elif isinstance(node, ast.ExceptHandler) and node.name:
            names = [node.name]
        elif isinstance(node, (ast.MatchAs, ast.MatchStar)) and node.name:
            names = [node.name]
        elif isinstance(node, ast.MatchMapping) and node.rest:
            names = [node.rest]
        elif isinstance(node, ast.Import):
            names = [a.asname or a.name.split(".")[0] for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            bound.update(a.asname or a.name for a in node.names if a.name != "*")
            if node.level == 0 and node.module == "manim":
                continue
            names = [a.asname or a.name for a in node.names if a.name != "*"]
        bound.update(names)
        own.update(names)
    return bound, own


def _undefined_names(tree: ast.Module, known: set[str]) -> list[Finding]:
    known |= _MODULE_NAMES | set(dir(builtins))
    skip = _annotation_names(tree)
    tex = _tex_fields(tree)
    choices = sorted(known - _MODULE_NAMES)
    found: list[Finding] = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Name) or not isinstance(node.ctx, ast.Load) or node.id in known:
            continue
        if id(node) in skip or node.id in renames.NAMES:  # old names are old-api findings
            continue
        found.append(_undefined(node, choices, id(node) in tex))
    return found


def _tex_fields(tree: ast.Module) -> set[int]:
    """The Name nodes in the fields of an f-string holding TeX (a backslash): f"\\frac{a}{b}" reads a and b."""
    out: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr) and any(
            isinstance(v, ast.Constant) and "\\" in str(v.value) for v in node.values
        ):
            out.update(id(n) for v in node.values if isinstance(v, ast.FormattedValue) for n in ast.walk(v))
    return out


def _annotation_names(tree: ast.Module) -> set[int]:
    """The Name nodes inside annotations: often never evaluated, never worth a finding."""
    notes: list[ast.expr] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.arg) and node.annotation:
            notes.append(node.annotation)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.returns:
            notes.append(node.returns)
        elif isinstance(node, ast.AnnAssign):
            notes.append(node.annotation)
    return {id(n) for note in notes for n in ast.walk(note)}


def _undefined(node: ast.Name, choices: list[str], tex: bool) -> Finding:
    name, line, column = node.id, node.lineno, node.col_offset + 1
    what = f"`{name}` is not defined (not in the file, Python's builtins or {API})"
    if tex:
        msg = f"{what}: it is a field of an f-string holding TeX; double the TeX braces ({{{{ and }}}}) or drop the f"
        return Finding("undefined-name", msg, line, column)
    if name in sys.stdlib_module_names:
        msg = f"`{name}` is a Python module the file uses without importing it: add `import {name}` at the top"
        fix = {"line": 1, "column": 1, "replace": "", "with": f"import {name}\n"}
        return Finding("undefined-name", msg, line, column, fix)
    matches = close(name, choices)
    if match := best(matches, name):
        suggestion = {"line": line, "column": column, "replace": name, "with": match}
        return Finding("undefined-name", f"{what}: did you mean `{match}`?", line, column, suggestion)
    if matches:
        return Finding(
            "undefined-name", f"{what}: did you mean one of {', '.join(f'`{m}`' for m in matches)}?", line, column
        )
    return Finding("undefined-name", what, line, column)


def _unknown_keyword(call: ast.Call, callee: str, kw: ast.keyword, accepted: tuple[str, ...]) -> Finding:
    line, column = kw.lineno, kw.col_offset + 1
    public = [a for a in accepted if not a.startswith("_")]
    matches = close(kw.arg or "", public)
    if kw.arg == "opacity" and "stroke_opacity" in public:  # a Line or an outline: its colour is its stroke
        matches = [m for m in ("stroke_opacity", "fill_opacity") if m in public]
    ranked = matches + [a for a in public if a not in matches]
    listed = ", ".join(ranked[:15]) + (", ..." if len(ranked) > 15 else "")
    what = f"{callee}() does not take `{kw.arg}=`"
    if kw.arg in ("dash_length", "dashed_ratio") and callee in ("Line", "Arrow"):
        msg = f"{what}: it belongs to DashedLine; use DashedLine(...)"
        fix = {"line": call.lineno, "column": call.col_offset + 1, "replace": callee, "with": "DashedLine"}
        return Finding("unknown-keyword", msg, line, column, fix if callee == "Line" else None)
    match = matches[0] if kw.arg == "opacity" and matches else best(matches, kw.arg or "")
    if match:
        suggestion = {"line": line, "column": column, "replace": kw.arg, "with": match}
        return Finding(
            "unknown-keyword", f"{what}: did you mean `{match}=`? It takes: {listed}", line, column, suggestion
        )
    return Finding("unknown-keyword", f"{what}; it takes: {listed}", line, column)
