"""Static checks of a scene file: size, encoding, syntax, structure and the call/import policy.

Pure and fast: the source is parsed with `ast`, never imported or run, and manim is not
imported. The policy is feedback for the author, not a security boundary (see threats.md);
the render child and the limits around it are what contain a hostile scene.
"""

from __future__ import annotations

import ast
import builtins
import codecs
import difflib
import importlib.util
import re
import sys
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from . import apisnapshot, errors, renames
from .config import Settings
from .errors import ErrorRecord, InvalidScene
from .hints import close

# Manim's scene classes a user scene may derive from (by name, however manim was imported).
SCENE_BASES = frozenset(
    "Scene ThreeDScene SpecialThreeDScene MovingCameraScene ZoomedScene VectorScene LinearTransformationScene".split()
)
# Names that are the usual first step out of a restricted namespace; flagged wherever they appear.
ESCAPE_NAMES = frozenset({"__builtins__", "__subclasses__", "__globals__", "__code__"})
GENERATED = "GeneratedAnimation"  # the class name code generators are asked to use

_TYPES = {"syntax": "SyntaxError", "encoding": "InvalidSource", "size": "InvalidSource"}
_TYPES |= dict.fromkeys(("forbidden-call", "forbidden-import"), "PolicyViolation")
_TYPES |= {"not-python": "SyntaxError", "markdown": "SyntaxError", "code-blocks": "SyntaxError"}
_TYPES |= {"old-api": "OldManimAPI", "not-manim": "NotAManimScene", "plugin": "MissingPlugin"}
_TYPES |= {"undefined-name": "NameError", "unknown-keyword": "TypeError"}
_HINTS = {
    "encoding": "save the file as UTF-8 text (a BOM is fine, NUL bytes are not)",
    "size": "make the scene smaller, or raise render.max_source_bytes",
    "syntax": "fix the syntax at the marked line; the file must be valid Python",
    "no-scene": f"define `class {GENERATED}(Scene):` with a `construct(self)` method",
    "no-construct": "add a `construct(self)` method: it is what Manim runs to build the animation",
    "no-manim-import": "start the file with `from manim import *`",
    "unknown-scene": "set render.scene to one of the scene classes in the file, or to auto",
    "too-many-scenes": "split the file, render one scene (render.scene: <name>), or raise render.max_scenes",
    "forbidden-call": "scenes may not run processes, touch the network or evaluate code; remove the call",
    "forbidden-import": "scenes may not run processes, touch the network or load code; remove the import",
    "not-python": "send only the Python source of the scene, not a reply about it",
    "markdown": "save only the code between the ``` fences, or set validation.extract_code: true",
    "code-blocks": "send one code block holding the whole scene",
    "not-manim": "write a Manim Community scene: `from manim import *` and a Scene subclass with construct()",
    "plugin": "only Manim itself is installed here: write the scene with Manim's own classes",
}


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


@dataclass
class CheckResult:
    """Everything `check_scene` learned about one file."""

    text: str | None
    findings: list[Finding] = field(default_factory=list)
    scenes: list[str] = field(default_factory=list)
    selected: list[str] = field(default_factory=list)
    # Scenes with a construct(): what render.scene=auto chooses among.
    candidates: list[str] = field(default_factory=list)
    # The code to render when it is not `text` as a whole: the scene's code block of a
    # Markdown reply, every other line blanked so that line numbers still match the file.
    source: str | None = None
    extracted: tuple[int, int] | None = None  # the first and last line of that code
    # validation.api_check: warn puts old-API, undefined-name and unknown-keyword findings here;
    # they do not stop a render.
    warnings: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.findings


