"""Warm workers: a parent process that imported Manim once forks a fresh child per job.

Starting Python and importing Manim costs about a second; the render of a short scene
often less. A *zygote* is a separate, single-threaded process (started with subprocess,
so the multi-threaded daemon itself never forks) that imports Manim and `watcher.child`,
then waits for requests. For each job it forks, and the child turns itself into what
`python -I -m watcher.child JOB_DIR` would have been: a new session, stdin on /dev/null,
stdout and stderr on the job's output pipe, no other file descriptors, the job's scrubbed
environment, then `child.run_job`, the same code path as a fresh process (limits,
SIGALRM, chdir, exec of the scene, render, result.json, os._exit). The zygote never runs
scene code and never touches Manim's config, so every child starts from the same clean
state: whatever a scene changes (config, sys.modules, sys.path, cwd, environment) dies
with its child.

One zygote serves one job at a time, and the pool holds as many zygotes as there are
concurrent jobs (the render threads: workers.count), started on demand or ahead with
`prewarm`. Measured here: a fork takes about 2 ms, so one zygote could serve every
worker without becoming a bottleneck; but each zygote is only about 72 MiB of private
memory (135 MiB resident, the rest shared libraries), and with one per worker a zygote
lost (killed from outside, or by the OOM killer) takes only its own job with it, and
the protocol stays a plain request/reply with no multiplexing.

Per job, over a SOCK_SEQPACKET socketpair (one message per step, file descriptors passed
with SCM_RIGHTS):

    supervisor -> zygote   {"job_dir", "env"} + the write end of the job's output pipe
    zygote -> supervisor   {"pid"} + a pidfd of the child     (or {"errno", "error"})
    supervisor -> zygote   {"reap"}        once the child has exited and its group is killed
    zygote -> supervisor   {"status"}      the raw wait status (only a parent can reap)

The supervisor (render.supervise, in the caller's thread) holds the pidfd and the output
pipe, so the wall-clock kill of the child's process group does not depend on the zygote
being alive or responsive. The zygote reaps only when asked, after the group was killed,
so the group id cannot be reused in between. If the zygote dies, its child dies too
(PR_SET_PDEATHSIG, set by sandbox.enter) and the supervisor gets WorkerLost: the caller
retries the job on a new zygote. A zygote exits when its socket closes, so it never
outlives the process that started it.

Known differences from a fresh process, none of which carries state from one job to the
next: Manim and what it imports are in sys.modules before the scene's own imports (and
frozen for the garbage collector); children share the zygote's hash seed and address-space
layout (numpy's global random state is reseeded in each child; Python's `random` reseeds
itself after fork). The zygote is not dumpable, so a scene running as the same user
cannot ptrace it or read its memory to reach later jobs.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import gc
import json
import logging
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NoReturn

from . import sandbox
from .errors import WatcherError

log = logging.getLogger(__name__)

READY_TIMEOUT = 120.0  # importing Manim on a cold, busy machine can take a while
REPLY_TIMEOUT = 10.0  # a healthy zygote answers within milliseconds
MAX_MESSAGE = 1 << 16
# Not `-m watcher.pool`: the package imports this module first, and runpy warns about that.
ZYGOTE_MAIN = "import sys, watcher.pool; watcher.pool.serve(int(sys.argv[1]), sys.argv[2])"
PR_SET_DUMPABLE = 4
CHILD_TEX_FD = 3  # the typesetting service's socket in a forked child (watcher.texservice)


class PoolError(WatcherError):
    """A zygote could not be started; the caller renders in a fresh process instead."""


class Cancelled(PoolError):
    """The wait for a warm worker was cancelled (the job is being cancelled)."""


class WorkerLost(WatcherError):
    """The zygote died or stopped answering during a job; the job must be run again."""

    tail: bytes = b""  # the job's output so far, set by the supervisor


class ForkedChild:
    """A render child forked by a zygote, seen from the supervisor (the `render.Child` protocol)."""

    def __init__(self, zygote: Zygote, pid: int, pidfd: int, out_fd: int):
        self.zygote = zygote
        self.pid = pid  # also its process group and session: the child called setsid()
        self.pidfd = pidfd
        self.out_fd = out_fd
        self.returncode: int | None = None

    def wait(self) -> int:
        """Wait until the child has exited, then have the zygote reap it.

        Returns the exit status the way subprocess does (negative: killed by that signal).
        Raises WorkerLost if the zygote cannot tell.
        """
        if self.returncode is None:
            # Only ask once the child is gone, so that the zygote's waitpid returns at once.
            poller = select.poll()
            poller.register(self.pidfd, select.POLLIN)
            poller.poll()
            reply = self.zygote.request({"reap": self.pid})
            self.returncode = os.waitstatus_to_exitcode(reply["status"])
            self.zygote.busy = False
        return self.returncode

    def close(self) -> None:
        os.close(self.pidfd)
        os.close(self.out_fd)


class Zygote:
    """One warm parent process and our end of its socket."""

    def __init__(self) -> None:
        # An empty folder for the import (so that Manim finds no config file), removed by
        # the zygote once it is ready.
        home = Path(tempfile.mkdtemp(prefix="watcher-warm-"))
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        with theirs:
            self.proc = subprocess.Popen(
                [sys.executable, "-I", "-c", ZYGOTE_MAIN, str(theirs.fileno()), str(home)],
                pass_fds=[theirs.fileno()],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,  # stderr stays ours: a crash of the zygote is logged
                cwd=home,
                # The same scrubbed environment as a job (one BLAS thread keeps it single-threaded).
                env=sandbox.child_environment(home),
                start_new_session=True,  # Ctrl-C on the terminal is ours to handle, not the zygote's
            )
        self.sock = ours
        self.pid = self.proc.pid
        self.ready = False
        self.broken = False  # it died or stopped answering: never use it again
        self.busy = False  # a child of it is not reaped yet: its next message must be "reap"

    def wait_ready(self, cancel: threading.Event | None = None) -> None:
        """Wait until the zygote has imported Manim (at most READY_TIMEOUT).

        Raises:
            Cancelled: `cancel` was set meanwhile (the zygote keeps importing, for the next job).
            PoolError: it did not start.
        """
        if self.ready:
            return
        deadline = time.monotonic() + READY_TIMEOUT
        while cancel is not None and not select.select([self.sock], [], [], 0.1)[0]:
            if cancel.is_set():
                raise Cancelled("cancelled while the warm worker was starting")
            if time.monotonic() >= deadline:
                break
        try:
            reply = self._recv(max(0.1, deadline - time.monotonic()))
        except WorkerLost as e:
            raise PoolError(f"the warm worker did not start: {e}") from None
        if reply.get("error"):
            self.broken = True
            raise PoolError(f"the warm worker did not start: {reply['error']}")
        self.ready = True

    tex_fd: int | None = CHILD_TEX_FD  # where the child finds the typesetting socket passed to `start`

    def start(self, job_dir: Path, env: dict[str, str], tex_fd: int | None = None) -> ForkedChild:
        """Start the job in `job_dir` (its job.json written): a child of the zygote, holding
        `tex_fd` (the typesetting service's socket) as CHILD_TEX_FD.

        Raises WorkerLost, or OSError when the zygote could not fork (like Popen would).
        """
        read, write = os.pipe()
        try:
            try:
                self._send({"job_dir": str(job_dir), "env": env}, [write, *([] if tex_fd is None else [tex_fd])])
            finally:
                os.close(write)  # the child holds it now; EOF on `read` means every writer is gone
            reply, fds = self._recv_fds(REPLY_TIMEOUT)
            if "errno" in reply:
                raise OSError(reply["errno"], f"the warm worker could not fork: {reply['error']}")
        except BaseException:
            os.close(read)
            raise
        self.busy = True
        return ForkedChild(self, reply["pid"], fds[0], read)

    def request(self, message: dict[str, Any]) -> dict[str, Any]:
        self._send(message)
        return self._recv(REPLY_TIMEOUT)

    def close(self) -> None:
        """Stop the zygote: it exits when its socket closes; SIGKILL it if it does not."""
        # shutdown() first: a thread blocked reading this socket (wait_ready, for up to
        # READY_TIMEOUT) gets EOF now; close() alone would not wake it.
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
        try:
            # One that has not said it is ready is still importing (it notices the closed
            # socket only after that) and has no child yet: nothing is lost by killing it.
            self.proc.wait(2 if self.ready and not self.broken else 0.1)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def _send(self, message: dict[str, Any], fds: list[int] | None = None) -> None:
        if self.broken:  # do not wait on it a second time
            raise WorkerLost(f"the warm worker (pid {self.pid}) was lost")
        try:
            socket.send_fds(self.sock, [json.dumps(message).encode()], fds or [])
        except OSError as e:
            self.broken = True
            raise WorkerLost(f"the warm worker (pid {self.pid}) is gone: {e}") from None

    def _recv(self, timeout: float) -> dict[str, Any]:
        return self._recv_fds(timeout)[0]

    def _recv_fds(self, timeout: float) -> tuple[dict[str, Any], list[int]]:
        self.sock.settimeout(timeout)
        try:
            data, fds, _, _ = socket.recv_fds(self.sock, MAX_MESSAGE, 1, socket.MSG_CMSG_CLOEXEC)
        except TimeoutError:
            self.broken = True
            raise WorkerLost(f"the warm worker (pid {self.pid}) did not answer within {timeout:g} s") from None
        except OSError as e:
            data, fds = b"", []
            reason = str(e)
        else:
            reason = f"exit status {self.proc.poll()}" if not data else ""
        if not data:
            self.broken = True
            raise WorkerLost(f"the warm worker (pid {self.pid}) died ({reason or 'its socket closed'})")
        return json.loads(data), fds


class Pool:
    """Zygotes for this process, started on demand: one per concurrent job."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._idle: list[Zygote] = []
        self._all: set[Zygote] = set()
        self._closed = False

    def prewarm(self, count: int) -> None:
        """Start zygotes until there are `count`; returns at once (they import in the background)."""
        with self._lock:
            while len(self._all) < count and not self._closed:
                self._idle.append(self._spawn())

    @contextlib.contextmanager
    def checkout(self, cancel: threading.Event | None = None) -> Iterator[Zygote]:
        """A ready zygote for one job; it goes back to the pool after, unless it broke.

        Raises PoolError when no zygote can be started, Cancelled when `cancel` is set while
        waiting for one.
        """
        zygote = self._take()
        try:
            zygote.wait_ready(cancel)
            yield zygote
        finally:
            self._give_back(zygote)

    def shutdown(self) -> None:
        """Stop every zygote (a busy one kills its child as it exits)."""
        with self._lock:
            self._closed = True
            zygotes, self._idle = list(self._all), []
            self._all.clear()
        for z in zygotes:
            z.close()

    def pids(self) -> list[int]:
        with self._lock:
            return [z.pid for z in self._all]

    def _take(self) -> Zygote:
        with self._lock:
            if self._closed:
                raise PoolError("the warm workers are shut down")
            while self._idle:
                zygote = self._idle.pop()  # the most recently used: its pages are warm
                if zygote.proc.poll() is None:
                    return zygote
                log.warning("warm worker %d exited while idle (status %s)", zygote.pid, zygote.proc.returncode)
                self._discard(zygote)
            try:
                return self._spawn()
            except OSError as e:
                raise PoolError(f"cannot start a warm worker: {e}") from None

    def _give_back(self, zygote: Zygote) -> None:
        with self._lock:
            if not (zygote.broken or zygote.busy or self._closed):
                self._idle.append(zygote)
                return
            self._discard(zygote)

    def _spawn(self) -> Zygote:
        zygote = Zygote()
        self._all.add(zygote)
        return zygote

    def _discard(self, zygote: Zygote) -> None:
        self._all.discard(zygote)
        zygote.close()


_pool: Pool | None = None
_pool_lock = threading.Lock()


def get_pool() -> Pool:
    """This process's pool, created on first use and shut down at exit."""
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = Pool()
            atexit.register(_pool.shutdown)
        return _pool


def shutdown() -> None:
    """Stop this process's zygotes now (also done at exit)."""
    global _pool
    with _pool_lock:
        pool, _pool = _pool, None
    if pool is not None:
        pool.shutdown()


def _forget_after_fork() -> None:
    # A forked copy of this process (a prefork executor) must not talk to its parent's
    # zygotes; closing our copies of the sockets leaves the parent's untouched.
    global _pool, _pool_lock
    if _pool is not None:
        for z in _pool._all:
            z.sock.close()
    _pool, _pool_lock = None, threading.Lock()


os.register_at_fork(after_in_child=_forget_after_fork)


# -- the zygote process ----------------------------------------------------------------


def serve(fd: int, home: str) -> None:
    """The zygote's main loop: import once (in `home`, then removed), fork one child per request until EOF."""
    sock = socket.socket(fileno=fd)
    # Not ptrace-able or readable through /proc by a scene running as the same user.
    _set_dumpable(False)
    error = _preload()
    os.chdir("/")
    shutil.rmtree(home, ignore_errors=True)
    try:
        sock.send(json.dumps({"pid": os.getpid(), "error": error}).encode())
        while True:
            data, fds, _, _ = socket.recv_fds(sock, MAX_MESSAGE, 2, socket.MSG_CMSG_CLOEXEC)
            if not data:
                return  # the supervisor closed the socket, or died
            job = json.loads(data)
            try:
                pid = os.fork()
            except OSError as e:
                for received in fds:
                    os.close(received)
                sock.send(json.dumps({"errno": e.errno, "error": str(e)}).encode())
                continue
            if pid == 0:
                _become_child(sock, fds[0], job, fds[1] if len(fds) > 1 else None)
            for received in fds:
                os.close(received)
            pidfd = os.pidfd_open(pid)
            socket.send_fds(sock, [json.dumps({"pid": pid}).encode()], [pidfd])
            os.close(pidfd)
            if not sock.recv(MAX_MESSAGE):  # the supervisor is gone: take the job with us
                with contextlib.suppress(OSError):
                    os.killpg(pid, signal.SIGKILL)
                return
            _, status = os.waitpid(pid, 0)
            sock.send(json.dumps({"status": status}).encode())
    except (BrokenPipeError, ConnectionResetError):
        return  # the supervisor is gone


def _preload() -> str | None:
    """Import what every job needs; None when this process is safe to fork from."""
    try:
        import manim  # noqa: F401
    except Exception:
        pass  # each child imports it again and reports the failure as an environment fault
    from . import child  # noqa: F401

    threads = len(os.listdir("/proc/self/task"))
    if threads != 1:
        return f"{threads} threads after importing Manim: forking would not be safe"
    # Objects that exist now live as long as the zygote: keep the children's garbage
    # collector off them, so that it does not copy-on-write every page they sit on.
    gc.freeze()
    return None


def _become_child(sock: socket.socket, out: int, job: dict[str, Any], tex: int | None) -> NoReturn:
    """Turn the fresh fork into what a `python -I -m watcher.child JOB_DIR` process starts as."""
    from . import child

    try:
        os.setsid()
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.dup2(out, 1)
        os.dup2(out, 2)
        sock.detach()  # its fd is closed below; the object must not close a reused number later
        if tex is not None:
            os.dup2(tex, CHILD_TEX_FD)
        os.closerange(CHILD_TEX_FD + (tex is not None), os.sysconf("SC_OPEN_MAX"))
        os.environ.clear()
        os.environ.update(job["env"])
        tempfile.tempdir = None  # recomputed from the job's TMPDIR on first use
        if "numpy" in sys.modules:
            sys.modules["numpy"].random.seed()  # from the OS, as a fresh import would
        sys.argv = [child.__file__, job["job_dir"]]
        _set_dumpable(True)
    except BaseException:
        os._exit(126)
    child.run_job(Path(job["job_dir"]))


def _set_dumpable(flag: bool) -> None:
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_DUMPABLE, int(flag), 0, 0, 0)
