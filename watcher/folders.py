"""The five folders: creating and checking them, and the lock that makes one daemon their owner."""

from __future__ import annotations

import errno
import fcntl
import os
import stat
import tempfile
from pathlib import Path

from .config import Folders
from .errors import WatcherError

LOCK_NAME = ".watcher.lock"
FOLDER_KEYS = ("inbox", "processing", "done", "failed", "work")
PROBE_PREFIX = ".watcher-probe-"


def ensure(folders: Folders) -> None:
    """Create any missing folder (the inbox too).

    Raises:
        WatcherError: a folder path is a file, or cannot be created.
    """
    for key in FOLDER_KEYS:
        path = getattr(folders, key)
        try:
            path.mkdir(parents=True, exist_ok=True)
        except FileExistsError:
            raise WatcherError(f"folders.{key}: {path} exists and is not a directory")
        except OSError as e:
            raise WatcherError(f"folders.{key}: cannot create {path}: {e.strerror}")


def check(folders: Folders) -> None:
    """Check every folder exists, is a writable directory, and is distinct from the others.

    Raises:
        WatcherError: one line naming the folder key, the path and the problem.
    """
    seen: dict[tuple[int, int], str] = {}
    for key in FOLDER_KEYS:
        path = getattr(folders, key)
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
            fd, probe = tempfile.mkstemp(prefix=PROBE_PREFIX, dir=path)
        except OSError as e:
            raise WatcherError(f"folders.{key}: cannot write to {path}: {e.strerror}")
        os.close(fd)
        os.unlink(probe)
    # A claim must be a rename: probe one from the inbox into processing/.
    fd, probe = tempfile.mkstemp(prefix=PROBE_PREFIX, dir=folders.inbox)
    os.close(fd)
    moved = folders.processing / os.path.basename(probe)
    try:
        os.rename(probe, moved)
    except OSError as e:
        os.unlink(probe)
        if e.errno == errno.EXDEV:
            raise WatcherError(
                f"folders.inbox ({folders.inbox}) and folders.processing ({folders.processing}) "
                "must be on one filesystem: a claim is an atomic rename"
            )
        raise WatcherError(f"folders.processing: cannot move files into it from the inbox: {e.strerror}")
    os.unlink(moved)


def lock(folders: Folders) -> DaemonLock:
    """Lock the folders for this process (`with folders.lock(...): ...`).

    Raises:
        WatcherError: "another watcher (pid N) is already running on <processing>".
    """
    return DaemonLock(folders.processing / LOCK_NAME).acquire()


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