def decode_source(data: bytes, filename: str = "scene.py") -> str:
    """Decode scene bytes as UTF-8, stripping a leading BOM.

    Raises:
        InvalidScene: NUL bytes or invalid UTF-8; the message gives the byte offset and
            `.record` (type "InvalidSource") the line and column.
    """
    start = len(codecs.BOM_UTF8) if data.startswith(codecs.BOM_UTF8) else 0
    nul = data.find(b"\0", start)
    try:
        text = data[start:].decode("utf-8")
    except UnicodeDecodeError as e:
        offset = start + e.start
        if nul < 0 or offset < nul:
            message = f"invalid source: not UTF-8 (byte 0x{data[offset]:02x} at offset {offset})"
        else:
            offset, message = nul, f"invalid source: NUL byte at offset {nul}"
    else:
        if nul < 0:
            return text
        offset, message = nul, f"invalid source: NUL byte at offset {nul}"
    line_start = data.rfind(b"\n", 0, offset) + 1
    prefix = data[max(line_start, start) : offset].decode("utf-8", "replace")
    record = ErrorRecord(
        source=filename,
        phase="validate",
        type="InvalidSource",
        message=message,
        line=data.count(b"\n", 0, offset) + 1,
        column=len(prefix) + 1,
        hint=_HINTS["encoding"],
    )
    raise InvalidScene(message, record)


def check_scene(source: bytes | str, settings: Settings | None = None, filename: str = "scene.py") -> CheckResult:
    """Run every static check on one scene file. Bad input becomes findings; this never raises.

    Order: size cap (on the raw bytes, before anything else), decoding, parsing, structure
    (scene classes, construct, manim import, selection per render.scene), then the policy
    when validation is enabled.
    """
    settings = settings or Settings()
    # surrogatepass: a str with lone surrogates becomes bytes that decode_source rejects with an offset
    data = source.encode("utf-8", "surrogatepass") if isinstance(source, str) else source
    limit = settings.render.max_source_bytes
    if len(data) > limit:
        msg = f"source is {len(data)} bytes, over the limit of {limit} (render.max_source_bytes)"
        return CheckResult(None, [Finding("size", msg)])
    try:
        text = decode_source(data, filename)
    except InvalidScene as e:
        assert e.record is not None
        return CheckResult(None, [Finding("encoding", str(e), e.record.line, e.record.column)])
    result = CheckResult(text)
    tree = _parse(text, filename)
    if isinstance(tree, Finding):
        tree = _parse_generated(text, tree, settings, filename, result)
        if tree is None:
            return result
    _check_structure(tree, settings.render.scene, result)
    if len(result.selected) > settings.render.max_scenes:  # each is a render of up to render.timeout
        limit = settings.render.max_scenes
        msg = f"{len(result.selected)} scenes to render, over the limit of {limit} (render.max_scenes)"
        result.findings.append(Finding("too-many-scenes", msg))
        result.selected = []
    if settings.validation.enabled:
        result.findings += _check_policy(tree, settings)
    api = settings.validation.api_check
    if api != "off":
        old = _check_api(tree, text if result.source is None else result.source)
        old += _check_snapshot(tree, settings)
        if api == "warn":
            result.warnings = old
        else:
            # Old names lead: they often explain the rest (`class S(GraphScene)` is no scene,
            # `from manimlib import *` no manim import), and a generator fixes them all at once.
            result.findings = old + result.findings
    if foreign := _foreign(tree, skip_manimlib=api != "off"):
        result.findings.insert(0, foreign)
    if api != "off":
        result.findings[:0] = _missing_plugins(tree)
    return result


def _parse(text: str, filename: str) -> ast.Module | Finding:
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


def validate_scene_code(code: str, settings: Settings | None = None, filename: str = "scene.py") -> list[str]:
    """Validate scene source and return the scene class names to render.

    Raises:
        SyntaxError: the code does not parse (Python's own, with filename/lineno/offset/text).
        InvalidScene: any other finding; the message lists them all, `.record` is the ErrorRecord.
    """
    return checked_scene(code, settings, filename).selected


