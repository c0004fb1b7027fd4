"""The exception tree and the one JSON error record every failure becomes.

    WatcherError                      root of everything watcher raises on purpose
    ├── ConfigError                   bad config file, key or value (names the dotted key)
    ├── SandboxError                  (sandbox.py) strict mode on a host that lacks a required layer
    ├── InvalidScene(ValueError)      static validation failed ("missing ...", policy)
    ├── RenderError(RuntimeError)     the render ran and did not produce a valid MP4
    │   └── RenderTimeout(RenderError, TimeoutError)
    └── InternalError                 a bug or a host fault in watcher itself

`SyntaxError` for bad syntax is Python's own, so `pytest.raises(SyntaxError)` holds.
"""

from __future__ import annotations

import functools
import json
import math
import platform
from dataclasses import asdict, dataclass, field
from typing import Any

SCHEMA_VERSION = 1

# The phases an error record can carry, in the order a job goes through them.
PHASES = ("ingest", "validate", "import", "render", "timeout", "resource", "environment", "internal", "poison")


class WatcherError(Exception):
    """Root of the exceptions watcher raises on purpose."""


class ConfigError(WatcherError):
    """The config file is missing, unreadable, or holds a bad key or value."""


class InvalidScene(WatcherError, ValueError):
    """The scene failed static validation; `.record` holds all findings."""

    def __init__(self, message: str, record: ErrorRecord | None = None):
        super().__init__(message)
        self.record = record


class RenderError(WatcherError, RuntimeError):
    """The scene ran but no valid MP4 came out; `.record` says why."""

    def __init__(self, message: str, record: ErrorRecord | None = None):
        super().__init__(message)
        self.record = record


class RenderTimeout(RenderError, TimeoutError):
    """The scene ran past its time limit and was stopped."""


class InternalError(WatcherError):
    """A fault in watcher or the host, not in the scene."""


@dataclass(frozen=True)
class RecordCaps:
    """The most an error record holds per field, in characters (or entries).

    A record is written, logged and shown in the report, and its text comes from the
    scene (`raise RuntimeError("A" * 300_000_000)`): without caps one scene could make
    a record of hundreds of MB. The values leave room for everything a person acts on.
    With every field full, the JSON is about 215,000 characters.
    """

    message: int = 8192  # a long message keeps its head and its tail
    excerpt: int = 4096  # `excerpt()` makes 5 lines of at most about 210 characters
    hint: int = 2048
    stderr_tail: int = 65536  # the end of the output; render.max_log_bytes defaults to as much
    source: int = 1024  # a file name; 255 bytes on most filesystems
    name: int = 256  # type, limit, signal, a frame's function, a finding's code, dict keys
    code: int = 512  # one source line of a frame (the child keeps 200)
    frames: int = 50  # the innermost ones: a RecursionError has a thousand of the same
    findings: int = 50  # the first ones: the first leads the record
    finding_message: int = 512
    latex_errors: int = 10  # the child keeps 5 blocks of up to 8 lines
    latex_text: int = 2048  # each LaTeX error block, and the TeX source line
    entries: int = 32  # keys of `settings` and of `versions`
    value: int = 256  # each text value there


CAPS = RecordCaps()


def cap_text(text: str, limit: int) -> str:
    """`text` when it fits in `limit` characters, else its head and tail around "... [N characters cut] ...".

    The result is never longer than `limit`. The child uses it too, before it writes its result.
    """
    if len(text) <= limit:
        return text
    room = limit - len(_cut(len(text)))  # the marker for the largest cut is the longest
    if room <= 0:
        return text[: max(limit, 0)]
    head, tail = room - room // 2, room // 2
    return text[:head] + _cut(len(text) - head - tail) + text[len(text) - tail :]


def cap_tail(text: str, limit: int) -> str:
    """`text` when it fits in `limit` characters, else its end after "[N characters cut] ...".

    For output, where the end (the traceback, the last progress line) is what explains it.
    """
    if len(text) <= limit:
        return text
    room = limit - len(_cut(len(text)).lstrip())
    if room <= 0:
        return text[len(text) - max(limit, 0) :]
    return _cut(len(text) - room).lstrip() + text[len(text) - room :]


def _cut(n: int) -> str:
    return f" ... [{n} characters cut] ... "


@dataclass
class Frame:
    """One traceback frame inside the user's file."""

    line: int
    function: str
    code: str


