"""The folders: claim, publish, collision-free names, crash recovery.

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

Different filesystems. Claiming needs inbox/ and processing/ on one filesystem (checked by
`check()`): only a rename gives single ownership. done/, failed/ and work/ may be
elsewhere: staging a video from work/ and publishing fall back when a rename fails with
EXDEV: copy to `.<name>.tmp-XXXXXXXX` in the target folder, fsync, rename into place (no
replace), fsync the folder, then unlink the original. A crash in that window leaves either
a temp file (swept by `recover()`) or the same content in both places (recognised by
comparing the bytes; the staged copy is dropped). Only regular files cross filesystems; a
rejected FIFO or directory that cannot be renamed stays where it is, logged, and is
retried at the next start.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import filecmp
import itertools
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
from collections.abc import Generator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

from . import jobfs
from .config import Folders, Settings
from .errors import ErrorRecord, WatcherError

log = logging.getLogger(__name__)

LOCK_NAME = ".watcher.lock"
SIDECAR = ".job.json"
FOLDER_KEYS = ("inbox", "processing", "done", "failed", "work")
_PROBE_PREFIX = ".watcher-probe-"
_TMP_RE = re.compile(r"^\..+\.tmp-[0-9a-f]{8}$")
_CLAIM_RE = re.compile(r"^\d{8}T\d{6}Z-\d+-\d+$")
_NAME_MAX = 255  # bytes in one path component on Linux filesystems
_OPEN_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
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


class DaemonLock:
    """An exclusive `flock` on `processing/.watcher.lock`, which holds the owner's pid.

    Released by `release()` or at exit of the `with` block (or when the process dies).
    The lock belongs to the open file description: a forked child that outlives the
    daemon keeps it, so children should close `fileno()` (exec'ed ones do: O_CLOEXEC).
    """

    def __init__(self, path: Path):
        self.path = path
        self._fd: int | None = None

    def acquire(self) -> DaemonLock:
        """Take the lock or raise WatcherError naming the pid that holds it."""
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
        except OSError as e:
            raise WatcherError(f"cannot open lock file {self.path}: {e.strerror}")
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "?"
            os.close(fd)
            raise WatcherError(f"another watcher (pid {pid}) is already running on {self.path.parent}")
        except OSError as e:
            os.close(fd)
            raise WatcherError(f"cannot lock {self.path}: {e.strerror}")
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd
        return self

    def fileno(self) -> int | None:
        return self._fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing drops the flock; the file stays (unlinking would race)
            self._fd = None

    def __enter__(self) -> DaemonLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


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
        return cls(
            settings.folders,
            max_source_bytes=settings.render.max_source_bytes,
            max_attempts=settings.daemon.max_attempts,
        )

    # -- start-up ---------------------------------------------------------------------

    def ensure(self) -> None:
        """Create any missing folder (the inbox too).

        Raises:
            WatcherError: a folder path is a file, or cannot be created.
        """
        for key in FOLDER_KEYS:
            path = getattr(self.folders, key)
            try:
                path.mkdir(parents=True, exist_ok=True)
            except FileExistsError:
                raise WatcherError(f"folders.{key}: {path} exists and is not a directory")
            except OSError as e:
                raise WatcherError(f"folders.{key}: cannot create {path}: {e.strerror}")

    def check(self) -> None:
        """Check every folder exists, is a writable directory, and is distinct from the others.

        Raises:
            WatcherError: one line naming the folder key, the path and the problem.
        """
        seen: dict[tuple[int, int], str] = {}
        for key in FOLDER_KEYS:
            path = getattr(self.folders, key)
            try:
                st = os.stat(path)
            except FileNotFoundError:
                raise WatcherError(f"folders.{key}: {path} does not exist")
            except OSError as e:
                raise WatcherError(f"folders.{key}: cannot access {path}: {e.strerror}")
            if not stat.S_ISDIR(st.st_mode):
                raise WatcherError(f"folders.{key}: {path} is not a directory")
            if (st.st_dev, st.st_ino) in seen:
                other = seen[(st.st_dev, st.st_ino)]
                raise WatcherError(f"folders.{key} and folders.{other} are the same directory: {path}")
            seen[(st.st_dev, st.st_ino)] = key
            try:
                fd, probe = tempfile.mkstemp(prefix=_PROBE_PREFIX, dir=path)
            except OSError as e:
                raise WatcherError(f"folders.{key}: cannot write to {path}: {e.strerror}")
            os.close(fd)
            os.unlink(probe)
        # A claim must be a rename: probe one from the inbox into processing/.
        fd, probe = tempfile.mkstemp(prefix=_PROBE_PREFIX, dir=self.folders.inbox)
        os.close(fd)
        moved = self.folders.processing / os.path.basename(probe)
        try:
            os.rename(probe, moved)
        except OSError as e:
            os.unlink(probe)
            if e.errno == errno.EXDEV:
                raise WatcherError(
                    f"folders.inbox ({self.folders.inbox}) and folders.processing ({self.folders.processing}) "
                    "must be on one filesystem: a claim is an atomic rename"
                )
            raise WatcherError(f"folders.processing: cannot move files into it from the inbox: {e.strerror}")
        os.unlink(moved)

    def lock(self) -> DaemonLock:
        """Lock the folders for this process (`with layout.lock(): ...`).

        Raises:
            WatcherError: "another watcher (pid N) is already running on <processing>".
        """
        return DaemonLock(self.folders.processing / LOCK_NAME).acquire()

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
        claimed = self._claim(path, key)
        if claimed is None:
            return None
        try:
            record = self._inspect(claimed)
        except FileNotFoundError:  # removed from processing/ behind our back
            self._drop_claim_dir(claimed.path.parent)
            return None
        if record is None:
            log.debug("%s: claimed as %s", claimed.name, claimed.path)
            return claimed
        return self._reject(claimed, record)

    def read_source(self, claimed: Claimed) -> bytes:
        """The claimed file's bytes (never through a symlink, never more than the cap)."""
        fd = os.open(claimed.path, _OPEN_FLAGS)
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
        meta = _read_meta(folder)
        claimed.attempts = max(claimed.attempts, int(meta.get("attempts", 0))) + 1
        meta.update(name=claimed.name, attempts=claimed.attempts)
        _write_meta(folder, meta)
        return claimed.attempts

    def _claim(self, path: Path, key: tuple[str, int, int]) -> Claimed | None:
        folder = self._new_claim_dir()
        target = folder / path.name
        try:
            os.rename(path, target)
        except FileNotFoundError:  # gone, or another claimer renamed it first
            _remove_quietly(folder)
            return None
        except OSError as e:
            _remove_quietly(folder)
            if key not in self._ignored:
                self._ignored.add(key)
                log.warning("%s: cannot be claimed (%s); left where it is and ignored", path.name, e.strerror)
            return None
        fsync_dir(folder)
        return Claimed(target, path.name, 0)

    def _new_claim_dir(self) -> Path:
        while True:
            token = f"{_stamp()}-{os.getpid()}-{next(_claim_counter):04d}"
            folder = self.folders.processing / token
            try:
                folder.mkdir(mode=0o700)
                return folder
            except FileExistsError:
                continue

    def _inspect(self, claimed: Claimed) -> ErrorRecord | None:
        """Why `claimed` may not be rendered, or None. Never opens a non-regular entry."""
        name = claimed.name
        st = os.lstat(claimed.path)
        if stat.S_ISREG(st.st_mode):
            try:
                fd = os.open(claimed.path, _OPEN_FLAGS)
            except OSError as e:
                if e.errno != errno.ELOOP:
                    return self._ingest_record(name, "Unreadable", f"{name} cannot be opened: {e.strerror}")
                st = os.lstat(claimed.path)  # swapped for a symlink after the lstat
            else:
                try:
                    st = os.fstat(fd)
                finally:
                    os.close(fd)
        kind = _kind(st.st_mode)
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

    def _reject(self, claimed: Claimed, record: ErrorRecord) -> Rejected | None:
        try:
            paths = self.publish_failed(claimed, record)
        except OSError as e:
            # It stays in processing/, out of the inbox; recover() retries at the next start.
            log.error("%s: cannot move aside to failed/ (%s); left in %s", claimed.name, e.strerror, claimed.path)
            return None
        log.warning("%s: rejected: %s", claimed.name, record.message)
        return Rejected(claimed.name, record, paths)

    # -- publish ----------------------------------------------------------------------

    def publish_done(self, claimed: Claimed, videos: list[Path], suffixes: list[str] | None = None) -> list[Path]:
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
        elif len(videos) == 1:
            suffixes = [Path(videos[0]).suffix or ".mp4"]
        else:
            names = [Path(v).name for v in videos]
            suffixes = [n[len(stem) :] if n.startswith(stem + ".") else "." + n for n in names]
            if len(set(suffixes)) != len(suffixes):
                raise ValueError(f"two videos would get the same name: {suffixes}")
        outputs: list[tuple[Path | ErrorRecord, str]] = list(zip(map(Path, videos), suffixes, strict=True))
        with self._lock:
            return _run(self._publish_steps(claimed, "done", outputs))

    def publish_failed(
        self, claimed: Claimed, record: ErrorRecord, kept: list[tuple[Path, str]] | None = None
    ) -> list[Path]:
        """File the error record (`x.error.json`), then the source, in failed/; returns the paths.

        `kept`: (file, suffix) of the outputs a file of several scenes rendered before it
        failed (`x.Intro.mp4`); they go beside the record.
        """
        if record.attempts is None and claimed.attempts:
            record = replace(record, attempts=claimed.attempts)
        outputs: list[tuple[Path | ErrorRecord, str]] = [(record, ".error.json"), *(kept or [])]
        with self._lock:
            return _run(self._publish_steps(claimed, "failed", outputs))

    def requeue(self, claimed: Claimed) -> Path:
        """Put a claimed source back into the inbox (a unique name if a new file took its name).

        A claim whose publish already began is published instead (it must not be in two
        places); the source's final path is returned either way.
        """
        with self._lock:
            return _run(self._publish_steps(claimed, "inbox", []))[-1]

    def _publish_steps(
        self, claimed: Claimed, folder_key: str, outputs: list[tuple[Path | ErrorRecord, str]]
    ) -> Generator[None, None, list[Path]]:
        """The publish as steps; each `yield` is a point where a SIGKILL may land.

        `publish_*` run it to the end; tests stop it part way, then call `recover()`.
        """
        folder = claimed.path.parent
        meta = _read_meta(folder)
        if meta.get("plan"):
            log.warning("%s: finishing the publish that was already under way", claimed.name)
            return (yield from self._finish_steps(folder, meta))
        # 1. stage
        items: list[list[str]] = []
        for i, (output, suffix) in enumerate(outputs):
            staged = folder / f".out-{i}{suffix}"
            if isinstance(output, ErrorRecord):
                write_file(staged, output.to_json().encode())
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
        self._drop_claim_dir(folder)
        return finals

    def _drop_claim_dir(self, folder: Path) -> None:
        """Remove a claim directory whose source has left (or never arrived)."""
        with contextlib.suppress(FileNotFoundError):
            os.unlink(folder / SIDECAR)
        with contextlib.suppress(FileNotFoundError):
            for entry in os.scandir(folder):
                if entry.name.startswith("."):  # staged outputs, temp files: ours
                    _remove_quietly(Path(entry.path))
        try:
            os.rmdir(folder)
        except FileNotFoundError:
            pass
        except OSError as e:
            log.warning("cannot remove %s: %s", folder, e.strerror)

    # -- recovery ---------------------------------------------------------------------

    def recover(self) -> list[Claimed]:
        """Settle what an earlier run left behind; call once at start-up, under `lock()`.

        Finishes interrupted publishes, removes empty or orphaned claim directories and
        everything under work/, sweeps stale temp files, rejects bad entries, files claims
        with `attempts >= max_attempts` in failed/ as "poison", and returns the rest
        (oldest claim first) to be rendered again.
        """
        self._clean_work()
        claims = []
        try:
            names = sorted(os.listdir(self.folders.processing))
        except FileNotFoundError:
            names = []
        for name in names:
            path = self.folders.processing / name
            if name.startswith("."):  # the lock file, probes
                continue
            try:
                st = os.lstat(path)
            except FileNotFoundError:
                continue
            if not (_CLAIM_RE.match(name) and stat.S_ISDIR(st.st_mode)):
                # A stray entry (put there by hand): claim it like an inbox entry.
                adopted = self._claim(path, (str(path), st.st_dev, st.st_ino))
                if adopted is None:
                    continue
                path = adopted.path.parent
            claimed = self._recover_claim(path)
            if claimed is not None:
                claims.append(claimed)
        self._sweep_temps()
        return claims

    def _recover_claim(self, folder: Path) -> Claimed | None:
        meta = _read_meta(folder)
        if meta.get("plan"):
            try:
                with self._lock:
                    finals = _run(self._finish_steps(folder, meta))
            except OSError as e:
                log.error("%s: cannot finish the interrupted publish: %s", meta.get("name"), e)
            else:
                log.info("%s: finished an interrupted publish: %s", meta.get("name"), finals[-1])
            return None
        sources = []
        for entry in os.scandir(folder):
            if not entry.name.startswith("."):
                sources.append(entry.name)
            elif entry.name != SIDECAR:  # outputs staged before the plan was written
                _remove_quietly(Path(entry.path))
        if not sources:
            log.info("removing the empty claim %s", folder.name)
            self._drop_claim_dir(folder)
            return None
        if len(sources) > 1:
            log.error("claim %s holds %d files (%s); left for a person to sort out", folder, len(sources), sources)
            return None
        claimed = Claimed(folder / sources[0], sources[0], int(meta.get("attempts", 0)))
        record = self._inspect(claimed)
        if record is not None:
            self._reject(claimed, record)
            return None
        if claimed.attempts >= self.max_attempts:
            record = ErrorRecord(
                source=claimed.name,
                phase="poison",
                type="RepeatedCrash",
                message=f"crashed the renderer {claimed.attempts} times; not retried "
                f"(daemon.max_attempts is {self.max_attempts})",
                attempts=claimed.attempts,
            )
            try:
                self.publish_failed(claimed, record)
                log.error("%s: failed: %s", claimed.name, record.message)
            except OSError as e:
                log.error("%s: cannot file as poison: %s", claimed.name, e)
            return None
        log.info("%s: interrupted after %d attempt(s); queued again", claimed.name, claimed.attempts)
        return claimed

    def _clean_work(self) -> None:
        """Remove what dead processes left in work/: each tree in bounded time, the rest in the background.

        A job directory is whatever a scene made of it (thousands of levels, chmod 000,
        millions of files): `jobfs.discard` never recurses and never raises, and moves
        what it cannot remove in time to work/.trash, emptied by a background thread, so
        that a start-up always succeeds.
        """
        with contextlib.suppress(FileNotFoundError):
            for entry in os.scandir(self.folders.work):
                if entry.name == jobfs.TRASH or jobfs.owned_by_live_process(entry.name):  # a `watcher render` now
                    continue
                log.info("removing orphaned job directory %s", entry.path)
                jobfs.discard(Path(entry.path))
        if os.path.lexists(self.folders.work / jobfs.TRASH):
            threading.Thread(
                target=jobfs.empty_trash, args=(self.folders.work,), name="empty-trash", daemon=True
            ).start()

    def _sweep_temps(self) -> None:
        """Remove our temp files and probes; in the inbox only probes (other temp names are users')."""
        for key in ("inbox", "processing", "done", "failed"):
            folder = getattr(self.folders, key)
            with contextlib.suppress(FileNotFoundError):
                for entry in os.scandir(folder):
                    ours = entry.name.startswith(_PROBE_PREFIX) or (key != "inbox" and _TMP_RE.match(entry.name))
                    if ours and entry.is_file(follow_symlinks=False):
                        log.info("removing stale temp file %s", entry.path)
                        _remove_quietly(Path(entry.path))


# -- filesystem helpers (batch.py files its results with these too) ----------------------


def _run(steps: Generator[None, None, T]) -> T:
    while True:
        try:
            next(steps)
        except StopIteration as stop:
            return stop.value


def _stamp() -> str:
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())


