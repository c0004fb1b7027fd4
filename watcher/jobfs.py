"""Job directories, and everything read from or removed in them, treated as hostile.

A render child owns its job directory, and once scene code has run, anything can be
there: symlinks (to host files, or back into done/), FIFOs, hard links, files growing
without end, trees thousands of levels deep, directories chmodded to 000, millions of
entries. The daemon that reads and removes them is often root. So nothing here follows a
path by name: every step opens one component relative to a directory file descriptor
with O_NOFOLLOW, an entry is `lstat`ed before it is opened and `fstat`ed after (a regular
file with one link, owned by the job, under a size cap), opens never block (O_NONBLOCK),
and reads are capped. Outputs are *copied* out into a folder the child never sees, so
what is verified is what is published, and the render user cannot change it afterwards.

A job's folders::

    work/job-<pid>-<stem>-XXXXXXXX/     JobDir.root: ours, mode 0711 (the render user may
                                        pass through, not list)
        <32 random hex digits>/         JobDir.path: the child's (its HOME); unguessable, so
                                        another job cannot reach it even without the mount layer
        results/                        JobDir.results: ours, 0700: the verified copies

Removal (`remove_tree`) never recurses: it renames every directory it meets up to the top
of the tree being removed, so depth and open file descriptors stay constant whatever the
scene built; it reopens directories a scene chmodded, and it stops at a deadline. What
it cannot remove in time is moved to `work/.trash/` (`discard`), which `empty_trash`
clears in the background, so no job and no start-up ever waits on a hostile tree.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import re
import secrets
import stat
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from .errors import WatcherError

log = logging.getLogger(__name__)

TRASH = ".trash"  # in folders.work: what could not be removed in time
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_CHECK_EVERY = 256  # entries removed between two looks at the clock


class UnsafeEntry(WatcherError):
    """A path in a job directory is not a plain file of the job's (or does not exist)."""


class Missing(UnsafeEntry):
    """The path does not exist (a killed job wrote nothing: not a sign of tampering)."""


@dataclass(frozen=True)
class JobDir:
    root: Path  # ours: the parent of the other two
    path: Path  # the child's; hostile once scene code has run
    results: Path  # ours: verified copies of the outputs


def create(work: Path, kind: str, stem: str) -> JobDir:
    """A new job directory under `work` (created if missing), named `<kind>-<pid>-<stem>-...`.

    This process holds it (see `make_dir`) until `discard` removes it.
    """
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", stem).strip("._")[:40]
    root = make_dir(work, f"{kind}-{os.getpid()}-{safe}-")
    os.chmod(root, 0o711)
    results = root / "results"
    results.mkdir(mode=0o700)
    return renew(JobDir(root, root, results))


# Every directory a process makes in folders.work is held with an exclusive flock on an
# open descriptor for as long as it is in use; a starting daemon removes only directories
# it can lock itself, whatever their names: their owner is dead (the kernel drops the
# lock with the process). A name says nothing: a pid in it may be reused.
_held: dict[str, int] = {}
_held_lock = threading.Lock()


def make_dir(work: Path, prefix: str) -> Path:
    """A new, empty directory `work/<prefix>XXXXXXXX`, held by this process until `discard`."""
    work.mkdir(parents=True, exist_ok=True)
    while True:
        path = Path(tempfile.mkdtemp(prefix=prefix, dir=work))
        fd = os.open(path, _DIR_FLAGS)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            if os.fstat(fd).st_nlink > 0:  # a starting daemon did not remove it before the lock
                with _held_lock:
                    _held[str(path)] = fd
                return path
        except BlockingIOError:  # a starting daemon is removing it: take another
            pass
        os.close(fd)


@contextlib.contextmanager
def claim_orphan(path: Path) -> Iterator[bool]:
    """True, holding its lock for the `with` block, when no live process holds the work entry
    `path` (its owner died, or it is a stray file); False while one does (this process too)."""
    try:
        fd = os.open(path, _DIR_FLAGS)
    except FileNotFoundError:
        yield False
        return
    except OSError:  # not a directory (a stray file, a link): nobody's
        yield True
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
        else:
            yield True
    finally:
        os.close(fd)


