"""The isolation a render child gets before any scene code runs.

The parent builds the child's environment (`child_environment`); the child, a fresh
interpreter or a warm worker's fork, calls `enter()` as its first act. Layers, each
applied when the host allows it (`detect()` says which do, and why the others do not):

  always    resource limits (address space, CPU backstop, file size, open files, no core
            dumps), PR_SET_NO_NEW_PRIVS, death with the parent, the scrubbed environment
            below (LaTeX with shell escape off and paranoid file access), the parent's
            own session, closed stdin, output cap and wall-clock kill (render.py);
  pid       a PID namespace: the job runs as its PID 1, so when it ends or is killed,
            every process it started dies with it (setsid() does not escape), and no
            process outside the job (the daemon) is visible or can be signalled;
  network   a network namespace with only a loopback interface that is down;
  ipc       its own System V IPC and POSIX message queues;
  mount     a private root: /usr, /etc, Python and its packages read-only, the job
            directory and a small private /tmp the only writable paths, a fresh /proc
            (none where the kernel refuses one), a minimal /dev; the daemon's folders,
            the project, other jobs and home directories are absent;
  user      when the daemon is root, the job runs as `sandbox.user` after the mounts;
  processes RLIMIT_NPROC, counted for this job alone (the job gets a user namespace of
            its own, because the kernel counts processes per user and user namespace);
  cgroup    detected only: per-job cgroups are not applied by this version.

With a PID namespace the child forks: the process the daemon started stays outside as a
relay that waits for the job and ends exactly as it did (exit status or signal), so the
daemon's classification and its kill of the process group work unchanged. Everything
here is a backstop: the parent's wall-clock kill is what guarantees that a job ends.
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import json
import logging
import os
import platform
import pwd
import resource
import select
import signal
import stat
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

from . import jobfs
from .config import SANDBOX_LAYERS, Render, Sandbox, Settings
from .errors import WatcherError

log = logging.getLogger(__name__)

# Variables passed through from the daemon's environment; everything else (tokens,
# keys, proxies, PYTHON*) is dropped.
ENV_ALLOW = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TERM")

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

EXIT_ORPHANED = 125  # the supervising parent died before the child could tie itself to it

PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_SET_NO_NEW_PRIVS = 38
CLONE_NEWNS = 0x00020000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_BIND = 0x1000
MS_REC = 0x4000
MS_PRIVATE = 0x40000
MNT_DETACH = 0x2
MOUNT_ATTR_RDONLY = 0x1
MOUNT_ATTR_NOSUID = 0x2
AT_FDCWD = -100
AT_RECURSIVE = 0x8000
CAPABILITY_VERSION_3 = 0x20080522
# Neither call has a glibc wrapper. mount_setattr (Linux 5.12) has one number everywhere.
SYS_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41}
SYS_MOUNT_SETATTR = 442
SYS_KEYCTL = {"x86_64": 250, "aarch64": 219}
KEYCTL_JOIN_SESSION_KEYRING = 1


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
    """The isolation render children get on this host, layer by layer (see the module doc)."""

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


def child_environment(job_dir: Path) -> dict[str, str]:
    """The whole environment of a render child: an allow-list plus fixed values."""
    env = {k: os.environ[k] for k in ENV_ALLOW if k in os.environ}
    env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
    env.setdefault("LANG", "C.UTF-8")
    home = str(job_dir)
    env.update(
        HOME=home,
        TMPDIR=str(job_dir / "tmp"),
        XDG_CACHE_HOME=str(job_dir / ".cache"),
        XDG_CONFIG_HOME=str(job_dir / ".config"),
        PYTHONDONTWRITEBYTECODE="1",
        PYTHONNOUSERSITE="1",
        # One BLAS thread: RLIMIT_AS breaks OpenBLAS's thread pool start-up otherwise.
        OPENBLAS_NUM_THREADS="1",
        OMP_NUM_THREADS="1",
        MKL_NUM_THREADS="1",
        # LaTeX: no shell escape, and no reading or writing outside the job (kpathsea
        # reads these from the environment).
        shell_escape="f",
        openin_any="p",
        openout_any="p",
        TEXMFOUTPUT=home,
        TEXMFVAR=str(job_dir / ".texmf-var"),
        MPLBACKEND="Agg",
    )
    return env


def job_owners(opts: Sandbox) -> set[int]:
    """The users whose files a job directory may hold: ours, and the render user's when renders switch to it."""
    owners = {os.geteuid()}
    if os.geteuid() == 0 and opts.mode != "off":
        entry, _ = _render_user(opts.user)
        if entry is not None:
            owners.add(entry.pw_uid)
    return owners


