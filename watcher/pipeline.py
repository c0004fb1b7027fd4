"""One job pipeline: validate -> execute -> verify -> publish, for every way a job arrives.

    source (an inbox claim, a file of a batch, a filed result, a library call)
      -> load the bytes (or an "ingest" record)       Source.load
      -> validation.autofix, static checks             watcher.fix, watcher.validate
      -> run the job spec                              an Executor (watcher.executor)
      -> verify the outputs                            watcher.verify
      -> file outputs, record and meta.json            a Sink (watcher.sinks)

The daemon, `watcher render`, `watcher rerender`, `execute_animation_code`, the glyph
seeding (with cache.latex off) and `doctor` all go through `render_job` (the first four steps) and, except the
last two, through `process` (all of them). Sources and sinks are the only things that
differ between them.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from . import executor as executors
from . import jobfs
from .config import Settings
from .errors import ErrorRecord, versions
from .fix import stage_fix
from .job import JobSpec, RenderResult, complete, content_key
from .sidecar import ERROR_SUFFIX, META_SCHEMA, META_SUFFIX, Item, previous_render, utc_now
from .validate import check_scene, findings_record
from .verify import verify_result

log = logging.getLogger(__name__)


@contextlib.contextmanager
def render_job(
    source: bytes,
    filename: str,
    settings: Settings,
    *,
    scenes: list[str] | None = None,
    cancel: threading.Event | None = None,
    executor: executors.Executor | None = None,
) -> Iterator[RenderResult]:
    """Validate `source` (the bytes of the user's `filename`), run it, verify what it made.

    Yields a RenderResult whose videos are verified copies out of the job's reach; they
    and the job directory are removed when the `with` block ends. `scenes`, when given,
    skips the static checks (the caller already ran them). Setting `cancel` stops the
    render (the result then has `cancelled=True` and no record). `executor` defaults to
    this process's local one.
    """
    started = time.monotonic()
    if scenes is None:
        check = check_scene(source, settings, filename)
        if not check.ok:
            record = findings_record(check, filename)
            complete(record, settings, started)
            yield RenderResult(filename, ok=False, record=record, duration=record.duration or 0.0)
            return
        scenes = check.selected
        if check.source is not None:  # the code block of a Markdown reply (validation.extract_code)
            lines = f"lines {check.extracted[0]}-{check.extracted[1]}" if check.extracted else "its code block"
            log.info("%s: a Markdown reply: rendering %s", filename, lines)
            source = check.source.encode("utf-8")  # other lines blanked: line numbers still match the file
    run = (executor or executors.local()).run
    with run(JobSpec(source, filename, settings, scenes), cancel) as result:
        if result.videos and (problem := verify_result(result, settings)) is not None:
            result.ok = False
            record = ErrorRecord(filename, "render", "InvalidVideo", problem)
            complete(record, settings, started)
            result.record = record
            verify_result(result, settings)  # a failed file of several scenes keeps those that verify
        yield result


class Source(Protocol):
    """Where one job comes from."""

    @property
    def name(self) -> str:
        """The user's file name."""
        ...

    @property
    def path(self) -> Path:
        """Where the source is now."""
        ...

    def load(self) -> bytes | ErrorRecord:
        """The source's bytes, or an "ingest" record saying why it cannot be rendered."""
        ...


class Sink(Protocol):
    """Where one job's result goes."""

    def skip(self, job: Source, key: str) -> str | None:
        """Why the job need not render at all (its result is filed and current), or None."""
        ...

    def previous(self, job: Source) -> dict[str, Any] | None:
        """The job's last meta.json, when it has one in place (a re-render)."""
        ...

    def cancelled(self, job: Source) -> None:
        """The render was cancelled: put the job back where it can be taken again."""
        ...

    def file(self, job: Source, result: RenderResult, items: list[Item]) -> tuple[list[Path], str]:
        """File `items` (outputs or the error record, extra files, meta.json last); returns the
        final paths (the source's last if it moved) and a note for the user ("" if none).

        Raises:
            OSError: the disk refused; nothing was lost (the caller keeps the job).
        """
        ...


@dataclass
class JobOutcome:
    """What became of one job."""

    source: Path
    status: str  # rendered | failed | skipped | cancelled
    seconds: float = 0.0
    outputs: list[Path] = field(default_factory=list)  # the files written, videos first
    record: ErrorRecord | None = None  # why it failed
    note: str = ""  # e.g. "moved from failed/", "kept the previous MP4"

    def to_dict(self) -> dict[str, Any]:
        rec = self.record
        error = None
        if rec is not None:
            error = {"phase": rec.phase, "type": rec.type, "message": rec.message, "line": rec.line}
        return {
            "source": str(self.source),
            "status": self.status,
            "seconds": round(self.seconds, 2),
            "outputs": [str(p) for p in self.outputs],
            "error": error,
            "note": self.note,
        }


def process(
    job: Source,
    sink: Sink,
    settings: Settings,
    *,
    executor: executors.Executor | None = None,
    cancel: threading.Event | None = None,
    force: bool = False,
) -> JobOutcome:
    """Take one job from its source to its sink. `force` renders even what the sink says is current.

    Raises:
        OSError: the sink could not file the result (the job is where the sink left it).
    """
    started = time.monotonic()
    source = job.load()
    key = content_key(source, settings) if isinstance(source, bytes) else None
    if key is not None and not force and (reason := sink.skip(job, key)):
        return JobOutcome(job.path, "skipped", note=reason)
    with contextlib.ExitStack() as stack:
        extra: list[Item] = []
        if isinstance(source, bytes) and settings.validation.autofix:
            folder = jobfs.make_dir(settings.folders.work, f"fix-{os.getpid()}-")
            stack.callback(jobfs.discard, folder)
            if (fixed := stage_fix(source, job.name, folder)) is not None:
                source = fixed.source
                log.info("%s: fixed before rendering: %s", job.name, "; ".join(fixed.changes))
                extra = [(suffix, path) for path, suffix in fixed.outputs]  # x.fixed.py, x.fix.diff
        if isinstance(source, ErrorRecord):
            complete(source, settings, started)
            result = stack.enter_context(_failed(job.name, source))
        else:
            result = stack.enter_context(render_job(source, job.name, settings, cancel=cancel, executor=executor))
        if result.cancelled:
            sink.cancelled(job)
            return JobOutcome(job.path, "cancelled", result.duration)
        meta = meta_document(result, key, job.name, settings, sink.previous(job))
        items = [*result_items(result), *extra, (META_SUFFIX, meta)]
        outputs, note = sink.file(job, result, items)
    status = "rendered" if result.ok else "failed"
    return JobOutcome(job.path, status, time.monotonic() - started, outputs, result.record, note)


@contextlib.contextmanager
def _failed(name: str, record: ErrorRecord) -> Iterator[RenderResult]:
    yield RenderResult(name, ok=False, record=record, duration=record.duration or 0.0)


def result_items(result: RenderResult) -> list[Item]:
    """The files that record `result`: its outputs, or its error record and the outputs of the
    scenes of a failed file that rendered before the failure (`x.Intro.mp4`)."""
    outputs: list[Item] = list(zip(result.suffixes, result.videos, strict=True))
    if result.ok:
        return outputs
    assert result.record is not None
    return [(ERROR_SUFFIX, result.record.to_json().encode()), *outputs]


def meta_document(
    result: RenderResult, key: str | None, name: str, settings: Settings, previous: dict[str, Any] | None
) -> bytes:
    """`<stem>.meta.json`: what the last render attempt of `name` was (see watcher.sidecar).

    `previous`: the job's meta.json in place (a re-render); what it says of outputs that stay is kept.
    """
    if result.ok:
        meta: dict[str, Any] = {
            "schema": META_SCHEMA,
            "source": name,
            "key": key,
            "ok": True,
            "rendered_at": utc_now(),
            "render_seconds": round(result.duration, 3),
            "settings": settings.render_summary(),
            # Set by the scene at module level and replaced by the render settings (README: differences from manim).
            "overridden": result.overridden,
            "versions": versions(),
            "videos": [
                {"suffix": suffix, "scene": scene, **dataclasses.asdict(info)}
                for suffix, scene, info in zip(result.suffixes, result.scenes, result.info, strict=True)
            ],
        }
    else:
        # What describes the outputs still in place (from an earlier render) stays; the attempt is new.
        meta = {**previous_render(previous), "schema": META_SCHEMA, "source": name, "key": key}
        meta.update(ok=False, error=ERROR_SUFFIX, failed_at=utc_now())
    return (json.dumps(meta, indent=2, ensure_ascii=False) + "\n").encode()