def _release(path: Path) -> None:
    with _held_lock:
        fd = _held.pop(str(path), None)
    if fd is not None:
        os.close(fd)


def renew(job: JobDir) -> JobDir:
    """The same job with a new, empty directory for the child (a retry never reuses a tainted one)."""
    path = job.root / secrets.token_hex(16)
    path.mkdir(mode=0o700)
    return JobDir(job.root, path, job.results)


# -- reading ------------------------------------------------------------------------------


def open_dir(path: Path) -> int:
    """A directory fd for `path` itself (its last component is never a followed link)."""
    return os.open(path, _DIR_FLAGS)


def open_file(dir_fd: int, relpath: str, *, max_bytes: int, owners: set[int]) -> int:
    """Open `relpath` under `dir_fd` for reading, or raise UnsafeEntry saying why not.

    Every component is opened with O_NOFOLLOW; the file must be a regular file with one
    link, owned by one of `owners`, of at most `max_bytes`. A FIFO, device or socket is
    never opened.
    """
    folder, _, name = relpath.rpartition("/")
    if name in ("", ".", ".."):
        raise ValueError(f"not a plain relative path: {relpath!r}")
    current = _open_path(dir_fd, folder, relpath) if folder else dir_fd
    try:
        try:
            before = os.stat(name, dir_fd=current, follow_symlinks=False)
        except FileNotFoundError:
            raise Missing(f"{relpath} does not exist") from None
        _check(before, relpath, max_bytes, owners)
        fd = _open_at(current, name, _FILE_FLAGS, relpath)
        try:
            after = os.fstat(fd)
            if (after.st_dev, after.st_ino) != (before.st_dev, before.st_ino):
                raise UnsafeEntry(f"{relpath} was replaced while it was opened")
            _check(after, relpath, max_bytes, owners)
        except BaseException:
            os.close(fd)
            raise
        return fd
    finally:
        if current != dir_fd:
            os.close(current)


def read_file(dir_fd: int, relpath: str, *, max_bytes: int, owners: set[int]) -> bytes:
    """The bytes of `relpath` (see `open_file`); UnsafeEntry if it grew past `max_bytes`."""
    fd = open_file(dir_fd, relpath, max_bytes=max_bytes, owners=owners)
    with os.fdopen(fd, "rb") as f:
        data = f.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise UnsafeEntry(f"{relpath} is larger than {max_bytes} bytes")
    return data


def copy_out(dir_fd: int, relpath: str, dest: Path, *, max_bytes: int, owners: set[int]) -> None:
    """Copy `relpath` (see `open_file`) to the new file `dest`, which is ours, mode 0644."""
    fd = open_file(dir_fd, relpath, max_bytes=max_bytes, owners=owners)
    try:
        out = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
        try:
            copied = 0
            while n := os.copy_file_range(fd, out, 1 << 24):
                copied += n
                if copied > max_bytes:  # still growing: a process of the job is writing to it
                    raise UnsafeEntry(f"{relpath} grew past {max_bytes} bytes while it was copied")
        finally:
            os.close(out)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(dest)
        raise
    finally:
        os.close(fd)


def read_dir(
    dir_fd: int, reldir: str, pattern: re.Pattern[str], *, max_bytes: int, owners: set[int]
) -> dict[str, bytes]:
    """The files directly in `reldir` whose names match `pattern`, read as `read_file` does.

    Entries that are not plain files of the job's are skipped; a missing `reldir` gives {}.
    """
    try:
        fd = _open_path(dir_fd, reldir)
    except Missing:
        return {}
    found: dict[str, bytes] = {}
    try:
        for name in os.listdir(fd):
            if pattern.fullmatch(name):
                with contextlib.suppress(UnsafeEntry):
                    found[name] = read_file(fd, name, max_bytes=max_bytes, owners=owners)
    finally:
        os.close(fd)
    return found