def options(data: dict[str, Any] | None) -> Sandbox:
    """The `sandbox` settings from a job spec (defaults when the spec has none)."""
    if not data:
        return Sandbox()
    data = dict(data)
    for key in ("require", "visible_paths"):
        data[key] = tuple(data.get(key, ()))
    return Sandbox(**data)


# -- the parent side: what does this host offer? ----------------------------------------

PROBE = "import sys; from watcher import sandbox; sandbox._probe(sys.argv[1:])"


def detect(settings: Settings | None = None) -> Layers:
    """Which isolation layers render children get here, and why the others are missing.

    Runs a throwaway child through the real `enter()` in auto mode (so every layer is
    tried), in a job directory made exactly like a real job's under folders.work (a layer
    can depend on where that folder is: a visible_paths entry covering it defeats the
    mount layer, a folder the render user cannot search defeats the user layer), and
    reports what it got; with sandbox.mode off, reports every layer as off. Takes about 0.2 s.
    The result is remembered for `expected_layers`.
    """
    opts = settings.sandbox if settings else Sandbox()
    if opts.mode == "off":
        return Layers.none("off", "sandbox.mode is off")
    work = settings.folders.work if settings else Path(tempfile.gettempdir()) / "watcher-work"
    try:
        job = jobfs.create(work, "probe", "sandbox")
    except OSError as e:
        return Layers.none(opts.mode, f"the sandbox probe could not create a job directory in {work}: {e.strerror}")
    try:
        (job.path / "tmp").mkdir()
        spec = json.dumps(dataclasses.asdict(dataclasses.replace(opts, mode="auto")))
        proc = subprocess.run(
            [sys.executable, "-I", "-c", PROBE, str(job.path), spec, str(os.getpid())],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            cwd=job.path,
            env=child_environment(job.path),
            start_new_session=True,
            timeout=60,
        )
    except (OSError, subprocess.SubprocessError) as e:
        return Layers.none(opts.mode, f"the sandbox probe could not run: {e}")
    finally:
        jobfs.discard(job.root)
    try:
        got = Layers.from_dict(json.loads(proc.stdout.splitlines()[-1]))
    except (ValueError, KeyError, IndexError, TypeError):
        last = proc.stderr.decode(errors="replace").strip().splitlines() or [f"exit status {proc.returncode}"]
        return Layers.none(opts.mode, f"the sandbox probe failed: {last[-1]}")
    layers = dataclasses.replace(got, mode=opts.mode, cgroup=_cgroup_status())
    with _detected_lock:
        _detected[_detect_key(settings)] = layers
    return layers


_detected: dict[tuple[Any, ...], Layers] = {}
_detected_lock = threading.Lock()


def _detect_key(settings: Settings | None) -> tuple[Any, ...]:
    if settings is None:
        return (Sandbox(), None)
    return (settings.sandbox, settings.folders.work)


def expected_layers(settings: Settings) -> list[str]:
    """The layers every job under `settings` must get: those the host check found active.

    Detected once per process and settings (the daemon's start-up check counts). A job
    that cannot get one of them fails with an `environment` record instead of running
    with less isolation than was logged (`enter` checks).
    """
    if settings.sandbox.mode == "off":
        return []
    with _detected_lock:
        layers = _detected.get(_detect_key(settings))
    if layers is None:
        layers = detect(settings)
    return [name for name in layers.active if name != "cgroup"]