def checked_scene(code: str, settings: Settings | None = None, filename: str = "scene.py") -> CheckResult:
    """`check_scene` for callers that want exceptions: the result when it is ok (its `selected`
    scenes, and `source` for a Markdown reply), else what `validate_scene_code` raises."""
    result = check_scene(code, settings, filename)
    if result.ok:
        return result
    record = findings_record(result, filename)
    # A reply that is not Python leads with what it is, and is still Python's SyntaxError.
    first = next((f for f in result.findings if f.code == "syntax"), result.findings[0])
    if first.code == "syntax":
        lines = (result.text or "").splitlines()
        text = lines[first.line - 1][:1000] if first.line and first.line <= len(lines) else None
        err = SyntaxError(first.message, (filename, first.line, first.column, text))
        err.record = record  # type: ignore[attr-defined]  # the same record the daemon writes
        raise err
    where = [f"line {f.line}: {f.message}" if f.line else f.message for f in result.findings]
    raise InvalidScene(f"invalid scene {filename}: " + "; ".join(where), record)


def findings_record(result: CheckResult, filename: str) -> ErrorRecord:
    """The error record for a failed check: the first finding leads, all are listed."""
    if not result.findings:
        raise ValueError("findings_record needs a result with findings")
    first = result.findings[0]
    more = len(result.findings) - 1
    hint = _HINTS.get(first.code)
    if first.code == "ambiguous-scene":
        names = ", ".join(result.candidates)
        hint = f"name the scene to render `{GENERATED}`, or set render.scene to one of: {names}"
    elif first.code in ("old-api", *_SNAPSHOT_CODES):
        api = [f for f in result.findings if f.code in ("old-api", *_SNAPSHOT_CODES)]
        fixes = "; ".join(f"line {f.line}: {f.message}" for f in api)
        what = "older Manim or ManimGL names" if first.code == "old-api" else f"mistakes against the {API} API"
        hint = f"{what}: fix all {len(api)}: {fixes}" if len(api) > 1 else f"{what}: {fixes}"
    elif first.code == "syntax" and "f-string" in first.message:
        hint = "in an f-string, TeX braces must be doubled ({{ and }}), or build the TeX string without f"
    return ErrorRecord(
        source=filename,
        phase="validate",
        type=_TYPES.get(first.code, "InvalidScene"),
        message=first.message + (f" (and {more} more)" if more else ""),
        line=first.line,
        column=first.column,
        excerpt=errors.excerpt(result.text, first.line) if result.text is not None else None,
        hint=hint,
        suggestion=first.suggestion,
        findings=[f.to_dict() for f in result.findings],
    )


def _module_statements(body: list[ast.stmt]) -> Iterator[ast.stmt]:
    """Statements run at import time: the body plus nested if/try/with/loop blocks, not defs."""
    for stmt in body:
        yield stmt
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            continue
        for name in ("body", "orelse", "finalbody"):
            yield from _module_statements(getattr(stmt, name, []))
        for handler in getattr(stmt, "handlers", []):
            yield from _module_statements(handler.body)


def _base_name(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):  # manim.Scene, mn.ThreeDScene
        return node.attr
    return None


def _defines_construct(cls: ast.ClassDef) -> bool:
    for stmt in cls.body:
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)) and stmt.name == "construct":
            return True
        if isinstance(stmt, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "construct" for t in stmt.targets):
            return True
    return False


def _imports_manim(tree: ast.Module) -> bool:
    for node in ast.walk(tree):
        if isinstance(node, ast.Import) and any(_in_package(a.name, "manim") for a in node.names):
            return True
        if isinstance(node, ast.ImportFrom) and node.level == 0 and _in_package(node.module or "", "manim"):
            return True
    return False


