"""The front of distributed mode: jobs submitted to Celery workers, results taken back.

`CeleryExecutor` is an `Executor` like the local one: the daemon, `watcher render` and
`watcher rerender` claim, verify and file exactly as in local mode; only the render runs
elsewhere (`watcher.celeryworker`).

A job's task id is its content key (source + effective settings + Manim version), so a
submission can be repeated harmlessly. A marker in Redis, `watcher:task:<id>`, says a
task is in flight: set (only if absent) before the task is sent, removed once its result
was taken. A front that finds the marker attaches to the task instead of sending another:
two jobs with the same content in one batch share one render, and a front restarted with
jobs in flight picks up their results. The marker and a task's result live in the same
Redis, so they are lost or kept together (keep Redis on append-only persistence).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import logging
import os
import re
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from celery import Celery

from . import fsops, jobfs
from .celeryconf import RESULT_TTL, make_app
from .config import Settings
from .errors import ErrorRecord
from .job import JobSpec, RenderResult, complete, content_key
from .payload import TASK_NAME, BadResult, decode_result, encode_task

log = logging.getLogger(__name__)

MARKER = "watcher:task:"
# Seconds between looks at a task's state: the first, and the most (doubling). A worker
# process waits for the front to take a result and submit the next job, so it stays short.
POLL = (0.02, 0.2)
RETRY = (0.5, 10.0)  # seconds between attempts when Redis cannot be reached
_OUTPUT_NAME = re.compile(r"[0-9a-f]{32}/out(\.[A-Za-z_][A-Za-z0-9_]*)?\.(mp4|png)")  # <delivery>/out<suffix>


class CeleryExecutor:
    """Renders on Celery workers; results verified and filed here, as in local mode."""

    def __init__(self) -> None:
        self._apps: dict[tuple[str, str, float], Celery] = {}
        self._users: dict[str, int] = {}  # task id -> jobs of this process waiting on it
        self._lock = threading.Lock()

    def app(self, settings: Settings) -> Celery:
        key = (settings.celery.broker, settings.celery.queue, settings.render.timeout + settings.render.grace)
        with self._lock:
            if key not in self._apps:
                self._apps[key] = make_app(settings)
            return self._apps[key]

    def start(self, settings: Settings, workers: int) -> None:
        """Check the broker answers (a warning if not: jobs wait for it)."""
        try:
            self.app(settings).backend.client.ping()
        except Exception as e:  # noqa: BLE001 - any failure to reach Redis
            log.warning("the Celery broker cannot be reached yet (%s); jobs wait for it", _redacted(e))
        else:
            log.info("rendering on Celery workers, queue %r", settings.celery.queue)

    @contextlib.contextmanager
    def run(self, spec: JobSpec, cancel: threading.Event | None = None) -> Iterator[RenderResult]:
        settings = spec.settings
        started = time.monotonic()
        task_id = content_key(spec.source, settings)
        app = self.app(settings)
        with self._lock:  # jobs of this process sharing the task: the last one done drops its result
            self._users[task_id] = self._users.get(task_id, 0) + 1
        taken = False  # set once the job's `with` block has filed the result without raising
        try:
            meta = None
            while meta is None:
                if not self._submit(app, task_id, spec, cancel):
                    break
                meta = self._wait(app, task_id, cancel)
                if meta is None and not (cancel is not None and cancel.is_set()):
                    log.info("%s: task %s is gone; submitting it again", spec.filename, task_id)
                    continue
                break
            if meta is None:  # cancelled: the task stays queued or running, a later run attaches to it
                yield RenderResult(spec.filename, ok=False, cancelled=True)
                return
            job = jobfs.create(settings.folders.work, "remote", Path(spec.filename).stem)
            try:
                yield self._take(meta, task_id, spec, settings, job.results, started)
                taken = True
            finally:
                jobfs.discard(job.root)
        finally:
            self._release(app, task_id, settings, taken)  # not taken: the result stays for the job's next run

    def close(self, *, cancel: bool = False, timeout: float = 2.0) -> bool:
        """Nothing runs here in the background; tasks in flight stay with the workers."""
        return True

    def _submit(self, app: Celery, task_id: str, spec: JobSpec, cancel: threading.Event | None) -> bool:
        """Send the task unless one is in flight; False if cancelled while Redis was away."""
        payload = encode_task(spec)
        for pause in _backoff(RETRY):
            try:
                client = app.backend.client
                if client.set(MARKER + task_id, str(time.time()), nx=True, ex=RESULT_TTL):
                    try:
                        app.send_task(TASK_NAME, args=[payload], task_id=task_id)
                    except BaseException:
                        client.delete(MARKER + task_id)
                        raise
                    log.debug("%s: task %s sent", spec.filename, task_id)
                else:
                    log.info("%s: attached to task %s, already in flight", spec.filename, task_id)
                return True
            except Exception as e:  # noqa: BLE001 - Redis away: kombu and redis-py raise their own kinds
                log.warning("%s: cannot submit (%s); retrying in %.1f s", spec.filename, _redacted(e), pause)
            if _cancelled(cancel, pause):
                return False
        raise AssertionError("unreachable")

    def _wait(self, app: Celery, task_id: str, cancel: threading.Event | None) -> dict[str, Any] | None:
        """The task's final state from the result store; None if cancelled first, or if the
        task is gone (no result and no marker: another front took its result, or Redis lost it)."""
        poll = _backoff(POLL)
        while True:
            try:
                meta = app.backend.get_task_meta(task_id)
                if meta.get("status") in ("SUCCESS", "FAILURE", "REVOKED"):
                    return meta
                if meta.get("status") == "PENDING" and not app.backend.client.exists(MARKER + task_id):
                    return None
                pause = next(poll)
            except Exception as e:  # noqa: BLE001 - Redis away: wait for it
                log.warning("task %s: cannot read its state (%s)", task_id, _redacted(e))
                pause = RETRY[0]
            if _cancelled(cancel, pause):
                return None

    def _take(
        self, meta: dict[str, Any], task_id: str, spec: JobSpec, settings: Settings, results: Path, started: float
    ) -> RenderResult:
        """The worker's result with its outputs copied into `results` and checked by size and sha256."""
        if meta.get("status") != "SUCCESS":
            return _failure(spec.filename, meta, settings, started)
        try:
            result, outputs = decode_result(meta.get("result"), spec.filename)
            for output in outputs:
                copy = results / fsops.final_name(Path(spec.filename).stem, "", output["suffix"])
                _fetch(output, copy, task_id, settings)
                result.videos.append(copy)
                result.suffixes.append(output["suffix"])
        except (BadResult, OSError, ValueError) as e:
            record = ErrorRecord(spec.filename, "internal", "BadResult", f"the worker's result was not taken: {e}")
            if isinstance(e, FileNotFoundError):
                record.hint = (
                    f"the outputs were not in {settings.celery.shared_folder}: celery.shared_folder must be one "
                    "folder that the front and every worker see, or set celery.results: inline"
                )
            complete(record, settings, started)
            return RenderResult(spec.filename, ok=False, record=record, duration=record.duration or 0.0)
        return result

    def _release(self, app: Celery, task_id: str, settings: Settings, taken: bool) -> None:
        """One job of this process is done with the task. Once the last one has filed its
        result, the result, its outputs and the marker go (the same content may run again)."""
        with self._lock:
            self._users[task_id] -= 1
            last = self._users[task_id] == 0
            if last:
                del self._users[task_id]
        if not (last and taken):
            return
        try:
            app.backend.forget(task_id)
            app.backend.client.delete(MARKER + task_id)
        except Exception as e:  # noqa: BLE001 - expires on its own (RESULT_TTL)
            log.warning("task %s: its result could not be removed (%s)", task_id, _redacted(e))
        shutil.rmtree(settings.celery.shared_folder / task_id, ignore_errors=True)


