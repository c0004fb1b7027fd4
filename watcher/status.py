"""The daemon's status file, `processing/.watcher.status.json`, read by `watcher status` and the report."""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any

STATUS_NAME = ".watcher.status.json"


def write_status(processing: Path, status: dict[str, Any]) -> None:
    """Replace the status file atomically; a full disk only costs this update."""
    path = processing / STATUS_NAME
    tmp = path.with_name(f".{STATUS_NAME}.tmp")
    with contextlib.suppress(OSError):
        tmp.write_text(json.dumps(status), encoding="utf-8")
        os.replace(tmp, path)
