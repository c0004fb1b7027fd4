"""Batch runs: render many scene files at once, or render filed results again.

`run_batch` renders files into one output folder; `run_rerender` renders sources that
are already filed (done/, failed/, or any folder holding sources beside their results)
with the current settings. Both drive `render_job` from a small thread pool: every
render is its own child process already, so the threads only supervise. A
KeyboardInterrupt (the CLI turns SIGTERM into one too) stops the running renders and
files nothing more.

Nothing is replaced, with one exception: a re-render replaces a scene's own MP4 once the
new render has succeeded (a failure keeps the old MP4 and writes its record beside it).
New names are chosen as the daemon chooses them: `x.mp4`, or the whole group under one
sortable tag (`x.20261126T101500Z-001.mp4`) when any name is taken.

Beside each result, `<stem>.meta.json` remembers the last render attempt:

    key          sha256 of source bytes + effective render settings + Manim version
    ok           whether that attempt rendered (false: `<stem>.error.json` says why)
    videos       [{suffix, scene, width, height, duration, frames, fps, kind}]: the MP4s
                 (kind "video") and still scenes' PNGs (kind "image") in
                 place, `<stem><suffix>` (absent until a render succeeds)
    render_seconds, rendered_at, settings, versions: the render that made those MP4s

A re-render whose key matches the last attempt, with that attempt's files still in
place, renders nothing (unless forced).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import os
import re
import secrets
import shutil
import stat
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import jobfs, texseed
from .config import Settings
from .errors import ErrorRecord, WatcherError, versions
from .inbox import is_candidate

# The daemon's naming and placement rules, reused so that both file results alike.
from .layout import Claimed, Layout, final_name, free_tag, fsync_dir, place, stage_output, write_file
from .render import RenderResult, prewarm, render_job

log = logging.getLogger(__name__)

META_SUFFIX = ".meta.json"
ERROR_SUFFIX = ".error.json"
META_SCHEMA = 1

# A result to file: `<stem><suffix>`, from a file to move in or from bytes to write.
Item = tuple[str, Path | bytes]


@dataclass
class JobOutcome:
    """What became of one scene file."""

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


@dataclass
class BatchSummary:
    """All outcomes of one run, in the order the files were given."""

    outcomes: list[JobOutcome]
    seconds: float
    interrupted: bool = False

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


def content_key(source: bytes, settings: Settings) -> str:
    """What identifies a render's result: source bytes + effective render settings + Manim version."""
    effective = {
        **settings.render_summary(),
        "forbidden_calls": sorted(settings.validation.forbidden_calls),
        "forbidden_imports": sorted(settings.validation.forbidden_imports),
    }
    doc = {"source": hashlib.sha256(source).hexdigest(), "settings": effective, "manim": versions()["manim"]}
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()


# -- the runs ---------------------------------------------------------------------------


def run_batch(
    files: list[Path],
    settings: Settings,
    out_dir: Path,
    *,
    workers: int | None = None,
    move: bool = False,
    on_result: Callable[[JobOutcome], None] | None = None,
) -> BatchSummary:
    """Render `files` into `out_dir`: `<stem>.mp4` or `<stem>.error.json`, and `<stem>.meta.json`.

    Args:
        files: scene files; they stay where they are unless `move`.
        settings: render settings and limits (`folders.work` holds the job directories).
        out_dir: created if missing; nothing in it is ever replaced.
        workers: renders at once (default `settings.worker_count`).
        move: move each source into `out_dir` beside its result, once that is filed.
        on_result: called with each finished job, one call at a time.
    """
    out_dir.mkdir(parents=True, exist_ok=True)

    def job(path: Path, cancel: threading.Event) -> JobOutcome:
        source = _load(path, settings)
        with _rendered(source, path.name, settings, cancel) as result:
            if result.cancelled:
                return JobOutcome(path, "cancelled", result.duration)
            key = content_key(source, settings) if isinstance(source, bytes) else None
            items = _result_items(result, key, path.name, settings, previous=None) + _kept_items(result)
            outputs = publish(out_dir, path.stem, items, source=path if move else None)
        return _outcome(path, result, outputs)

    prewarm(settings, workers or settings.worker_count)  # Manim imports while the first jobs are set up
    return _run_pool(files, job, workers or settings.worker_count, on_result)


