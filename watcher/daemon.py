"""The service: watch the inbox, render each scene on a worker thread, file the result.

Threads: the watchdog observer (plus its settle and rescan helpers) only enqueue; N
worker threads claim, render (each render is a child process) and publish; the main
thread handles signals, sd_notify and the status file. Signal handlers only set flags.

A result that cannot be filed (disk full, done/ or failed/ deleted or unwritable) stays
in processing/ and the main thread tries again with back-off (`RETRY_FIRST` doubling up
to `RETRY_MAX` seconds): a claim whose publish plan is written is rolled forward (its
outputs are staged, nothing is rendered again), one without a plan goes back to the
inbox. One log line when that starts and when the error changes, not one per try.

Shutdown, in order: stop intake (observer off, queue closed), let running renders finish
for `daemon.shutdown_grace` seconds (a second SIGTERM cuts this short), cancel what is
still running and put those sources back in the inbox, release the lock, exit 0. Every
wait is bounded: a thread still waiting for a warm worker to import Manim is woken by
shutting the pool, and what is still running after `STOP_WAIT` is logged and left
(processing/ is settled at the next start).
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import logging
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

from . import executor as executors
from . import sandbox, sdnotify
from .config import Settings, load_config
from .errors import ErrorRecord, WatcherError
from .folders import FOLDER_KEYS
from .hooks import HookRunner
from .inbox import InboxWatcher
from .jobqueue import JobQueue
from .layout import Claimed, Layout, Rejected
from .pipeline import JobOutcome, process
from .recovery import recover
from .sinks import SpoolSink
from .sources import ClaimSource
from .status import write_status

log = logging.getLogger(__name__)

RETRY_FIRST = 1.0  # seconds before a result that could not be filed is tried again; doubles
RETRY_MAX = 60.0
HOOK_WAIT = 10.0  # seconds queued hooks may still run at shutdown
# Read once at start: a reload that changes them logs their names and keeps the running values.
RESTART_KEYS = (*(f"folders.{key}" for key in FOLDER_KEYS), "workers.count", "logging.format", "executor")
STOP_WAIT = 2.0  # seconds cancelled renders get to stop and be put back before the pool is shut


class Daemon:
    def __init__(
        self, settings: Settings, overrides: list[str] | None = None, executor: executors.Executor | None = None
    ):
        self.settings = settings
        self.overrides = overrides or []
        self.executor = executor or executors.for_settings(settings)
        self.layout = Layout.from_settings(settings)
        self.sink = SpoolSink(self.layout)
        self.queue: JobQueue[Path] = JobQueue(settings.daemon.queue_size)
        self._recovered: collections.deque[Claimed] = collections.deque()
        self._cancel = threading.Event()  # set: kill running renders and put them back
        self._wake = threading.Event()
        self._stop_requests = 0
        self._reload_requested = False
        self._running: dict[Path, tuple[str, float]] = {}  # claim -> (name, start), for status
        self._counts = collections.Counter[str]()
        self._lock = threading.Lock()
        self._workers: list[threading.Thread] = []
        self._held: dict[Path, tuple[Claimed, float]] = {}  # claims not filed yet -> when to try again
        self._backoff: dict[str, tuple[float, str]] = {}  # name -> (last delay, last error) until filed
        self._started = time.time()
        self.hooks = HookRunner(settings.hooks, settings.path.parent if settings.path else None)

    # -- main thread ----------------------------------------------------------------

    def run(self) -> int:
        """Run until SIGTERM/SIGINT; returns the exit status.

        Raises:
            WatcherError: the folders are unusable or another daemon holds them (nothing was touched).
        """
        inbox = self.settings.folders.inbox
        if not inbox.is_dir():
            where = f" in {self.settings.path}" if self.settings.path else ""
            raise WatcherError(f"folders.inbox: {inbox} is not a directory (create it, or fix folders.inbox{where})")
        self.layout.ensure()  # the other folders are ours to create
        self.layout.check()
        sandbox.prepare(self.settings)  # logs the isolation layers; strict mode refuses a weak host
        with self.layout.lock():
            self._install_signal_handlers()
            self._recovered.extend(recover(self.layout))
            if self._recovered:
                log.info(
                    "recovered %d interrupted job(s) from %s", len(self._recovered), self.layout.folders.processing
                )
            # Warm render workers start importing Manim now, not at the first job.
            self.executor.start(self.settings, self.settings.worker_count)
            for i in range(self.settings.worker_count):
                t = threading.Thread(target=self._worker, name=f"worker-{i + 1}", daemon=True)
                t.start()
                self._workers.append(t)
            watcher = InboxWatcher(self.settings.folders.inbox, self.settings.daemon, self._enqueue)
            watcher.start()
            log.info(
                "watching %s with %d worker(s) (%s observer)",
                self.settings.folders.inbox,
                len(self._workers),
                "polling" if self.settings.daemon.polling else "inotify",
            )
            self._publish_status()
            sdnotify.ready()
            try:
                self._main_loop(watcher)
            finally:
                self._shutdown(watcher)
        return 0

    def _main_loop(self, watcher: InboxWatcher) -> None:
        ping = sdnotify.watchdog_interval()
        tick = min(ping or 2.0, 2.0)
        wait = tick
        while not self._stop_requests:
            self._wake.wait(wait)
            self._wake.clear()
            if self._reload_requested:
                self._reload_requested = False
                self._reload(watcher)
            if not watcher.alive and not self._stop_requests:
                log.error("the inbox observer stopped; restarting it")
                watcher.stop()
                try:
                    watcher.start()
                except WatcherError as e:
                    log.error("%s; trying again", e)
            if ping and watcher.alive:  # also while a missing inbox is waited for: that is no hang
                sdnotify.watchdog_ping()
            wait = min(tick, self._retry_held())
            self._publish_status()

    def _shutdown(self, watcher: InboxWatcher) -> None:
        sdnotify.stopping()
        log.info(
            "stopping: no new files; waiting up to %.0f s for %d running render(s)",
            self.settings.daemon.shutdown_grace,
            len(self._running),
        )
        watcher.stop()
        self.queue.close()
        self._recovered.clear()  # not started: they stay in processing/ for the next start
        deadline = time.monotonic() + self.settings.daemon.shutdown_grace
        for t in self._workers:
            while t.is_alive() and time.monotonic() < deadline and self._stop_requests < 2:
                t.join(0.2)
        if any(t.is_alive() for t in self._workers):
            if self._running:  # (a worker between jobs only needs the cancel to stop waiting)
                log.warning("cancelling %d running render(s); their sources go back to the inbox", len(self._running))
            self._cancel.set()
        left = _join(self._workers, STOP_WAIT)
        # The executor's one shutdown path: the glyph build cancelled, the warm workers stopped
        # (which also wakes a render still waiting for one to import Manim), each wait bounded.
        stopped = self.executor.close(cancel=True, timeout=STOP_WAIT)
        left = _join(left, STOP_WAIT)
        if left or not stopped:
            names = ", ".join([*(t.name for t in left), *([] if stopped else ["the glyph build"])])
            log.warning("exiting with %s still running; the next start settles what is in processing/", names)
        self.hooks.close(min(self.settings.hooks.timeout, HOOK_WAIT))
        with self._lock:
            held = len(self._held)
        if held:
            log.warning("%d result(s) could not be filed; they stay in processing/ for the next start", held)
        self._publish_status(stopped=True)
        log.info("stopped (%s)", self._count_text())

    def _install_signal_handlers(self) -> None:
        def stop(signum: int, frame: Any) -> None:
            self._stop_requests += 1
            if self._stop_requests >= 2:
                self._cancel.set()  # the second SIGTERM forces
            self._wake.set()

        def reload(signum: int, frame: Any) -> None:
            self._reload_requested = True
            self._wake.set()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGHUP, reload)

    def _reload(self, watcher: InboxWatcher) -> None:
        """Apply a changed config file. Every key applies to the next job, except RESTART_KEYS
        (the log names those that changed, and keeps their running values)."""
        sdnotify.reloading()
        try:
            new = load_config(self.settings.path, self.overrides)
            if new.sandbox != self.settings.sandbox:
                sandbox.prepare(new)  # a strict sandbox this host cannot give is refused too
        except WatcherError as e:
            log.error("reload refused, keeping the running config: %s", e)
            sdnotify.ready()
            return
        kept = [key for key in RESTART_KEYS if _key(new, key) != _key(self.settings, key)]
        if kept:
            log.warning("%s change only on restart: kept the running values; the rest applies", ", ".join(kept))
            new = dataclasses.replace(
                new,
                executor=self.settings.executor,
                folders=self.settings.folders,
                workers=self.settings.workers,
                logging=dataclasses.replace(new.logging, format=self.settings.logging.format),
            )
        self.settings = new
        self.layout.max_source_bytes = new.render.max_source_bytes
        self.layout.max_attempts = new.daemon.max_attempts
        self.queue.maxsize = new.daemon.queue_size
        if watcher.update(new.daemon):  # polling, poll_interval, rescan_interval: a new observer
            watcher.stop()
            try:
                watcher.start()
            except WatcherError as e:  # the main loop starts it again
                log.error("%s; trying again", e)
        self.hooks.hooks = new.hooks  # the next hook runs with the new commands
        logging.getLogger("watcher").setLevel(new.logging.level)
        log.info("config reloaded from %s", new.path)
        sdnotify.ready()

    def _publish_status(self, stopped: bool = False) -> None:
        now = time.monotonic()
        with self._lock:
            running = {name: round(now - t, 1) for name, t in self._running.values()}
            counts = dict(self._counts)
        status = {
            "pid": os.getpid(),
            "started": self._started,
            "updated": time.time(),
            "state": "stopped" if stopped else "running",
            "queued": len(self.queue) + len(self._recovered),
            "running": running,
            "counts": counts,
        }
        write_status(self.settings.folders.processing, status)
        sdnotify.status(f"{self._count_text()}; rendering {len(running)}, queued {status['queued']}")

    def _count(self, outcome: str) -> None:
        with self._lock:
            self._counts[outcome] += 1

    def _count_text(self) -> str:
        return f"done {self._counts['done']}, failed {self._counts['failed']}"

    # -- observer threads -------------------------------------------------------------

    def _enqueue(self, path: Path) -> None:
        self.queue.put(path)

    # -- worker threads ---------------------------------------------------------------

    def _worker(self) -> None:
        while True:
            item = self._next_job()
            if item is None:
                return
            try:
                claimed = item if isinstance(item, Claimed) else self._claim(item)
                if claimed is not None:
                    self._process(claimed)
            except Exception:  # the daemon never dies because of one job
                log.exception("%s: unexpected error; the file stays where it is", getattr(item, "name", item))

    def _next_job(self) -> Claimed | Path | None:
        while not self._cancel.is_set():
            with contextlib.suppress(IndexError):
                return self._recovered.popleft()
            path = self.queue.get(timeout=1.0)
            if path is not None:
                return path
            if self._stop_requests:
                return None
        return None

    def _claim(self, path: Path) -> Claimed | None:
        try:
            got = self.layout.ingest(path)
        finally:
            self.queue.done(path)
        if isinstance(got, Rejected):
            self._count("failed")
            log.warning("%s: rejected (%s) -> %s", got.name, got.record.message, got.paths[-1])
            return None
        return got

    def _process(self, claimed: Claimed) -> None:
        settings = self.settings  # one job sees one config, even across a reload
        started = time.monotonic()
        with self._lock:
            self._running[claimed.path] = (claimed.name, started)
        try:
            job = ClaimSource(claimed, self.layout)
            outcome = process(job, self.sink, settings, executor=self.executor, cancel=self._cancel)
            with self._lock:
                self._backoff.pop(claimed.name, None)
            self._report(claimed, outcome)
        except OSError as e:
            # Disk full, or a folder gone or unwritable: keep the input, and the staged
            # result if the publish got that far, for _retry_held.
            self._hold(claimed, e)
        finally:
            with self._lock:
                self._running.pop(claimed.path, None)

    def _hold(self, claimed: Claimed, error: OSError) -> None:
        """Keep a claim whose result could not be filed; `_retry_held` tries again after a back-off."""
        reason = error.strerror or str(error)  # the state; the path in `error` changes with each file
        with self._lock:
            delay, last = self._backoff.get(claimed.name, (0.0, None))
            delay = min(max(2 * delay, RETRY_FIRST), RETRY_MAX)
            self._backoff[claimed.name] = (delay, reason)
            self._held[claimed.path] = (claimed, time.monotonic() + delay)
        self._wake.set()  # the main loop sleeps until the first retry is due, not a whole tick
        if reason != last:
            log.error(
                "%s: cannot file the result (%s); keeping it in %s and trying again",
                claimed.name,
                error,
                claimed.path.parent,
            )
        else:
            log.debug("%s: still cannot file the result (%s); next try in %.0f s", claimed.name, reason, delay)

    def _retry_held(self) -> float:
        """Try to file the held claims that are due (main thread); returns seconds until the next is."""
        now = time.monotonic()
        with self._lock:
            due = [claimed for claimed, when in self._held.values() if when <= now]
            for claimed in due:
                del self._held[claimed.path]
        folders = self.layout.folders
        for claimed in due:
            for folder in (folders.done, folders.failed):
                with contextlib.suppress(OSError):
                    folder.mkdir(exist_ok=True)  # ours, made at start: one deleted since is made again
            try:
                # A claim with a written plan is published where the plan says (its outputs
                # are staged: nothing is rendered again); one without goes back to the inbox.
                path = self.layout.requeue(claimed)
            except OSError as e:
                self._hold(claimed, e)
                continue
            if path.parent == folders.inbox:  # rendered again when claimed; a back-off continues
                log.info("%s: put back in the inbox as %s", claimed.name, path.name)
                continue
            self._count("done" if path.parent == folders.done else "failed")
            with self._lock:
                self._backoff.pop(claimed.name, None)
            log.info("%s: filed after all -> %s", claimed.name, path)
        with self._lock:
            due_next = min((when for _, when in self._held.values()), default=now + RETRY_MAX)
        return max(0.0, due_next - time.monotonic())

    def _report(self, claimed: Claimed, outcome: JobOutcome) -> None:
        """Count, log and hand to the hooks one filed job."""
        if outcome.status == "cancelled":
            return
        paths = outcome.outputs
        if outcome.status == "rendered":
            self._count("done")
            log.info("%s: done in %.2f s -> %s", claimed.name, outcome.seconds, paths[0])
            document = {"source": claimed.name, "outputs": [str(p) for p in paths[:-2]], "filed": str(paths[-1])}
            self.hooks.submit("done", claimed.name, paths, document)
            return
        record = outcome.record
        assert record is not None
        self._count("failed")
        log.warning("%s: failed in %.2f s (%s) -> %s", claimed.name, outcome.seconds, _brief(record), paths[0])
        self.hooks.submit("failed", claimed.name, paths, record.to_dict())


def _key(settings: Settings, dotted: str) -> Any:
    value: Any = settings
    for name in dotted.split("."):
        value = getattr(value, name)
    return value


def _join(threads: list[threading.Thread], timeout: float) -> list[threading.Thread]:
    """Join each thread until one deadline; returns those still alive."""
    deadline = time.monotonic() + timeout
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    return [t for t in threads if t.is_alive()]


def _brief(record: ErrorRecord) -> str:
    where = f" at line {record.line}" if record.line else ""
    return f"{record.phase}: {record.type}{where}: {record.message[:160]}"
