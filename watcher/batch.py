"""Batch runs: render many scene files at once, or render filed results again.

`run_batch` renders files into one output folder; `run_rerender` renders sources that
are already filed (done/, failed/, or any folder holding sources beside their results)
with the current settings. Both take each file through the one pipeline
(`watcher.pipeline.process`) from a small thread pool: every render is its own child
process already, so the threads only supervise. A KeyboardInterrupt (the CLI turns
SIGTERM into one too) stops the running renders and files nothing more.

Where results go is the sink's business (`watcher.sinks`): a re-render whose content key
matches the last attempt (`<stem>.meta.json`, see `watcher.sidecar`), with that
attempt's files still in place, renders nothing (unless forced).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import executor as executors
from .config import Settings
from .errors import ErrorRecord, WatcherError
from .inbox import is_candidate
from .layout import Layout
from .pipeline import JobOutcome, Sink, process
from .sinks import FolderSink, InPlaceSink
from .sources import FileSource

log = logging.getLogger(__name__)


@dataclass
class BatchSummary:
    """All outcomes of one run, in the order the files were given."""

    outcomes: list[JobOutcome]
    seconds: float
    interrupted: bool = False
    latex: dict[str, int] = field(default_factory=dict)  # TeX documents served from the cache / typeset

    def count(self, status: str) -> int:
        return sum(o.status == status for o in self.outcomes)

    @property
    def failed_by_phase(self) -> dict[str, int]:
        return dict(Counter(o.record.phase for o in self.outcomes if o.status == "failed" and o.record))

    @property
    def scenes_per_minute(self) -> float:
        rendered = self.count("rendered") + self.count("failed")  # skipped ones cost nothing
        return 60 * rendered / self.seconds if self.seconds > 0 else 0.0

    @property
    def ok(self) -> bool:
        return not self.interrupted and not self.count("failed")

    @property
    def videos(self) -> int:
        """MP4s written by the scenes that rendered."""
        return self._outputs(".mp4")

    @property
    def images(self) -> int:
        """PNGs written by still scenes (they never animate: their last frame, as manim writes it)."""
        return self._outputs(".png")

    def _outputs(self, suffix: str) -> int:
        return sum(p.suffix == suffix for o in self.outcomes if o.status == "rendered" for p in o.outputs)

    def to_dict(self) -> dict[str, Any]:
        by_phase = self.failed_by_phase
        return {
            "rendered": self.count("rendered"),
            "videos": self.videos,
            "images": self.images,
            "failed": self.count("failed"),
            "failed_by_phase": by_phase,
            "timed_out": by_phase.get("timeout", 0),
            "skipped": self.count("skipped"),
            "cancelled": self.count("cancelled"),
            "interrupted": self.interrupted,
            "latex": self.latex,
            "seconds": round(self.seconds, 2),
            "scenes_per_minute": round(self.scenes_per_minute, 1),
            "jobs": [o.to_dict() for o in self.outcomes],
        }


# -- choosing the files -------------------------------------------------------------------


def find_sources(paths: Iterable[Path], *, recursive: bool = False, exclude: Path | None = None) -> list[Path]:
    """The scene files named by `paths`, each once: files as given, and the `*.py` in folders.

    In folders (their subfolders too when `recursive`), hidden, editor-temp and
    `__pycache__` entries, symbolic links and anything under `exclude` are skipped.
    """
    found: dict[Path, Path] = {}
    skip = exclude.resolve() if exclude is not None else None
    for path in paths:
        if not path.is_dir():
            found.setdefault(path.resolve(), path)
            continue
        for p in sorted(path.glob("**/*.py" if recursive else "*.py")):
            parts = p.relative_to(path).parts
            if any(part.startswith(".") or part == "__pycache__" for part in parts) or not is_candidate(p.name):
                continue
            if p.is_symlink() or not p.is_file():
                continue
            real = p.resolve()
            if skip is None or not real.is_relative_to(skip):
                found.setdefault(real, p)
    return list(found.values())


def rerender_sources(targets: Iterable[str], settings: Settings) -> list[Path]:
    """The sources a re-render covers: `done` and `failed` name the configured folders.

    Raises:
        WatcherError: a target that is neither a keyword, a folder nor a .py file.
    """
    paths = []
    for target in targets:
        if target in ("done", "failed"):
            folder = getattr(settings.folders, target)
            if folder.is_dir():
                paths.append(folder)
        elif Path(target).is_dir() or (Path(target).is_file() and target.endswith(".py")):
            paths.append(Path(target))
        elif Path(target).exists():
            raise WatcherError(f"{target}: not a scene source (.py) or a folder of them")
        else:
            raise WatcherError(f"{target}: no such file or folder (or use done / failed)")
    # `x.fixed.py` beside `x.py` is what validation.autofix rendered: an output, not a scene of its own.
    return [
        p
        for p in find_sources(paths)
        if not (p.name.endswith(".fixed.py") and p.with_name(p.name[:-9] + ".py").exists())
    ]


# -- the runs ---------------------------------------------------------------------------


def run_batch(
    files: list[Path],
    settings: Settings,
    out_dir: Path,
    *,
    workers: int | None = None,
    move: bool = False,
    on_result: Callable[[JobOutcome], None] | None = None,
    executor: executors.Executor | None = None,
) -> BatchSummary:
    """Render `files` into `out_dir`: `<stem>.mp4` or `<stem>.error.json`, and `<stem>.meta.json`.

    Args:
        files: scene files; they stay where they are unless `move`.
        settings: render settings and limits (`folders.work` holds the job directories).
        out_dir: created if missing; nothing in it is ever replaced.
        workers: renders at once (default `settings.worker_count`).
        move: move each source into `out_dir` beside its result, once that is filed.
        on_result: called with each finished job, one call at a time.
        executor: where the renders run (default: this process's local executor, closed at the end).
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    return _run(files, FolderSink(out_dir, move), settings, workers, on_result, executor, force=False)


def run_rerender(
    sources: list[Path],
    settings: Settings,
    *,
    force: bool = False,
    workers: int | None = None,
    on_result: Callable[[JobOutcome], None] | None = None,
    executor: executors.Executor | None = None,
) -> BatchSummary:
    """Render filed sources again with `settings`, skipping those whose content key is unchanged.

    A source's results are beside it (`<stem>.mp4`, `<stem>.error.json`): see `sinks.InPlaceSink`.
    """
    failed_dir = settings.folders.failed.resolve()
    layout = Layout.from_settings(settings)
    if any(p.parent.resolve() == failed_dir for p in sources):
        layout.ensure()  # the move to done/ goes through a claim in processing/
    return _run(sources, InPlaceSink(layout), settings, workers, on_result, executor, force=force)


def _run(
    paths: list[Path],
    sink: Sink,
    settings: Settings,
    workers: int | None,
    on_result: Callable[[JobOutcome], None] | None,
    executor: executors.Executor | None,
    force: bool,
) -> BatchSummary:
    count = workers or settings.worker_count
    runner = executor or executors.for_settings(settings)
    runner.start(settings, count)  # Manim imports while the first jobs are set up

    def job(path: Path, cancel: threading.Event) -> JobOutcome:
        source = FileSource(path, settings.render.max_source_bytes)
        return process(source, sink, settings, executor=runner, cancel=cancel, force=force)

    typesetter = runner.typesetter(settings) if isinstance(runner, executors.LocalExecutor) else None
    before = typesetter.counts() if typesetter else {}
    summary = _run_pool(paths, job, count, on_result)
    if typesetter is not None:
        summary.latex = {key: value - before[key] for key, value in typesetter.counts().items()}
    # The glyph build is a render too: none outlives the batch.
    if executor is None:
        runner.close(cancel=summary.interrupted, timeout=60.0 if not summary.interrupted else 2.0)
    return summary


def _run_pool(
    paths: list[Path],
    job: Callable[[Path, threading.Event], JobOutcome],
    workers: int,
    on_result: Callable[[JobOutcome], None] | None,
) -> BatchSummary:
    """Run `job` over `paths` on `workers` threads; a KeyboardInterrupt cancels what is left."""
    cancel = threading.Event()
    report_lock = threading.Lock()  # on_result sees one outcome at a time
    outcomes: dict[int, JobOutcome] = {}
    started = time.monotonic()

    def run(i: int, path: Path) -> None:
        t0 = time.monotonic()
        try:
            outcome = job(path, cancel)
        except Exception as e:  # one job's fault never ends the batch
            if isinstance(e, WatcherError | OSError):
                log.error("%s: %s; nothing more was filed for it", path, e)
            else:
                log.exception("%s: unexpected error; nothing more was filed for it", path)
            record = ErrorRecord(path.name, "internal", type(e).__name__, str(e))
            outcome = JobOutcome(path, "failed", time.monotonic() - t0, record=record)
        with report_lock:
            outcomes[i] = outcome
            if on_result is not None and outcome.status != "cancelled":
                on_result(outcome)

    interrupted = False
    pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="render")
    futures = [pool.submit(run, i, p) for i, p in enumerate(paths)]
    try:
        for future in as_completed(futures):
            future.result()
    except KeyboardInterrupt:
        interrupted = True
        log.warning("interrupted: stopping the running renders; nothing more is filed")
        cancel.set()
        for future in futures:
            future.cancel()
    finally:
        pool.shutdown(wait=True)
    ordered = [outcomes.get(i) or JobOutcome(p, "cancelled") for i, p in enumerate(paths)]
    return BatchSummary(ordered, time.monotonic() - started, interrupted)
