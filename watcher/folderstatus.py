"""What `watcher status` shows: how many scenes each folder holds, the daemon's state (from
the status file it rewrites every few seconds, checked against its pid), and the latest failures.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from pathlib import Path
from typing import Any

from .config import Settings
from .inbox import is_candidate
from .records import number, read_record, shown_fields
from .sidecar import ERROR_SUFFIX
from .status import STATUS_NAME

# The daemon rewrites its status file at least every 2 s; older than this, it is not keeping up.
STALE_AFTER = 15.0


def folder_status(settings: Settings, *, recent: int = 5, now: float | None = None) -> dict[str, Any]:
    """Counts per folder, the daemon's state (from its status file), and the latest failures."""
    f = settings.folders
    return {
        "config": str(settings.path) if settings.path else None,
        "folders": {key: str(getattr(f, key)) for key in ("inbox", "processing", "done", "failed")},
        "counts": {
            "inbox": _count_sources(f.inbox),
            "processing": _count_claims(f.processing),
            "done": _count_sources(f.done),
            "failed": _count_sources(f.failed),
        },
        "daemon": daemon_status(f.processing / STATUS_NAME, now=now),
        "recent_failures": recent_failures(f.failed, recent),
    }


def daemon_status(path: Path, *, now: float | None = None) -> dict[str, Any]:
    """Read the daemon's status file; `state` is running, stale, stopped, gone (died) or absent."""
    now = time.time() if now is None else now
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {"state": "absent", "running": []}
    except (OSError, ValueError) as e:
        return {"state": "absent", "running": [], "error": f"unreadable status file {path}: {e}"}
    if not isinstance(data, dict):
        return {"state": "absent", "running": [], "error": f"unreadable status file {path}"}
    pid = data.get("pid") if isinstance(data.get("pid"), int) else None
    started, updated = number(data.get("started")), number(data.get("updated"))
    age = now - updated if updated is not None else None
    alive = _alive(pid)
    if data.get("state") == "stopped":
        state = "stopped"
    elif not alive:
        state = "gone"  # killed without the clean shutdown that marks the file stopped
    elif age is None or age > STALE_AFTER:
        state = "stale"
    else:
        state = "running"
    live = state == "running"
    raw = data.get("running")
    raw_running: dict[Any, Any] = raw if isinstance(raw, dict) else {}
    running = [
        # The file holds run times as of `updated`; add the time since.
        {"name": str(name), "seconds": round((number(secs) or 0.0) + (age if live and age else 0.0), 1)}
        for name, secs in raw_running.items()
    ]
    return {
        "state": state,
        "pid": pid,
        "alive": alive,
        "started": started,
        "updated": updated,
        "age_seconds": round(age, 1) if age is not None else None,
        "uptime_seconds": round(now - started, 1) if live and started else None,
        "queued": data.get("queued") if live else 0,
        "running": running if live else [],
        "counts": data.get("counts") if isinstance(data.get("counts"), dict) else {},
    }


def recent_failures(folder: Path, limit: int) -> list[dict[str, Any]]:
    """The newest error records in `folder`, newest first."""
    records = []
    with contextlib.suppress(FileNotFoundError):
        for entry in os.scandir(folder):
            if entry.name.endswith(ERROR_SUFFIX) and not entry.name.startswith("."):
                with contextlib.suppress(OSError):
                    if entry.is_file(follow_symlinks=False):
                        records.append((entry.stat(follow_symlinks=False).st_mtime, Path(entry.path)))
    records.sort(reverse=True)
    out = []
    for mtime, path in records[:limit]:
        rec = shown_fields(read_record(path))
        out.append(
            {
                "file": str(path),
                "time": mtime,
                "phase": rec["phase"],
                "type": rec["type"],
                "message": _first_line(rec["message"]),
                "line": rec["line"],
            }
        )
    return out


def _count_sources(folder: Path) -> int:
    with contextlib.suppress(FileNotFoundError):
        return sum(1 for e in os.scandir(folder) if is_candidate(e.name) and e.is_file(follow_symlinks=False))
    return 0


def _count_claims(processing: Path) -> int:
    # One directory per claim; the lock and status files are hidden.
    with contextlib.suppress(FileNotFoundError):
        return sum(1 for e in os.scandir(processing) if not e.name.startswith(".") and e.is_dir(follow_symlinks=False))
    return 0


def _alive(pid: int | None) -> bool:
    if pid is None or pid <= 0:  # kill(0) or kill(-1) would address whole groups
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, under another user
        return True
    return True


def _first_line(value: Any, limit: int = 200) -> str:
    text = str(value or "").strip().splitlines()
    line = text[0] if text else ""
    return line if len(line) <= limit else line[:limit] + " ..."
