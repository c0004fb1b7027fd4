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

This module is the parent's side: the scrubbed environment (`child_environment`), the host
check (`detect`, `prepare`, `expected_layers`) and a job's settings (`options`,
`job_owners`). The child's side is `watcher.confine` (`enter`, `Layers`, `SandboxError`),
with the mount layer's private root in `watcher.rootfs` and the raw system calls in
`watcher.linux`; what other modules use of those is imported here, so they need only `sandbox`.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any, NoReturn

from . import jobfs
from .config import SANDBOX_LAYERS as SANDBOX_LAYERS  # tests/test_hostile.py reads it here
from .config import Render, Sandbox, Settings
from .confine import Layer, Layers, SandboxError, enter, render_user, unreachable, unsearchable
from .linux import SYS_KEYCTL as SYS_KEYCTL  # tests/test_hostile.py reads it here
from .rootfs import python_paths

log = logging.getLogger(__name__)

# Their names from before they moved to confine and rootfs: doctor.py and tests/test_hostile.py use them here.
_render_user, _unreachable, _unsearchable, _python_paths = render_user, unreachable, unsearchable, python_paths

# Variables passed through from the daemon's environment; everything else (tokens,
# keys, proxies, PYTHON*) is dropped.
ENV_ALLOW = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TERM")


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
        entry, _ = render_user(opts.user)
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
