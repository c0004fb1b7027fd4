"""Error records and sidecars read back from the result folders, trusting nothing in them.

Whoever can write into a folder can put links, FIFOs and huge files there: a record is
read only when it is a regular file, reached without following a symbolic link, of at
most MAX_RECORD_BYTES; what `watcher status`, the report and `watcher explain` show of
it (`shown_fields`) is text, each field capped.
"""

from __future__ import annotations

import errno
import json
import os
import stat
from pathlib import Path
from typing import Any

from .errors import CAPS, cap_tail, cap_text

# The records watcher writes stay far below this (errors.CAPS); a bigger file was not
# written by it, and reading it whole could take all the memory.
MAX_RECORD_BYTES = 1 << 20
# The render output a failure card shows: its end, which holds the traceback.
TAIL_LINES = 40
TAIL_CHARS = 8192


def read_record(path: Path, limit: int = MAX_RECORD_BYTES) -> dict[str, Any]:
    """An error record (or a sidecar) as a dict; one that cannot be read becomes a record that says so.

    A symbolic link is not followed, and a file over `limit` bytes is not read at all.
    """
    try:
        data = json.loads(_read_regular(path, limit).decode("utf-8", errors="replace"))
    except (OSError, ValueError, RecursionError) as e:  # json raises RecursionError on deep nesting
        reason = "is a symbolic link: not followed" if isinstance(e, OSError) and e.errno == errno.ELOOP else str(e)
        return {"phase": "?", "type": "UnreadableRecord", "message": f"{path.name} cannot be read: {reason}"}
    return data if isinstance(data, dict) else {"phase": "?", "type": "UnreadableRecord", "message": path.name}


def shown_fields(record: dict[str, Any]) -> dict[str, Any]:
    """The fields of an error record that status and the report show, as text, each capped."""
    tail = "\n".join(_text(record.get("stderr_tail")).strip().splitlines()[-TAIL_LINES:])
    line = record.get("line")
    return {
        "phase": cap_text(_text(record.get("phase", "?")), CAPS.name),
        "type": cap_text(_text(record.get("type", "?")), CAPS.name),
        "message": cap_text(_text(record.get("message")), CAPS.message),
        "line": line if isinstance(line, int) and not isinstance(line, bool) else None,
        "excerpt": cap_text(_text(record.get("excerpt")), CAPS.excerpt),
        "hint": cap_text(_text(record.get("hint")), CAPS.hint),
        "stderr_tail": cap_tail(tail, TAIL_CHARS),
    }


def _text(value: Any) -> str:
    # str() of what a hand-written record holds is bounded by MAX_RECORD_BYTES.
    return value if isinstance(value, str) else "" if value is None else str(value)


def _read_regular(path: Path, limit: int) -> bytes:
    """The bytes of `path`, a regular file of at most `limit` bytes.

    Raises:
        OSError: with errno ELOOP when `path` is a symbolic link (never followed).
        ValueError: not a regular file, or over `limit`.
    """
    # O_NONBLOCK: opening a FIFO must not wait for a writer (it is refused just below).
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    with open(fd, "rb") as f:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise ValueError("not a regular file")
        if st.st_size > limit:
            raise ValueError(f"{st.st_size} bytes, over the {limit} bytes the report reads")
        data = f.read(limit + 1)
    if len(data) > limit:  # it grew after the fstat
        raise ValueError(f"over the {limit} bytes the report reads")
    return data


def number(value: Any) -> float | None:
    """A JSON number as a float; None for anything else (a bool included)."""
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None