def _open_path(dir_fd: int, reldir: str, shown: str | None = None) -> int:
    """A directory fd for `reldir` under `dir_fd`, every component opened with O_NOFOLLOW.

    `shown`: the path errors name (a file's path, when `reldir` is the way to it).
    """
    fd = os.dup(dir_fd)
    try:
        for part in reldir.split("/"):
            if part in ("", ".", ".."):
                raise ValueError(f"not a plain relative path: {shown or reldir!r}")
            new = _open_at(fd, part, _DIR_FLAGS, shown or reldir)
            os.close(fd)
            fd = new
    except BaseException:
        os.close(fd)
        raise
    return fd


def _open_at(dir_fd: int, name: str, flags: int, relpath: str) -> int:
    try:
        return os.open(name, flags, dir_fd=dir_fd)
    except FileNotFoundError:
        raise Missing(f"{relpath} does not exist") from None
    except OSError as e:
        if e.errno in (errno.ELOOP, errno.ENOTDIR):
            raise UnsafeEntry(f"{relpath}: {name} is a symbolic link or not a directory; not followed") from None
        raise UnsafeEntry(f"{relpath} cannot be opened: {e.strerror}") from None


def _check(st: os.stat_result, relpath: str, max_bytes: int, owners: set[int]) -> None:
    if not stat.S_ISREG(st.st_mode):
        raise UnsafeEntry(f"{relpath} is not a regular file (mode {stat.filemode(st.st_mode)}); not read")
    if st.st_nlink != 1:
        raise UnsafeEntry(f"{relpath} has {st.st_nlink} hard links; not read")
    if st.st_uid not in owners:
        raise UnsafeEntry(f"{relpath} belongs to uid {st.st_uid}, not to the job; not read")
    if st.st_size > max_bytes:
        raise UnsafeEntry(f"{relpath} is {st.st_size} bytes, over the limit of {max_bytes}")


# -- removal ------------------------------------------------------------------------------


def remove_tree(path: Path, *, budget: float | None = None) -> bool:
    """Remove `path` (a file or a whole tree) without following links; True once it is gone.

    Depth, names and modes do not matter: no recursion, a constant number of open file
    descriptors, chmodded directories reopened. Stops after `budget` seconds (False: part
    of the tree is left).
    """
    deadline = None if budget is None else time.monotonic() + budget
    parent, name = os.path.split(os.path.abspath(path))
    try:
        parent_fd = os.open(parent, _DIR_FLAGS)
    except FileNotFoundError:
        return True
    try:
        try:
            st = os.stat(name, dir_fd=parent_fd, follow_symlinks=False)
        except FileNotFoundError:
            return True
        if not stat.S_ISDIR(st.st_mode):
            os.unlink(name, dir_fd=parent_fd)
            return True
        top = _open_dir_for_removal(parent_fd, name, missing_ok=True)
        if top is None:
            return True
        try:
            done = _empty(top, deadline)
        finally:
            os.close(top)
        if done:
            os.rmdir(name, dir_fd=parent_fd)
        return done
    except FileNotFoundError:
        return True
    finally:
        os.close(parent_fd)


