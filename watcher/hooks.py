"""Commands the operator configures to run after a result is filed (`hooks.on_done`, `hooks.on_failed`).

A hook is the operator's own program (trusted, unlike scenes): it gets the filed paths as
arguments (the record or the outputs first, the source last) and a JSON document on stdin
(the error record, or for a success the source and its outputs), runs from the config
file's directory with WATCHER_EVENT set to "done" or "failed", and is killed with its
whole process group after `hooks.timeout`. Its output is logged, a line each. Hooks run
one at a time on a thread of their own, in the order results were filed, so a slow hook
never holds a render back; nothing a hook does or fails to do changes the job.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import queue
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .config import Hooks

log = logging.getLogger(__name__)

MAX_OUTPUT = 64 * 1024  # bytes of a hook's output that are logged
QUEUE_SIZE = 1000  # filed results waiting for their hook; beyond this they are skipped, with a warning


@dataclass(frozen=True)
class HookCall:
    event: str  # "done" or "failed"
    name: str  # the source's name, for the log
    paths: tuple[Path, ...]
    document: dict[str, Any]


class HookRunner:
    """Runs the configured hooks in order, on a thread of their own."""

    def __init__(self, hooks: Hooks, cwd: Path | None = None):
        self.hooks = hooks
        self.cwd = cwd
        self._queue: queue.Queue[HookCall | None] = queue.Queue(QUEUE_SIZE)
        self._thread: threading.Thread | None = None
        self._current: subprocess.Popen[bytes] | None = None

    def submit(self, event: str, name: str, paths: list[Path], document: dict[str, Any]) -> None:
        """Queue the hook for a filed result (nothing when none is configured for `event`)."""
        if not self._command(event):
            return
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="hooks", daemon=True)
            self._thread.start()
        try:
            self._queue.put_nowait(HookCall(event, name, tuple(paths), document))
        except queue.Full:
            log.warning("%s: on_%s hook skipped: %d results wait for their hooks already", name, event, QUEUE_SIZE)

    def close(self, timeout: float) -> None:
        """Let queued hooks run for at most `timeout` seconds, then kill the one running; drop the rest."""
        if self._thread is None:
            return
        with contextlib.suppress(queue.Full):
            self._queue.put_nowait(None)
        self._thread.join(timeout)
        if self._thread.is_alive():
            left = self._queue.qsize()
            log.warning("stopping: the hook running is killed; %d queued hook(s) do not run", left)
            self._kill(self._current)
            self._thread.join(2.0)

    def _command(self, event: str) -> tuple[str, ...]:
        return self.hooks.on_done if event == "done" else self.hooks.on_failed

    def _run(self) -> None:
        while (call := self._queue.get()) is not None:
            try:
                run_hook(self._command(call.event), call, self.hooks.timeout, self.cwd, self)
            except Exception:  # a hook never takes the daemon down
                log.exception("%s: the on_%s hook could not run", call.name, call.event)

    @staticmethod
    def _kill(proc: subprocess.Popen[bytes] | None) -> None:
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)


def run_hook(
    argv: tuple[str, ...], call: HookCall, timeout: float, cwd: Path | None, runner: HookRunner | None = None
) -> int | None:
    """Run one hook to its end or its timeout; returns its exit status (None: it could not start or was killed)."""
    hook = f"{call.name}: on_{call.event} hook"
    env = {**os.environ, "WATCHER_EVENT": call.event, "WATCHER_SOURCE": call.name}
    started = time.monotonic()
    try:
        proc = subprocess.Popen(
            [*argv, *map(str, call.paths)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            env=env,
            start_new_session=True,  # its own process group: a timeout kills its children too
        )
    except OSError as e:
        log.error("%s %s cannot start: %s", hook, argv[0], e.strerror or e)
        return None
    if runner is not None:
        runner._current = proc
    try:
        out, _ = proc.communicate(json.dumps(call.document).encode(), timeout=timeout)
    except subprocess.TimeoutExpired:
        HookRunner._kill(proc)
        out, _ = proc.communicate()
        _log_output(hook, out)
        log.error("%s was killed after %g s (hooks.timeout)", hook, timeout)
        return None
    finally:
        if runner is not None:
            runner._current = None
        HookRunner._kill(proc)  # whatever it left in its group
    _log_output(hook, out)
    level = logging.INFO if proc.returncode == 0 else logging.WARNING
    log.log(level, "%s exited with status %d after %.2f s", hook, proc.returncode, time.monotonic() - started)
    return proc.returncode


def _log_output(hook: str, out: bytes | None) -> None:
    text = (out or b"")[-MAX_OUTPUT:].decode("utf-8", errors="replace")
    for line in text.splitlines():
        if line.strip():
            log.info("%s: %s", hook, line)