def _in_package(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def _check_structure(tree: ast.Module, wanted: str, result: CheckResult) -> None:
    classes: dict[str, ast.ClassDef] = {}
    has_construct: dict[str, bool] = {}  # scene name -> defines or inherits construct
    for stmt in _module_statements(tree.body):
        if not isinstance(stmt, ast.ClassDef):
            continue
        bases = [b for b in map(_base_name, stmt.bases) if b]
        classes[stmt.name] = stmt
        if any(b in SCENE_BASES or b in has_construct for b in bases):
            inherited = any(has_construct.get(b, False) for b in bases)
            has_construct[stmt.name] = _defines_construct(stmt) or inherited
        else:
            has_construct.pop(stmt.name, None)  # a later non-scene class of the same name wins
    result.scenes = list(has_construct)
    result.candidates = [s for s in result.scenes if has_construct[s]]
    findings = result.findings

    def at(name: str) -> tuple[int, int]:
        return classes[name].lineno, classes[name].col_offset + 1

    if not result.scenes:
        others = f" (classes here: {', '.join(classes)})" if classes else ""
        msg = f"missing a Scene subclass: no class derives from Scene or another Manim scene{others}"
        findings.append(Finding("no-scene", msg))
    else:
        chosen: list[str] = []
        if wanted == "all":
            chosen = result.candidates or result.scenes  # bases without construct are skipped
        elif wanted != "auto":
            if wanted in has_construct:
                chosen = [wanted]
            else:
                what = "is not a Scene subclass" if wanted in classes else "does not exist"
                msg = f"render.scene names class {wanted}, which {what}; scenes here: {', '.join(result.scenes)}"
                findings.append(Finding("unknown-scene", msg, *(at(wanted) if wanted in classes else (None, None))))
        elif GENERATED in has_construct:
            chosen = [GENERATED]
        elif len(result.candidates) > 1:
            msg = f"ambiguous scene: {', '.join(result.candidates)} could all be rendered and none is {GENERATED}"
            findings.append(Finding("ambiguous-scene", msg, *at(result.candidates[0])))
        else:
            chosen = result.candidates or result.scenes  # none has construct: say so below
        missing = [s for s in chosen if not has_construct[s]]
        findings += [Finding("no-construct", f"missing construct() in class {s}", *at(s)) for s in missing]
        result.selected = [] if missing else chosen
    if not _imports_manim(tree):
        findings.append(Finding("no-manim-import", "missing an import from manim (e.g. `from manim import *`)"))


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


def _check_policy(tree: ast.Module, settings: Settings) -> list[Finding]:
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
                    found.append(_at(node, "forbidden-import", f"import of {a.name}{_via(a.name, bad)}"))
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            bad = next((m for m in _prefixes(node.module) if m in imports), None)
            if bad:
                found.append(_at(node, "forbidden-import", f"import from {node.module}{_via(node.module, bad)}"))
            for a in node.names:
                if a.name == "*":
                    star_modules.append(node.module)
                    continue
                aliases[a.asname or a.name] = f"{node.module}.{a.name}"
                if not bad and f"{node.module}.{a.name}" in imports:  # from urllib import request
                    found.append(_at(node, "forbidden-import", f"import of {node.module}.{a.name} is not allowed"))
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
                found.append(_at(node, "forbidden-call", f"call to {written}(){via} is not allowed"))
        elif isinstance(node, ast.Attribute) and node.attr in ESCAPE_NAMES:
            found.append(_at(node, "forbidden-call", f"access to .{node.attr} is not allowed"))
        elif isinstance(node, ast.Name) and node.id in ESCAPE_NAMES:
            found.append(_at(node, "forbidden-call", f"use of {node.id} is not allowed"))
    return sorted(found, key=lambda f: (f.line or 0, f.column or 0))


def _via(module: str, bad: str) -> str:
    return " is not allowed" if module == bad else f" is not allowed ({bad} is forbidden)"


def _at(node: ast.expr | ast.stmt, code: str, message: str) -> Finding:
    return Finding(code, message, node.lineno, node.col_offset + 1)


# -- what code generators send instead of a scene ---------------------------------------------

_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})\s*([\w+.-]*)")
_PYTHON_LANGS = frozenset({"", "python", "py", "python3", "py3", "manim"})
# A line that only Python has at its start; a file with none is not a program.
_PYTHON_LINE = re.compile(r"^\s*(from\s+[\w.]+\s+import\b|import\s+\w|class\s+\w+\s*[(:]|def\s+\w+\s*\(|@\w)")
# Past this size a reply is not tried line by line for where its code ends.
_PROSE_TRIES = 200_000


