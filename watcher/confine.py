"""What a render child does to confine itself: `enter()`, its first act.

A fresh interpreter or a warm worker's fork calls `enter()` while still single-threaded.
It applies the limits every render gets, then tries each isolation layer (the list is in
`watcher.sandbox`), keeps what the host allows, and says in `Layers` what it got and why
the rest is missing; strict mode, or a layer the host check found active, turns a missing
layer into a SandboxError, and so does a scene that would run as root.

With a PID namespace the child forks: the process the daemon started stays outside as a
relay that waits for the job and ends exactly as it did (exit status or signal), so the
daemon's classification and its kill of the process group work unchanged. Everything
here is a backstop: the parent's wall-clock kill is what guarantees that a job ends.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import pwd
import resource
import select
import signal
import stat
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

from .config import SANDBOX_LAYERS, Render, Sandbox
from .errors import WatcherError
from .linux import (
    CLONE_NEWIPC,
    CLONE_NEWNET,
    CLONE_NEWPID,
    CLONE_NEWUSER,
    PR_SET_DUMPABLE,
    PR_SET_NO_NEW_PRIVS,
    PR_SET_PDEATHSIG,
    drop_capabilities,
    join_session_keyring,
    prctl,
    unshare,
)
from .rootfs import private_root, python_paths

EXIT_ORPHANED = 125  # the supervising parent died before the child could tie itself to it


class SandboxError(WatcherError):
    """A job cannot get the isolation it must have: a layer strict mode requires, a layer the
    host check found active, or a user other than root."""


@dataclass(frozen=True)
class Layer:
    """One isolation layer: whether renders get it, and what it does or why it is missing."""

    available: bool
    reason: str


@dataclass(frozen=True)
class Layers:
    """The isolation render children get on this host, layer by layer (see `watcher.sandbox`)."""

    mode: str
    user: Layer
    pid: Layer
    network: Layer
    mount: Layer
    ipc: Layer
    processes: Layer
    cgroup: Layer

    def items(self) -> list[tuple[str, Layer]]:
        return [(name, getattr(self, name)) for name in SANDBOX_LAYERS]

    @property
    def active(self) -> list[str]:
        return [name for name, layer in self.items() if layer.available]

    def missing(self, names: tuple[str, ...] | list[str]) -> list[str]:
        return [name for name in names if not getattr(self, name).available]

    def summary(self) -> str:
        """One line: `active: user, pid, ...; unavailable: cgroup (why)`."""
        off = [f"{name} ({layer.reason})" for name, layer in self.items() if not layer.available]
        return f"active: {', '.join(self.active) or 'none'}; unavailable: {'; '.join(off) or 'none'}"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Layers:
        return cls(mode=data["mode"], **{name: Layer(**data[name]) for name in SANDBOX_LAYERS})

    @classmethod
    def none(cls, mode: str, reason: str) -> Layers:
        return cls(mode=mode, **{name: Layer(False, reason) for name in SANDBOX_LAYERS})


def enter(
    r: Render,
    parent_pid: int,
    job_dir: Path | None = None,
    opts: Sandbox | None = None,
    expect: list[str] | tuple[str, ...] = (),
    *,
    probe: bool = False,
) -> Layers:
    """Isolate this render child; called first thing, while it is single-threaded.

    Returns, in the process that is to run the job, the layers it got. With a PID
    namespace that is a new process (PID 1 of the namespace) and the calling process
    becomes its relay: it never returns. Without `job_dir`, or with sandbox.mode off, only
    the limits (and a fresh session keyring) are applied.

    Raises:
        SandboxError: sandbox.mode is strict and a required layer could not be applied; a
            layer in `expect` (found active when the host was checked) could not be
            applied; or the process would run the scene as root (all but the first
            unless `probe`: the host check reports what it got instead).
    """
    opts = opts or Sandbox()
    _limit_resources(r)
    prctl(PR_SET_NO_NEW_PRIVS, 1)
    _die_with_parent(lambda: os.getppid() == parent_pid)
    join_session_keyring()
    if opts.mode == "off" or job_dir is None:
        return Layers.none(opts.mode, "sandbox.mode is off" if opts.mode == "off" else "no job directory")

    got = _Applied(opts)
    root = os.geteuid() == 0
    entry, no_user = render_user(opts.user) if root else (None, "the daemon is not root: renders keep its user")
    # A daemon that is not root needs a user namespace to create the others; it also
    # makes the process count below this job's own.
    own_userns = not root and got.attempt("processes", _own_user_namespace) is None

    relay: int | None = None  # our end of the pipe from the relay, once we run as PID 1

    def parent_alive() -> bool:
        if relay is None:
            return os.getppid() == parent_pid
        return not select.select([relay], [], [], 0)[0]  # readable: EOF, the relay is gone

    if got.attempt("pid", lambda: unshare(CLONE_NEWPID)) is None:
        relay = _fork_job()  # from here on: PID 1 of the new namespace
        _die_with_parent(parent_alive)
        got.ok("pid", "the job is PID 1 of its own PID namespace: no survivor, no other process visible")
    if got.attempt("network", lambda: unshare(CLONE_NEWNET)) is None:
        got.ok("network", "no network: only a loopback interface that is down")
    if got.attempt("ipc", lambda: unshare(CLONE_NEWIPC)) is None:
        got.ok("ipc", "its own System V IPC and POSIX message queues")
    proc: list[str] = []  # what /proc is inside, as private_root found it
    if got.attempt("mount", lambda: proc.append(private_root(job_dir, opts))) is None:
        got.ok("mount", f"read-only system and Python, the job directory the only writable path, {proc[0]}")

    if entry is None:
        got.fail("user", no_user)
    else:
        blocked = None if got.layers["mount"].available else unreachable(job_dir, entry)
        if blocked:
            got.fail("user", f"{opts.user} cannot search {blocked}, and without the mount layer it is not made visible")
        elif got.attempt("user", lambda: _switch_user(job_dir, entry)) is None:
            _die_with_parent(parent_alive)  # a change of user clears the parent-death signal
            got.ok("user", f"renders run as {opts.user} (uid {entry.pw_uid})")

    if os.geteuid() == 0:
        got.fail("processes", "renders run as root, to which RLIMIT_NPROC does not apply")
    else:
        error = None if own_userns else got.attempt("processes", _own_user_namespace)
        _limit(resource.RLIMIT_NPROC, opts.max_processes)
        if error is None:
            got.ok("processes", f"at most {opts.max_processes} processes and threads, counted for this job alone")
        else:
            got.fail("processes", f"RLIMIT_NPROC is shared by every render of this user: {error}")
    # Capabilities left from root or gained in the user namespace: none may reach the scene
    # (they would let it undo the mounts). NO_NEW_PRIVS keeps exec from granting new ones.
    drop_capabilities()
    if relay is not None:
        os.close(relay)
    if probe:
        return Layers(mode=opts.mode, **got.layers)
    # Never less isolation than the host check found and logged, and never a scene as root.
    lost = [name for name in expect if name in got.layers and not got.layers[name].available]
    if lost:
        why = "; ".join(f"{name}: {got.layers[name].reason}" for name in lost)
        raise SandboxError(
            f"the sandbox layer(s) {', '.join(lost)} were active when this host was checked "
            f"but could not be applied to this job ({why})"
        )
    if root and os.geteuid() == 0:
        raise SandboxError(
            f"renders never run as root, and switching to sandbox.user failed: {got.layers['user'].reason}"
        )
    return Layers(mode=opts.mode, **got.layers)


class _Applied:
    """The layers applied so far; in strict mode a required one that fails raises."""

    def __init__(self, opts: Sandbox):
        self.opts = opts
        self.layers: dict[str, Layer] = {"cgroup": Layer(False, "per-job cgroups are not applied by this version")}

    def attempt(self, name: str, step: Callable[[], object]) -> str | None:
        """Run one step of a layer; None when it worked, else why not (recorded)."""
        try:
            step()
        except OSError as e:
            reason = f"{e.filename}: {e.strerror}" if e.filename else str(e)
            self.fail(name, reason)
            return reason
        return None

    def ok(self, name: str, reason: str) -> None:
        self.layers[name] = Layer(True, reason)

    def fail(self, name: str, reason: str) -> None:
        if self.opts.mode == "strict" and name in self.opts.require:
            raise SandboxError(f"sandbox layer {name} is required (sandbox.mode strict) but unavailable: {reason}")
        self.layers[name] = Layer(False, reason)


def _limit_resources(r: Render) -> None:
    mb = 1024 * 1024
    if r.memory_limit_mb:
        _limit(resource.RLIMIT_AS, r.memory_limit_mb * mb)
    # CPU backstop: the wall-clock kill normally comes first; this catches a parent that vanished.
    cpu = int(r.timeout + r.grace) + 5
    _limit(resource.RLIMIT_CPU, cpu, cpu + 5)
    _limit(resource.RLIMIT_FSIZE, r.max_output_mb * mb)
    _limit(resource.RLIMIT_NOFILE, r.max_open_files)
    _limit(resource.RLIMIT_CORE, 0)


def _die_with_parent(parent_alive: Callable[[], bool]) -> None:
    """A render must never outlive the process that supervises it."""
    prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if not parent_alive():  # it died before the line above took effect
        os._exit(EXIT_ORPHANED)


def _fork_job() -> int:
    """Fork the job's process (PID 1 of the new namespace); this process relays its end.

    Returns, in the job's process, the read end of a pipe whose write end only the relay
    holds: getppid() says 0 to a namespace's PID 1, so EOF there is how it sees the relay die.
    """
    read, write = os.pipe()
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid:
        os.close(read)
        _relay(pid)
    os.close(write)
    return read


def _relay(pid: int) -> NoReturn:
    """Wait for the job's process, then end the same way: its exit status, or its signal."""
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        signum = os.WTERMSIG(status)
        with contextlib.suppress(OSError, ValueError):  # SIGKILL and SIGSTOP cannot be reset
            signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)
        os._exit(128 + signum)  # a signal whose default is to be ignored
    os._exit(os.waitstatus_to_exitcode(status))


