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
import json
import logging
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

from . import pool, sandbox, sdnotify, texseed
from .config import Settings, load_config
from .errors import ErrorRecord, WatcherError
from .fix import stage_fix
from .hooks import HookRunner
from .inbox import InboxWatcher, JobQueue
from .layout import Claimed, Layout, Rejected
from .render import prewarm, render_job

log = logging.getLogger(__name__)

STATUS_NAME = ".watcher.status.json"  # in processing/, read by `watcher status`
RETRY_FIRST = 1.0  # seconds before a result that could not be filed is tried again; doubles
RETRY_MAX = 60.0
HOOK_WAIT = 10.0  # seconds queued hooks may still run at shutdown
STOP_WAIT = 2.0  # seconds cancelled renders get to stop and be put back before the pool is shut


class Daemon:
    def __init__(self, settings: Settings, overrides: list[str] | None = None):
        self.settings = settings
        self.overrides = overrides or []
        self.layout = Layout.from_settings(settings)
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
            self._recovered.extend(self.layout.recover())
            if self._recovered:
                log.info(
                    "recovered %d interrupted job(s) from %s", len(self._recovered), self.layout.folders.processing
                )
            prewarm(self.settings)  # warm render workers start importing Manim now, not at the first job
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
                self._reload()
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
        # texseed.stop() cancels the glyph build and waits for it: in a thread, so that the wait is ours to bound.
        glyphs = threading.Thread(target=texseed.stop, name="texseed-stop", daemon=True)
        glyphs.start()
        left = _join([*self._workers, glyphs], STOP_WAIT)
        if left:
            # A render (or the glyph build) waiting for a warm worker that is still importing
            # Manim sees no cancel until the import ends, which on a loaded machine can take
            # up to pool.READY_TIMEOUT. Shutting the pool wakes it (and starts no new worker).
            pool.get_pool().shutdown()
            left = _join(left, STOP_WAIT)
        if left:
            names = ", ".join(t.name for t in left)
            log.warning("exiting with %s still running; the next start settles what is in processing/", names)
        pool.shutdown()
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

    def _reload(self) -> None:
        sdnotify.reloading()
        try:
            new = load_config(self.settings.path, self.overrides)
            if new.sandbox != self.settings.sandbox:
                sandbox.prepare(new)  # a strict sandbox this host cannot give is refused too
        except WatcherError as e:
            log.error("reload refused, keeping the running config: %s", e)
            sdnotify.ready()
            return
        if new.folders != self.settings.folders or new.worker_count != self.settings.worker_count:
            log.warning("folders and workers.count change only on restart; the rest of the new config applies")
            new = dataclasses.replace(new, folders=self.settings.folders, workers=self.settings.workers)
        self.settings = new
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
        path = self.settings.folders.processing / STATUS_NAME
        tmp = path.with_name(f".{STATUS_NAME}.tmp")
        with contextlib.suppress(OSError):
            tmp.write_text(json.dumps(status), encoding="utf-8")
            os.replace(tmp, path)
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
            attempts = self.layout.begin_attempt(claimed)  # may hit a full disk: handled below
            source = self.layout.read_source(claimed)
            fixed = stage_fix(source, claimed.name, claimed.path.parent) if settings.validation.autofix else None
            if fixed is not None:
                source = fixed.source
                log.info("%s: fixed before rendering: %s", claimed.name, "; ".join(fixed.changes))
            log.info("%s: rendering (attempt %d)", claimed.name, attempts)
            with render_job(source, claimed.name, settings, cancel=self._cancel) as result:
                if result.cancelled:
                    back = self.layout.requeue(claimed)
                    log.info("%s: cancelled by shutdown; put back as %s", claimed.name, back)
                    return
                videos, suffixes = result.videos, result.suffixes
                if fixed is not None:  # x.fixed.py and x.fix.diff go beside the video, or the record
                    videos = [*videos, *(path for path, _ in fixed.outputs)]
                    suffixes = [*suffixes, *(suffix for _, suffix in fixed.outputs)]
                self._file(claimed, result.ok, videos, result.record, started, suffixes)
            with self._lock:
                self._backoff.pop(claimed.name, None)
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

    def _file(
        self,
        claimed: Claimed,
        ok: bool,
        videos: list[Path],
        record: ErrorRecord | None,
        started: float,
        suffixes: list[str] | None = None,
    ) -> None:
        """Publish one outcome and log the job's one-line result."""
        if ok:
            try:
                paths = self.layout.publish_done(claimed, videos, suffixes or None)
            except WatcherError as e:  # a video the scene swapped for a link after verification
                record = ErrorRecord(claimed.name, "render", "InvalidVideo", str(e))
            else:
                self._count("done")
                log.info("%s: done in %.2f s -> %s", claimed.name, time.monotonic() - started, paths[0])
                document = {"source": claimed.name, "outputs": [str(p) for p in paths[:-1]], "filed": str(paths[-1])}
                self.hooks.submit("done", claimed.name, paths, document)
                return
        assert record is not None
        # A file of several scenes that failed part way: those that rendered go beside the record.
        kept = list(zip(videos, suffixes, strict=True)) if suffixes and not ok else []
        paths = self.layout.publish_failed(claimed, record, kept)
        self._count("failed")
        elapsed = time.monotonic() - started
        log.warning("%s: failed in %.2f s (%s) -> %s", claimed.name, elapsed, _brief(record), paths[0])
        self.hooks.submit("failed", claimed.name, paths, record.to_dict())


def _join(threads: list[threading.Thread], timeout: float) -> list[threading.Thread]:
    """Join each thread until one deadline; returns those still alive."""
    deadline = time.monotonic() + timeout
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    return [t for t in threads if t.is_alive()]


def _brief(record: ErrorRecord) -> str:
    where = f" at line {record.line}" if record.line else ""
    return f"{record.phase}: {record.type}{where}: {record.message[:160]}"
