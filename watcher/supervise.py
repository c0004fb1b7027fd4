"""Start a render child and watch it: the wall-clock kill of its whole process group.

A child is started by a launcher: a fresh `python -I -m watcher.child JOB_DIR`, or a fork
of a warm worker (`watcher.pool`). Either way the parent holds the child's pidfd and the
read end of its output pipe, so killing the job never depends on the warm worker being
alive or answering.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Protocol

from . import pool


class Child(Protocol):
    """A started render child: the leader of its own session, writing its output to `out_fd`."""

    pid: int
    pidfd: int
    out_fd: int

    def wait(self) -> int:
        """Reap it; the exit status the way subprocess gives it (negative: killed by that signal)."""
        ...

    def close(self) -> None: ...


class Launcher(Protocol):
    """What starts render children: a fresh interpreter per job, or a warm worker's fork."""

    pid: int  # the parent the child will have, which its PR_SET_PDEATHSIG is tied to
    tex_fd: int | None  # the number the child gets the `tex_fd` given to `start` under (None: the same)

    def start(self, job_dir: Path, env: dict[str, str], tex_fd: int | None = None) -> Child: ...


class FreshChild:
    """`python -I -m watcher.child JOB_DIR` in a new process of its own."""

    def __init__(self, job_dir: Path, env: dict[str, str], tex_fd: int | None = None):
        self.proc = subprocess.Popen(
            [sys.executable, "-I", "-m", "watcher.child", str(job_dir)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            cwd=job_dir,
            env=env,
            start_new_session=True,
            close_fds=True,
            pass_fds=() if tex_fd is None else (tex_fd,),
        )
        assert self.proc.stdout is not None
        self.pid = self.proc.pid
        self.pidfd = os.pidfd_open(self.pid)
        self.out_fd = self.proc.stdout.fileno()

    def wait(self) -> int:
        return self.proc.wait()

    def close(self) -> None:
        os.close(self.pidfd)
        assert self.proc.stdout is not None
        self.proc.stdout.close()


class FreshLauncher:
    """render.warm_workers: false, or no warm worker could be started."""

    tex_fd: int | None = None  # the child keeps the number it is passed under

    def __init__(self) -> None:
        self.pid = os.getpid()

    def start(self, job_dir: Path, env: dict[str, str], tex_fd: int | None = None) -> Child:
        return FreshChild(job_dir, env, tex_fd)


def supervise(
    child: Child, deadline: float, max_log: int, cancel: threading.Event | None = None
) -> tuple[str, bytes, int]:
    """Wait for `child`, keeping the tail of its output; kill its group at `deadline`.

    Returns ("exited" | "killed" | "cancelled", output tail, exit status). Whatever
    happens, every process left in the child's process group is SIGKILLed before the
    child is reaped (its pgid cannot be reused while it is a zombie).

    Raises:
        WorkerLost: the warm worker that forked the child died; `.tail` holds the output.
    """
    poller = select.poll()
    poller.register(child.out_fd, select.POLLIN)
    poller.register(child.pidfd, select.POLLIN)
    tail = bytearray()
    outcome = "exited"
    returncode: int | None = None
    try:
        while True:
            now = time.monotonic()
            if now >= deadline:
                outcome = "killed"
                break
            if cancel is not None and cancel.is_set():
                outcome = "cancelled"
                break
            wait = deadline - now if cancel is None else min(deadline - now, 0.2)
            events = poller.poll(max(1, int(wait * 1000)))
            exited = False
            for fd, _ in events:
                if fd == child.pidfd:
                    exited = True
                elif not _read_into(child.out_fd, tail, max_log):
                    poller.unregister(child.out_fd)
            if exited:
                break
        _kill(child)
        # Drain to the end of the output: the pipe reads EOF once every process holding it
        # is dead, so this also waits for the job's last descendants to go. With a PID
        # namespace that is at once; without one, a descendant that left the process group
        # keeps it open, so wait at most 2 s.
        until = time.monotonic() + 2.0
        while (left := until - time.monotonic()) > 0 and select.select([child.out_fd], [], [], left)[0]:
            if not _read_into(child.out_fd, tail, max_log):
                break
        returncode = child.wait()
    except pool.WorkerLost as e:
        e.tail = bytes(tail[-max_log:])
        raise
    finally:
        if returncode is None:  # interrupted ourselves, or the worker was lost: never leave the job running
            _kill(child)
            with contextlib.suppress(pool.WorkerLost):
                child.wait()
        child.close()
    return outcome, bytes(tail[-max_log:]), returncode


def _read_into(fd: int, buf: bytearray, cap: int) -> bool:
    data = os.read(fd, 65536)
    buf += data
    if len(buf) > 2 * cap:  # keep memory flat however much the scene prints
        del buf[:-cap]
    return bool(data)


def _kill(child: Child) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(child.pid, signal.SIGKILL)
    # The child itself, through its pidfd: a fork may not have called setsid() yet, and a
    # pid could be reused, a pidfd cannot.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        signal.pidfd_send_signal(child.pidfd, signal.SIGKILL)
