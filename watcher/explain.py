"""`watcher explain`: one error record, laid out for a person.

A record is untrusted text (a scene's name, its messages and output, or a file anyone could
write into failed/): it is read as the report reads it (no symbolic link followed, at most
1 MiB), normalised by `ErrorRecord.from_dict` (types and caps), shown as rich `Text` (never
markup) and with control characters made visible (`console.printable`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Group
from rich.text import Text

from .console import printable
from .errors import PHASES, ErrorRecord, WatcherError
from .records import read_record

TITLE = "bold"
OFFENDING = "bold red"
DIM = "dim"


def load_record(path: Path) -> ErrorRecord:
    """The error record in `path`, normalised.

    Raises:
        WatcherError: the file cannot be read, or holds something other than an error record.
    """
    data = read_record(path)  # O_NOFOLLOW, a regular file, at most report.MAX_RECORD_BYTES
    if data.get("phase") == "?" and data.get("type") == "UnreadableRecord":  # what read_record makes of a bad file
        reason = str(data.get("message"))
        raise WatcherError(reason if reason != path.name else f"{path.name} does not hold a JSON object")
    if data.get("phase") not in PHASES or not isinstance(data.get("type"), str):
        raise WatcherError(f"{path.name} is not an error record (it has no phase and type of one)")
    had_versions = isinstance(data.get("versions"), dict) and data["versions"]
    record = ErrorRecord.from_dict(data)
    if not had_versions:
        record.versions = {}  # from_dict fills in this install's versions: they did not make this record
    return record


def explain(record: ErrorRecord, *, verbose: bool = False) -> Group:
    """The record for a terminal: what and where, the lines, the fix, then the details.

    The render's output (`stderr_tail`) only when `verbose`: the fields above say what it says, shorter.
    """
    parts: list[Text] = [_summary(record)]
    if record.excerpt:
        parts.append(_excerpt(record.excerpt, record.column))
    if record.hint:
        parts.append(_field("hint", record.hint))
    if record.suggestion:
        s = record.suggestion
        where = f"{s['line']}:{s['column']}" if s["column"] is not None else f"line {s['line']}"
        parts.append(_field("fix", f"replace {s['replace']!r} with {s['with']!r} at {where}"))
    if record.findings:
        lines = [f"{_position(f['line'], f['column']) or '-'} {f['code']}: {f['message']}" for f in record.findings]
        parts.append(_block(f"findings ({len(lines)})", lines))
    if record.frames:
        lines = [f"line {f.line}, in {f.function}: {f.code.strip()}" for f in record.frames]
        parts.append(_block("frames (innermost last)", lines))
    if record.latex is not None:
        parts.append(_latex(record.latex))
    if details := _details(record):
        parts.append(Text(_shown(details), style=DIM))
    if verbose and record.stderr_tail.strip():
        parts.append(_block("render output (its end)", record.stderr_tail.rstrip().splitlines()))
    return Group(*parts)


def _summary(record: ErrorRecord) -> Text:
    """`x.py:9:13: render: NameError: name 'Sqare' is not defined`, the message's other lines below it."""
    first, *rest = record.message.splitlines() or [""]
    position = _position(record.line, record.column)
    where = f"{record.source}:{position}" if position else record.source
    text = Text(_shown(f"{where}: {record.phase}: {record.type}: {first}"), style=TITLE)
    for line in rest:
        text.append("\n    " + _shown(line))
    return text


def _shown(text: str) -> str:
    """One line of the record as it may reach a terminal: tabs expanded, control characters as `?`."""
    return printable(text.expandtabs())


def _position(line: int | None, column: int | None) -> str:
    """`9:13`, `9`, or nothing."""
    if line is None:
        return ""
    return f"{line}:{column}" if column is not None else str(line)


def _excerpt(excerpt: str, column: int | None) -> Text:
    """The numbered lines, the offending one (marked `>` by `errors.excerpt`) highlighted, a caret under its column."""
    text = Text()
    for i, line in enumerate(excerpt.splitlines()):
        offending = line.startswith(">")
        text.append(("\n" if i else "") + _shown(line), style=OFFENDING if offending else "")
        if offending and column is not None and " | " in line:
            gutter, _, code = line.partition(" | ")
            if 1 <= column <= len(code) + 1:
                # Keep the tabs before the column, so that the caret lines up once both are expanded.
                pad = "".join(c if c == "\t" else " " for c in gutter + " | " + code[: column - 1])
                text.append("\n" + pad.expandtabs() + "^", style=OFFENDING)
    return text


def _field(name: str, value: str) -> Text:
    first, *rest = value.splitlines() or [""]
    text = Text(f"{name}: ", style=TITLE)
    text.append(_shown(first))
    for line in rest:
        text.append("\n    " + _shown(line))
    return text


def _block(title: str, lines: list[str]) -> Text:
    text = Text(f"{title}:", style=TITLE)
    for line in lines:
        text.append("\n  " + _shown(line))
    return text


def _latex(latex: dict[str, Any]) -> Text:
    lines = [line for error in latex["errors"] for line in error.splitlines()]
    if "tex_line" in latex or "tex_source" in latex:
        lines.append(f"TeX line {latex.get('tex_line', '?')}: {latex.get('tex_source', '')}")
    return _block("LaTeX", lines)


def _details(record: ErrorRecord) -> str:
    """`exit code -9, signal SIGKILL, limit render.timeout, took 61.2 s, attempt 3`: what ended the render."""
    details = []
    if record.exit_code is not None:
        details.append(f"exit code {record.exit_code}")
    if record.signal:
        details.append(f"signal {record.signal}")
    if record.limit:
        details.append(f"limit {record.limit}")
    if record.duration is not None:
        details.append(f"took {record.duration:.1f} s")
    if record.attempts:
        details.append(f"attempt {record.attempts}")
    return ", ".join(details)