def prepare(settings: Settings) -> Layers:
    """Start-up check: log once which layers renders get; refuse a strict config this host cannot meet.

    Raises:
        SandboxError: sandbox.mode is strict and a layer of sandbox.require is missing
            (one line naming each missing layer and why).
    """
    opts = settings.sandbox
    layers = detect(settings)
    if opts.mode == "off":
        log.warning(
            "sandbox.mode is off: scenes run with the render limits only, WITHOUT isolation "
            "(they can read what the daemon can, use the network and signal its processes); "
            "use it for trusted input only"
        )
        return layers
    missing = layers.missing(opts.require)
    if opts.mode == "strict" and missing:
        why = "; ".join(f"{name}: {getattr(layers, name).reason}" for name in missing)
        raise SandboxError(f"sandbox.mode is strict but this host lacks {', '.join(missing)} ({why})")
    level = logging.WARNING if missing else logging.INFO
    log.log(level, "sandbox (%s): %s", opts.mode, layers.summary())
    if os.geteuid() == 0 and not layers.user.available:
        log.error(
            "renders never run as root, and the user layer is unavailable (%s): every render will fail "
            "with an environment record until it is fixed (`watcher doctor`)",
            layers.user.reason,
        )
    return layers


def _probe(argv: list[str]) -> NoReturn:
    """The throwaway child of `detect()`: enter the sandbox, print the layers it got."""
    job_dir, spec, parent_pid = Path(argv[0]), json.loads(argv[1]), int(argv[2])
    layers = enter(Render(), parent_pid, job_dir, options(spec), probe=True)
    print(json.dumps(layers.to_dict()), flush=True)
    os._exit(0)


def _cgroup_status() -> Layer:
    """Per-job cgroups are not applied yet; say what this host would offer."""
    try:
        with open("/proc/self/cgroup", encoding="utf-8") as f:
            own = next(line[3:].strip() for line in f if line.startswith("0::"))
        with open("/proc/self/mountinfo", encoding="utf-8") as f:
            mounts = [line.split() for line in f]
        root = next(m[4] for m in mounts if m[m.index("-") + 1] == "cgroup2")
    except (OSError, StopIteration, ValueError):
        return Layer(False, "no cgroup v2 hierarchy is mounted")
    group = Path(root) / own.lstrip("/")
    try:
        controllers = set((group / "cgroup.controllers").read_text().split())
    except OSError as e:
        return Layer(False, f"cannot read {group}/cgroup.controllers: {e.strerror}")
    lacking = sorted({"memory", "pids"} - controllers)
    if lacking:
        return Layer(False, f"cgroup v2 at {root} offers no {' or '.join(lacking)} controller to this process")
    if not os.access(group, os.W_OK):
        return Layer(False, f"the cgroup {group} is not delegated to this user")
    return Layer(False, f"cgroup v2 with memory and pids is delegated ({group}); per-job cgroups are not applied yet")


# -- the child side ---------------------------------------------------------------------


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
    _prctl(PR_SET_NO_NEW_PRIVS, 1)
    _die_with_parent(lambda: os.getppid() == parent_pid)
    _fresh_session_keyring()
    if opts.mode == "off" or job_dir is None:
        return Layers.none(opts.mode, "sandbox.mode is off" if opts.mode == "off" else "no job directory")

    got = _Applied(opts)
    root = os.geteuid() == 0
    entry, no_user = _render_user(opts.user) if root else (None, "the daemon is not root: renders keep its user")
    # A daemon that is not root needs a user namespace to create the others; it also
    # makes the process count below this job's own.
    own_userns = not root and got.attempt("processes", _own_user_namespace) is None

    relay: int | None = None  # our end of the pipe from the relay, once we run as PID 1

    def parent_alive() -> bool:
        if relay is None:
            return os.getppid() == parent_pid
        return not select.select([relay], [], [], 0)[0]  # readable: EOF, the relay is gone

    if got.attempt("pid", lambda: _unshare(CLONE_NEWPID)) is None:
        relay = _fork_job()  # from here on: PID 1 of the new namespace
        _die_with_parent(parent_alive)
        got.ok("pid", "the job is PID 1 of its own PID namespace: no survivor, no other process visible")
    if got.attempt("network", lambda: _unshare(CLONE_NEWNET)) is None:
        got.ok("network", "no network: only a loopback interface that is down")
    if got.attempt("ipc", lambda: _unshare(CLONE_NEWIPC)) is None:
        got.ok("ipc", "its own System V IPC and POSIX message queues")
    proc: list[str] = []  # what /proc is inside, as _private_root found it
    if got.attempt("mount", lambda: proc.append(_private_root(job_dir, opts))) is None:
        got.ok("mount", f"read-only system and Python, the job directory the only writable path, {proc[0]}")

    if entry is None:
        got.fail("user", no_user)
    else:
        blocked = None if got.layers["mount"].available else _unreachable(job_dir, entry)
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
    _drop_capabilities()
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
    _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
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