def run_rerender(
    sources: list[Path],
    settings: Settings,
    *,
    force: bool = False,
    workers: int | None = None,
    on_result: Callable[[JobOutcome], None] | None = None,
) -> BatchSummary:
    """Render filed sources again with `settings`, skipping those whose content key is unchanged.

    A source's results are beside it (`<stem>.mp4`, `<stem>.error.json`). Success replaces
    its own MP4s (and drops an error record); failure keeps them and writes the new
    record. A source in the configured failed/ folder that now renders is moved, with its
    MP4s, to done/ by the daemon's publish (never overwriting there).
    """
    failed_dir = settings.folders.failed.resolve()
    layout = Layout.from_settings(settings)
    if any(p.parent.resolve() == failed_dir for p in sources):
        layout.ensure()  # the move to done/ goes through a claim in processing/

    def job(path: Path, cancel: threading.Event) -> JobOutcome:
        folder, stem = path.parent, path.stem
        source = _load(path, settings)
        key = content_key(source, settings) if isinstance(source, bytes) else None
        previous = _read_meta(folder / (stem + META_SUFFIX))
        if not force and key is not None and _up_to_date(folder, stem, previous, key):
            return JobOutcome(path, "skipped", note="unchanged since its last render")
        with _rendered(source, path.name, settings, cancel) as result:
            if result.cancelled:
                return JobOutcome(path, "cancelled", result.duration)
            items = _result_items(result, key, path.name, settings, previous)
            if result.ok and folder.resolve() == failed_dir:
                outputs = _move_to_done(path, items, layout)
                return _outcome(path, result, outputs, note=f"moved from {folder.name}/ to {outputs[-1].parent.name}/")
            had_video = _has_video(folder, stem, previous)
            outputs = replace(folder, stem, items)
        if result.ok:
            _remove(folder / (stem + ERROR_SUFFIX))
            # What the previous render wrote and this one did not (a still that now animates
            # leaves no PNG beside its new MP4).
            stale = {".mp4", ".png", *(v["suffix"] for v in sidecar_videos(previous))} - set(result.suffixes)
            for suffix in stale:
                _remove(folder / (stem + suffix))
            return _outcome(path, result, outputs, note="replaced the previous MP4" if had_video else "")
        return _outcome(path, result, outputs, note="kept the previous MP4" if had_video else "")

    prewarm(settings, workers or settings.worker_count)  # Manim imports while the first jobs are set up
    return _run_pool(sources, job, workers or settings.worker_count, on_result)


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
        # The glyph build prewarm started is a render too: none outlives the batch.
        texseed.stop() if interrupted else texseed.wait()
    ordered = [outcomes.get(i) or JobOutcome(p, "cancelled") for i, p in enumerate(paths)]
    return BatchSummary(ordered, time.monotonic() - started, interrupted)


# -- one job ----------------------------------------------------------------------------


def _load(path: Path, settings: Settings) -> bytes | ErrorRecord:
    """The file's bytes, or an "ingest" record saying why it cannot be rendered."""
    limit = settings.render.max_source_bytes
    try:
        # O_NONBLOCK: a FIFO named x.py must not hang the batch.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as e:
        return ErrorRecord(path.name, "ingest", "Unreadable", f"{path.name} cannot be opened: {e.strerror}")
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return ErrorRecord(path.name, "ingest", "NotARegularFile", f"{path.name} is not a regular file")
        if st.st_size > limit:
            message = f"{path.name} is {st.st_size} bytes, over the limit of {limit} bytes"
            return ErrorRecord(path.name, "ingest", "TooLarge", message, limit="render.max_source_bytes")
        return f.read(limit + 1)  # one byte over is enough for the size check, should it grow meanwhile


@contextlib.contextmanager
def _rendered(
    source: bytes | ErrorRecord, filename: str, settings: Settings, cancel: threading.Event
) -> Iterator[RenderResult]:
    if isinstance(source, ErrorRecord):
        yield RenderResult(filename, ok=False, record=source)
        return
    with render_job(source, filename, settings, cancel=cancel) as result:
        yield result


def _result_items(
    result: RenderResult, key: str | None, name: str, settings: Settings, previous: dict[str, Any] | None
) -> list[Item]:
    """The files that record `result`: the videos (or the error record), then the meta sidecar."""
    if result.ok:
        suffixes = result.suffixes
        meta: dict[str, Any] = {
            "schema": META_SCHEMA,
            "source": name,
            "key": key,
            "ok": True,
            "rendered_at": _utc_now(),
            "render_seconds": round(result.duration, 3),
            "settings": settings.render_summary(),
            # Set by the scene at module level and replaced by the render settings (README: differences from manim).
            "overridden": result.overridden,
            "versions": versions(),
            "videos": [
                {"suffix": suffix, "scene": scene, **dataclasses.asdict(info)}
                for suffix, scene, info in zip(suffixes, result.scenes, result.info, strict=True)
            ],
        }
        videos: list[Item] = list(zip(suffixes, result.videos, strict=True))
        return [*videos, (META_SUFFIX, _json_bytes(meta))]
    assert result.record is not None
    # What describes the MP4s still in place (from an earlier render) stays; the attempt is new.
    meta = {**_previous_render(previous), "schema": META_SCHEMA, "source": name, "key": key, "ok": False}
    meta.update(error=ERROR_SUFFIX, failed_at=_utc_now())
    return [(ERROR_SUFFIX, result.record.to_json().encode()), (META_SUFFIX, _json_bytes(meta))]


