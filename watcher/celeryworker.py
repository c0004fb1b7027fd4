"""The worker side of distributed mode: the render task, and `watcher worker`.

A task is one job (`watcher.payload`). The worker runs it exactly as local mode does,
through `pipeline.render_job` on a `LocalExecutor` of its own in each pool process:
static checks, the isolated child with its SIGALRM and wall-clock kill, the sandbox
layers, verification, the warm worker with Manim imported. Outputs go to the shared
folder (`<shared>/<task id>/<delivery>/`, renamed into place whole) or, with
`celery.results: inline`, back in the result: never a video through Redis unless asked.

Only the prefork pool is used: the solo pool enforces no time limit.
"""

from __future__ import annotations

import base64
import dataclasses
import logging
import os
import shutil
import socket
import time
import uuid
from pathlib import Path
from typing import Any

from celery import Celery, signals

from . import executor as executors
from . import fsops
from .celeryconf import RESULT_TTL, make_app
from .config import Settings
from .errors import ErrorRecord
from .job import RenderResult
from .payload import TASK_NAME, TaskRefused, decode_task, encode_result, output_entry

log = logging.getLogger(__name__)


def add_render_task(app: Celery, settings: Settings) -> None:
    """Register the render task on a worker's `app`, run under the worker's own `settings`."""

    @app.task(
        name=TASK_NAME,
        bind=True,
        max_retries=settings.celery.max_retries,
        default_retry_delay=0,
        resultrepr_maxsize=300,  # the log line of a finished task; the record itself goes to the front
    )
    def render(self: Any, payload: Any) -> dict[str, Any]:
        task_id = self.request.id
        done = self.AsyncResult(task_id)
        if done.state == "SUCCESS":  # a duplicate delivery of a task that already ran
            log.info("task %s already rendered; returning its result", task_id)
            return done.result
        return run_task(task_id, payload, settings, self.request.retries)

    global _settings
    _settings = unchecked_api(settings)
    signals.worker_process_init.connect(_start_executor, weak=False, dispatch_uid="watcher-executor")
    signals.worker_process_shutdown.connect(_stop_executor, weak=False, dispatch_uid="watcher-executor-stop")


_executor: executors.LocalExecutor | None = None
_settings: Settings | None = None


def _start_executor(**_: Any) -> None:
    """In each pool process, before its first task: a warm worker of its own, Manim imported."""
    global _executor
    _executor = executors.LocalExecutor()  # never the parent's: its warm workers belong to it
    if _settings is not None:
        _executor.start(_settings, 1)


def _stop_executor(**_: Any) -> None:
    if _executor is not None:
        _executor.close()


def _local(settings: Settings) -> executors.LocalExecutor:
    global _executor
    if _executor is None:
        _executor = executors.LocalExecutor()
    _executor.start(settings, 1)  # once: later calls return at once
    return _executor


def unchecked_api(settings: Settings) -> Settings:
    """`settings` without the Manim API check: the front ran it before submitting. It finds
    mistakes, not danger (the policy checks, which do, run again here), and its snapshot
    would be built once more in every pool process."""
    return dataclasses.replace(settings, validation=dataclasses.replace(settings.validation, api_check="off"))


def run_task(task_id: str, payload: Any, own: Settings, retries: int = 0) -> dict[str, Any]:
    """Run one task under the worker's settings `own`; returns the result document."""
    from .pipeline import render_job  # the pipeline imports executors; keep the import graph one-way

    worker = socket.gethostname()
    own = unchecked_api(own)
    try:
        spec = decode_task(payload, own)
    except TaskRefused as e:
        name = payload.get("filename") if isinstance(payload, dict) else None
        log.warning("task %s refused: %s", task_id, e)
        record = ErrorRecord(name if isinstance(name, str) else "?", "validate", "TaskRefused", str(e))
        record.hint = "the front's config asks for more than the worker's config allows; align them"
        return encode_result(RenderResult(record.source, ok=False, record=record), [], worker)
    log.info("task %s: rendering %s%s", task_id, spec.filename, f" (run {retries + 1})" if retries else "")
    with render_job(spec.source, spec.filename, spec.settings, executor=_local(own)) as result:
        try:
            outputs = _hand_over(result, task_id, own)
        except OutputTooLarge as e:
            record = ErrorRecord(spec.filename, "resource", "OutputTooLarge", str(e))
            record.hint = "set celery.results: shared (a folder the front and the workers see)"
            result = RenderResult(spec.filename, ok=False, record=record, duration=result.duration)
            outputs = []
        return encode_result(result, outputs, worker)


class OutputTooLarge(Exception):
    pass


def _hand_over(result: RenderResult, task_id: str, own: Settings) -> list[dict[str, Any]]:
    """Put the verified outputs where the front takes them; their entries for the result."""
    if not result.videos:
        return []
    if own.celery.results == "inline":
        cap = own.celery.inline_max_mb * 1024 * 1024
        total = sum(video.stat().st_size for video in result.videos)
        if total > cap:
            raise OutputTooLarge(
                f"the outputs are {total / 1e6:.1f} MB; celery.inline_max_mb is {own.celery.inline_max_mb}"
            )
        entries = []
        for video, suffix in zip(result.videos, result.suffixes, strict=True):
            data = video.read_bytes()
            entries.append({**output_entry(suffix, data), "data": base64.b64encode(data).decode("ascii")})
        return entries
    # Each delivery its own folder, renamed into place whole: a duplicate run never
    # overwrites what a front may be reading.
    folder = own.celery.shared_folder / task_id
    folder.mkdir(parents=True, exist_ok=True)
    delivery = uuid.uuid4().hex
    staging = folder / f".{delivery}.tmp"
    staging.mkdir()
    entries = []
    cap = own.render.max_output_mb * 1024 * 1024
    try:
        for video, suffix in zip(result.videos, result.suffixes, strict=True):
            name = f"out{suffix}"
            size, sha256 = fsops.copy_hashed(video, staging / name, cap)
            entries.append({"suffix": suffix, "size": size, "sha256": sha256, "name": f"{delivery}/{name}"})
        os.rename(staging, folder / delivery)
        fsops.fsync_dir(folder)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return entries


def remove_stale_outputs(shared: Path, max_age: float = RESULT_TTL) -> int:
    """Remove shared outputs no front took within `max_age` (the front was gone for good)."""
    removed = 0
    now = time.time()
    try:
        entries = list(os.scandir(shared))
    except FileNotFoundError:
        return 0
    for entry in entries:
        try:
            if entry.is_dir(follow_symlinks=False) and now - entry.stat(follow_symlinks=False).st_mtime > max_age:
                shutil.rmtree(entry.path, ignore_errors=True)
                removed += 1
        except OSError:
            continue
    return removed


def run_worker(settings: Settings, concurrency: int, loglevel: str = "INFO") -> int:
    """`watcher worker`: a prefork worker on `settings`' queue until it is told to stop."""
    settings.celery.shared_folder.mkdir(parents=True, exist_ok=True)
    if removed := remove_stale_outputs(settings.celery.shared_folder):
        log.info("removed %d shared outputs older than %d days", removed, RESULT_TTL // 86400)
    app = make_app(settings)
    add_render_task(app, settings)
    worker = app.Worker(
        pool="prefork",
        concurrency=concurrency,
        loglevel=loglevel,
        queues=[settings.celery.queue],
        hostname=f"watcher@{socket.gethostname()}",
        optimization="fair",
        without_mingle=True,  # workers need nothing from each other
        without_gossip=True,
    )
    worker.start()
    return int(worker.exitcode or 0)