def render_user(name: str) -> tuple[pwd.struct_passwd | None, str]:
    """The account renders switch to when the daemon is root (sandbox.user), or None and why it cannot be."""
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        return None, f"no user {name!r} on this host (scripts/setup.sh creates it; set sandbox.user)"
    if entry.pw_uid == 0:
        return None, f"sandbox.user {name!r} is root"
    return entry, ""


def _switch_user(job_dir: Path, entry: pwd.struct_passwd) -> None:
    """Give the job directory to the render user, then become that user for good."""
    for where, dirs, files in os.walk(job_dir):
        for name in [".", *dirs, *files]:
            os.chown(os.path.join(where, name), entry.pw_uid, entry.pw_gid, follow_symlinks=False)
    os.setgroups([])
    os.setgid(entry.pw_gid)
    os.setuid(entry.pw_uid)
    # A change of user makes the process non-dumpable, which leaves /proc/self owned by
    # root: the user namespace below could not write its own uid_map.
    prctl(PR_SET_DUMPABLE, 1)


def unreachable(job_dir: Path, entry: pwd.struct_passwd) -> str | None:
    """The first directory the render user could not search on its way to the job or Python."""
    for target in [job_dir, *map(Path, python_paths())]:
        if blocked := unsearchable(target, entry):
            return blocked
    return None