@dataclass
class ErrorRecord:
    """What went wrong with one scene, for a person or a code generator to act on.

    Written as `failed/<name>.error.json`. Line and column are 1-based and always refer
    to the user's own file, never to a temp copy.

    Every field is capped (`CAPS`) and of its declared type whichever way the record is
    made: `__post_init__` cleans it, and `to_dict` cleans it again, because fields are
    also assigned after construction (render.py sets `stderr_tail` and `excerpt`).
    """

    source: str
    phase: str
    type: str
    message: str
    line: int | None = None
    column: int | None = None
    excerpt: str | None = None
    hint: str | None = None
    # One replacement that fixes the error: {"line", "column", "replace", "with"} (watcher.hints).
    suggestion: dict[str, Any] | None = None
    findings: list[dict[str, Any]] = field(default_factory=list)
    frames: list[Frame] = field(default_factory=list)
    latex: dict[str, Any] | None = None
    limit: str | None = None
    exit_code: int | None = None
    signal: str | None = None
    stderr_tail: str = ""
    duration: float | None = None
    attempts: int | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)
    schema: int = SCHEMA_VERSION

    def __post_init__(self) -> None:
        if self.phase not in PHASES:
            raise ValueError(f"unknown phase {self.phase!r}")
        self._clean()
        if not self.versions:
            self.versions = versions()

    def _clean(self) -> None:
        """Cap every field, and put a value of the wrong type back to its default (dropping it)."""
        self.source = _text(self.source, CAPS.source) or ""
        self.type = _text(self.type, CAPS.name) or "Error"
        self.message = _text(self.message, CAPS.message) or ""
        self.line, self.column = _position(self.line), _position(self.column)
        self.excerpt = _text(self.excerpt, CAPS.excerpt)
        self.hint = _text(self.hint, CAPS.hint)
        self.suggestion = _suggestion(self.suggestion)
        self.findings = _findings(self.findings)
        self.frames = _frames(self.frames)
        self.latex = _latex(self.latex)
        self.limit, self.signal = _text(self.limit, CAPS.name), _text(self.signal, CAPS.name)
        self.exit_code, self.attempts = _int(self.exit_code), _int(self.attempts)
        tail = self.stderr_tail if isinstance(self.stderr_tail, str) else ""
        self.stderr_tail = _utf8(cap_tail(tail, CAPS.stderr_tail))
        self.duration = _number(self.duration)
        self.settings = _scalars(self.settings)
        self.versions = {k: str(v) for k, v in _scalars(self.versions).items() if v is not None}
        schema = _int(self.schema)
        self.schema = SCHEMA_VERSION if schema is None else schema

    def to_dict(self) -> dict[str, Any]:
        self._clean()
        data = asdict(self)
        if data["suggestion"] is None:  # the field is new: a record without one reads as it always did
            del data["suggestion"]
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, ensure_ascii=False) + "\n"

    @classmethod
    def from_dict(cls, data: Any) -> ErrorRecord:
        """A record from parsed JSON that may be hostile (the child writes it in the job directory the scene owns).

        Never raises: a record always comes out, so a job is always filed. Unknown keys are
        ignored; a field of the wrong type is dropped (back to its default; a number where
        text belongs becomes that text); a phase that is missing or unknown becomes
        `internal`, since watcher did not write it so; text is capped (`CAPS`).
        """
        data = data if isinstance(data, dict) else {}
        known = {k: v for k, v in data.items() if isinstance(k, str) and k in cls.__dataclass_fields__}
        if not isinstance(known.get("phase"), str) or known["phase"] not in PHASES:
            known["phase"] = "internal"
        for key in ("source", "type", "message"):
            known.setdefault(key, "")
        return cls(**known)

    def summary(self) -> str:
        """One line: `x.py:9:5: render: ZeroDivisionError: division by zero`."""
        where = self.source
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        return f"{where}: {self.phase}: {self.type}: {self.message}"


# -- keeping a record's fields capped and of their types -----------------------------------

# Integers past this are not a line, a status or a count; str() of one with 4300 digits raises.
_INT_LIMIT = 2**63


