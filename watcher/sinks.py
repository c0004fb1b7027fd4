"""Where results go: the spool's done/ and failed/, an output folder, or in place.

    SpoolSink     the daemon: done/ or failed/ through the claim's crash-safe publish
                  (`watcher.layout`); a cancelled job goes back to the inbox
    FolderSink    `watcher render --out DIR`: new names only, the source moved in with `--move`
    InPlaceSink   `watcher rerender`: a filed result replaced beside its source once the new
                  render succeeded; a source in failed/ that now renders moves to done/

Nothing is ever replaced except by a re-render, and only its own files. New names are
chosen as the daemon chooses them: `x.mp4`, or the whole group under one sortable tag
(`x.20261126T101500Z-001.mp4`) when any name is taken.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import shutil
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import jobfs
from .errors import ErrorRecord, WatcherError
from .fsops import final_name, free_tag, fsync_dir, place, stage_output, write_file
from .job import RenderResult
from .layout import Claimed, Layout
from .pipeline import Source
from .sidecar import ERROR_SUFFIX, META_SUFFIX, Item, has_video, read_meta, sidecar_videos, up_to_date
from .sources import ClaimSource

log = logging.getLogger(__name__)


class SpoolSink:
    """The daemon's folders: done/ or failed/, published from the claim in processing/."""

    def __init__(self, layout: Layout):
        self.layout = layout

    def skip(self, job: Source, key: str) -> str | None:
        return None

    def previous(self, job: Source) -> dict[str, Any] | None:
        return None

    def cancelled(self, job: Source) -> None:
        assert isinstance(job, ClaimSource)
        back = self.layout.requeue(job.claimed)
        log.info("%s: cancelled by shutdown; put back as %s", job.name, back)

    def file(self, job: Source, result: RenderResult, items: list[Item]) -> tuple[list[Path], str]:
        assert isinstance(job, ClaimSource)
        claimed = job.claimed
        if result.ok:
            try:
                paths = self.layout.publish_done(claimed, [data for _, data in items], [s for s, _ in items])
                return paths, ""
            except WatcherError as e:  # a video the scene swapped for a link after verification
                result.ok = False
                result.record = ErrorRecord(claimed.name, "render", "InvalidVideo", str(e))
                items = []  # the meta.json made for the success would say it rendered
        assert result.record is not None
        kept = [(data, suffix) for suffix, data in items if suffix != ERROR_SUFFIX]
        return self.layout.publish_failed(claimed, result.record, kept), ""


@dataclass
class FolderSink:
    """An output folder (`watcher render --out`): `<stem>.mp4` or `<stem>.error.json`, and `<stem>.meta.json`."""

    folder: Path
    move: bool = False  # move each source in beside its result, once that is filed

    def skip(self, job: Source, key: str) -> str | None:
        return None

    def previous(self, job: Source) -> dict[str, Any] | None:
        return None

    def cancelled(self, job: Source) -> None:
        pass  # the source never left its place

    def file(self, job: Source, result: RenderResult, items: list[Item]) -> tuple[list[Path], str]:
        return publish(self.folder, job.path.stem, items, source=job.path if self.move else None), ""


class InPlaceSink:
    """A filed result, rendered again beside its source (`watcher rerender`).

    Success replaces the source's own outputs (and drops an error record); failure keeps
    them and writes the new record. A source in the configured failed/ folder that now
    renders is moved, with its outputs, to done/ by the daemon's publish (never
    overwriting there).
    """

    def __init__(self, layout: Layout):
        self.layout = layout
        self.failed_dir = layout.folders.failed.resolve()

    def skip(self, job: Source, key: str) -> str | None:
        folder, stem = job.path.parent, job.path.stem
        if up_to_date(folder, stem, self.previous(job), key):
            return "unchanged since its last render"
        return None

    def previous(self, job: Source) -> dict[str, Any] | None:
        return read_meta(job.path.parent / (job.path.stem + META_SUFFIX))

    def cancelled(self, job: Source) -> None:
        pass

    def file(self, job: Source, result: RenderResult, items: list[Item]) -> tuple[list[Path], str]:
        path = job.path
        folder, stem = path.parent, path.stem
        previous = self.previous(job)
        if result.ok and folder.resolve() == self.failed_dir:
            outputs = _move_to_done(path, items, self.layout)
            return outputs, f"moved from {folder.name}/ to {outputs[-1].parent.name}/"
        had_video = has_video(folder, stem, previous)
        if not result.ok:
            # The outputs of a failed file's scenes that did render are not filed in place:
            # they would replace the last good render's.
            items = [(s, d) for s, d in items if s in (ERROR_SUFFIX, META_SUFFIX)]
            return replace(folder, stem, items), "kept the previous MP4" if had_video else ""
        outputs = replace(folder, stem, items)
        _remove(folder / (stem + ERROR_SUFFIX))
        # What the previous render wrote and this one did not (a still that now animates
        # leaves no PNG beside its new MP4).
        stale = {".mp4", ".png", *(v["suffix"] for v in sidecar_videos(previous))} - set(result.suffixes)
        for suffix in stale:
            _remove(folder / (stem + suffix))
        return outputs, "replaced the previous MP4" if had_video else ""


def _move_to_done(path: Path, items: list[Item], layout: Layout) -> list[Path]:
    """File a source from failed/ that now renders in done/, with its MP4s and meta.

    The daemon's own claim and publish do it, so it is crash-safe (a daemon start rolls
    an interrupted publish forward) and never overwrites anything in done/.
    """
    staging = jobfs.make_dir(layout.folders.work, f"rerender-{os.getpid()}-")  # held: a starting daemon keeps it
    try:
        files: list[Path | bytes] = []
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


def _remove(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
