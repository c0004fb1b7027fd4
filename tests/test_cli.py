"""The command line: every command through click's runner, and as a real subprocess."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from watcher.cli import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, cli
from watcher.status import STATUS_NAME
from watcher.verify import verify_mp4

from .conftest import job_processes
from .daemon_helpers import DaemonProc, all_warmed_up, scene, started, wait_for

BROKEN = "from manim import *\n\nclass GeneratedAnimation(Scene):\n    def construct(self)\n        pass\n"
RAISES = scene(body="self.play(FadeIn(Square()), run_time=0.3)\n        1 / 0")


@pytest.fixture(autouse=True)
def _restore_logging():
    # The commands point the root logger at the runner's stderr, which closes after each call.
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A config whose folders are all under tmp_path, with an inbox."""
    (tmp_path / "config.yaml").write_text(yaml.safe_dump({"workers": {"count": 2}}))
    (tmp_path / "inbox").mkdir()
    return tmp_path


def invoke(*args: str, env: dict[str, str] | None = None):
    return CliRunner().invoke(cli, list(args), env=env)


def run(*args: str, cwd: Path, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "watcher", *args], cwd=cwd, capture_output=True, text=True, timeout=timeout
    )


# -- everywhere ----------------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["run", "render", "rerender", "validate", "status", "doctor", "report", "service"])
def test_every_command_has_help_with_an_example(command: str):
    result = invoke(command, "--help")
    assert result.exit_code == 0
    assert "Example" in result.output and f"watcher {command}" in result.output


def test_python_dash_m_watcher_works(tmp_path: Path):
    done = run("--help", cwd=tmp_path)
    assert done.returncode == 0 and "rerender" in done.stdout and "Example" not in done.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["render", "nowhere.py"],  # no such path (click)
        ["render", "--set", "render.timeout=-1", "x.py"],
        ["render", "--quality", "ultra", "x.py"],
        ["render", "empty/"],  # no .py files in it
        ["rerender", "nowhere"],
        ["rerender", "x.mp4"],  # not a scene source
        ["status", "--set", "bogus=1"],
        ["render", "--workers", "0", "x.py"],
    ],
)
def test_usage_and_config_errors_exit_2(args: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "x.py").write_text(scene())
    (tmp_path / "x.mp4").write_bytes(b"")
    (tmp_path / "empty").mkdir()
    result = invoke(*args)
    assert result.exit_code == EXIT_USAGE, result.output
    assert not (tmp_path / "out").exists()


# -- render ----------------------------------------------------------------------------------------


def test_render_json_summary_and_exit_1_when_any_failed(project: Path):
    src = project / "src"
    src.mkdir()
    (src / "good.py").write_text(scene())
    (src / "broken.py").write_text(BROKEN)
    out = project / "out"

    result = invoke("render", str(src), "--out", str(out), "--config", str(project / "config.yaml"), "--json")

    assert result.exit_code == EXIT_FAILED, result.output
    summary = json.loads(result.stdout)
    assert (summary["rendered"], summary["failed"], summary["timed_out"]) == (1, 1, 0)
    assert summary["failed_by_phase"] == {"validate": 1} and summary["out"] == str(out)
    assert summary["scenes_per_minute"] > 0
    jobs = {Path(j["source"]).name: j for j in summary["jobs"]}
    assert jobs["good.py"]["status"] == "rendered" and jobs["good.py"]["outputs"][0] == str(out / "good.mp4")
    assert jobs["broken.py"]["error"]["phase"] == "validate" and jobs["broken.py"]["error"]["line"] == 4
    assert verify_mp4(out / "good.mp4").frames >= 1
    assert sorted(p.name for p in src.iterdir()) == ["broken.py", "good.py"]


def test_render_as_a_subprocess_prints_a_line_per_job_and_a_summary_table(project: Path):
    (project / "src").mkdir()
    (project / "src" / "one.py").write_text(scene())

    done = run("render", "src", "--out", "out", "--move", cwd=project)

    assert done.returncode == EXIT_OK, done.stdout + done.stderr
    first = done.stdout.splitlines()[0]
    assert first.startswith("ok ") and "src/one.py -> out/one.mp4" in first, done.stdout
    for row in ("rendered", "failed", "timed out", "total time", "scenes per minute"):
        assert row in done.stdout
    assert sorted(p.name for p in (project / "out").iterdir()) == ["one.meta.json", "one.mp4", "one.py"]
    assert not list((project / "src").iterdir())  # --move