def _empty(top: int, deadline: float | None) -> bool:
    """Empty the directory `top`: every subdirectory is first renamed into `top` itself (flattening
    the tree), then emptied of files and removed."""
    tag = secrets.token_hex(4)
    moved = 0
    ops = 0
    while True:
        pending: list[str | None] = [None]  # None: top itself; else the name of a directory directly in top
        with os.scandir(top) as it:
            pending += [e.name for e in it if e.is_dir(follow_symlinks=False)]
        for name in pending:
            fd = top if name is None else _open_dir_for_removal(top, name, missing_ok=True)
            if fd is None:
                continue
            try:
                with os.scandir(fd) as it:
                    for entry in it:
                        ops += 1
                        if ops % _CHECK_EVERY == 0 and deadline is not None and time.monotonic() > deadline:
                            return False
                        if not entry.is_dir(follow_symlinks=False):
                            with contextlib.suppress(FileNotFoundError):
                                os.unlink(entry.name, dir_fd=fd)
                        elif fd != top:  # lift it to the top; it is emptied in a later pass
                            moved += 1
                            _lift(fd, entry.name, top, f".rm-{tag}-{moved}")
            finally:
                if fd != top:
                    os.close(fd)
            if name is not None:
                with contextlib.suppress(FileNotFoundError, OSError):
                    os.rmdir(name, dir_fd=top)  # not empty yet: it holds lifted-out names next pass
        with os.scandir(top) as it:
            if next(it, None) is None:
                return True
        if deadline is not None and time.monotonic() > deadline:
            return False


def _lift(fd: int, name: str, top: int, new: str) -> None:
    for attempt in range(2):
        try:
            os.rename(name, new, src_dir_fd=fd, dst_dir_fd=top)
            return
        except FileNotFoundError:
            return
        except OSError as e:
            if e.errno in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOTDIR, errno.EISDIR):
                new = f"{new}-{secrets.token_hex(4)}"  # a scene chose the same name
            elif e.errno in (errno.EACCES, errno.EPERM) and attempt == 0:
                _make_writable(fd, name)  # moving a directory rewrites its "..": it must be writable
            else:
                raise


def _open_dir_for_removal(dir_fd: int, name: str, missing_ok: bool = False) -> int | None:
    try:
        fd = os.open(name, _DIR_FLAGS, dir_fd=dir_fd)
    except FileNotFoundError:
        if missing_ok:
            return None
        raise
    except PermissionError:
        _make_writable(dir_fd, name)
        fd = os.open(name, _DIR_FLAGS, dir_fd=dir_fd)
    with contextlib.suppress(OSError):
        if stat.S_IMODE(os.fstat(fd).st_mode) & 0o700 != 0o700:
            os.fchmod(fd, 0o700)  # its entries must be removable by us
    return fd


def _make_writable(dir_fd: int, name: str) -> None:
    """chmod 0700 a directory a scene locked, without following a link (O_PATH, then its /proc name)."""
    fd = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
    try:
        if stat.S_ISDIR(os.fstat(fd).st_mode):
            os.chmod(f"/proc/self/fd/{fd}", 0o700)
    finally:
        os.close(fd)


def discard(path: Path, *, budget: float = 10.0) -> bool:
    """Remove a work directory in bounded time; what is left is moved to `<work>/.trash` and logged.

    Never raises. Returns True when the directory is gone from where it was. A directory
    this process held (`make_dir`) is let go once it is gone or in the trash.
    """
    try:
        return _discard(path, budget)
    finally:
        _release(path)


def _discard(path: Path, budget: float) -> bool:
    try:
        if remove_tree(path, budget=budget):
            return True
    except OSError as e:
        log.warning("cannot remove %s: %s", path, e.strerror or e)
    trash = path.parent / TRASH
    try:
        trash.mkdir(mode=0o700, exist_ok=True)
        os.rename(path, trash / f"{path.name}-{secrets.token_hex(4)}")
    except FileNotFoundError:
        return True
    except OSError as e:
        log.error("cannot remove %s, nor move it to %s: %s; it stays", path, trash, e.strerror or e)
        return False
    log.warning("%s was not removed within %g s; moved to %s, removed in the background", path.name, budget, trash)
    return True


def empty_trash(work: Path) -> None:
    """Remove everything in `<work>/.trash` (no deadline: run it in a thread of its own)."""
    trash = work / TRASH
    try:
        names = os.listdir(trash)
    except FileNotFoundError:
        return
    for name in names:
        try:
            remove_tree(trash / name)
        except OSError as e:
            log.warning("cannot remove %s: %s", trash / name, e.strerror or e)
    with contextlib.suppress(OSError):
        os.rmdir(trash)
