"""Deterministic fixes of a scene file: only those that are right wherever they apply.

A generated scene often fails on something with exactly one correct repair: a name Manim
renamed (`ShowCreation` is `Create`), a reply's Markdown around the code, a forgotten
`import math`. Those are made here; anything that needs judgement (a removed API, a
keyword whose value must change shape) stays a finding of `watcher.validate` with a hint.

Edits are made at the positions the AST gives and checked against the tokens there, so a
string, a comment or a longer identifier is never touched. A result that would not
compile is thrown away whole: a file is fixed completely or not at all.
"""

from __future__ import annotations

import ast
import codecs
import difflib
import io
import os
import stat
import tempfile
import tokenize
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from . import renames
from .apicheck import file_names
from .errors import InvalidScene
from .fsops import fsync_dir, write_file
from .validate import check_scene, decode_source

# Modules a scene uses without importing them (`from manim import *` brings neither).
STDLIB_IMPORTS = ("math", "random")


@dataclass(frozen=True)
class Fixed:
    """The fixed text and what was done to it, one line per kind of fix."""

    text: str
    changes: list[str] = field(default_factory=list)
    note: str | None = None  # why fixes that were found were not applied


@dataclass(frozen=True)
class _Edit:
    line: int  # 1-based
    start: int  # character columns on that line
    end: int
    new: str
    what: str  # the change as reported, without its line


def fix_source(text: str) -> Fixed:
    """Apply every certain fix to a scene's source.

    Returns:
        Fixed: `text` unchanged and no changes when nothing applies, or when the file does
        not parse or its fixed version would not compile (then `note` says why).
    """
    changes: list[str] = []
    offset = 0  # lines dropped above the code: reported lines are the original file's
    newline = "\r\n" if "\r\n" in text else "\n"
    code = text
    check = check_scene(text)
    if check.source is not None and check.extracted is not None:
        first, last = check.extracted
        code = newline.join(text.splitlines()[first - 1 : last]) + newline
        offset = first - 1
        changes.append(f"kept only the code (lines {first}-{last}): removed the Markdown fences and prose around it")
    tree = _tree(code)
    if isinstance(tree, str):  # no AST, no positions: nothing here is certain
        return Fixed(text, [], f"not fixed: the file does not parse ({tree})")
    edits = _rename_edits(tree, code)
    code = _apply(code, edits)
    changes += _describe(edits, offset)
    tree = _tree(code)
    if isinstance(tree, str):
        return Fixed(text, [], f"not fixed: the renamed file would not parse ({tree})")
    code, added = _add_imports(tree, code, newline, offset)
    changes += added
    if not changes:
        return Fixed(text)
    if problem := _compile_error(code):
        return Fixed(text, [], f"not fixed: the fixed file would not compile ({problem})")
    return Fixed(code, changes)


def diff(old: str, new: str, fromfile: str, tofile: str) -> str:
    """A unified diff of two texts (empty when they are equal), as `diff -u` and `patch` know it."""
    lines = difflib.unified_diff(old.splitlines(keepends=True), new.splitlines(keepends=True), fromfile, tofile)
    # difflib leaves a last line without its newline glued to the next; diff marks it instead.
    return "".join(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n" for line in lines)


# -- renames ------------------------------------------------------------------------------


def _rename_edits(tree: ast.Module, code: str) -> list[_Edit]:
    """The certain renames of watcher.renames in `tree`, each checked against the token it replaces."""
    lines = io.StringIO(code).readlines()
    try:
        names = {tok.start: tok.string for tok in _tokens(code) if tok.type == tokenize.NAME}
    except (tokenize.TokenError, SyntaxError):
        return []
    own = file_names(tree)
    stored, methods, numpy, star = own.stored | own.deleted, own.methods, own.numpy, own.star
    bound = stored | own.imports | own.foreign
    edits: list[_Edit] = []

    def at(line: int, byte_col: int, old: str, end_col: int | None, new: str, what: str) -> None:
        if not 1 <= line <= len(lines):
            return
        col = len(lines[line - 1].encode("utf-8")[:byte_col].decode("utf-8", "replace"))
        if names.get((line, col)) != old.split(".")[0]:  # e.g. inside an f-string: left alone
            return
        end = col + len(old) if end_col is None else end_col
        edits.append(_Edit(line, col, end, new, what))

    def free(new: str) -> bool:
        """`new` means Manim's name here: not the file's own, and a dotted one comes from the star import."""
        head = new.split(".")[0]
        return head not in stored if "." in new else new not in bound

    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load) and node.id not in bound:
            entry = renames.NAMES.get(node.id)
            if entry and entry.fix and free(entry.new) and (star or "." not in entry.new):
                at(node.lineno, node.col_offset, node.id, None, entry.new, f"{entry.old} -> {entry.new}")
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").split(".")[0] == "manim":
            for a in node.names:  # from manim import ShowCreation
                entry = renames.NAMES.get(a.name)
                if entry and entry.fix and "." not in entry.new and free(entry.new):
                    at(a.lineno, a.col_offset, a.name, None, entry.new, f"{entry.old} -> {entry.new}")
        elif isinstance(node, ast.Attribute) and (entry := renames.ATTRS.get(node.attr)) and entry.fix:
            if entry.owners == ("numpy",):  # np.math -> math: the whole `np.math` goes
                value = node.value
                if isinstance(value, ast.Name) and value.id in numpy and entry.new not in stored:
                    if node.lineno == node.end_lineno and node.end_col_offset is not None:
                        end = len(lines[node.lineno - 1].encode("utf-8")[: node.end_col_offset].decode("utf-8"))
                        what = f"{value.id}.{entry.old} -> {entry.new}"
                        at(value.lineno, value.col_offset, value.id, end, entry.new, what)
            elif node.attr not in methods and node.end_lineno is not None and node.end_col_offset is not None:
                start = node.end_col_offset - len(node.attr.encode("utf-8"))
                at(node.end_lineno, start, node.attr, None, entry.new, f".{entry.old} -> .{entry.new}")
        elif isinstance(node, ast.Call) and node.keywords:
            callee = node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", None)
            for kw in node.keywords:
                if kw.arg and callee and (entry := renames.kwarg_rename(kw.arg, callee)) and entry.fix:
                    at(kw.lineno, kw.col_offset, kw.arg, None, entry.new, f"{callee}({entry.old}=) -> {entry.new}=")
    return sorted(set(edits), key=lambda e: (e.line, e.start))