def test_render_on_a_terminal_shows_a_progress_bar(project: Path):
    (project / "a.py").write_text(BROKEN)  # a validation failure: no render needed
    args = ("render", str(project / "a.py"), "--out", str(project / "out"), "--config", str(project / "config.yaml"))
    result = invoke(*args, env={"FORCE_COLOR": "1", "TTY_COMPATIBLE": "1", "TTY_INTERACTIVE": "1"})
    assert result.exit_code == EXIT_FAILED, result.output
    assert "FAILED" in result.output and "validate: SyntaxError at line 4" in result.output


def test_sigterm_stops_a_batch_and_files_nothing(project: Path):
    slow = scene(
        body="self.wait(0.1)\n        import time\n        open('started', 'w').close()\n        time.sleep(120)"
    )
    (project / "slow.py").write_text(slow)
    proc = subprocess.Popen(
        [sys.executable, "-m", "watcher", "render", "slow.py", "--out", "out"],
        cwd=project,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    work = project / "work"
    try:
        # Not any job directory (with cache.latex off the glyph seed's, "texseed", is one too).
        # Our scene is running once it wrote its marker; and the warm workers (workers.count: 2)
        # must have imported Manim, for a render still waiting
        # for that import cannot be cancelled: that wait is no part of what is timed here.
        wait_for(lambda: started(work, "slow") or proc.poll() is not None, 120, "the scene to run")
        wait_for(lambda: all_warmed_up(proc.pid, 2) or proc.poll() is not None, 120, "the warm workers")
        assert proc.poll() is None, proc.communicate()
        sent = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()

    assert proc.returncode == EXIT_INTERRUPTED, stdout + stderr
    # The scene sleeps 120 s more: stopped, not waited for (generous: the machine may be busy).
    assert time.monotonic() - sent < 60, stdout + stderr
    assert "cancelled" in stdout
    assert not (project / "out").exists() or not list((project / "out").iterdir())
    assert (project / "slow.py").exists()
    assert job_processes(work) == []


def test_job_lines_cannot_drive_the_terminal(project: Path):
    name = project / "evil\x1b[2Jname.py"
    name.write_text(BROKEN)
    result = invoke("render", str(name), "--out", str(project / "out"), "--config", str(project / "config.yaml"))
    assert result.exit_code == EXIT_FAILED
    assert "\x1b" not in result.stdout and "evil?[2Jname.py" in result.stdout


# -- rerender ----------------------------------------------------------------------------------------


def _filed(project: Path, *names: str, text: str = scene()) -> Path:
    """Render scenes into done/ the way the daemon leaves them (source beside its MP4)."""
    src = project / "src"
    src.mkdir(exist_ok=True)
    for name in names:
        (src / name).write_text(text)
    config = str(project / "config.yaml")
    result = invoke("render", str(src), "--out", str(project / "done"), "--move", "--config", config)
    assert result.exit_code == EXIT_OK, result.output
    return project / "done"


def test_rerender_with_new_quality_then_nothing_then_forced(project: Path):
    done = _filed(project, "a.py", "b.py")
    config = str(project / "config.yaml")
    assert verify_mp4(done / "a.mp4").height == 480

    first = invoke("rerender", "--config", config, "--set", "render.quality=medium_quality", "--json")
    assert first.exit_code == EXIT_OK, first.output
    summary = json.loads(first.stdout)
    assert (summary["rendered"], summary["skipped"], summary["failed"]) == (2, 0, 0)
    for name in ("a", "b"):
        info = verify_mp4(done / f"{name}.mp4")
        assert (info.width, info.height) == (1280, 720)
        assert json.loads((done / f"{name}.meta.json").read_text())["settings"]["quality"] == "medium_quality"
    assert sorted(p.name for p in done.iterdir()) == sorted(
        ["a.py", "a.mp4", "a.meta.json", "b.py", "b.mp4", "b.meta.json"]
    )
    before = {p.name: p.stat().st_mtime_ns for p in done.iterdir()}

    second = invoke("rerender", "done", "--config", config, "--quality", "m", "--json")
    assert second.exit_code == EXIT_OK, second.output
    summary = json.loads(second.stdout)
    assert (summary["rendered"], summary["skipped"]) == (0, 2)
    assert {p.name: p.stat().st_mtime_ns for p in done.iterdir()} == before  # nothing was touched

    forced = invoke("rerender", str(done / "a.py"), "--config", config, "--quality", "m", "--force", "--json")
    assert json.loads(forced.stdout)["rendered"] == 1


def test_rerender_that_fails_keeps_the_old_mp4(project: Path):
    slow = scene(body="import time\n        self.play(FadeIn(Square()), run_time=0.3)\n        time.sleep(1)")
    done = _filed(project, "a.py", text=slow)
    old = (done / "a.mp4").read_bytes()
    config = str(project / "config.yaml")
    short = ("--set", "render.timeout=0.5", "--set", "render.grace=0")

    # A timeout the scene cannot meet: the new render fails, the old video stays.
    result = invoke("rerender", "--config", config, *short, "--json")

    assert result.exit_code == EXIT_FAILED, result.output
    summary = json.loads(result.stdout)
    assert (summary["failed"], summary["timed_out"]) == (1, 1)
    assert summary["jobs"][0]["note"] == "kept the previous MP4"
    assert (done / "a.mp4").read_bytes() == old
    record = json.loads((done / "a.error.json").read_text())
    assert record["phase"] == "timeout"
    meta = json.loads((done / "a.meta.json").read_text())
    assert meta["ok"] is False and meta["videos"][0]["height"] == 480  # still describes the kept MP4

    # The same failing settings again: unchanged, so nothing is rendered.
    again = invoke("rerender", "--config", config, *short, "--json")
    assert json.loads(again.stdout)["skipped"] == 1

    # Back to the old settings: renders, replaces the MP4, drops the error record.
    back = invoke("rerender", "--config", config, "--json")
    assert back.exit_code == EXIT_OK and json.loads(back.stdout)["rendered"] == 1
    assert not (done / "a.error.json").exists()


def test_rerender_as_a_subprocess_moves_fixed_scenes_out_of_failed(project: Path):
    failed = project / "failed"
    failed.mkdir()
    (failed / "fixed.py").write_text(scene())
    (failed / "fixed.error.json").write_text(json.dumps({"phase": "render", "type": "NameError", "message": "x"}))
    (failed / "still.py").write_text(RAISES)

    done = run("rerender", "failed", cwd=project)

    assert done.returncode == EXIT_FAILED, done.stdout + done.stderr
    assert "moved from failed/ to done/" in done.stdout and "ZeroDivisionError at line 7" in done.stdout
    assert sorted(p.name for p in (project / "done").iterdir()) == ["fixed.meta.json", "fixed.mp4", "fixed.py"]
    assert sorted(p.name for p in failed.iterdir()) == ["still.error.json", "still.meta.json", "still.py"]


# -- validate ----------------------------------------------------------------------------------------


def test_validate_reports_file_line_col_and_exit_status(project: Path):
    good, bad = project / "good.py", project / "bad.py"
    good.write_text(scene())
    bad.write_text(BROKEN)
    assert invoke("validate", str(good)).exit_code == EXIT_OK
    result = invoke("validate", str(good), str(bad))
    assert result.exit_code == EXIT_FAILED
    assert result.stdout.startswith(f"{bad}:4:")
    data = json.loads(invoke("validate", str(good), str(bad), "--json").stdout)
    assert [d["ok"] for d in data] == [True, False] and data[1]["findings"][0]["line"] == 4


def test_validate_as_a_subprocess_does_not_import_manim(project: Path):
    (project / "bad.py").write_text(scene(body="import socket"))
    code = (
        "import json, sys, time\n"
        "from watcher.cli import cli\n"
        "t = time.process_time()\n"
        "try:\n"
        "    cli(['validate', 'bad.py'])\n"
        "except SystemExit as e:\n"
        "    seconds = time.process_time() - t  # CPU time: a busy machine must not make this flaky\n"
        "    facts = {'exit': e.code, 'manim': 'manim' in sys.modules, 'seconds': seconds}\n"
        "    print(json.dumps(facts), file=sys.stderr)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=project, capture_output=True, text=True, timeout=60)
    facts = json.loads(done.stderr.splitlines()[-1])
    assert facts["exit"] == EXIT_FAILED and facts["manim"] is False
    assert facts["seconds"] < 0.1, facts
    assert "bad.py:6:" in done.stdout and "forbidden-import" in done.stdout


# -- status ------------------------------------------------------------------------------------------


def _status_file(project: Path, **fields) -> None:
    (project / "processing").mkdir(exist_ok=True)
    now = time.time()
    data = {"pid": os.getpid(), "started": now - 3700, "updated": now, "state": "running", "queued": 2}
    data |= {"running": {"x.py": 4.0}, "counts": {"done": 3}} | fields
    (project / "processing" / STATUS_NAME).write_text(json.dumps(data))


def _dead_pid() -> int:
    """The pid of a child that has exited and been reaped, checked to be free right now.

    Called in the test, just before use: a pid dead at collection time may belong to a new
    process by the time the test runs. The caller checks again after use.
    """
    for _ in range(100):
        proc = subprocess.Popen(["true"])
        proc.wait()
        if not _pid_alive(proc.pid):
            return proc.pid
    raise AssertionError("no free pid found")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


DEAD = "a pid that no process has"  # replaced in the test by _dead_pid()


@pytest.mark.parametrize(
    ("fields", "state"),
    [
        ({}, "running"),
        ({"updated": time.time() - 600}, "stale"),
        ({"state": "stopped"}, "stopped"),
        ({"pid": DEAD}, "gone"),
        (None, "absent"),
    ],
)
def test_status_json_tells_whether_the_daemon_is_alive(project: Path, fields: dict | None, state: str):
    (project / "inbox" / "new.py").write_text(scene())
    (project / "failed").mkdir()
    (project / "failed" / "x.py").write_text("")
    (project / "failed" / "x.error.json").write_text(json.dumps({"phase": "render", "type": "E", "message": "m\nn"}))

    for _ in range(5):
        if fields is not None:
            given = {k: _dead_pid() if v == DEAD else v for k, v in fields.items()}
            _status_file(project, **given)
        result = invoke("status", "--config", str(project / "config.yaml"), "--json")
        # A dead pid that a new process took meanwhile is alive: the answer says nothing then.
        if fields is None or fields.get("pid") != DEAD or not _pid_alive(given["pid"]):
            break
    else:
        pytest.fail("every dead pid tried was reused before the status was read")

    assert result.exit_code == EXIT_OK, result.output
    data = json.loads(result.stdout)
    assert data["counts"] == {"inbox": 1, "processing": 0, "done": 0, "failed": 1}
    assert data["daemon"]["state"] == state
    if state == "running":
        assert data["daemon"]["pid"] == os.getpid() and data["daemon"]["uptime_seconds"] >= 3700
        assert data["daemon"]["running"][0]["name"] == "x.py" and data["daemon"]["queued"] == 2
    else:
        assert data["daemon"]["running"] == []
    assert data["recent_failures"][0]["message"] == "m" and data["recent_failures"][0]["phase"] == "render"
    text = invoke("status", "--config", str(project / "config.yaml"))
    assert text.exit_code == EXIT_OK and "daemon" in text.stdout and "latest failures" in text.stdout


def test_status_report_and_rerender_beside_a_real_daemon(tmp_path: Path):
    with DaemonProc(tmp_path) as d:
        d.drop("live.py", scene())
        wait_for(lambda: d.settled(1), 60, "the daemon to render live.py")
        done = run("status", "--json", cwd=tmp_path)
        assert done.returncode == EXIT_OK, done.stderr
        data = json.loads(done.stdout)
        assert data["daemon"]["state"] == "running" and data["daemon"]["pid"] == d.proc.pid
        assert data["counts"]["done"] == 1

        def daemon_counted() -> bool:  # the daemon rewrites its status file every 2 s
            return json.loads(run("status", "--json", cwd=tmp_path).stdout)["daemon"]["counts"] == {"done": 1}

        wait_for(daemon_counted, 60, "the status file to count the render")

        # The daemon's meta.json says the result is current: a re-render skips it, unless forced.
        assert json.loads(run("rerender", "done", "--json", cwd=tmp_path).stdout)["skipped"] == 1
        assert json.loads(run("rerender", "done", "--force", "--json", cwd=tmp_path).stdout)["rendered"] == 1
        assert json.loads(run("rerender", "done", "--json", cwd=tmp_path).stdout)["skipped"] == 1

        page = run("report", "--json", cwd=tmp_path)
        assert page.returncode == EXIT_OK and json.loads(page.stdout)["videos"] == 1
        assert (tmp_path / "report.html").exists()
    stopped = json.loads(run("status", "--json", cwd=tmp_path).stdout)
    assert stopped["daemon"]["state"] == "stopped"
    assert "stopped cleanly" in run("status", cwd=tmp_path).stdout


# -- doctor and report ---------------------------------------------------------------------------------


def test_doctor_json_lists_every_check(project: Path):
    result = invoke("doctor", "--config", str(project / "config.yaml"), "--json")
    checks = json.loads(result.stdout)
    levels = {c["name"]: c["level"] for c in checks}
    assert {"python", "manim", "latex, dvisvgm", "folders", "inotify", "sandbox: pid", "systemd"} <= set(levels)
    assert set(levels.values()) <= {"OK", "WARN", "FAIL"}
    assert levels["latex, dvisvgm"] == "OK", checks  # set-up installs LaTeX
    assert result.exit_code == (EXIT_FAILED if "FAIL" in levels.values() else EXIT_OK)
    assert all(c["fix"] for c in checks if c["level"] != "OK")


def test_doctor_as_a_subprocess_fails_without_latex_or_inbox(tmp_path: Path):
    env = {**os.environ, "PATH": "/nonexistent"}  # no latex, no dvisvgm
    done = subprocess.run(
        [sys.executable, "-m", "watcher", "doctor"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == EXIT_FAILED, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert all(line.split()[0] in ("OK", "WARN", "FAIL") for line in lines), lines
    latex = next(line for line in lines if "latex, dvisvgm" in line)
    assert latex.startswith("FAIL") and "not on PATH: latex, dvisvgm" in latex and "fix: apt-get install" in latex
    folders = next(line for line in lines if " folders " in line)
    assert folders.startswith("FAIL") and "no inbox" in folders


def test_report_through_the_runner_writes_index_html(project: Path):
    out = project / "out"
    out.mkdir()
    (out / "x.error.json").write_text(json.dumps({"phase": "validate", "type": "SyntaxError", "message": "bad"}))
    result = invoke("report", str(out), "--config", str(project / "config.yaml"))
    assert result.exit_code == EXIT_OK, result.output
    assert result.stdout.strip() == f"wrote {out / 'index.html'}: 0 videos, 1 failures"
    assert "SyntaxError" in (out / "index.html").read_text()
    assert invoke("report", "--config", str(project / "config.yaml")).exit_code == EXIT_USAGE  # no done/ yet


def test_local_mode_needs_no_celery_and_celery_mode_says_what_is_missing(tmp_path: Path):
    """Celery is an optional extra: without it, local renders work and `executor: celery` is a
    config error that names the install command (the import is blocked here, as if not installed)."""
    scene = tmp_path / "tiny.py"
    scene.write_text("from manim import *\n\n\nclass A(Scene):\n    def construct(self):\n        self.add(Dot())\n")
    blocked = "import sys; sys.modules['celery'] = None; from watcher.cli import main; main()"

    def watcher(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-c", blocked, *args], capture_output=True, text=True, timeout=300, cwd=tmp_path
        )

    local = watcher("render", str(scene), "--out", str(tmp_path / "out"))
    assert local.returncode == 0, local.stderr
    assert (tmp_path / "out" / "tiny.png").exists()  # a still scene
    remote = watcher("render", str(scene), "--out", str(tmp_path / "out2"), "--set", "executor=celery")
    assert remote.returncode == 2 and "celery extra" in remote.stderr and "Traceback" not in remote.stderr
