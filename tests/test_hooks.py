"""Hooks: the operator's commands run after a result is filed, and the repair loop they make possible.

Real processes throughout. The "code generator" of the repair-loop test is a small script
the test writes (a stand-in for the user's own generator, which is what that hook runs): it
applies the record's `suggestion`, as a model given the record would.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path

import pytest

from watcher.config import load_config
from watcher.hooks import HookCall, HookRunner, run_hook

from .daemon_helpers import DaemonProc, scene, wait_for

ROOT = Path(__file__).resolve().parent.parent
RECORDER = "import json, sys; json.dump({'args': sys.argv[1:], 'stdin': json.load(sys.stdin)}, open(sys.argv[1], 'w'))"


def test_a_hook_gets_the_paths_and_the_record(tmp_path: Path):
    out = tmp_path / "seen.json"
    call = HookCall("failed", "x.py", (out, tmp_path / "x.py"), {"phase": "render", "line": 3})
    assert run_hook((sys.executable, "-c", RECORDER), call, 10, tmp_path) == 0
    seen = json.loads(out.read_text())
    assert seen == {"args": [str(out), str(tmp_path / "x.py")], "stdin": {"phase": "render", "line": 3}}


def test_a_hook_past_its_timeout_is_killed_with_its_children(tmp_path: Path, caplog: pytest.LogCaptureFixture):
    pidfile = tmp_path / "child.pid"
    script = (
        "import subprocess, time; p = subprocess.Popen(['sleep', '300']); "
        f"open({str(pidfile)!r}, 'w').write(str(p.pid)); time.sleep(300)"
    )
    call = HookCall("done", "slow.py", (), {})
    started = time.monotonic()
    with caplog.at_level(logging.INFO, logger="watcher.hooks"):
        assert run_hook((sys.executable, "-c", script), call, 1.0, tmp_path) is None
    assert time.monotonic() - started < 10
    assert "killed after 1 s" in caplog.text
    child = int(pidfile.read_text())
    wait_for(lambda: not _alive(child), 5, "the hook's child to die")


def test_a_hook_that_fails_or_cannot_start_is_logged_and_nothing_else(tmp_path: Path, caplog: pytest.LogCaptureFixture):
    runner = HookRunner(load_config(None, ["hooks.on_failed=[/no/such/program]", "hooks.on_done=[/bin/false]"]).hooks)
    with caplog.at_level(logging.INFO, logger="watcher.hooks"):
        runner.submit("failed", "a.py", [tmp_path / "a.py"], {})
        runner.submit("done", "b.py", [tmp_path / "b.py"], {})
        runner.close(10)
    assert "a.py: on_failed hook /no/such/program cannot start" in caplog.text
    assert "b.py: on_done hook exited with status 1" in caplog.text


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except FileNotFoundError:
        return False


GENERATOR = """
import json, sys
record = json.load(open(sys.argv[-1]))
source = sys.stdin.read()
fix = record.get("suggestion")
if fix and "{mode}" == "fix":
    source = source.replace(fix["replace"], fix["with"])
sys.stdout.write(source)
"""


@pytest.mark.parametrize("mode", ["fix", "never"])
def test_the_repair_loop_sends_the_record_to_a_generator_and_drops_its_scene_back(tmp_path: Path, mode: str):
    generator = tmp_path / "generator.py"
    generator.write_text(GENERATOR.format(mode=mode))
    root = tmp_path / "w"
    hook = [sys.executable, str(ROOT / "examples" / "repair_loop.py"), "--inbox", str(root / "inbox")]
    hook += ["--max-attempts", "2", "--generator", f"{sys.executable} {generator}"]
    d = DaemonProc(root, {"hooks": {"on_failed": hook, "timeout": 30}})
    broken = scene(body="self.play(ShowCreation(Circle()), run_time=0.2)")
    with d:
        d.drop("circle.py", broken)
        if mode == "fix":
            wait_for(lambda: (d.done / "circle.mp4").exists(), 90, "the repaired scene to render")
            repaired = (d.done / "circle.py").read_text()
            assert repaired.startswith("# watcher-repair-attempt: 1\n") and "Create(Circle())" in repaired
            assert (d.failed / "circle.py").read_text() == broken  # the first attempt stays filed, as it was
        else:
            wait_for(lambda: "2 repairs did not help" in d.log(), 90, "the loop to give up")
            assert len(list(d.failed.glob("circle*.error.json"))) == 3  # the scene, then two repairs
            assert not any(d.inbox.iterdir()) and not list(d.done.glob("*.py"))
        assert d.proc.poll() is None
