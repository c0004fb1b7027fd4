"""Warm workers: real zygote processes, real forks, real renders, real signals."""

from __future__ import annotations

import ast
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from watcher import pool, sandbox
from watcher.config import load_config
from watcher.pipeline import render_job

from .conftest import job_processes
from .daemon_helpers import wait_for, warm_workers, warmed_up


def settings_for(work: Path, *overrides: str):
    return load_config(None, [f"folders.work={work}", "validation.enabled=false", *overrides])


def scene(body: str, top: str = "") -> bytes:
    return (
        f"import os, signal, subprocess, sys, time\nimport manim\nfrom manim import *\n{top}\n\n"
        f"class GeneratedAnimation(Scene):\n    def construct(self):\n        {body}\n"
    ).encode()


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


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except FileNotFoundError:
        return False


def reported(source: bytes, settings) -> dict:
    """Run a scene that raises RuntimeError(repr(a dict)); return the dict."""
    with render_job(source, "report.py", settings) as result:
        assert result.record is not None and result.record.type == "RuntimeError", result.record
        return ast.literal_eval(result.record.message)


@pytest.fixture
def warm() -> Iterator[pool.Pool]:
    """A pool of this test's own, so that the zygotes seen here are the ones it started."""
    pool.shutdown()
    yield pool.get_pool()
    pool.shutdown()


def warmed(warm: pool.Pool, count: int) -> list[int]:
    """Start `count` zygotes and wait until each has imported Manim; returns their pids.

    A job that waits for that import cannot be timed: a test that times a job calls this first.
    """
    warm.prewarm(count)
    pids = warm.pids()
    wait_for(lambda: all(warmed_up(z) for z in pids), 120, "the warm workers to import Manim")
    return pids


# Raises with what a job sees at its start, job-specific paths replaced by JOB.
PROBE = scene(
    "pass",
    top="""import gc, numpy, tempfile
job = os.getcwd()
raise RuntimeError(repr({
    'bg': str(config.background_color), 'fps': config.frame_rate, 'attr': hasattr(manim, 'LEAKED'),
    'module': 'leaked' in sys.modules, 'path': sys.path, 'cwd': job,
    'env': {k: v.replace(job, 'JOB') for k, v in os.environ.items()},
    'tmp': tempfile.gettempdir().replace(job, 'JOB'),
    'frozen': gc.get_freeze_count(), 'random': numpy.random.random(),
}))""",
)


def test_no_state_leaks_from_one_job_to_the_next(warm: pool.Pool, work_dir: Path):
    settings = settings_for(work_dir)
    meddler = scene(
        "self.play(FadeIn(Dot()), run_time=0.2)",
        top="config.background_color = RED\nconfig.frame_rate = 5\nmanim.LEAKED = 1\n"
        "sys.modules['leaked'] = sys\nsys.path.insert(0, '/leaked')\nos.chdir('/')\n"
        "os.environ['LEAKED'] = '1'\nimport numpy, tempfile\nnumpy.random.seed(1)\ntempfile.tempdir = '/leaked'\n",
    )
    with render_job(meddler, "meddler.py", settings) as result:
        assert result.ok, result.record and result.record.to_json()
    [zygote] = warm.pids()
    first, second = reported(PROBE, settings), reported(PROBE, settings)
    assert warm.pids() == [zygote] and first["frozen"] and second["frozen"]  # forks of that one warm worker
    assert first["random"] != second["random"]  # numpy is reseeded per job, as a fresh import would be
    fresh = reported(PROBE, settings_for(work_dir, "render.warm_workers=false"))
    assert fresh["frozen"] == 0  # a fresh interpreter
    for state in (first, fresh):
        assert state["cwd"] == "<job>"  # its own job directory, as the record shows it (not the host path)
        del state["frozen"], state["random"], state["cwd"]
    assert first == fresh  # a fork starts exactly as a fresh interpreter does
    assert first["bg"] == "#000000" and not first["attr"] and not first["module"] and "LEAKED" not in first["env"]