def unsearchable(path: Path, entry: pwd.struct_passwd) -> str | None:
    """The first directory on the way to `path` (itself included) that the user `entry` cannot search."""
    for folder in [*reversed(path.parents), path]:
        try:
            st = os.stat(folder)
        except OSError:
            break
        if st.st_uid == entry.pw_uid:
            bit = stat.S_IXUSR
        elif st.st_gid == entry.pw_gid:
            bit = stat.S_IXGRP
        else:
            bit = stat.S_IXOTH
        if not st.st_mode & bit:
            return str(folder)
    return None


def _own_user_namespace() -> None:
    """Move into a new user namespace that maps only our own user and group.

    It grants nothing on the host. It gives the job its own count for RLIMIT_NPROC (the
    kernel counts processes per user *and* user namespace, so one job's fork bomb does not
    starve the others), and a daemon that is not root the right to create the other
    namespaces.
    """
    uid, gid = os.geteuid(), os.getegid()
    unshare(CLONE_NEWUSER)
    for name, text in (("setgroups", "deny"), ("uid_map", f"{uid} {uid} 1"), ("gid_map", f"{gid} {gid} 1")):
        with open(f"/proc/self/{name}", "w", encoding="ascii") as f:
            f.write(text)


def _limit(which: int, soft: int, hard: int | None = None) -> None:
    cur_soft, cur_hard = resource.getrlimit(which)
    hard = soft if hard is None else hard
    if cur_hard != resource.RLIM_INFINITY:
        hard = min(hard, cur_hard)
        soft = min(soft, hard)
    resource.setrlimit(which, (soft, hard))
