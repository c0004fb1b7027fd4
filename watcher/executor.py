"""The executor seam: where a validated job spec is run, and its outputs come back.

An executor takes a `JobSpec` (plain data: source bytes, file name, effective settings,
selected scenes) and gives back a `RenderResult` whose outputs are files out of the job's
reach, not yet verified: verification and publishing stay with the caller (the
pipeline), so an executor on another machine needs no more trust than this one.

`LocalExecutor` runs jobs in child processes here (`watcher.render`). It owns what makes
local renders fast, the warm workers (`watcher.pool`) and the shared number glyphs
(`watcher.texseed`), and has one shutdown path, `close`.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Protocol

from . import apisnapshot, jobfs, pool, render, texseed
from .config import Settings
from .errors import ConfigError
from .job import JobSpec, RenderResult
from .supervise import FreshLauncher, Launcher
from .texcache import TexCache
from .texservice import Typesetter

log = logging.getLogger(__name__)

CLOSE_WAIT = 2.0  # seconds `close` waits for each step (the glyph build to stop, the warm workers)


class Executor(Protocol):
    """Runs job specs. `start` before the first job (optional: it only warms up), `close` after the last."""

    def start(self, settings: Settings, workers: int) -> None:
        """Get ready for `workers` jobs at once, in the background; returns at once."""
        ...

    def run(self, spec: JobSpec, cancel: threading.Event | None = None) -> AbstractContextManager[RenderResult]:
        """Run one job; the result's files exist until the context exits. Setting `cancel`
        stops it (the result then has `cancelled=True`)."""
        ...

    def close(self, *, cancel: bool = False, timeout: float = CLOSE_WAIT) -> bool:
        """Stop what this executor runs in the background (with `cancel`, without waiting for
        it to finish); returns False when something was still running after `timeout`."""
        ...


class LocalExecutor:
    """Jobs in isolated child processes on this machine, forked by warm workers when it can."""

    def __init__(self) -> None:
        self.glyphs = texseed.Glyphs()
        self._typesetters: dict[tuple[Path, int], Typesetter] = {}
        self._lock = threading.Lock()

    def typesetter(self, settings: Settings) -> Typesetter | None:
        """The typesetting service's back end for `settings` (one per cache folder), or None (cache.latex off)."""
        if not settings.cache.latex:
            return None
        key = (settings.folders.cache_dir, settings.cache.max_mb)
        with self._lock:
            if key not in self._typesetters:
                self._typesetters[key] = Typesetter(TexCache(*key), settings)
            typesetter = self._typesetters[key]
            typesetter.settings = settings  # the work folder and render user of the latest job
        return typesetter

    def start(self, settings: Settings, workers: int) -> None:
        """Warm workers for `workers` jobs, the shared number glyphs and the Manim API snapshot.

        Optional: jobs start warm workers on demand, but then the first ones wait for
        Manim's import; without it no job gets the shared glyphs.
        """
        if settings.render.warm_workers:
            pool.get_pool().prewarm(workers)
        # Typeset in this process when the service is on: no job, no warm worker, no waiting on either.
        self.glyphs.start(self.run, settings, self.typesetter(settings))
        if settings.validation.api_check != "off":
            apisnapshot.get(settings)  # starts making the snapshot in the background if it is missing

    @contextlib.contextmanager
    def run(self, spec: JobSpec, cancel: threading.Event | None = None) -> Iterator[RenderResult]:
        job = jobfs.create(spec.settings.folders.work, "job", Path(spec.filename).stem)
        try:
            launcher = functools.partial(_launcher, spec.settings, cancel)
            typesetter = self.typesetter(spec.settings)
            yield render.run(spec, job, launcher, self.glyphs.current(), cancel, typesetter)
        finally:
            jobfs.discard(job.root)

    def close(self, *, cancel: bool = False, timeout: float = CLOSE_WAIT) -> bool:
        """Stop the glyph build and a LaTeX format build (cancelled, or awaited up to `timeout` each)
        and the warm workers.

        A job still waiting for a warm worker's import is woken (it renders in a fresh
        process or sees its cancel). The executor can start again afterwards.
        """
        stopped = self.glyphs.stop(timeout) if cancel else self.glyphs.wait(timeout)
        pool.shutdown()  # also wakes the glyph build if it waits on a warm worker
        with self._lock:
            typesetters = list(self._typesetters.values())
        built = all([t.close(cancel, timeout) for t in typesetters])  # a LaTeX format being built (texformat)
        return (stopped or self.glyphs.wait(timeout)) and built


def _launcher(settings: Settings, cancel: threading.Event | None, stack: contextlib.ExitStack) -> Launcher:
    if settings.render.warm_workers:
        try:
            return stack.enter_context(pool.get_pool().checkout(cancel))
        except pool.Cancelled:
            raise
        except pool.PoolError as e:
            if cancel is not None and cancel.is_set():  # the pool was shut under a job being cancelled
                raise pool.Cancelled(str(e)) from None
            log.warning("%s; rendering in a fresh process instead", e)
    return FreshLauncher()


_local: LocalExecutor | None = None
_remote: Executor | None = None
_local_lock = threading.Lock()


def for_settings(settings: Settings) -> Executor:
    """The executor `settings` ask for (`executor: local | celery`), one per process.

    Raises:
        ConfigError: executor: celery without the celery extra installed.
    """
    if settings.executor == "local":
        return local()
    global _remote
    try:
        from .celeryexec import CeleryExecutor
    except ImportError as e:
        raise ConfigError(f"executor: celery needs the celery extra (pip install 'watcher[celery]'): {e}") from None
    with _local_lock:
        if _remote is None:
            _remote = CeleryExecutor()
        return _remote


def local() -> LocalExecutor:
    """This process's local executor (the warm workers are per process)."""
    global _local
    with _local_lock:
        if _local is None:
            _local = LocalExecutor()
        return _local