def _text(value: Any, limit: int) -> str | None:
    """Text capped at `limit`; a number becomes its text; anything else None."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return None
    if isinstance(value, int) and not -_INT_LIMIT < value < _INT_LIMIT:
        return None
    return _utf8(cap_text(value if isinstance(value, str) else str(value), limit))


def _utf8(text: str) -> str:
    # A lone surrogate ("\udcff", from a scene or a decoded file name) would make
    # `to_json().encode()` raise when the record is written: replace it.
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "replace").decode("utf-8")
    return text


def _int(value: Any) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and -_INT_LIMIT < value < _INT_LIMIT:
        return value
    return None


def _position(value: Any) -> int | None:
    """A 1-based line or column, or None (a tampered child record may say 0 or -1)."""
    value = _int(value)
    return value if value is not None and value >= 1 else None


def _number(value: Any) -> float | None:
    if isinstance(value, float) and math.isfinite(value):
        return value
    return float(value) if _int(value) is not None else None


def _frames(value: Any) -> list[Frame]:
    """The innermost frames that have a line number, oldest first (as a traceback lists them)."""
    kept: list[Frame] = []
    for item in reversed(value if isinstance(value, list) else []):
        if len(kept) == CAPS.frames:
            break
        if isinstance(item, Frame):
            item = asdict(item)
        if isinstance(item, dict) and _position(item.get("line")) is not None:
            function = _text(item.get("function"), CAPS.name) or "?"
            kept.append(Frame(item["line"], function, _text(item.get("code"), CAPS.code) or ""))
    return kept[::-1]


def _suggestion(value: Any) -> dict[str, Any] | None:
    """{"line", "column", "replace", "with"} with a line and both texts, or None."""
    if not isinstance(value, dict) or _position(value.get("line")) is None:
        return None
    replace, with_ = _text(value.get("replace"), CAPS.code), _text(value.get("with"), CAPS.code)
    if replace is None or with_ is None:
        return None
    return {"line": value["line"], "column": _position(value.get("column")), "replace": replace, "with": with_}


def _findings(value: Any) -> list[dict[str, Any]]:
    """The first findings, each as `validate.Finding.to_dict()` makes it: code, message, line, column."""
    findings = [f for f in (value if isinstance(value, list) else []) if isinstance(f, dict)]
    return [
        {
            "code": _text(f.get("code"), CAPS.name) or "?",
            "message": _text(f.get("message"), CAPS.finding_message) or "",
            "line": _position(f.get("line")),
            "column": _position(f.get("column")),
        }
        for f in findings[: CAPS.findings]
    ]


def _latex(value: Any) -> dict[str, Any] | None:
    """The LaTeX error blocks, and the TeX line they point at (what `child.latex_details` makes)."""
    if not isinstance(value, dict):
        return None
    errors = value["errors"] if isinstance(value.get("errors"), list) else []
    texts = (_text(e, CAPS.latex_text) for e in errors[: CAPS.latex_errors])
    latex: dict[str, Any] = {"errors": [t for t in texts if t is not None]}
    if _int(value.get("tex_line")) is not None:
        latex["tex_line"] = value["tex_line"]
    source = _text(value.get("tex_source"), CAPS.latex_text)
    if source is not None:
        latex["tex_source"] = source
    return latex


def _scalars(value: Any) -> dict[str, Any]:
    """A flat dict of at most `CAPS.entries` text keys; values text, number, bool or None."""
    out: dict[str, Any] = {}
    for key, item in value.items() if isinstance(value, dict) else ():
        if len(out) == CAPS.entries:
            break
        if not isinstance(key, str):
            continue
        if isinstance(item, str):
            item = _text(item, CAPS.value)
        elif item is not None and not isinstance(item, bool) and _number(item) is None:
            continue  # a list, a dict, NaN, a huge integer
        out[_text(key, CAPS.name) or ""] = item
    return out


def excerpt(source: str, line: int | None, context: int = 2) -> str | None:
    """The lines around `line` (1-based), numbered, with the offending one marked `>`."""
    if line is None or line < 1:
        return None
    lines = source.splitlines()
    if line > len(lines):
        return None
    lo, hi = max(1, line - context), min(len(lines), line + context)
    width = len(str(hi))
    out = []
    for n in range(lo, hi + 1):
        mark = ">" if n == line else " "
        text = lines[n - 1]
        if len(text) > 200:  # a 10 MB line must not become a 10 MB record
            text = text[:200] + " ..."
        out.append(f"{mark} {n:>{width}} | {text}")
    return "\n".join(out)


@functools.cache
def _versions() -> tuple[tuple[str, str], ...]:
    from importlib import metadata

    from .version import __version__

    try:
        manim = metadata.version("manim")
    except metadata.PackageNotFoundError:
        manim = "not installed"
    return (("watcher", __version__), ("manim", manim), ("python", platform.python_version()))


def versions() -> dict[str, str]:
    """watcher, manim and Python versions, read from package metadata (no manim import)."""
    return dict(_versions())  # built once, whole: threads never see a half-filled cache