def _render_user(name: str) -> tuple[pwd.struct_passwd | None, str]:
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
    _prctl(PR_SET_DUMPABLE, 1)


def _unreachable(job_dir: Path, entry: pwd.struct_passwd) -> str | None:
    """The first directory the render user could not search on its way to the job or Python."""
    for target in (job_dir, *_python_paths()):
        if blocked := _unsearchable(Path(target), entry):
            return blocked
    return None


def _unsearchable(path: Path, entry: pwd.struct_passwd) -> str | None:
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
    _unshare(CLONE_NEWUSER)
    for name, text in (("setgroups", "deny"), ("uid_map", f"{uid} {uid} 1"), ("gid_map", f"{gid} {gid} 1")):
        with open(f"/proc/self/{name}", "w", encoding="ascii") as f:
            f.write(text)


def _private_root(job_dir: Path, opts: Sandbox) -> str:
    """Replace this process's view of the filesystem with a new root that holds only what a render needs.

    Built on a tmpfs: each visible host path bind-mounted at its own place, a few device
    nodes, a small empty /tmp, the job directory at its own path; all of it made
    read-only except /tmp and the job directory; a fresh /proc; then pivot_root into it.
    The staging tmpfs is mounted over /tmp, so every source is opened first (a job
    directory under /tmp must stay reachable). All of it happens in a new mount
    namespace: nothing changes outside. Returns what /proc is inside, for the layer's reason.
    """
    _unshare(CLONE_NEWNS)
    _mount(None, "/", None, MS_REC | MS_PRIVATE)  # nothing mounted here may propagate out
    os.umask(0o022)
    links = {p: os.readlink(p) for p in SYSTEM_PATHS if os.path.islink(p)}
    fds: dict[str, int] = {}
    try:
        for path in sorted({*SYSTEM_PATHS, *_python_paths(), *opts.visible_paths} - set(links)):
            with contextlib.suppress(FileNotFoundError):
                fds[path] = os.open(path, os.O_PATH | os.O_CLOEXEC)
        for name in DEVICES:
            fds[f"/dev/{name}"] = os.open(f"/dev/{name}", os.O_PATH | os.O_CLOEXEC)
        job = os.open(job_dir, os.O_PATH | os.O_CLOEXEC)
        fds[str(job_dir)] = job

        stage = "/tmp"
        _mount("tmpfs", stage, "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,mode=755")
        try:
            for path, target in links.items():
                os.symlink(target, stage + path)
            for name in ("dev", "proc", "tmp"):
                os.mkdir(f"{stage}/{name}")
            # /tmp for programs that ignore TMPDIR (which points into the job directory).
            # nr_inodes: empty files cost kernel memory that neither size= nor RLIMIT_AS counts.
            _mount("tmpfs", f"{stage}/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "size=16m,nr_inodes=4096,mode=1777")
            ours = {os.stat(stage).st_dev, os.stat(f"{stage}/tmp").st_dev}
            for path, fd in fds.items():
                if path.startswith("/dev/"):
                    os.close(os.open(stage + path, os.O_CREAT | os.O_WRONLY, 0o644))
                    _bind(fd, stage + path)
                elif fd != job and _make_dirs(stage, path, ours):
                    _bind(fd, stage + path, recursive=True)
            for i, name in enumerate(("stdin", "stdout", "stderr")):
                os.symlink(f"/proc/self/fd/{i}", f"{stage}/dev/{name}")
            os.symlink("/proc/self/fd", f"{stage}/dev/fd")
            if not _make_dirs(stage, str(job_dir), ours):
                raise OSError(0, "cannot place the job directory in the new root", str(job_dir))
            _bind(job, f"{stage}{job_dir}")
            _set_attributes(stage, recursive=True, add=MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID)
            for writable in (f"{stage}/tmp", f"{stage}{job_dir}"):
                _set_attributes(writable, remove=MOUNT_ATTR_RDONLY)
            try:
                _mount("proc", f"{stage}/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
                proc = "its own /proc"
            except OSError as e:
                # In a user namespace the kernel refuses a new /proc while the host's is partly
                # covered (systemd's ProtectKernelTunables, a container's masks). Renders work
                # without one; the PID namespace still hides the daemon.
                proc = f"no /proc (a new one was refused: {e.strerror})"
        except BaseException:
            with contextlib.suppress(OSError):  # back to the host's view; only this layer is lost
                _umount(stage)
            raise
    finally:
        for fd in fds.values():
            os.close(fd)
    os.chdir(stage)
    _pivot_root()
    _umount(".")  # the host's tree: detached, unreachable from here
    os.chdir("/")
    return proc


def _python_paths() -> list[str]:
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


# -- system calls -----------------------------------------------------------------------


class _MountAttr(ctypes.Structure):
    _fields_ = [(name, ctypes.c_uint64) for name in ("attr_set", "attr_clr", "propagation", "userns_fd")]


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


_libc_handle: ctypes.CDLL | None = None


def _libc() -> ctypes.CDLL:
    global _libc_handle
    if _libc_handle is None:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
        libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
        libc.syscall.restype = ctypes.c_long
        _libc_handle = libc
    return _libc_handle


def _check(result: int, what: str, path: str | None = None) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err), path or what)


