"""The static check of one scene file: what `check_scene` finds, and the error record made of it.

Pure and fast: the source is parsed with `ast`, never imported or run, and manim is not
imported. Here: the size cap, decoding, parsing, and the file's structure (its scene
classes, construct(), the manim import, which scenes render.scene selects). The other
checks it runs each have a module: `markdown` (the code of a generator's reply),
`policy` (forbidden calls and imports), `foreign` (another library's script, modules not
installed) and `apicheck` (old Manim names, and names and keywords against the snapshot
of Manim's API). Their findings are collected in a `CheckResult`; `findings_record` turns
a failed one into the record the daemon writes, and `checked_scene` raises it.
"""

from __future__ import annotations

import ast
import codecs
from collections.abc import Iterator
from dataclasses import dataclass, field

from . import errors, markdown
from .apicheck import API, SNAPSHOT_CODES, check_api
from .config import Settings
from .errors import ErrorRecord, InvalidScene
from .findings import Finding, imports_manim, parse
from .foreign import check_foreign, check_plugins
from .policy import check_policy

# Manim's scene classes a user scene may derive from (by name, however manim was imported).
SCENE_BASES = frozenset(
    "Scene ThreeDScene SpecialThreeDScene MovingCameraScene ZoomedScene VectorScene LinearTransformationScene".split()
)
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
    tree = parse(text, filename)
    if isinstance(tree, Finding):
        # A generator's reply saved as the file: the code inside it, when there is one.
        reply, found, code = markdown.parse_reply(text, tree, settings.validation.extract_code, filename)
        result.findings += found
        if code is not None:
            result.source, result.extracted = code.source, (code.first, code.last)
        if reply is None:
            return result
        tree = reply
    _check_structure(tree, settings.render.scene, result)
    if len(result.selected) > settings.render.max_scenes:  # each is a render of up to render.timeout
        limit = settings.render.max_scenes
        msg = f"{len(result.selected)} scenes to render, over the limit of {limit} (render.max_scenes)"
        result.findings.append(Finding("too-many-scenes", msg))
        result.selected = []
    if settings.validation.enabled:
        result.findings += check_policy(tree, settings)
    api = settings.validation.api_check
    if api != "off":
        old = check_api(tree, text if result.source is None else result.source, settings)
        if api == "warn":
            result.warnings = old
        else:
            # Old names lead: they often explain the rest (`class S(GraphScene)` is no scene,
            # `from manimlib import *` no manim import), and a generator fixes them all at once.
            result.findings = old + result.findings
    if foreign := check_foreign(tree, skip_manimlib=api != "off"):
        result.findings.insert(0, foreign)
    if api != "off":
        result.findings[:0] = check_plugins(tree)
    return result


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
    elif first.code in ("old-api", *SNAPSHOT_CODES):
        api = [f for f in result.findings if f.code in ("old-api", *SNAPSHOT_CODES)]
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


# -- structure: the scene classes, construct() and the manim import ------------------------------


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
    if not imports_manim(tree):
        findings.append(Finding("no-manim-import", "missing an import from manim (e.g. `from manim import *`)"))