def _split(name: str) -> tuple[str, str]:
    p = Path(name)
    return p.stem, p.suffix


def final_name(stem: str, tag: str, suffix: str) -> str:
    """`stem + tag + suffix`, the stem shortened if the whole would not fit in a name."""
    room = _NAME_MAX - len(os.fsencode(tag + suffix))
    encoded = os.fsencode(stem)
    if len(encoded) > room:
        stem = encoded[:room].decode("utf-8", "ignore")
    return stem + tag + suffix


def free_tag(folder: Path, stem: str, suffixes: list[str]) -> str:
    """No tag if every `stem + suffix` is free in `folder`, else the first free `.<UTC stamp>-NNN`."""

    def free(tag: str) -> bool:
        return not any(os.path.lexists(folder / final_name(stem, tag, s)) for s in suffixes)

    if free(""):
        return ""
    stamp = _stamp()
    for n in range(1, 1000):
        if free(tag := f".{stamp}-{n:03d}"):
            return tag
    return f".{stamp}-{secrets.token_hex(4)}"


def _kind(mode: int) -> str | None:
    """What a non-regular entry is, for a message; None for a regular file."""
    kinds = (
        (stat.S_ISREG, None),
        (stat.S_ISLNK, "a symbolic link"),
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a FIFO (named pipe)"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    )
    return next((kind for test, kind in kinds if test(mode)), "a special file")


def stage_output(src: Path, staged: Path) -> None:
    """Move a result into the claim directory; it must be a regular file with one link."""
    try:
        os.rename(src, staged)
    except OSError as e:
        if e.errno != errno.EXDEV:
            raise
        _copy_file(src, staged)
        os.unlink(src)
    problem = WatcherError(f"output {src.name} is not a regular file with one link; not published")
    try:
        fd = os.open(staged, _OPEN_FLAGS)
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise problem
        raise
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1:
            raise problem
        with contextlib.suppress(OSError):
            os.fchmod(fd, 0o644)  # no setuid or odd bits from the job
        os.fsync(fd)
    finally:
        os.close(fd)


def place(src: Path, dst: Path) -> None:
    """Rename `src` to `dst` without replacing anything; copy across filesystems.

    Raises:
        FileExistsError: `dst` is taken by something other than `src`'s content.
    """
    try:
        _rename_noreplace(src, dst)
        return
    except FileExistsError:
        if not _same_file(src, dst):
            raise
        os.unlink(src)  # an earlier, interrupted copy already put it there
        return
    except OSError as e:
        if e.errno != errno.EXDEV or not stat.S_ISREG(os.lstat(src).st_mode):
            raise
    tmp = dst.parent / f".{dst.name[:100]}.tmp-{secrets.token_hex(4)}"
    _copy_file(src, tmp)
    try:
        _rename_noreplace(tmp, dst)
    except OSError:
        os.unlink(tmp)
        raise
    fsync_dir(dst.parent)
    os.unlink(src)


def _same_file(a: Path, b: Path) -> bool:
    try:
        sa, sb = os.lstat(a), os.lstat(b)
    except FileNotFoundError:
        return False
    if sa.st_dev == sb.st_dev:  # on one filesystem only the same inode is "ours"
        return sa.st_ino == sb.st_ino
    regular = stat.S_ISREG(sa.st_mode) and stat.S_ISREG(sb.st_mode)
    return regular and sa.st_size == sb.st_size and filecmp.cmp(a, b, shallow=False)


def _copy_file(src: Path, dst: Path) -> None:
    """Copy a regular file to a new name, fsynced; never follows a symlink."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    with os.fdopen(os.open(src, _OPEN_FLAGS), "rb") as fin, os.fdopen(os.open(dst, flags, 0o644), "wb") as fout:
        shutil.copyfileobj(fin, fout, 1 << 20)
        fout.flush()
        os.fsync(fout.fileno())


def write_file(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(fd)


def _read_meta(folder: Path) -> dict[str, Any]:
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


def fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # some filesystems cannot fsync a directory
        pass
    finally:
        os.close(fd)


def _remove_quietly(path: Path) -> None:
    """Remove a file or a whole tree (never following a link, whatever its depth or modes); log what stays."""
    try:
        if not jobfs.remove_tree(path, budget=10.0):
            log.warning("cannot fully remove %s within 10 s", path)
    except OSError as e:
        log.warning("cannot remove %s: %s", path, e.strerror)


# renameat2(RENAME_NOREPLACE): an atomic rename that fails with EEXIST instead of replacing.
_AT_FDCWD = -100
_RENAME_NOREPLACE = 1


def _load_renameat2() -> Any:
    try:
        fn = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    fn.restype = ctypes.c_int
    return fn


_renameat2 = _load_renameat2()


def _rename_noreplace(src: Path, dst: Path) -> None:
    """Rename, failing with FileExistsError if `dst` exists.

    Uses renameat2(RENAME_NOREPLACE); where the libc or the filesystem lacks it, falls
    back to link + unlink for files (atomic, but for a moment the file has two names) and
    to check-then-rename for directories.
    """
    if _renameat2 is not None:
        if _renameat2(_AT_FDCWD, os.fsencode(src), _AT_FDCWD, os.fsencode(dst), _RENAME_NOREPLACE) == 0:
            return
        err = ctypes.get_errno()
        if err not in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
            raise OSError(err, os.strerror(err), str(src), None, str(dst))
    if stat.S_ISDIR(os.lstat(src).st_mode):
        if os.path.lexists(dst):
            raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), str(dst))
        os.rename(src, dst)
        return
    os.link(src, dst, follow_symlinks=False)
    os.unlink(src)
