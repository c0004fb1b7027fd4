"""Run the real daemon as a subprocess on folders in a temp dir."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

SCENE = """from manim import *


class GeneratedAnimation(Scene):
    def construct(self):
        self.play(FadeIn(Square()), run_time={run_time})
"""


def scene(run_time: float = 0.3, body: str | None = None) -> str:
    if body is None:
        return SCENE.format(run_time=run_time)
    return f"from manim import *\n\n\nclass GeneratedAnimation(Scene):\n    def construct(self):\n        {body}\n"


def wait_for(predicate: Callable[[], object], timeout: float, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def warm_workers(pid: int) -> list[int]:
    """PIDs of the warm workers (zygotes, watcher.pool) that process `pid` started."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                ppid = int(f.read().rsplit(b")", 1)[1].split()[1])
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read()
        except (OSError, ValueError, IndexError):
            continue
        if ppid == pid and b"watcher.pool.serve" in cmdline:
            found.append(int(entry))
    return found


def warmed_up(pid: int) -> bool:
    """True once the warm worker `pid` has imported Manim (it then leaves its start-up folder for "/").

    Until then a render waiting for it cannot be cancelled (pool.Zygote.wait_ready): a test
    that times a cancel starts its clock after this.
    """
    try:
        return os.readlink(f"/proc/{pid}/cwd") == "/"
    except OSError:
        return False


def all_warmed_up(pid: int, count: int) -> bool:
    """True once process `pid` has `count` warm workers (or more) and each has imported Manim."""
    workers = warm_workers(pid)
    return len(workers) >= count and all(warmed_up(w) for w in workers)


def pool_warmed_up(workers: Any) -> bool:
    """True once this process's warm-worker pool (`watcher.pool.Pool`) has workers, each done
    importing Manim (one that died meanwhile does not hold this up: the next job replaces it)."""
    pids = workers.pids()
    return bool(pids) and all(warmed_up(z) or gone(z) for z in pids)


def started(work: Path, stem: str) -> bool:
    """True once a scene of `stem` wrote its marker (`open('started', 'w')`) in its job directory.

    Job directories are `work/job-<pid>-<stem>-*/<child dir>`; the glyph seed's ("texseed", with
    cache.latex off) is one too, which is why a test waits for its own scene's marker, not for any directory.
    """
    return any(work.glob(f"job-*-{stem}-*/*/started"))


def gone(pid: int) -> bool:
    """True once `pid` has exited (a zombie counts: it runs no code)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] == b"Z"
    except FileNotFoundError:
        return True


class DaemonProc:
    """`watcher run` on `root/config.yaml`, its log in `root/daemon.log`."""

    def __init__(self, root: Path, config: dict | None = None, env: dict[str, str] | None = None):
        self.root = root
        self.config = {
            "workers": {"count": 2},
            "daemon": {"rescan_interval": 2, "settle_time": 0.3, "shutdown_grace": 5},
            "render": {"timeout": 30, "grace": 2},
        }
        for section, values in (config or {}).items():
            self.config.setdefault(section, {}).update(values)
        self.env = env or {}
        self.proc: subprocess.Popen[bytes] | None = None
        self.inbox = root / "inbox"
        self.done = root / "done"
        self.failed = root / "failed"
        self.processing = root / "processing"
        self.log_path = root / "daemon.log"
        self.inbox.mkdir(parents=True, exist_ok=True)
        self.write_config()

    def write_config(self, text: str | None = None) -> None:
        (self.root / "config.yaml").write_text(text if text is not None else yaml.safe_dump(self.config))

    def start(self, wait: bool = True) -> DaemonProc:
        self._log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        log = open(self.log_path, "ab")  # noqa: SIM115 - kept open by the child
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "watcher", "run", "--config", str(self.root / "config.yaml")],
            cwd=self.root,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            env={**os.environ, **self.env},
        )
        log.close()
        if wait:
            wait_for(lambda: "watching" in self.log() or self.proc.poll() is not None, 60, "the daemon to start")
            assert self.proc.poll() is None, self.log()
        return self

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[self._log_offset :]
        except FileNotFoundError:
            return ""

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def stop(self, timeout: float = 30) -> int:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"the daemon did not stop on SIGTERM within {timeout} s:\n{self.log()}")

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait()

    def drop(self, name: str, text: str) -> Path:
        """Write a scene the way editors and generators do: a temp name, then a rename."""
        tmp = self.inbox / f".{name}.tmp"
        tmp.write_text(text)
        os.replace(tmp, self.inbox / name)
        return self.inbox / name

    def results(self) -> dict[str, list[str]]:
        return {
            "done": sorted(p.name for p in self.done.iterdir()) if self.done.exists() else [],
            "failed": sorted(p.name for p in self.failed.iterdir()) if self.failed.exists() else [],
        }

    def settled(self, n: int) -> bool:
        """True once n sources are filed in done/ or failed/ and nothing is in flight."""
        r = self.results()
        sources = [x for x in r["done"] + r["failed"] if x.endswith(".py")]
        return len(sources) >= n

    def __enter__(self) -> DaemonProc:
        if self.proc is None or self.proc.poll() is not None:
            self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.stop()
