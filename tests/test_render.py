"""The render core end to end: real child processes, real Manim renders, real signals."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from watcher import InvalidScene, RenderError, RenderTimeout, execute_animation_code, pool, sandbox
from watcher.config import load_config
from watcher.pipeline import render_job
from watcher.verify import verify_mp4

from .conftest import job_processes
from .daemon_helpers import pool_warmed_up, started, wait_for

SIMPLE = """
from manim import *

class GeneratedAnimation(Scene):
    def construct(self):
        self.play(Create(Circle()), run_time=0.5)
"""


def settings_for(work: Path, *overrides: str):
    return load_config(None, [f"folders.work={work}", *overrides])


def ready_to_time(settings) -> None:
    """Do what a first job does before its render, so that a test can time the render alone.

    The host check runs once per settings (a throwaway child), and a job waits for a warm
    worker to import Manim (seconds on a busy machine, and not covered by render.timeout).
    """
    sandbox.expected_layers(settings)
    if settings.render.warm_workers:
        workers = pool.get_pool()
        workers.prewarm(1)
        wait_for(lambda: pool_warmed_up(workers), 120, "the warm workers to import Manim")


# The seed's three tests, as written against the seed API.
def test_seed_simple_scene_renders_to_mp4(tmp_path: Path):
    path = execute_animation_code(SIMPLE, "circle", tmp_path)
    assert path == tmp_path / "circle.mp4"
    assert path.suffix == ".mp4" and path.is_file()
    info = verify_mp4(path)
    assert (info.width, info.height) == (854, 480) and info.duration > 0


def test_seed_invalid_python_raises_syntax_error(tmp_path: Path):
    with pytest.raises(SyntaxError):
        execute_animation_code("this is not valid python", "bad", tmp_path)
    assert not list(tmp_path.iterdir())


def test_seed_module_without_scene_raises_value_error(tmp_path: Path):
    with pytest.raises(ValueError, match="missing"):
        execute_animation_code("from manim import *\n\nx = 1\n", "noscene", tmp_path)


def test_policy_violation_is_a_value_error(tmp_path: Path):
    code = SIMPLE.replace("self.play", "__import__('os').system('true'); self.play")
    with pytest.raises(InvalidScene, match="__import__"):
        execute_animation_code(code, "policy", tmp_path)


def test_render_failure_is_a_runtime_error_with_the_record(tmp_path: Path):
    code = SIMPLE.replace("self.play(", "1 / 0; self.play(")
    with pytest.raises(RuntimeError) as info:
        execute_animation_code(code, "zero", tmp_path)
    assert isinstance(info.value, RenderError)
    assert info.value.record.type == "ZeroDivisionError" and info.value.record.line == 6
    assert not (tmp_path / "zero.mp4").exists()


def test_timeout_is_a_render_timeout_and_a_timeout_error(tmp_path: Path):
    settings = settings_for(tmp_path / "work", "render.timeout=2", "render.grace=1")
    code = SIMPLE.replace("self.play(", "time.sleep(60); self.play(").replace("from manim", "import time\nfrom manim")
    with pytest.raises(TimeoutError) as info:
        execute_animation_code(code, "slow", tmp_path, settings=settings)
    assert isinstance(info.value, RenderTimeout) and isinstance(info.value, RuntimeError)
    assert info.value.record.phase == "timeout" and info.value.record.line == 7


def test_quality_is_honoured_and_validated(tmp_path: Path):
    info = verify_mp4(execute_animation_code(SIMPLE, "med", tmp_path, quality="medium_quality"))
    assert (info.width, info.height) == (1280, 720)
    with pytest.raises(ValueError, match="unknown quality"):
        execute_animation_code(SIMPLE, "x", tmp_path, quality="ultra")


# "Stopped at timeout + grace, with no process of theirs left behind."
STUBBORN = {
    "loop": "while True:\n            pass",
    "sigalrm_ignored": "signal.signal(signal.SIGALRM, signal.SIG_IGN)\n        while True:\n            pass",
    "alarm_cancelled": "signal.setitimer(signal.ITIMER_REAL, 0)\n        while True:\n            pass",
    "catch_base_exception": "while True:\n            try:\n                while True:\n                    pass\n"
    "            except BaseException:\n                pass",
    # A grandchild in the job's process group: like LaTeX, it must die with the job.
    "grandchild": "subprocess.Popen(['sleep', '300'])\n        while True:\n            pass",
    "long_c_call": "sum(range(10**12))",
    "sleep": "time.sleep(10**6)",
}


@pytest.mark.parametrize("body", STUBBORN.values(), ids=STUBBORN.keys())
def test_stubborn_scenes_are_stopped_with_no_survivors(body: str, work_dir: Path):
    timeout, grace = 2, 1
    settings = settings_for(work_dir, f"render.timeout={timeout}", f"render.grace={grace}", "validation.enabled=false")
    code = (
        "import signal, subprocess, time\nfrom manim import *\n\n"
        f"class GeneratedAnimation(Scene):\n    def construct(self):\n        {body}\n"
    )
    ready_to_time(settings)
    begun = time.monotonic()
    with render_job(code.encode(), "stubborn.py", settings) as result:
        elapsed = time.monotonic() - begun
        assert not result.ok
        assert result.record.phase == "timeout", result.record.to_json()
    # Stopped at timeout + grace (else never: every body here runs forever); the rest of the
    # bound is room for a busy machine.
    assert elapsed < timeout + grace + 20
    assert job_processes(work_dir) == []
    assert not any(work_dir.iterdir())


def test_runtime_error_maps_to_the_users_line(work_dir: Path):
    source = (Path(__file__).parent.parent / "examples" / "broken_line9.py").read_bytes()
    with render_job(source, "broken_line9.py", settings_for(work_dir)) as result:
        rec = result.record
    assert (rec.phase, rec.type, rec.line) == ("render", "ZeroDivisionError", 9)
    assert ">  9 |         scale = 1 / radius" in rec.excerpt.splitlines()
    assert [f.line for f in rec.frames] == [9]
    assert "job-" not in rec.to_json().replace("job-broken", "")  # no temp paths leak into the record


def test_environment_is_scrubbed(work_dir: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "hunter2-secret")
    monkeypatch.setenv("PYTHONPATH", "/nonexistent-injected")
    code = SIMPLE.replace("self.play(", "raise RuntimeError(repr(dict(os.environ))); self.play(")
    code = "import os\n" + code
    settings = settings_for(work_dir, "validation.enabled=false")
    with render_job(code.encode(), "env.py", settings) as result:
        message = result.record.message
    assert "hunter2-secret" not in message and "PYTHONPATH" not in message
    assert "'HOME':" in message and "'OPENBLAS_NUM_THREADS': '1'" in message


def test_output_flood_is_capped(work_dir: Path):
    code = SIMPLE.replace("self.play(", "[print('x' * 1_000_000) for _ in range(200)]; self.play(")
    settings = settings_for(work_dir, "render.max_log_bytes=4096")
    with render_job(code.encode(), "flood.py", settings) as result:
        assert result.ok
    code = SIMPLE.replace("self.play(", "[print('y' * 1_000_000) for _ in range(50)]; 1/0; self.play(")
    with render_job(code.encode(), "flood.py", settings) as result:
        assert not result.ok and len(result.record.stderr_tail) <= 4096


def test_missing_latex_is_an_environment_fault(work_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))  # the child's PATH comes from the allow-list
    code = SIMPLE.replace("Create(Circle())", "Write(MathTex('x^2'))")
    with render_job(code.encode(), "tex.py", settings_for(work_dir)) as result:
        rec = result.record
    assert rec.phase == "environment", rec.to_json()
    assert "latex" in rec.hint


def test_cancel_stops_a_render_and_reports_no_record(work_dir: Path):
    import threading

    cancel = threading.Event()
    cancelled_at: list[float] = []

    def cancel_once_running() -> None:  # the scene wrote its marker: a render that runs is cancelled
        wait_for(lambda: started(work_dir, "cancel"), 120, "the scene to run")
        cancelled_at.append(time.monotonic())
        cancel.set()

    canceller = threading.Thread(target=cancel_once_running)
    canceller.start()
    code = SIMPLE.replace("self.play(", "import time; open('started', 'w').close(); time.sleep(30); self.play(")
    settings = settings_for(work_dir, "validation.enabled=false")
    with render_job(code.encode(), "cancel.py", settings, cancel=cancel) as result:
        assert result.cancelled and not result.ok and result.record is None
    canceller.join(10)
    # The scene sleeps 30 s: stopped, not waited for (generous for a busy machine).
    assert time.monotonic() - cancelled_at[0] < 20
    assert job_processes(work_dir) == []


def test_verify_mp4_rejects_fakes(tmp_path: Path):
    fake = tmp_path / "fake.mp4"
    fake.write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 1000)
    with pytest.raises(ValueError):
        verify_mp4(fake)
    with pytest.raises(ValueError, match="no video file"):
        verify_mp4(tmp_path / "missing.mp4")