@dataclass(frozen=True)
class _Code:
    source: str  # every line outside the code blanked, so line numbers stay the file's
    first: int
    last: int
    fenced: bool


def _parse_generated(
    text: str, failure: Finding, settings: Settings, filename: str, result: CheckResult
) -> ast.Module | None:
    """The AST of the code inside a generator's reply (Markdown fences, prose around it), or findings."""
    blocks = _fenced_blocks(text)
    if len(blocks) > 1:
        where = ", ".join(str(b.first - 1) for b in blocks)
        msg = f"the file is a Markdown reply with {len(blocks)} Python code blocks (fences at lines {where}), not one"
        result.findings += [Finding("code-blocks", msg, blocks[0].first - 1, 1), failure]
        return None
    code = blocks[0] if blocks else _unfenced(text, filename)
    if code is None:
        if _reads_as_prose(text):
            first = next((line.strip() for line in text.splitlines() if line.strip()), "")[:80]
            msg = f"the file is not Python code: it reads as prose, e.g. a reply saved as .py ({first!r})"
            result.findings.append(Finding("not-python", msg, 1, 1))
        result.findings.append(failure)
        return None
    if not settings.validation.extract_code:
        what = "a Markdown reply: the code is fenced" if code.fenced else "prose around the code"
        msg = f"the file is {what} (lines {code.first}-{code.last}); validation.extract_code is off"
        result.findings += [Finding("markdown", msg, code.first, 1), failure]
        return None
    tree = _parse(code.source, filename)
    result.source, result.extracted = code.source, (code.first, code.last)
    if isinstance(tree, Finding):
        result.findings.append(tree)
        return None
    return tree


def _reads_as_prose(text: str) -> bool:
    """Words and no Python statement: a reply about code, or no code at all."""
    if any(_PYTHON_LINE.match(line) for line in text.splitlines()):
        return False
    words = re.findall(r"[^\W\d_]{2,}", text)
    visible = len(text) - sum(map(len, re.findall(r"\s+", text)))
    return len(words) >= 3 and sum(map(len, words)) >= 0.6 * visible


def _fenced_blocks(text: str) -> list[_Code]:
    """The Python code blocks of a Markdown text (an unclosed last fence runs to the end)."""
    lines = text.splitlines()
    blocks: list[_Code] = []
    opened: tuple[int, str, str] | None = None  # line index, marker, language
    for i, line in enumerate(lines):
        m = _FENCE.match(line)
        if not m:
            continue
        if opened is None:
            opened = (i, m.group(1), m.group(2).lower())
        elif m.group(1).startswith(opened[1]) and not m.group(2):
            blocks.append(_block(lines, opened[0] + 1, i, opened[2]))
            opened = None
    if opened is not None:
        blocks.append(_block(lines, opened[0] + 1, len(lines), opened[2]))
    return [b for b in blocks if b.fenced and b.last >= b.first]


def _block(lines: list[str], start: int, end: int, lang: str) -> _Code:
    """Lines [start, end) kept, every other one blank; `fenced` False for a block that is not Python."""
    kept = ["" if not start <= n < end else line for n, line in enumerate(lines)]
    return _Code("\n".join(kept) + "\n", start + 1, end, lang in _PYTHON_LANGS)


def _unfenced(text: str, filename: str) -> _Code | None:
    """Code with a sentence before it ("Here is the scene:") and maybe after it, without fences."""
    lines = text.splitlines()
    start = next((n for n, line in enumerate(lines) if _PYTHON_LINE.match(line) and not line[0].isspace()), None)
    if start is None or start == 0 or len(text) > _PROSE_TRIES:
        return None
    end = len(lines)
    for _ in range(2):  # a sentence after the code is the one other thing a reply adds
        code = _block(lines, start, end, "")
        tree = _parse(code.source, filename)
        if not isinstance(tree, Finding):
            return code
        bad = (tree.line or 0) - 1
        if not start < bad < end or any(line[:1].isspace() for line in lines[bad:end]):
            return None
        end = bad
    return None


