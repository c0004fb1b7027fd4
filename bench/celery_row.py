"""Row (g) of bench/run.py: `watcher render` with `executor: celery`, on this machine.

A redis-server on 127.0.0.1 (a free port, a password, append-only file, as the README sets
it up) and a `watcher worker` with N prefork processes are started first and are warm (its
processes have imported Manim) before the clock starts, as a worker fleet is in service;
the clock covers `watcher render` from its start to its exit, as in row (c). The front keeps
2N jobs in flight (`--workers 2N`: front threads mostly wait), as the README advises, so that a
worker process never waits for the front to take a result and submit the next job. Both are
stopped by PID afterwards.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import yaml
from procfs import children  # bench/procfs.py

BIN = Path(sys.executable).parent


def available() -> str | None:
    """Why the row cannot run here, or None."""
    if shutil.which("redis-server") is None:
        return "redis-server is not installed"
    try:
        import celery  # noqa: F401
    except ImportError:
        return "the celery extra is not installed"
    return None


def celery_cli(corpus: Path, work: Path, n: int, in_flight: int | None = None) -> tuple[float, int]:
    work.mkdir(parents=True, exist_ok=True)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    password = secrets.token_hex(12)
    redis = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--requirepass", password,
         "--dir", str(work), "--appendonly", "yes", "--save", "", "--logfile", str(work / "redis.log")],
        stdin=subprocess.DEVNULL,
    )  # fmt: skip
    config = work / "config.yaml"
    config.write_text(
        yaml.safe_dump({"executor": "celery", "celery": {"broker_url": f"redis://:{password}@127.0.0.1:{port}/0"}})
    )
    worker = None
    try:
        _wait(lambda: _answers(port, password), 20)
        with open(work / "worker.log", "ab") as log:
            worker = subprocess.Popen(
                [str(BIN / "watcher"), "worker", "-c", str(config), "-n", str(n)],
                cwd=work,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
            )
        _wait(lambda: " ready." in (work / "worker.log").read_text(errors="replace"), 60)
        _wait(lambda: _warm(worker.pid, n), 120)
        started = time.perf_counter()
        subprocess.run(
            [str(BIN / "watcher"), "render", str(corpus), "--out", str(work / "out"), "--workers", str(in_flight or n)],
            cwd=work,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        seconds = time.perf_counter() - started
    finally:
        if worker is not None:
            worker.terminate()
            try:
                worker.wait(60)
            except subprocess.TimeoutExpired:
                pass
            try:
                os.killpg(worker.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            worker.wait()
        redis.terminate()
        redis.wait(30)
    return seconds, len(list((work / "out").glob("*.mp4")))


def _answers(port: int, password: str) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
            s.sendall(f"AUTH {password}\r\nPING\r\n".encode())
            return b"PONG" in s.recv(100)
    except OSError:
        return False


def _warm(pid: int, n: int) -> bool:
    """True once each of the worker's n pool processes has a warm worker that imported Manim."""
    zygotes = [z for p in children(pid) for z in children(p)]
    if len(zygotes) < n:
        return False
    try:
        return all(os.readlink(f"/proc/{z}/cwd") == "/" for z in zygotes)  # see watcher.pool: "/" once imported
    except OSError:
        return False


def _wait(predicate, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("the Celery row's redis-server or worker did not start")
        time.sleep(0.05)