def _apply(code: str, edits: list[_Edit]) -> str:
    lines = io.StringIO(code).readlines()
    for e in sorted(edits, key=lambda e: (e.line, e.start), reverse=True):  # right to left keeps columns valid
        line = lines[e.line - 1]
        lines[e.line - 1] = line[: e.start] + e.new + line[e.end :]
    return "".join(lines)


def _describe(edits: list[_Edit], offset: int) -> list[str]:
    """One line per kind of rename, with the lines (of the original file) where it was made."""
    where: dict[str, list[int]] = {}
    for e in edits:
        lines = where.setdefault(e.what, [])
        if e.line + offset not in lines:
            lines.append(e.line + offset)
    return [f"{what} (line{'s' if len(ns) > 1 else ''} {', '.join(map(str, ns))})" for what, ns in where.items()]


# -- imports ------------------------------------------------------------------------------


def _add_imports(tree: ast.Module, code: str, newline: str, offset: int) -> tuple[str, list[str]]:
    """Add `import math` / `import random` where the file uses the module and never binds the name."""
    used: dict[str, int] = {}
    bound: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            if isinstance(node.ctx, ast.Load):
                used.setdefault(node.id, node.lineno)
            else:
                bound.add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            bound.add(node.name)
            if not isinstance(node, ast.ClassDef):
                bound.update(a.arg for a in ast.walk(node.args) if isinstance(a, ast.arg))
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            bound.update(a.asname or a.name.split(".")[0] for a in node.names)
        elif isinstance(node, (ast.Global, ast.Nonlocal)):
            bound.update(node.names)
    # Another library's star import may bring the name (`from numpy import *` has random): not certain.
    if any(isinstance(n, ast.ImportFrom) and n.names[0].name == "*" and n.module != "manim" for n in ast.walk(tree)):
        return code, []
    missing = [m for m in STDLIB_IMPORTS if m in used and m not in bound]
    if not missing:
        return code, []
    lines = io.StringIO(code).readlines()
    at = _import_line(tree)
    if at == 0:  # after the leading comments: a #! or coding line must stay first
        while at < len(lines) and lines[at].startswith("#"):
            at += 1
    if at and not lines[at - 1].endswith(("\n", "\r")):
        lines[at - 1] += newline
    lines[at:at] = [f"import {m}{newline}" for m in missing]
    added = [f"added `import {m}` ({m} is used on line {used[m] + offset} and never imported)" for m in missing]
    return "".join(lines), added


