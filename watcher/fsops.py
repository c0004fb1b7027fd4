"""File-system moves that never lose or replace a file: the primitives under every publish.

Names. `final_name` fits `stem + tag + suffix` into one path component (255 bytes);
`free_tag` picks one sortable tag (`.<UTC stamp>-NNN`) for a whole group of names when
any is taken, so the files of one result always share their stem.

Moves. `place` renames without replacing anything (renameat2 RENAME_NOREPLACE). Across
filesystems (EXDEV) it copies to `.<name>.tmp-XXXXXXXX` in the target folder, fsyncs,
renames into place (no replace), fsyncs the folder, then unlinks the original. A crash
in that window leaves either a temp file (swept at the next start) or the same content
in both places (recognised by comparing the bytes; the staged copy is dropped). Only
regular files cross filesystems, and nothing here follows a symbolic link.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import filecmp
import hashlib
import logging
import os
import secrets
import shutil
import stat
import time
from pathlib import Path
from typing import Any

from . import jobfs
from .errors import WatcherError

log = logging.getLogger(__name__)

NAME_MAX = 255  # bytes in one path component on Linux filesystems
OPEN_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


def stamp() -> str:
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())


def final_name(stem: str, tag: str, suffix: str) -> str:
    """`stem + tag + suffix`, the stem shortened if the whole would not fit in a name."""
    room = NAME_MAX - len(os.fsencode(tag + suffix))
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
    now = stamp()
    for n in range(1, 1000):
        if free(tag := f".{now}-{n:03d}"):
            return tag
    return f".{now}-{secrets.token_hex(4)}"


def file_kind(mode: int) -> str | None:
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
        copy_file(src, staged)
        os.unlink(src)
    problem = WatcherError(f"output {src.name} is not a regular file with one link; not published")
    try:
        fd = os.open(staged, OPEN_FLAGS)
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
        rename_noreplace(src, dst)
        return
    except FileExistsError:
        if not same_file(src, dst):
            raise
        os.unlink(src)  # an earlier, interrupted copy already put it there
        return
    except OSError as e:
        if e.errno != errno.EXDEV or not stat.S_ISREG(os.lstat(src).st_mode):
            raise
    tmp = dst.parent / f".{dst.name[:100]}.tmp-{secrets.token_hex(4)}"
    copy_file(src, tmp)
    try:
        rename_noreplace(tmp, dst)
    except OSError:
        os.unlink(tmp)
        raise
    fsync_dir(dst.parent)
    os.unlink(src)


def same_file(a: Path, b: Path) -> bool:
    try:
        sa, sb = os.lstat(a), os.lstat(b)
    except FileNotFoundError:
        return False
    if sa.st_dev == sb.st_dev:  # on one filesystem only the same inode is "ours"
        return sa.st_ino == sb.st_ino
    regular = stat.S_ISREG(sa.st_mode) and stat.S_ISREG(sb.st_mode)
    return regular and sa.st_size == sb.st_size and filecmp.cmp(a, b, shallow=False)


def copy_file(src: Path, dst: Path) -> None:
    """Copy a regular file to a new name, fsynced; never follows a symlink."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    with os.fdopen(os.open(src, OPEN_FLAGS), "rb") as fin, os.fdopen(os.open(dst, flags, 0o644), "wb") as fout:
        shutil.copyfileobj(fin, fout, 1 << 20)
        fout.flush()
        os.fsync(fout.fileno())


def copy_hashed(src: Path, dst: Path, max_bytes: int) -> tuple[int, str]:
    """Copy a regular file to a new name, fsynced, never following a link; its size and sha256.

    Raises:
        ValueError: `src` is larger than `max_bytes` (nothing is left at `dst`).
    """
    digest, size = hashlib.sha256(), 0
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    with os.fdopen(os.open(src, OPEN_FLAGS), "rb") as fin, os.fdopen(os.open(dst, flags, 0o644), "wb") as fout:
        while chunk := fin.read(1 << 20):
            size += len(chunk)
            if size > max_bytes:
                fout.close()
                os.unlink(dst)
                raise ValueError(f"{src.name} is larger than {max_bytes} bytes")
            digest.update(chunk)
            fout.write(chunk)
        fout.flush()
        os.fsync(fout.fileno())
    return size, digest.hexdigest()


def write_file(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(fd)


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


def remove_quietly(path: Path) -> None:
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


def rename_noreplace(src: Path, dst: Path) -> None:
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
