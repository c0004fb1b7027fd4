"""The mount layer: the private root filesystem a render child sees instead of the host's.

Only what a render needs is there: programs, libraries and configuration (SYSTEM_PATHS),
Python and watcher (`python_paths`), the paths of sandbox.visible_paths, a few devices,
a small /tmp and the job directory, all read-only but /tmp and the job directory. The
daemon's folders, the project, other jobs and home directories are absent. Built by the
render child itself (`watcher.confine`), in a mount namespace of its own.
"""

from __future__ import annotations

import contextlib
import os
import stat
import sys
from pathlib import Path

from .config import Sandbox
from .linux import (
    CLONE_NEWNS,
    MOUNT_ATTR_NOSUID,
    MOUNT_ATTR_RDONLY,
    MS_NODEV,
    MS_NOEXEC,
    MS_NOSUID,
    MS_PRIVATE,
    MS_REC,
    bind,
    mount,
    pivot_root,
    set_mount_attributes,
    umount,
    unshare,
)

# What a render may read besides Python and its job: programs, libraries, configuration
# (fonts, TeX), TeX's generated formats and the font cache. Everything else is absent.
SYSTEM_PATHS = (
    "/usr",
    "/bin",
    "/sbin",
    "/lib",
    "/lib32",
    "/lib64",
    "/libx32",
    "/etc",
    "/var/lib/texmf",
    "/var/cache/fontconfig",
)
DEVICES = ("null", "zero", "full", "random", "urandom")


def private_root(job_dir: Path, opts: Sandbox) -> str:
    """Replace this process's view of the filesystem with a new root that holds only what a render needs.

    Built on a tmpfs: each visible host path bind-mounted at its own place, a few device
    nodes, a small empty /tmp, the job directory at its own path; all of it made
    read-only except /tmp and the job directory; a fresh /proc; then pivot_root into it.
    The staging tmpfs is mounted over /tmp, so every source is opened first (a job
    directory under /tmp must stay reachable). All of it happens in a new mount
    namespace: nothing changes outside. Returns what /proc is inside, for the layer's reason.
    """
    unshare(CLONE_NEWNS)
    mount(None, "/", None, MS_REC | MS_PRIVATE)  # nothing mounted here may propagate out
    os.umask(0o022)
    links = {p: os.readlink(p) for p in SYSTEM_PATHS if os.path.islink(p)}
    fds: dict[str, int] = {}
    try:
        for path in sorted({*SYSTEM_PATHS, *python_paths(), *opts.visible_paths} - set(links)):
            with contextlib.suppress(FileNotFoundError):
                fds[path] = os.open(path, os.O_PATH | os.O_CLOEXEC)
        for name in DEVICES:
            fds[f"/dev/{name}"] = os.open(f"/dev/{name}", os.O_PATH | os.O_CLOEXEC)
        job = os.open(job_dir, os.O_PATH | os.O_CLOEXEC)
        fds[str(job_dir)] = job

        stage = "/tmp"
        mount("tmpfs", stage, "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,mode=755")
        try:
            for path, target in links.items():
                os.symlink(target, stage + path)
            for name in ("dev", "proc", "tmp"):
                os.mkdir(f"{stage}/{name}")
            # /tmp for programs that ignore TMPDIR (which points into the job directory).
            # nr_inodes: empty files cost kernel memory that neither size= nor RLIMIT_AS counts.
            mount("tmpfs", f"{stage}/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "size=16m,nr_inodes=4096,mode=1777")
            ours = {os.stat(stage).st_dev, os.stat(f"{stage}/tmp").st_dev}
            for path, fd in fds.items():
                if path.startswith("/dev/"):
                    os.close(os.open(stage + path, os.O_CREAT | os.O_WRONLY, 0o644))
                    bind(fd, stage + path)
                elif fd != job and _make_dirs(stage, path, ours):
                    bind(fd, stage + path, recursive=True)
            for i, name in enumerate(("stdin", "stdout", "stderr")):
                os.symlink(f"/proc/self/fd/{i}", f"{stage}/dev/{name}")
            os.symlink("/proc/self/fd", f"{stage}/dev/fd")
            if not _make_dirs(stage, str(job_dir), ours):
                raise OSError(0, "cannot place the job directory in the new root", str(job_dir))
            bind(job, f"{stage}{job_dir}")
            set_mount_attributes(stage, recursive=True, add=MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID)
            for writable in (f"{stage}/tmp", f"{stage}{job_dir}"):
                set_mount_attributes(writable, remove=MOUNT_ATTR_RDONLY)
            try:
                mount("proc", f"{stage}/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
                proc = "its own /proc"
            except OSError as e:
                # In a user namespace the kernel refuses a new /proc while the host's is partly
                # covered (systemd's ProtectKernelTunables, a container's masks). Renders work
                # without one; the PID namespace still hides the daemon.
                proc = f"no /proc (a new one was refused: {e.strerror})"
        except BaseException:
            with contextlib.suppress(OSError):  # back to the host's view; only this layer is lost
                umount(stage)
            raise
    finally:
        for fd in fds.values():
            os.close(fd)
    os.chdir(stage)
    pivot_root()
    umount(".")  # the host's tree: detached, unreachable from here
    os.chdir("/")
    return proc


def python_paths() -> list[str]:
    """Where this interpreter, its standard library and packages, and watcher itself live."""
    paths = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix, str(Path(__file__).parent)}
    return sorted(os.path.abspath(p) for p in paths)


def _make_dirs(stage: str, path: str, ours: set[int]) -> bool:
    """Create `path` inside `stage`, on our own tmpfs only.

    False when that would pass through a link or a host mount: the path is then already
    covered by what was mounted there, and creating it would write on the host.
    """
    current = stage
    for part in Path(path).parts[1:]:
        current = os.path.join(current, part)
        with contextlib.suppress(FileExistsError):
            os.mkdir(current)
        st = os.lstat(current)
        if not stat.S_ISDIR(st.st_mode) or st.st_dev not in ours:
            return False
    return True