def _import_line(tree: ast.Module) -> int:
    """The line after which an import goes: after `from manim import *` (else the first import
    from manim, else a docstring and `__future__` imports), where no other statement shares its line."""
    body = tree.body

    def alone(i: int) -> bool:
        end = body[i].end_lineno or body[i].lineno
        return i + 1 == len(body) or body[i + 1].lineno > end

    manim = [
        (i, s)
        for i, s in enumerate(body)
        if isinstance(s, ast.ImportFrom) and s.level == 0 and (s.module or "").split(".")[0] == "manim"
    ]
    manim.sort(key=lambda p: not (p[1].module == "manim" and p[1].names[0].name == "*"))  # the star import first
    for i, imp in manim:
        if alone(i):
            return imp.end_lineno or imp.lineno
    head = 0
    for i, s in enumerate(body):
        docstring = i == 0 and isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant)
        if not (docstring or (isinstance(s, ast.ImportFrom) and s.module == "__future__")) or not alone(i):
            break
        head = s.end_lineno or s.lineno
    return head


# -- parsing ------------------------------------------------------------------------------


def _tokens(code: str) -> list[tokenize.TokenInfo]:
    return list(tokenize.generate_tokens(io.StringIO(code).readline))


def _tree(code: str) -> ast.Module | str:
    """The AST of `code`, or why there is none (`line N: message`)."""
    try:
        with warnings.catch_warnings():  # invalid escapes in the scene are not ours to print
            warnings.simplefilter("ignore")
            return ast.parse(code)
    except SyntaxError as e:
        return f"line {e.lineno}: {e.msg}"
    except (ValueError, RecursionError, MemoryError) as e:
        return str(e) or type(e).__name__


def _compile_error(code: str) -> str | None:
    """Why `code` would not compile (what ast.parse lets through: a repeated keyword...), or None."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            compile(code, "<fixed>", "exec", dont_inherit=True)
    except SyntaxError as e:
        return f"line {e.lineno}: {e.msg}"
    except (ValueError, RecursionError, MemoryError) as e:
        return str(e) or type(e).__name__
    return None


# -- files ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class FileFix:
    """What `fix_file` did to one file: a diff (empty when nothing applies), or an error."""

    path: Path
    diff: str = ""
    changes: list[str] = field(default_factory=list)
    note: str | None = None
    error: str | None = None
    written: bool = False


def fix_file(path: Path, write: bool = False) -> FileFix:
    """Fix one scene file; with `write`, replace it atomically (same mode) when anything changed."""
    try:
        data = path.read_bytes()
        text = decode_source(data, path.name)
    except OSError as e:
        return FileFix(path, error=f"cannot read: {e.strerror or e}")
    except InvalidScene as e:
        return FileFix(path, error=str(e))
    fixed = fix_source(text)
    if fixed.text == text:
        return FileFix(path, note=fixed.note)
    patch = diff(text, fixed.text, f"{path}\toriginal", f"{path}\tfixed")
    if not write:
        return FileFix(path, patch, fixed.changes, fixed.note)
    bom = codecs.BOM_UTF8 if data.startswith(codecs.BOM_UTF8) else b""  # kept, as the editor wrote it
    try:
        write_atomic(path, bom + fixed.text.encode("utf-8"))
    except OSError as e:
        return FileFix(path, patch, fixed.changes, error=f"cannot write: {e.strerror or e}")
    return FileFix(path, patch, fixed.changes, fixed.note, written=True)


def write_atomic(path: Path, data: bytes) -> None:
    """Replace the file `path` names (through a link: its target) by `data`: temp file, fsync, rename; same mode."""
    real = Path(os.path.realpath(path))
    mode = stat.S_IMODE(os.stat(real).st_mode)
    # A hidden temp name: an inbox the file may be in ignores it.
    fd, tmp = tempfile.mkstemp(dir=real.parent, prefix=f".{real.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fchmod(f.fileno(), mode)
            os.fsync(f.fileno())
        os.replace(tmp, real)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(real.parent)


# -- the daemon -------------------------------------------------------------------------------


@dataclass(frozen=True)
class StagedFix:
    """A job's fixed source, and the files filed beside its result: (path, suffix) pairs."""

    source: bytes
    changes: list[str]
    outputs: list[tuple[Path, str]]


def stage_fix(source: bytes, name: str, folder: Path) -> StagedFix | None:
    """Fix a claimed job's source (validation.autofix); None when nothing applies.

    The fixed source and the diff are written into `folder` (the claim directory) under
    hidden names, which the publish moves and a recovery removes like any staged output.
    """
    try:
        text = decode_source(source, name)
    except InvalidScene:
        return None  # the render's own check says what is wrong with the bytes
    fixed = fix_source(text)
    if fixed.text == text:
        return None
    stem = Path(name).stem
    outputs = [(folder / ".autofix.py", ".fixed.py"), (folder / ".autofix.diff", ".fix.diff")]
    write_file(outputs[0][0], fixed.text.encode("utf-8"))
    write_file(outputs[1][0], diff(text, fixed.text, name, f"{stem}.fixed.py").encode("utf-8"))
    return StagedFix(fixed.text.encode("utf-8"), fixed.changes, outputs)