def test_timeout_kills_the_whole_tree_and_the_worker_serves_the_next_job(warm: pool.Pool, work_dir: Path):
    settings = settings_for(work_dir, "render.timeout=2", "render.grace=1")
    stubborn = scene(
        "signal.signal(signal.SIGALRM, signal.SIG_IGN)\n        subprocess.Popen(['sleep', '300'])\n"
        "        while True:\n            pass"
    )
    sandbox.expected_layers(settings)  # the host check, once per settings: not part of the time measured
    [zygote] = warmed(warm, 1)  # nor is Manim's import
    started = time.monotonic()
    with render_job(stubborn, "stubborn.py", settings) as result:
        assert result.record.phase == "timeout", result.record.to_json()
    # An outcome, not a race with the clock: the parent's kill ended it (the scene ignores SIGALRM),
    # well before a hang would (the bound leaves room for a loaded machine).
    assert result.record.message.startswith("stopped after"), result.record.to_json()
    assert time.monotonic() - started < 2 + 1 + 30
    assert warm.pids() == [zygote]
    assert children(zygote) == [] and job_processes(work_dir) == []  # the fork and its grandchild
    with render_job(scene("self.play(FadeIn(Dot()), run_time=0.2)"), "next.py", settings) as result:
        assert result.ok
    assert warm.pids() == [zygote]


def test_the_kill_does_not_depend_on_a_stuck_worker(warm: pool.Pool, work_dir: Path, monkeypatch):
    # Short, so that the stuck worker is given up on soon; long enough for a healthy one on a busy machine.
    monkeypatch.setattr(pool, "REPLY_TIMEOUT", 5.0)
    settings = settings_for(work_dir, "render.timeout=1", "render.grace=0.5")
    sandbox.expected_layers(settings)
    # Two workers, both warm before the clock starts: the job runs again on the other one, so
    # no import of Manim is part of the time measured.
    zygotes = warmed(warm, 2)
    stuck: list[int] = []

    def stop_it_once_forked() -> None:
        wait_for(lambda: [z for z in zygotes if children(z)], 60, "the job's fork")
        [zygote] = [z for z in zygotes if children(z)]
        os.kill(zygote, signal.SIGSTOP)
        stuck.append(zygote)

    stopper = threading.Thread(target=stop_it_once_forked)
    stopper.start()
    started = time.monotonic()
    deaf = scene("signal.signal(signal.SIGALRM, signal.SIG_IGN)\n        time.sleep(60)")
    with render_job(deaf, "deaf.py", settings) as result:
        # Killed at the deadline by the supervisor; the stuck worker cannot say how the child
        # ended, so the job ran again on the other worker (and timed out again).
        assert result.record.phase == "timeout", result.record.to_json()
    elapsed = time.monotonic() - started
    stopper.join(60)
    [zygote] = stuck
    [other] = [z for z in zygotes if z != zygote]
    # Twice timeout + grace, and one REPLY_TIMEOUT: far less than the scene's 60 s, even when busy.
    assert elapsed < 2 * 1.5 + 5 + 30
    assert not alive(zygote) and warm.pids() == [other]


def test_a_worker_killed_mid_job_is_replaced_and_the_job_completes(warm: pool.Pool, work_dir: Path):
    settings = settings_for(work_dir)
    warm.prewarm(1)
    [zygote] = warm.pids()

    def kill_it_once_forked() -> None:
        wait_for(lambda: children(zygote), 60, "the job's fork")
        os.kill(zygote, signal.SIGKILL)

    killer = threading.Thread(target=kill_it_once_forked)
    killer.start()
    # The kill must land while the job runs: 3 s of sleep leave the killer (polling every
    # 50 ms) room on a busy machine; a job that ended first would leave nothing to retry.
    with render_job(scene("time.sleep(3)\n        self.play(FadeIn(Dot()), run_time=0.2)"), "victim.py", settings) as r:
        killer.join(60)
        assert r.ok, r.record and r.record.to_json()
    assert not alive(zygote) and len(warm.pids()) == 1 and warm.pids() != [zygote]


