"""The spool: claim an inbox entry, publish its result, put it back (recovery: `watcher.recovery`).

A job's life on disk::

    inbox/x.py --claim--> processing/<token>/x.py --publish--> done/x.mp4 + done/x.py
                                                           or failed/x.error.json + failed/x.py
                                                           or (requeue) inbox/x.py

Claim. Each claim gets a fresh directory `processing/<token>/` (an exclusive `mkdir`) and
the inbox entry is renamed into it. The rename is the ownership: when two workers or two
daemons race on one file, exactly one rename succeeds and the other sees ENOENT. The
entry is inspected only after the rename, in that private directory, so it cannot be
swapped under us: it is `lstat`ed first (a symlink, FIFO, device or directory is never
opened), then opened with O_NOFOLLOW | O_NONBLOCK and `fstat`ed (regular, one link,
under the size cap). A bad entry is published to failed/ like any failure.

Sidecar. `processing/<token>/.job.json` (replaced atomically) holds the original name,
the attempt count (raised by `begin_attempt` BEFORE a render starts, so a crash counts)
and, once a publish starts, its plan: the exact final name of every file.

Publish (to done/ or failed/; `requeue` is the same walk back to the inbox), in this
order, each step atomic:
  1. stage: move (or write) each output into the claim directory and fsync it;
  2. plan: choose final names that are all free in the target folder and write them
     into the sidecar;
  3. place: rename each output to its final name without replacing anything
     (renameat2 RENAME_NOREPLACE), then fsync the folder; the source goes LAST;
  4. drop the sidecar and the claim directory.

Crash reasoning (SIGKILL between any two syscalls, then `recover()` at start-up):
  - before the claim rename: the file is still in the inbox (an empty claim dir is removed);
  - claimed, rendering, or staged but no plan yet: the source is in processing/ and no
    result is visible anywhere. Staged outputs are deleted and the claim is re-queued
    (or, after `max_attempts` begun renders, failed as poison);
  - plan written: recovery rolls the publish FORWARD from the plan: every output not yet
    at its final name is placed, then the source. Nothing is rendered twice, no orphan
    MP4 is left in done/, and `done/x.py` never appears before `done/x.mp4`;
  - after the source is placed: only a sidecar or an empty directory remains; removed.
So every input ends in exactly one of done/ or failed/ (or back in the inbox after a
requeue), and done/ never holds a partial MP4: only complete, fsynced files are renamed in.

Different filesystems. Claiming needs inbox/ and processing/ on one filesystem (checked at
start): only a rename gives single ownership. done/, failed/ and work/ may be elsewhere:
`watcher.fsops` copies across filesystems without ever exposing a partial file.
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import json
import logging
import os
import re
import secrets
import stat
import threading
from collections.abc import Generator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

from . import folders
from .config import Folders, Settings
from .errors import ErrorRecord, WatcherError
from .fsops import (
    OPEN_FLAGS,
    file_kind,
    final_name,
    free_tag,
    fsync_dir,
    place,
    remove_quietly,
    stage_output,
    stamp,
    write_file,
)

log = logging.getLogger(__name__)

SIDECAR = ".job.json"
CLAIM_RE = re.compile(r"^\d{8}T\d{6}Z-\d+-\d+$")
_claim_counter = itertools.count(1)
T = TypeVar("T")


@dataclass
class Claimed:
    """A source this process owns, in its own directory under processing/."""

    path: Path  # processing/<token>/<name>
    name: str  # its name in the inbox
    attempts: int = 0  # renders begun so far, crashed ones included


@dataclass
class Rejected:
    """An inbox entry that was not a plain small file, moved aside to failed/."""

    name: str
    record: ErrorRecord
    paths: list[Path]


class Layout:
    """The five folders and every move between them.

    Args:
        folders: absolute paths (`Settings.folders`).
        max_source_bytes: the size cap for an inbox entry (`render.max_source_bytes`).
        max_attempts: begun renders after which an interrupted claim is poison
            (`daemon.max_attempts`).
    """

    def __init__(self, folders: Folders, *, max_source_bytes: int = 1_000_000, max_attempts: int = 3):
        self.folders = folders
        self.max_source_bytes = max_source_bytes
        self.max_attempts = max_attempts
        self._lock = threading.Lock()  # one publish at a time: name choice + placement
        self._ignored: set[tuple[str, int, int]] = set()  # (path, dev, inode) that could not be moved

    @classmethod
    def from_settings(cls, settings: Settings) -> Layout:
        limits = {"max_source_bytes": settings.render.max_source_bytes, "max_attempts": settings.daemon.max_attempts}
        return cls(settings.folders, **limits)

    # -- start-up ---------------------------------------------------------------------

    def ensure(self) -> None:  # see watcher.folders, for the next three
        folders.ensure(self.folders)

    def check(self) -> None:
        folders.check(self.folders)

    def lock(self) -> folders.DaemonLock:
        return folders.lock(self.folders)

    # -- claim ------------------------------------------------------------------------

    def ingest(self, path: str | os.PathLike[str]) -> Claimed | Rejected | None:
        """Claim one inbox entry, or move it aside to failed/ if it is not a plain small file.

        Returns:
            Claimed: ours now, a regular file with one link and at most max_source_bytes.
            Rejected: a symlink, FIFO, device, directory, hard link, oversize or unreadable
                file, now in failed/ with a phase "ingest" record (never followed or read).
            None: it vanished, another claimer won, or it cannot be moved (logged once).
        """
        path = Path(path)
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return None
        except OSError as e:
            log.warning("%s: cannot inspect: %s", path.name, e.strerror)
            return None
        key = (str(path), st.st_dev, st.st_ino)
        if key in self._ignored:
            return None
        claimed = self.claim_entry(path, key)
        if claimed is None:
            return None
        try:
            record = self.inspect(claimed)
        except FileNotFoundError:  # removed from processing/ behind our back
            self.drop_claim_dir(claimed.path.parent)
            return None
        if record is None:
            log.debug("%s: claimed as %s", claimed.name, claimed.path)
            return claimed
        return self.reject(claimed, record)

    def read_source(self, claimed: Claimed) -> bytes:
        """The claimed file's bytes (never through a symlink, never more than the cap)."""
        fd = os.open(claimed.path, OPEN_FLAGS)
        with os.fdopen(fd, "rb") as f:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise WatcherError(f"{claimed.name}: not a regular file")
            data = f.read(self.max_source_bytes + 1)
        if len(data) > self.max_source_bytes:
            raise WatcherError(f"{claimed.name}: larger than {self.max_source_bytes} bytes")
        return data

    def begin_attempt(self, claimed: Claimed) -> int:
        """Count one more render of `claimed`, durably, before it starts; returns the count."""
        folder = claimed.path.parent
        meta = read_claim_meta(folder)
        claimed.attempts = max(claimed.attempts, int(meta.get("attempts", 0))) + 1
        meta.update(name=claimed.name, attempts=claimed.attempts)
        _write_meta(folder, meta)
        return claimed.attempts

    def claim_entry(self, path: Path, key: tuple[str, int, int]) -> Claimed | None:
        folder = self._new_claim_dir()
        target = folder / path.name
        try:
            os.rename(path, target)
        except FileNotFoundError:  # gone, or another claimer renamed it first
            remove_quietly(folder)
            return None
        except OSError as e:
            remove_quietly(folder)
            if key not in self._ignored:
                self._ignored.add(key)
                log.warning("%s: cannot be claimed (%s); left where it is and ignored", path.name, e.strerror)
            return None
        fsync_dir(folder)
        return Claimed(target, path.name, 0)

    def _new_claim_dir(self) -> Path:
        while True:
            token = f"{stamp()}-{os.getpid()}-{next(_claim_counter):04d}"
            folder = self.folders.processing / token
            try:
                folder.mkdir(mode=0o700)
                return folder
            except FileExistsError:
                continue

    def inspect(self, claimed: Claimed) -> ErrorRecord | None:
        """Why `claimed` may not be rendered, or None. Never opens a non-regular entry."""
        name = claimed.name
        st = os.lstat(claimed.path)
        if stat.S_ISREG(st.st_mode):
            try:
                fd = os.open(claimed.path, OPEN_FLAGS)
            except OSError as e:
                if e.errno != errno.ELOOP:
                    return self._ingest_record(name, "Unreadable", f"{name} cannot be opened: {e.strerror}")
                st = os.lstat(claimed.path)  # swapped for a symlink after the lstat
            else:
                try:
                    st = os.fstat(fd)
                finally:
                    os.close(fd)
        kind = file_kind(st.st_mode)
        if kind is not None:
            return self._ingest_record(
                name, "NotARegularFile", f"{name} is {kind}, not a regular file; it was not followed or read"
            )
        if st.st_nlink != 1:
            return self._ingest_record(
                name,
                "HardLink",
                f"{name} has {st.st_nlink} hard links; only files with a single link are accepted "
                "(a hard link can expose a file from elsewhere)",
            )
        if st.st_size > self.max_source_bytes:
            return self._ingest_record(
                name,
                "TooLarge",
                f"{name} is {st.st_size} bytes, over the limit of {self.max_source_bytes} bytes",
                limit="render.max_source_bytes",
            )
        return None

    def _ingest_record(self, name: str, type_: str, message: str, limit: str | None = None) -> ErrorRecord:
        return ErrorRecord(source=name, phase="ingest", type=type_, message=message, limit=limit)

    def reject(self, claimed: Claimed, record: ErrorRecord) -> Rejected | None:
        try:
            paths = self.publish_failed(claimed, record)
        except OSError as e:
            # It stays in processing/, out of the inbox; recover() retries at the next start.
            log.error("%s: cannot move aside to failed/ (%s); left in %s", claimed.name, e.strerror, claimed.path)
            return None
        log.warning("%s: rejected: %s", claimed.name, record.message)
        return Rejected(claimed.name, record, paths)

    # -- publish ----------------------------------------------------------------------

    def publish_done(
        self, claimed: Claimed, videos: list[Path | bytes], suffixes: list[str] | None = None
    ) -> list[Path]:
        """File the videos, then the source, in done/; returns their final paths (source last).

        One video becomes `<stem><suffix>` (`x.mp4`); several keep what follows the stem in
        their own names (`x.Intro.mp4`; a name not starting with the stem gets `x.` in front).
        The videos are moved. When any name of the group is taken, the whole group gets one
        sortable suffix (`x.20261126T101500Z-001.py`, `x.20261126T101500Z-001.mp4`).

        Raises:
            WatcherError: a video is not a regular file with one link (nothing is published).
            OSError: the disk refused (the claim stays in processing/; recover() finishes it).
        """
        if not videos:
            raise ValueError("publish_done needs at least one video")
        stem = _split(claimed.name)[0]
        if suffixes is not None:  # given by the render (RenderResult.suffixes)
            if len(suffixes) != len(videos) or len(set(suffixes)) != len(suffixes):
                raise ValueError(f"need one distinct suffix per video, got {suffixes}")
        elif len(videos) == 1 and not isinstance(videos[0], bytes):
            suffixes = [Path(videos[0]).suffix or ".mp4"]
        else:
            names = [Path(v).name for v in videos if not isinstance(v, bytes)]
            suffixes = [n[len(stem) :] if n.startswith(stem + ".") else "." + n for n in names]
            if len(set(suffixes)) != len(suffixes):
                raise ValueError(f"two videos would get the same name: {suffixes}")
        outputs: list[tuple[Path | bytes | ErrorRecord, str]] = [
            (v if isinstance(v, bytes) else Path(v), s) for v, s in zip(videos, suffixes, strict=True)
        ]
        with self._lock:
            return run_steps(self._publish_steps(claimed, "done", outputs))

    def publish_failed(
        self, claimed: Claimed, record: ErrorRecord, kept: list[tuple[Path | bytes, str]] | None = None
    ) -> list[Path]:
        """File the error record (`x.error.json`), then the source, in failed/; returns the paths.

        `kept`: (file, suffix) of the outputs a file of several scenes rendered before it
        failed (`x.Intro.mp4`); they go beside the record.
        """
        if record.attempts is None and claimed.attempts:
            record = replace(record, attempts=claimed.attempts)
        outputs: list[tuple[Path | bytes | ErrorRecord, str]] = [(record, ".error.json"), *(kept or [])]
        with self._lock:
            return run_steps(self._publish_steps(claimed, "failed", outputs))

    def requeue(self, claimed: Claimed) -> Path:
        """Put a claimed source back into the inbox (a unique name if a new file took its name).

        A claim whose publish already began is published instead (it must not be in two
        places); the source's final path is returned either way.
        """
        with self._lock:
            return run_steps(self._publish_steps(claimed, "inbox", []))[-1]

    def _publish_steps(
        self, claimed: Claimed, folder_key: str, outputs: list[tuple[Path | bytes | ErrorRecord, str]]
    ) -> Generator[None, None, list[Path]]:
        """The publish as steps; each `yield` is a point where a SIGKILL may land.

        `publish_*` run it to the end; tests stop it part way, then call `recover()`.
        """
        folder = claimed.path.parent
        meta = read_claim_meta(folder)
        if meta.get("plan"):
            log.warning("%s: finishing the publish that was already under way", claimed.name)
            return (yield from self._finish_steps(folder, meta))
        # 1. stage
        items: list[list[str]] = []
        for i, (output, suffix) in enumerate(outputs):
            staged = folder / f".out-{i}{suffix}"
            if isinstance(output, ErrorRecord):
                write_file(staged, output.to_json().encode())
            elif isinstance(output, bytes):  # a document (x.meta.json)
                write_file(staged, output)
            else:
                stage_output(output, staged)
            items.append([staged.name, suffix])
            yield
        stem, source_suffix = _split(claimed.name)
        items.append([claimed.name, source_suffix])
        # 2. plan
        target = getattr(self.folders, folder_key)
        tag = free_tag(target, stem, [suffix for _, suffix in items])
        meta.update(name=claimed.name, attempts=claimed.attempts)
        meta["plan"] = {
            "folder": folder_key,
            "stem": stem,
            "items": [[staged, suffix, final_name(stem, tag, suffix)] for staged, suffix in items],
        }
        shortened = [final for _, suffix, final in meta["plan"]["items"] if final != stem + tag + suffix]
        if shortened:  # a name of up to 255 bytes leaves no room for ".error.json" or ".Intro.mp4"
            log.warning("%s: filed as %s (names are at most 255 bytes)", claimed.name, ", ".join(shortened))
        _write_meta(folder, meta)
        yield
        # 3 and 4. place and clean up
        return (yield from self._finish_steps(folder, meta))

    def finish_planned(self, folder: Path, meta: dict[str, Any]) -> list[Path]:
        """Finish a publish whose plan is in `meta` (an interrupted one, at start-up)."""
        with self._lock:
            return run_steps(self._finish_steps(folder, meta))

    def _finish_steps(self, folder: Path, meta: dict[str, Any]) -> Generator[None, None, list[Path]]:
        """Place every planned file not yet at its final name (the source last), then drop the claim."""
        plan = meta["plan"]
        target = getattr(self.folders, plan["folder"])
        items = plan["items"]
        finals = []
        for i, item in enumerate(items):
            staged, suffix, final = item
            if i == len(items) - 1:
                fsync_dir(target)  # the outputs' names are durable before the source moves
                yield
            if os.path.lexists(folder / staged):
                while True:
                    try:
                        place(folder / staged, target / final)
                        break
                    except FileExistsError:  # taken by someone outside this process: a new name
                        final = final_name(plan["stem"], free_tag(target, plan["stem"], [suffix]), suffix)
                        log.warning("%s: %s was taken; using %s", meta.get("name"), item[2], final)
                        item[2] = final
                        _write_meta(folder, meta)
                yield
            finals.append(target / final)
        fsync_dir(target)
        self.drop_claim_dir(folder)
        return finals

    def drop_claim_dir(self, folder: Path) -> None:
        """Remove a claim directory whose source has left (or never arrived)."""
        with contextlib.suppress(FileNotFoundError):
            os.unlink(folder / SIDECAR)
        with contextlib.suppress(FileNotFoundError):
            for entry in os.scandir(folder):
                if entry.name.startswith("."):  # staged outputs, temp files: ours
                    remove_quietly(Path(entry.path))
        try:
            os.rmdir(folder)
        except FileNotFoundError:
            pass
        except OSError as e:
            log.warning("cannot remove %s: %s", folder, e.strerror)

    # -- recovery ---------------------------------------------------------------------


def run_steps(steps: Generator[None, None, T]) -> T:
    while True:
        try:
            next(steps)
        except StopIteration as stop:
            return stop.value


def _split(name: str) -> tuple[str, str]:
    p = Path(name)
    return p.stem, p.suffix


def read_claim_meta(folder: Path) -> dict[str, Any]:
    try:
        data = json.loads((folder / SIDECAR).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as e:
        log.warning("ignoring unreadable %s: %s", folder / SIDECAR, e)
        return {}
    return data if isinstance(data, dict) else {}


def _write_meta(folder: Path, meta: dict[str, Any]) -> None:
    tmp = folder / f"{SIDECAR}.tmp-{secrets.token_hex(4)}"
    write_file(tmp, json.dumps(meta, indent=1).encode())
    os.replace(tmp, folder / SIDECAR)
    fsync_dir(folder)
