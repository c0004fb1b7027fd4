"""Logging for the commands (`setup_logging`): text, journald lines or JSON, on stderr.

Log messages carry file names and scene messages, untrusted text: every format escapes
control characters (`escape_controls`), so none can forge a line or drive a terminal.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from typing import Any

from .config import Settings


def setup_logging(settings: Settings) -> None:
    """Text for people and journald (priority prefixes under systemd), or JSON lines.

    File names and scene messages are untrusted: every format escapes control characters.
    """
    handler = logging.StreamHandler(sys.stderr)
    if settings.logging.format == "json":
        handler.setFormatter(_JsonFormatter())
    elif os.environ.get("JOURNAL_STREAM"):
        handler.setFormatter(_JournalFormatter("%(name)s: %(message)s"))
    else:
        handler.setFormatter(_Formatter("%(asctime)s %(levelname)-7s %(message)s", "%Y-%m-%d %H:%M:%S"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)
    logging.getLogger("watcher").setLevel(settings.logging.level)


# C0 controls, DEL and C1 controls, as Python escapes them. Newlines and carriage returns
# would let a file named "x\nINFO ..." forge log lines; ESC sequences would colour or
# rewrite the terminal that shows the log.
_CONTROLS = {c: f"\\x{c:02x}" for c in (*range(0x20), 0x7F, *range(0x80, 0xA0))}
_CONTROLS.update({ord("\t"): "\\t", ord("\n"): "\\n", ord("\r"): "\\r"})


def escape_controls(text: str) -> str:
    """`text` with every control character escaped (`\\n`, `\\x1b`): one line, no terminal codes."""
    return text.translate(_CONTROLS)


class _Formatter(logging.Formatter):
    """Escapes control characters in the message; a traceback keeps its lines, each indented.

    Indented, no line of a traceback can pass for a record of its own, even when an
    exception message holds a newline.
    """

    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = escape_controls(record.message)
        return super().formatMessage(record)

    def formatException(self, ei: Any) -> str:
        return _indent(super().formatException(ei))

    def formatStack(self, stack_info: str) -> str:
        return _indent(super().formatStack(stack_info))


def _indent(text: str) -> str:
    return "\n".join("  " + escape_controls(line) for line in text.split("\n"))


class _JournalFormatter(_Formatter):
    # sd-daemon(3) priority prefixes: journald stores the level, so no timestamp is needed.
    PRIORITY = {"DEBUG": 7, "INFO": 6, "WARNING": 4, "ERROR": 3, "CRITICAL": 2}

    def format(self, record: logging.LogRecord) -> str:
        return f"<{self.PRIORITY.get(record.levelname, 6)}>{super().format(record)}"


class _JsonFormatter(_Formatter):
    def format(self, record: logging.LogRecord) -> str:
        data = {
            "time": round(record.created, 3),
            "level": record.levelname,
            "logger": record.name,
            "message": escape_controls(record.getMessage()),
        }
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        return json.dumps(data)