def test_a_job_whose_worker_keeps_dying_is_reported_not_retried_forever(warm: pool.Pool, work_dir: Path):
    # What a scene that kills its parent would do, were the sandbox to let it see its parent.
    def kill_two_workers() -> None:
        for _ in range(2):
            wait_for(lambda: [z for z in warm.pids() if children(z)], 60, "a job's fork")
            [zygote] = [z for z in warm.pids() if children(z)]
            os.kill(zygote, signal.SIGKILL)
            wait_for(lambda z=zygote: z not in warm.pids(), 30, "the dead worker to be dropped")

    killer = threading.Thread(target=kill_two_workers)
    killer.start()
    with render_job(scene("time.sleep(30)"), "unlucky.py", settings_for(work_dir)) as result:
        rec = result.record
    killer.join(60)
    assert (rec.phase, rec.type) == ("internal", "WorkerLost"), rec.to_json()
    assert "2 times" in rec.message and "warm_workers" in rec.hint
    assert not any(children(z) for z in warm.pids())


def test_cancel_stops_the_fork_and_keeps_the_worker(warm: pool.Pool, work_dir: Path):
    [zygote] = warmed(warm, 1)
    cancel = threading.Event()

    def cancel_once_forked() -> None:  # a cancel that reaches a running fork, not one still being set up
        wait_for(lambda: children(zygote), 60, "the job's fork")
        cancel.set()

    canceller = threading.Thread(target=cancel_once_forked)
    canceller.start()
    with render_job(scene("time.sleep(30)"), "cancel.py", settings_for(work_dir), cancel=cancel) as result:
        assert result.cancelled and result.record is None
    canceller.join(60)
    assert warm.pids() == [zygote]
    assert alive(zygote) and children(zygote) == []
    assert job_processes(work_dir) == []


def test_warm_workers_false_starts_a_fresh_process(warm: pool.Pool, work_dir: Path):
    # A warm worker froze its objects for the garbage collector before forking; a fresh interpreter did not.
    probe = scene("pass", top="import gc\nraise RuntimeError(repr({'frozen': gc.get_freeze_count()}))")
    fresh = reported(probe, settings_for(work_dir, "render.warm_workers=false"))
    assert fresh["frozen"] == 0 and warm.pids() == []
    forked = reported(probe, settings_for(work_dir))
    assert forked["frozen"] > 0 and len(warm.pids()) == 1


def test_workers_die_with_the_process_that_started_them(work_dir: Path, tmp_path: Path):
    script = tmp_path / "supervisor.py"
    script.write_text(
        "import sys\nfrom watcher.config import load_config\nfrom watcher.pipeline import render_job\n"
        f"settings = load_config(None, ['folders.work={work_dir}', 'validation.enabled=false'])\n"
        f"with render_job({scene('time.sleep(60)')!r}, 'orphan.py', settings) as r:\n    pass\n"
    )
    supervisor = subprocess.Popen([sys.executable, str(script)])
    found: list[tuple[int, list[int]]] = []

    def job_forked() -> bool:
        # The zygote by its command line, and its fork, seen in one look: other children of
        # the supervisor come and go (the sandbox probe, itself with a child while it runs;
        # the Manim API snapshot's builder).
        for z in warm_workers(supervisor.pid):
            if forks := children(z):
                found.append((z, forks))
                return True
        return False

    try:
        wait_for(job_forked, 120, "the job's fork")
        [(zygote, [job])] = found
    finally:
        supervisor.kill()
        supervisor.wait()
    wait_for(lambda: not alive(zygote) and not alive(job), 30, "the worker and its job to exit")
