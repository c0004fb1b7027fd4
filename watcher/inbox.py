"""Noticing files: a watchdog observer, a start-up scan and a periodic rescan, feeding a queue.

What the observer reports on Linux (inotify), and when a file counts as ready:

    written in place               Created, Opened, Modified..., Closed  -> at Closed
    moved in from another folder   Created only                          -> once stable
    temp name, renamed in place    Moved (dest in the inbox)             -> at once

"Stable" means size, mtime and inode unchanged for `daemon.settle_time`, checked by a
small thread, never on the observer's thread; a Modified event pushes the check back, and
a file seen Opened after its Created waits for its Closed (a writer that pauses longer
than the settle time is not taken half-written), up to `HOLD_LIMIT` in case the Closed
event is lost. The polling observer (`daemon.polling`, for network filesystems) reports
Created, Modified and Moved only, and relies on the stability check.

inotify sends nothing for files already present, and drops events silently when its
queue overflows: `start()` scans once, and a thread rescans every `daemon.rescan_interval`
seconds. Handlers only hand paths to `on_ready` (which must be quick: enqueue) and log any
exception, so nothing can kill the observer. The same path may be reported more than
once; `JobQueue` de-duplicates.

An inotify watch follows the directory, not its name: once the inbox is deleted, or
renamed away and replaced, the observer watches nothing (or the old directory) and never
says so. A guard thread compares the inbox's (st_dev, st_ino) with the watched one every
`GUARD_INTERVAL` seconds, and at once when the observer reports the inbox deleted. While
the inbox is missing it logs one warning and waits; once a directory is there again it
restarts the observer on it, logs that, and rescans.
"""

from __future__ import annotations

import errno
import fnmatch
import logging
import os
import stat
import threading
import time
from collections.abc import Callable
from pathlib import Path