def _foreign(tree: ast.Module, skip_manimlib: bool) -> Finding | None:
    """A finding when the file is a script for another library (Blender, pygame...), not Manim."""
    if _imports_manim(tree):
        return None
    for node in ast.walk(tree):
        modules = [a.name for a in node.names] if isinstance(node, ast.Import) else []
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            modules = [node.module]
        for module in modules:
            top = module.split(".")[0]
            if top in renames.FOREIGN and not (skip_manimlib and top == "manimlib"):
                msg = f"this is {renames.FOREIGN[top]} (it imports {module}), not a Manim Community scene"
                return _at(node, "not-manim", msg)
    return None


def _missing_plugins(tree: ast.Module) -> list[Finding]:
    """Imports of modules that are not installed (Manim plugins named as such): the scene cannot
    import, and no rename helps. Old Manim and foreign modules have findings of their own."""
    found: list[Finding] = []
    tries = [t for t in ast.walk(tree) if isinstance(t, ast.Try) and t.handlers]
    guarded = {id(n) for t in tries for b in t.body for n in ast.walk(b)}
    for node in ast.walk(tree):
        if id(node) in guarded:  # `try: import x` / `except ImportError`: the scene copes without it
            continue
        modules = [a.name for a in node.names] if isinstance(node, ast.Import) else []
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            modules = [node.module]
        for module in modules:
            top = module.split(".")[0]
            if renames.module_rename(module) or top in renames.FOREIGN or _installed(top):
                continue
            if top in renames.PLUGINS:
                msg = f"{module} is the Manim plugin {renames.PLUGINS[top]}, which is not installed here"
            else:
                msg = f"{module} is not installed here: scenes can use Manim, NumPy and Python's standard library"
            found.append(_at(node, "plugin", msg))
    return found


def _installed(top: str) -> bool:
    """Whether a top-level module can be imported here (the render child has the same Python)."""
    try:
        # find_spec of a top-level name looks on sys.path without importing anything.
        return importlib.util.find_spec(top) is not None
    except (ImportError, ValueError):
        return False


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


def _check_api(tree: ast.Module, text: str) -> list[Finding]:
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
        if _in_package(node.module, "manim"):  # from manim import ShowCreation
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

API = "Manim Community 0.22"
_SNAPSHOT_CODES = ("undefined-name", "unknown-keyword")
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
    if best := _best(matches, name):
        suggestion = {"line": line, "column": column, "replace": name, "with": best}
        return Finding("undefined-name", f"{what}: did you mean `{best}`?", line, column, suggestion)
    if matches:
        return Finding(
            "undefined-name", f"{what}: did you mean one of {', '.join(f'`{m}`' for m in matches)}?", line, column
        )
    return Finding("undefined-name", what, line, column)


def _best(matches: list[str], word: str) -> str | None:
    """The match to suggest: the only one, or one clearly closer than the next (as watcher.hints does)."""
    if len(matches) > 1:
        ratio = [difflib.SequenceMatcher(None, word.lower(), m.lower()).ratio() for m in matches[:2]]
        return matches[0] if ratio[0] - ratio[1] >= 0.1 else None
    return matches[0] if matches else None


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
    best = matches[0] if kw.arg == "opacity" and matches else _best(matches, kw.arg or "")
    if best:
        suggestion = {"line": line, "column": column, "replace": kw.arg, "with": best}
        return Finding(
            "unknown-keyword", f"{what}: did you mean `{best}=`? It takes: {listed}", line, column, suggestion
        )
    return Finding("unknown-keyword", f"{what}; it takes: {listed}", line, column)
