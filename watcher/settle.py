"""When an inbox file is complete: its size, mtime and inode unchanged for `daemon.settle_time`.

A file seen opened by a writer waits for its close (`hold`/`release`), for at most
`HOLD_LIMIT` seconds in case the close event is lost, so a slow upload is not claimed
half-written. The checks run on a small thread of their own, never the observer's.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)

HOLD_LIMIT = 300.0  # seconds a file held open by a writer may delay its stability check


class Settler:
    """Reports a path once its size, mtime and inode stay unchanged for `settle_time` seconds."""

    def __init__(self, settle_time: float, emit: Callable[[Path], None]):
        self._settle = max(settle_time, 0.05)  # also the re-check interval: never a busy loop
        self._emit = emit
        self._pending: dict[Path, tuple[tuple[int, ...], float]] = {}  # path -> (signature, due)
        self._held: dict[Path, float] = {}  # pending paths a writer has open -> since when
        self._cond = threading.Condition()
        self._stopped = False
        self._thread: threading.Thread | None = None

    def set_settle(self, settle_time: float) -> None:
        with self._cond:
            self._settle = max(settle_time, 0.05)
            self._cond.notify_all()

    def start(self) -> None:
        with self._cond:
            self._stopped = False
        self._thread = threading.Thread(target=self._run, name="inbox-settle", daemon=True)
        self._thread.start()

    def stop(self, timeout: float) -> None:
        with self._cond:
            self._stopped = True
            self._pending.clear()
            self._held.clear()
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def add(self, path: Path, signature: tuple[int, ...] | None = None) -> None:
        signature = signature or _signature(path)
        if signature is None:
            return
        with self._cond:
            self._pending[path] = (signature, time.monotonic() + self._settle)
            self._cond.notify()

    def touch(self, path: Path) -> None:
        """It changed: check again a full settle time from now."""
        with self._cond:
            if path in self._pending:
                self._pending[path] = (self._pending[path][0], time.monotonic() + self._settle)

    def hold(self, path: Path) -> None:
        """Someone opened it: expect a Closed event rather than trust stability."""
        with self._cond:
            if path in self._pending:
                self._held.setdefault(path, time.monotonic())

    def release(self, path: Path) -> None:
        """It was closed without writing: back to the stability check."""
        with self._cond:
            self._held.pop(path, None)

    def discard(self, path: Path) -> None:
        with self._cond:
            self._pending.pop(path, None)
            self._held.pop(path, None)

    def pending(self, path: Path) -> bool:
        with self._cond:
            return path in self._pending

    def _run(self) -> None:
        while True:
            with self._cond:
                while True:
                    if self._stopped:
                        return
                    now = time.monotonic()
                    due = [p for p, (_, when) in self._pending.items() if when <= now]
                    if due:
                        break
                    wake = min((when for _, when in self._pending.values()), default=None)
                    self._cond.wait(None if wake is None else wake - now)
                batch = []
                for path in due:
                    signature, _ = self._pending.pop(path)
                    since = self._held.get(path)
                    if since is not None and now - since < HOLD_LIMIT:
                        self._pending[path] = (signature, now + self._settle)  # still open: wait
                    else:
                        self._held.pop(path, None)
                        batch.append((path, signature))
            for path, before in batch:
                try:
                    now_sig = _signature(path)
                    if now_sig == before:
                        self._emit(path)
                    elif now_sig is not None:
                        self.add(path, now_sig)  # still changing: wait again
                except Exception:
                    log.exception("%s: stability check failed", path.name)


def _signature(path: Path) -> tuple[int, ...] | None:
    """What must not change while a file settles; None if it is gone. Never follows a symlink."""
    try:
        st = os.lstat(path)
    except OSError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns, st.st_mode)
