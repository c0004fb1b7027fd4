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
    """

    source: str
    phase: str
    type: str
    message: str
    line: int | None = None
    column: int | None = None
    excerpt: str | None = None
    hint: str | None = None
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
        if not self.versions:
            self.versions = versions()

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, ensure_ascii=False) + "\n"

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ErrorRecord:
        data = dict(data)
        data["frames"] = [Frame(**f) for f in data.get("frames") or []]
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in known})

    def summary(self) -> str:
        """One line: `x.py:9:5: render: ZeroDivisionError: division by zero`."""
        where = self.source
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        return f"{where}: {self.phase}: {self.type}: {self.message}"


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

    from . import __version__

    try:
        manim = metadata.version("manim")
    except metadata.PackageNotFoundError:
        manim = "not installed"
    return (("watcher", __version__), ("manim", manim), ("python", platform.python_version()))


def versions() -> dict[str, str]:
    """watcher, manim and Python versions, read from package metadata (no manim import)."""
    return dict(_versions())  # built once, whole: threads never see a half-filled cache