def _previous_render(previous: dict[str, Any] | None) -> dict[str, Any]:
    """What a sidecar says of the render whose outputs are in place, checked field by field.

    The sidecar sits in a shared folder: anyone who can write there can write it, so only
    well-formed fields are carried into the new one (watcher/schemas/meta.schema.json).
    """
    if not previous:
        return {}
    kept: dict[str, Any] = {}
    if isinstance(at := previous.get("rendered_at"), str) and re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", at):
        kept["rendered_at"] = at
    if _number(previous.get("render_seconds")) is not None:
        kept["render_seconds"] = previous["render_seconds"]
    for key in ("settings", "versions", "overridden"):
        if isinstance(value := previous.get(key), dict) and len(value) <= 32:
            kept[key] = {
                str(k)[:64]: v if isinstance(v, int | float | bool) else str(v)[:64]
                for k, v in value.items()
                if v is None or isinstance(v, str | int | float | bool)
            }
    if "versions" in kept:
        kept["versions"] = {k: str(v) for k, v in kept["versions"].items()}
    if "overridden" in kept:
        kept["overridden"] = {
            k: v for k, v in list(kept["overridden"].items())[:8] if isinstance(v, str | int | float) and v is not True
        }
    videos = [_video_entry(v) for v in sidecar_videos(previous)]
    if (good := [v for v in videos if v is not None]) or "videos" in previous:
        kept["videos"] = good
    return kept


def _video_entry(entry: dict[str, Any]) -> dict[str, Any] | None:
    """A sidecar's description of one output in place, or None when it is not one."""
    kind = entry.get("kind", "video")  # sidecars written before still scenes had no kind
    ints = {k: entry.get(k) for k in ("width", "height", "frames")}
    numbers = {k: entry.get(k) for k in ("duration", "fps")}
    if not (
        re.fullmatch(r"[^/]*\.(mp4|png)", entry["suffix"])
        and isinstance(entry.get("scene"), str)
        and entry["scene"]
        and kind in ("video", "image")
        and all(
            isinstance(v, int) and not isinstance(v, bool) and v >= (k == "frames" and 0 or 1) for k, v in ints.items()
        )
        and all(_number(v) is not None for v in numbers.values())
    ):
        return None
    return {"suffix": entry["suffix"], "scene": entry["scene"], **ints, **numbers, "kind": kind}


