"""The isolation a render child gets: a scrubbed environment and the limits it applies
to itself before any scene code runs.

The parent builds the environment (`child_environment`); the child calls `enter()` as
its first act. Everything here is a backstop: the parent's wall-clock kill is the
guarantee that a job ends.
"""

from __future__ import annotations

import ctypes
import os
import resource
import signal
from pathlib import Path

from .config import Render

# Variables passed through from the daemon's environment; everything else (tokens,
# keys, proxies, PYTHON*) is dropped.
ENV_ALLOW = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TERM")

PR_SET_PDEATHSIG = 1
PR_SET_NO_NEW_PRIVS = 38


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


def enter(r: Render, parent_pid: int) -> None:
    """Apply the child's own limits. Called by the child before it imports the scene."""
    mb = 1024 * 1024
    if r.memory_limit_mb:
        _limit(resource.RLIMIT_AS, r.memory_limit_mb * mb)
    # CPU backstop: the wall-clock kill normally comes first; this catches a parent that vanished.
    cpu = int(r.timeout + r.grace) + 5
    _limit(resource.RLIMIT_CPU, cpu, cpu + 5)
    _limit(resource.RLIMIT_FSIZE, r.max_output_mb * mb)
    _limit(resource.RLIMIT_NOFILE, r.max_open_files)
    _limit(resource.RLIMIT_CORE, 0)
    _prctl(PR_SET_NO_NEW_PRIVS, 1)
    # Die with the parent: a render must never outlive the process that supervises it.
    _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent_pid:  # the parent died before the line above took effect
        os._exit(125)


def _limit(which: int, soft: int, hard: int | None = None) -> None:
    cur_soft, cur_hard = resource.getrlimit(which)
    hard = soft if hard is None else hard
    if cur_hard != resource.RLIM_INFINITY:
        hard = min(hard, cur_hard)
        soft = min(soft, hard)
    resource.setrlimit(which, (soft, hard))


def _prctl(option: int, value: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(option, value, 0, 0, 0) != 0:  # pragma: no cover - only on exotic kernels
        raise OSError(ctypes.get_errno(), f"prctl({option}) failed")