def _prctl(option: int, value: int) -> None:
    _check(_libc().prctl(option, value, 0, 0, 0), f"prctl({option})")


def _unshare(flags: int) -> None:
    _check(_libc().unshare(flags), "unshare")


def _mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    enc = [s.encode() if s is not None else None for s in (source, target, fstype, data)]
    _check(_libc().mount(enc[0], enc[1], enc[2], flags, enc[3]), "mount", target)


def _bind(fd: int, target: str, recursive: bool = False) -> None:
    # /proc/self/fd/N names the opened file itself, even where its path is now hidden.
    _mount(f"/proc/self/fd/{fd}", target, None, MS_BIND | (MS_REC if recursive else 0))


def _umount(target: str) -> None:
    _check(_libc().umount2(target.encode(), MNT_DETACH), "umount2", target)


def _set_attributes(target: str, add: int = 0, remove: int = 0, recursive: bool = False) -> None:
    """Set and clear MOUNT_ATTR_* flags of the mount at `target` (and below it): mount_setattr, Linux 5.12."""
    attr = _MountAttr(attr_set=add, attr_clr=remove)
    flags = AT_RECURSIVE if recursive else 0
    size = ctypes.sizeof(attr)
    result = _libc().syscall(SYS_MOUNT_SETATTR, AT_FDCWD, target.encode(), flags, ctypes.byref(attr), size)
    _check(result, "mount_setattr (Linux 5.12 or later)", target)


def _pivot_root() -> None:
    """pivot_root(".", "."): the current directory becomes "/", the old root is stacked under it."""
    number = SYS_PIVOT_ROOT.get(platform.machine())
    if number is None:
        raise OSError(0, f"pivot_root: unknown system call number on {platform.machine()}", "pivot_root")
    _check(_libc().syscall(number, b".", b"."), "pivot_root")


def _fresh_session_keyring() -> None:
    """Join a new, empty session keyring: the daemon's (from a shell: the login keyring) is out of reach.

    Keys the daemon's session possesses are readable through possession alone; a scene must
    not possess them. Fails quietly where keyrings are not compiled in (nothing to leak).
    """
    number = SYS_KEYCTL.get(platform.machine())
    if number is not None:
        _libc().syscall(number, KEYCTL_JOIN_SESSION_KEYRING, None)


def _drop_capabilities() -> None:
    header = _CapHeader(CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)()  # all zero: no effective, permitted or inheritable capability
    _check(_libc().capset(ctypes.byref(header), data), "capset")


def _limit(which: int, soft: int, hard: int | None = None) -> None:
    cur_soft, cur_hard = resource.getrlimit(which)
    hard = soft if hard is None else hard
    if cur_hard != resource.RLIM_INFINITY:
        hard = min(hard, cur_hard)
        soft = min(soft, hard)
    resource.setrlimit(which, (soft, hard))