def _fetch(output: dict[str, Any], copy: Path, task_id: str, settings: Settings) -> None:
    cap = settings.render.max_output_mb * 1024 * 1024
    if output["size"] > cap:
        raise ValueError(f"an output of {output['size']} bytes is above render.max_output_mb")
    if "data" in output:
        try:
            data = base64.b64decode(output["data"], validate=True)
        except (binascii.Error, TypeError):
            raise ValueError("an inline output is not base64") from None
        size, sha256 = len(data), hashlib.sha256(data).hexdigest()
        fsops.write_file(copy, data)
    else:
        name = output.get("name")
        if not isinstance(name, str) or not _OUTPUT_NAME.fullmatch(name):
            raise ValueError(f"an output name {name!r} outside the task's folder")
        size, sha256 = fsops.copy_hashed(settings.celery.shared_folder / task_id / name, copy, cap)
    if size != output["size"] or sha256 != output["sha256"]:
        os.unlink(copy)
        raise ValueError(f"{output['suffix']}: size or sha256 differs from what the worker reported")


def _failure(filename: str, meta: dict[str, Any], settings: Settings, started: float) -> RenderResult:
    """A task that raised on the worker: Celery's hard limit, a worker process lost too often, a bug."""
    exc = meta.get("result")
    kind = exc.__class__.__name__ if isinstance(exc, BaseException) else str(meta.get("status"))
    if kind == "TimeLimitExceeded":
        limit = settings.render.timeout + settings.render.grace
        record = ErrorRecord(
            filename, "timeout", "Timeout", f"the worker's hard time limit ended the task (render limit {limit:g} s)"
        )
    elif kind == "WorkerLostError":
        tries = settings.celery.max_retries + 1
        record = ErrorRecord(
            filename, "internal", "WorkerLost", f"the worker process rendering this scene was lost {tries} times"
        )
        record.hint = "a worker process killed or out of memory each time; see the worker's log"
    else:
        record = ErrorRecord(filename, "internal", "WorkerError", f"the task failed on the worker: {kind}: {exc}")
    complete(record, settings, started)
    return RenderResult(filename, ok=False, record=record, duration=record.duration or 0.0)


def _backoff(bounds: tuple[float, float]) -> Iterator[float]:
    pause = bounds[0]
    while True:
        yield pause
        pause = min(pause * 2, bounds[1])


def _cancelled(cancel: threading.Event | None, pause: float) -> bool:
    if cancel is None:
        time.sleep(pause)
        return False
    return cancel.wait(pause)


def _redacted(error: BaseException) -> str:
    """An error's text without a password from the broker URL."""
    text = str(error)
    url = os.environ.get("WATCHER_BROKER_URL", "")
    return text.replace(url, "<broker>") if url else text