from watchdog.events import (
    DirCreatedEvent,
    DirDeletedEvent,
    DirMovedEvent,
    FileClosedEvent,
    FileClosedNoWriteEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileOpenedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver
from watchdog.observers.inotify_move_event_grouper import InotifyMoveEventGrouper
from watchdog.observers.polling import PollingObserver

from .config import Daemon
from .errors import WatcherError
from .settle import Settler

log = logging.getLogger(__name__)

# watchdog holds every IN_MOVED_FROM for 0.5 s to pair it with its IN_MOVED_TO, and its
# queue is FIFO: each claim (a rename out of the inbox) held back every later event, so a
# file dropped just after a claim waited up to 0.5 s (measured: 370 ms median). The kernel
# reports both halves of a rename together, and we act only on the destination, so a
# short pairing window loses nothing here.
InotifyMoveEventGrouper.delay = 0.02

# Hidden files, editor backups and swap files, partial downloads, emacs autosaves.
IGNORED_PATTERNS = (".*", "*~", "*.tmp", "*.part", "*.swp", "#*#")
GUARD_INTERVAL = 0.5  # seconds between checks that the inbox is still the directory watched (one stat)
_EVENTS = [
    FileOpenedEvent,  # a writer has it open: wait for the close
    FileClosedEvent,
    FileClosedNoWriteEvent,  # only a reader had it open
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    DirCreatedEvent,  # a directory named x.py: reported, so that ingest moves it aside
    DirMovedEvent,
    DirDeletedEvent,  # the inbox itself deleted: the guard re-checks at once
]


def is_candidate(name: str) -> bool:
    """True for a scene file name: `*.py`, not hidden, not an editor or temp name."""
    return (
        name.endswith(".py")
        and "/" not in name
        and not any(fnmatch.fnmatchcase(name, pattern) for pattern in IGNORED_PATTERNS)
    )


class InboxWatcher:
    """Calls `on_ready(path)` for each candidate in the top level of `inbox` once it is complete.

    Args:
        inbox: the folder to watch (not recursively).
        settings: `polling`, `poll_interval`, `settle_time`, `rescan_interval` are used.
        on_ready: called from the observer, settle and rescan threads; must not block.
    """

    def __init__(self, inbox: Path, settings: Daemon, on_ready: Callable[[Path], None]):
        self.inbox = Path(os.path.abspath(inbox))
        self.settings = settings
        self._on_ready = on_ready
        self._settler = Settler(settings.settle_time, self._emit)
        self._observer: BaseObserver | None = None
        self._watched: tuple[int, int] | None = None  # the inbox's (st_dev, st_ino) the observer is on
        self._problem: str | None = None  # why the inbox cannot be watched again, once logged
        self._lock = threading.Lock()  # one observer (re)start at a time: guard, tests, stop()
        self._guard: threading.Thread | None = None
        self._recheck = threading.Event()  # wakes the guard before its interval
        self._rescanner: threading.Thread | None = None
        self._stopping = threading.Event()

    def update(self, settings: Daemon) -> bool:
        """Use new `daemon.*` settings (a reload); True when the observer must be restarted for them
        (`polling`, `poll_interval` and `rescan_interval` are read when it starts)."""
        old, self.settings = self.settings, settings
        self._settler.set_settle(settings.settle_time)
        return (old.polling, old.poll_interval, old.rescan_interval) != (
            settings.polling,
            settings.poll_interval,
            settings.rescan_interval,
        )

    def start(self, *, scan: bool = True) -> None:
        """Start watching, then (when `scan`) report what is already there, then rescan periodically.

        Raises:
            WatcherError: the inbox cannot be watched (missing, or inotify limits reached).
        """
        if self._guard is not None:
            raise RuntimeError("InboxWatcher is already started")
        self._stopping.clear()
        self._recheck.clear()
        with self._lock:
            self._watched = _identity(self.inbox)
            self._observer = self._start_observer()
            self._problem = None
        self._settler.start()
        if scan:
            self.rescan()
        self._guard = threading.Thread(target=self._guard_loop, name="inbox-guard", daemon=True)
        self._guard.start()
        if self.settings.rescan_interval > 0:
            self._rescanner = threading.Thread(target=self._rescan_loop, name="inbox-rescan", daemon=True)
            self._rescanner.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the observer and the helper threads; nothing is reported afterwards."""
        self._stopping.set()
        self._recheck.set()
        if self._guard is not None:
            self._guard.join(timeout)
            self._guard = None
        with self._lock:
            self._stop_observer(timeout)
        self._settler.stop(timeout)
        if self._rescanner is not None:
            self._rescanner.join(timeout)
            self._rescanner = None

    @property
    def alive(self) -> bool:
        """True while the inbox is watched, or missing and waited for (for a health check)."""
        guard, observer = self._guard, self._observer
        if guard is None or not guard.is_alive():
            return False
        return observer is None or observer.is_alive()  # no observer: the guard waits for the inbox

    def check(self) -> None:
        """Watch the inbox again if it was deleted or replaced; the guard thread calls this.

        Logs one warning when the inbox goes missing and one line when it is watched again
        (then rescans it), however often it is called in between.
        """
        with self._lock:
            found = _identity(self.inbox)
            if found is not None and found == self._watched:
                return
            if self._watched is not None:  # the observer is on a deleted or a replaced directory
                self._stop_observer()
                self._watched = None
                if found is None:
                    log.warning("the inbox %s is gone; waiting for it to come back", self.inbox)
            if found is None:
                return
            try:
                self._observer = self._start_observer()
            except WatcherError as e:
                if str(e) != self._problem:
                    log.error("%s; trying again every %g s", e, GUARD_INTERVAL)
                    self._problem = str(e)
                return
            self._watched, self._problem = found, None
            log.info("watching the inbox %s again", self.inbox)
        self.rescan()

    def _start_observer(self) -> BaseObserver:
        if self.settings.polling:
            observer: BaseObserver = PollingObserver(timeout=self.settings.poll_interval)
        else:
            observer = Observer()
        observer.schedule(_Handler(self), str(self.inbox), recursive=False, event_filter=_EVENTS)
        try:
            observer.start()
        except OSError as e:
            limits = e.errno in (errno.ENOSPC, errno.EMFILE)  # inotify watch or instance limit
            hint = "; raise the inotify limits or set daemon.polling: true" if limits else ""
            raise WatcherError(f"cannot watch {self.inbox}: {e.strerror or e}{hint}")
        return observer

    def _stop_observer(self, timeout: float = 5.0) -> None:
        if self._observer is not None:
            self._observer.stop()
            self._observer.join(timeout)
            self._observer = None

    def _guard_loop(self) -> None:
        while True:
            self._recheck.wait(GUARD_INTERVAL)
            self._recheck.clear()
            if self._stopping.is_set():
                return
            try:
                self.check()
            except Exception:
                log.exception("inbox check failed")

    def __enter__(self) -> InboxWatcher:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def scan(self) -> list[Path]:
        """Candidates in the inbox now, oldest mtime first (symlinks and FIFOs too: never followed)."""
        return [path for path, _ in self._entries()]

    def rescan(self) -> int:
        """Report every candidate: old ones at once, recent or still-settling ones after the check.

        Returns:
            how many candidates were seen.
        """
        young = time.time_ns() - int(self.settings.settle_time * 1e9)
        entries = self._entries()
        for path, mtime_ns in entries:
            if mtime_ns > young or self._settler.pending(path):
                self._settler.add(path)
            else:
                self._emit(path)
        return len(entries)

    def _entries(self) -> list[tuple[Path, int]]:
        found = []
        try:
            with os.scandir(self.inbox) as it:
                for entry in it:
                    if is_candidate(entry.name):
                        try:
                            st = entry.stat(follow_symlinks=False)
                        except FileNotFoundError:
                            continue
                        found.append((st.st_mtime_ns, entry.name, Path(entry.path)))
        except FileNotFoundError:
            pass  # the guard warns about a missing inbox, once
        except OSError as e:
            log.error("cannot scan the inbox %s: %s", self.inbox, e.strerror)
        found.sort()
        return [(path, mtime) for mtime, _, path in found]

    def _rescan_loop(self) -> None:
        while not self._stopping.wait(self.settings.rescan_interval):
            try:
                seen = self.rescan()
                log.debug("inbox rescan: %d candidate(s)", seen)
            except Exception:
                log.exception("inbox rescan failed")

    def _on_event(self, event: FileSystemEvent) -> None:
        src = Path(os.fsdecode(event.src_path))
        kind = event.event_type
        if kind == "moved":
            self._settler.discard(src)
            self._ready(Path(os.fsdecode(event.dest_path)))
        elif kind == "closed":
            self._ready(src)
        elif kind == "created":
            if self._wanted(src):
                self._settler.add(src)
        elif kind == "modified":
            self._settler.touch(src)
        elif kind == "opened":
            self._settler.hold(src)
        elif kind == "closed_no_write":
            self._settler.release(src)
        elif kind == "deleted":
            if src == self.inbox:
                self._recheck.set()
            self._settler.discard(src)

    def _wanted(self, path: Path) -> bool:
        return path.parent == self.inbox and is_candidate(path.name)

    def _ready(self, path: Path) -> None:
        if self._wanted(path):
            self._settler.discard(path)
            self._emit(path)

    def _emit(self, path: Path) -> None:
        if self._stopping.is_set():
            return
        try:
            self._on_ready(path)
        except Exception:
            log.exception("%s: on_ready failed", path.name)


class _Handler(FileSystemEventHandler):
    """Hands every event to the watcher; an exception is logged, never raised into watchdog."""

    def __init__(self, watcher: InboxWatcher):
        self._watcher = watcher

    def dispatch(self, event: FileSystemEvent) -> None:
        try:
            self._watcher._on_event(event)
        except Exception:
            log.exception("inbox: error handling %s", event)


def _identity(folder: Path) -> tuple[int, int] | None:
    """(st_dev, st_ino) of a directory; None if there is none at that path."""
    try:
        st = os.stat(folder)
    except OSError:
        return None
    return (st.st_dev, st.st_ino) if stat.S_ISDIR(st.st_mode) else None
