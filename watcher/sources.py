"""Where jobs come from: a claimed inbox entry (the daemon) or a file named by the user."""

from __future__ import annotations

import logging
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from .errors import ErrorRecord, WatcherError
from .layout import Claimed, Layout

log = logging.getLogger(__name__)


@dataclass
class FileSource:
    """A scene file that stays where it is while it renders (`watcher render`, `watcher rerender`)."""

    path: Path
    max_bytes: int

    @property
    def name(self) -> str:
        return self.path.name

    def load(self) -> bytes | ErrorRecord:
        name, limit = self.path.name, self.max_bytes
        try:
            # O_NONBLOCK: a FIFO named x.py must not hang the batch.
            fd = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError as e:
            return ErrorRecord(name, "ingest", "Unreadable", f"{name} cannot be opened: {e.strerror}")
        with os.fdopen(fd, "rb") as f:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                return ErrorRecord(name, "ingest", "NotARegularFile", f"{name} is not a regular file")
            if st.st_size > limit:
                message = f"{name} is {st.st_size} bytes, over the limit of {limit} bytes"
                return ErrorRecord(name, "ingest", "TooLarge", message, limit="render.max_source_bytes")
            return f.read(limit + 1)  # one byte over is enough for the size check, should it grow meanwhile


@dataclass
class ClaimSource:
    """An inbox entry the daemon claimed into processing/ (`watcher.layout`)."""

    claimed: Claimed
    layout: Layout

    @property
    def name(self) -> str:
        return self.claimed.name

    @property
    def path(self) -> Path:
        return self.claimed.path

    def load(self) -> bytes | ErrorRecord:
        """Counts the attempt (durably, before the render starts: a crash counts), then reads."""
        attempts = self.layout.begin_attempt(self.claimed)  # may hit a full disk: the daemon holds the claim
        log.info("%s: rendering (attempt %d)", self.name, attempts)
        try:
            return self.layout.read_source(self.claimed)
        except WatcherError as e:  # it changed since the claim checked it
            return ErrorRecord(self.name, "ingest", "Unreadable", str(e))