def _count(value: Any, least: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= least


def _number(value: Any) -> float | None:
    """A finite number of at least 0, or None."""
    if isinstance(value, int | float) and not isinstance(value, bool) and 0 <= value < float("inf"):
        return float(value)
    return None


def _kept_items(result: RenderResult) -> list[Item]:
    """The outputs of the scenes of a failed file that rendered before the failure (`x.Intro.mp4`)."""
    return [] if result.ok else list(zip(result.suffixes, result.videos, strict=True))


def _outcome(path: Path, result: RenderResult, outputs: list[Path], note: str = "") -> JobOutcome:
    status = "rendered" if result.ok else "failed"
    return JobOutcome(path, status, result.duration, outputs, result.record, note)


def _up_to_date(folder: Path, stem: str, meta: dict[str, Any] | None, key: str) -> bool:
    """True when the last attempt had this key and its files are still there."""
    if not meta or meta.get("key") != key:
        return False
    if not meta.get("ok"):
        return (folder / (stem + ERROR_SUFFIX)).is_file()
    suffixes = [v["suffix"] for v in sidecar_videos(meta)]
    return bool(suffixes) and all((folder / (stem + s)).is_file() for s in suffixes)


def _has_video(folder: Path, stem: str, meta: dict[str, Any] | None) -> bool:
    """Whether an MP4 (or a still's PNG) of this source is in place (the sidecar names them; the daemon
    files `<stem>.mp4` or `<stem>.png`)."""
    suffixes = {".mp4", ".png", *(v["suffix"] for v in sidecar_videos(meta))}
    return any((folder / (stem + s)).is_file() for s in suffixes)


def sidecar_videos(meta: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The well-formed `videos` entries of a sidecar (it sits in a shared folder: trust nothing)."""
    videos = (meta or {}).get("videos")
    return [
        v
        for v in (videos if isinstance(videos, list) else [])
        if isinstance(v, dict) and isinstance(v.get("suffix"), str) and "/" not in v["suffix"]
    ]


def _move_to_done(path: Path, items: list[Item], layout: Layout) -> list[Path]:
    """File a source from failed/ that now renders in done/, with its MP4s and meta.

    The daemon's own claim and publish do it, so it is crash-safe (a daemon start rolls
    an interrupted publish forward) and never overwrites anything in done/.
    """
    # `rerender-<pid>-`: a starting daemon leaves the work directories of live processes alone.
    layout.folders.work.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f"rerender-{os.getpid()}-", dir=layout.folders.work))
    try:
        files = []
        for suffix, data in items:
            # publish_done keeps what follows the stem in each name: `x.mp4`, `x.meta.json`.
            staged = staging / (path.stem + suffix)
            if isinstance(data, bytes):
                staged.write_bytes(data)
            else:
                shutil.move(data, staged)
            files.append(staged)
        claimed = layout.ingest(path)
        if claimed is None:
            raise WatcherError(f"{path.name} vanished before it could be moved to done/")
        if not isinstance(claimed, Claimed):  # not a plain file: filed again in failed/, with an ingest record
            raise WatcherError(f"{path.name} was not moved to done/: {claimed.record.message}")
        finals = layout.publish_done(claimed, files, [suffix for suffix, _ in items])
    finally:
        jobfs.discard(staging)
    for suffix in (ERROR_SUFFIX, META_SUFFIX):
        _remove(path.parent / (path.stem + suffix))
    return finals


# -- filing ------------------------------------------------------------------------------

_publish_lock = threading.Lock()  # choosing names and placing them: one group at a time


def publish(folder: Path, stem: str, items: list[Item], source: Path | None = None) -> list[Path]:
    """File each item as `<stem><suffix>` in `folder`, then move `source` in; never replace anything.

    When any name is taken, the whole group gets one sortable tag. Items are staged as
    fsynced temp files in `folder` first, so a final name only ever holds a complete
    file, and the source moves last: it never sits beside a result that is not there.

    Returns:
        The final paths, in the order of `items`, the source last.
    """
    folder.mkdir(parents=True, exist_ok=True)
    staged: list[tuple[str, Path]] = []
    try:
        for suffix, data in items:
            staged.append((suffix, _stage(folder, stem + suffix, data)))
        with _publish_lock:
            suffixes = [suffix for suffix, _ in staged] + ([source.suffix] if source else [])
            tag = free_tag(folder, stem, suffixes)
            finals = [_place_new(tmp, folder, stem, tag, suffix) for suffix, tmp in staged]
            fsync_dir(folder)
            if source is not None:
                finals.append(_place_new(source, folder, stem, tag, source.suffix))
                fsync_dir(folder)
    finally:
        for _, tmp in staged:
            _remove(tmp)
    return finals


def replace(folder: Path, stem: str, items: list[Item]) -> list[Path]:
    """Write each item as `<stem><suffix>` in `folder`, atomically replacing that name.

    Only for a re-render's own files, once the new ones are complete.
    """
    finals = []
    for suffix, data in items:
        tmp = _stage(folder, stem + suffix, data)
        final = folder / final_name(stem, "", suffix)
        try:
            os.replace(tmp, final)
        finally:
            _remove(tmp)
        finals.append(final)
    fsync_dir(folder)
    return finals


def _stage(folder: Path, name: str, data: Path | bytes) -> Path:
    """A complete, fsynced temp copy of `data` in `folder`, named as the daemon's start-up sweep expects."""
    tmp = folder / f".{name[:100]}.tmp-{secrets.token_hex(4)}"
    if isinstance(data, bytes):
        write_file(tmp, data)
    else:
        stage_output(data, tmp)  # moved (copied across filesystems), checked to be a plain file, fsynced
    return tmp


def _place_new(src: Path, folder: Path, stem: str, tag: str, suffix: str) -> Path:
    """Rename `src` to `<stem><tag><suffix>`; if another process took that name meanwhile, a fresh tag."""
    while True:
        final = folder / final_name(stem, tag, suffix)
        try:
            place(src, final)
            return final
        except FileExistsError:
            tag = free_tag(folder, stem, [suffix])


def _read_meta(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        log.warning("%s: unreadable, ignored: %s", path, e)
        return None
    return data if isinstance(data, dict) else None


def _remove(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def _json_bytes(data: dict[str, Any]) -> bytes:
    return (json.dumps(data, indent=2, ensure_ascii=False) + "\n").encode()


def _utc_now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
