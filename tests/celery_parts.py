"""Real parts for the distributed tests: a redis-server and `watcher worker` processes.

Both bind to 127.0.0.1 on a free port, are started here and stopped by PID.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
from pathlib import Path

import yaml

from tests.daemon_helpers import gone, wait_for


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RedisServer:
    """redis-server with a password and append-only persistence in `folder`, as the README
    tells operators to run it; `restart` keeps its port, password and data."""

    def __init__(self, folder: Path):
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.password = secrets.token_hex(12)
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://:{self.password}@127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        self.proc = subprocess.Popen(
            [
                "redis-server",
                "--port", str(self.port),
                "--bind", "127.0.0.1",
                "--requirepass", self.password,
                "--dir", str(self.folder),
                "--appendonly", "yes",
                "--appendfsync", "always",
                "--save", "",
                "--maxmemory-policy", "noeviction",
                "--logfile", str(self.folder / "redis.log"),
            ],
            stdin=subprocess.DEVNULL,
        )  # fmt: skip
        wait_for(self.answers, 20, "redis-server to answer")
        return self

    def client(self):  # noqa: ANN201 - redis.Redis
        import redis

        return redis.Redis(host="127.0.0.1", port=self.port, password=self.password, socket_timeout=2)

    def answers(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"redis-server exited:\n{(self.folder / 'redis.log').read_text()}")
        try:
            return bool(self.client().ping())
        except Exception:  # noqa: BLE001 - not up yet
            return False

    def stop(self) -> None:
        """SIGTERM (Redis flushes its append-only file), then wait for the PID to exit."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(30)

    def restart(self) -> None:
        self.stop()
        self.start()


def write_config(root: Path, redis: RedisServer, **sections: dict) -> Path:
    """A config for a front or a worker on `root`'s folders, rendering through `redis`."""
    config: dict = {
        "executor": "celery",
        "celery": {"broker_url": redis.url, "queue": f"q{secrets.token_hex(4)}"},
        "render": {"timeout": 30, "grace": 2},
        "workers": {"count": 2},
        "daemon": {"rescan_interval": 2, "settle_time": 0.3, "shutdown_grace": 5},
    }
    for section, values in sections.items():
        if isinstance(values, dict):
            config.setdefault(section, {}).update(values)
        else:
            config[section] = values
    path = root / "config.yaml"
    root.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config))
    return path


class WorkerProc:
    """`watcher worker --config CONFIG -n N` as a subprocess, its log in `log_path`."""

    def __init__(self, config: Path, concurrency: int = 2):
        self.config = config
        self.concurrency = concurrency
        self.log_path = config.parent / f"worker-{secrets.token_hex(3)}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> WorkerProc:
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "watcher", "worker", "-c", str(self.config), "-n", str(self.concurrency)],
                cwd=self.config.parent,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
            )
        wait_for(lambda: " ready." in self.log() or self.proc.poll() is not None, 60, "the worker to start")
        assert self.proc.poll() is None, self.log()
        return self

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def pool_pids(self) -> list[int]:
        """The worker's pool processes (children of its main process)."""
        assert self.proc is not None
        return children(self.proc.pid)

    def rendering(self, stem: str = "*") -> int | None:
        """The pool process rendering the scene `stem` (any: "*") once its render child runs, else None.

        A job directory is `work/job-<pid of the pool process>-<stem>-...` (watcher.jobfs.create);
        the render child is a child of that process's warm worker.
        """
        pids = self.pool_pids()
        for job in (self.config.parent / "work").glob(f"job-*-{stem}-*"):
            pid = int(job.name.split("-")[1])
            if pid in pids and any(not gone(c) for z in children(pid) for c in children(z)):
                return pid
        return None

    def stop(self, timeout: float = 60) -> None:
        """SIGTERM (Celery's warm shutdown), then SIGKILL the whole session if it hangs."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
            raise AssertionError(f"the worker did not stop on SIGTERM within {timeout} s:\n{self.log()}") from None
        finally:
            # Pool processes and warm workers die with the worker; make sure of it.
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def children(pid: int) -> list[int]:
    """Child processes of every thread of `pid` (a process started by a thread is that thread's child)."""
    found = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as f:
                found += [int(p) for p in f.read().split()]
    except FileNotFoundError:
        pass
    return found
