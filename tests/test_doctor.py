"""`watcher doctor`'s checks, one by one, on this host."""

from __future__ import annotations

import dataclasses
import json
import os
import pwd
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from watcher import doctor, sandbox
from watcher.config import SANDBOX_LAYERS, Sandbox, load_config
from watcher.doctor import FAIL, OK, WARN, Check


def settings_in(root: Path):
    return load_config(None, [f"folders.{k}={root / k}" for k in ("inbox", "processing", "done", "failed", "work")])


def test_latex_check_renders_a_mathtex(tmp_path: Path):
    check = doctor.check_latex(settings_in(tmp_path))
    assert check.level == OK, check  # scripts/setup.sh installs LaTeX and dvisvgm
    assert "MathTex" in check.detail
    assert not (tmp_path / "work").exists()  # a private work folder, removed afterwards


def test_latex_check_names_missing_tools(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    check = doctor.check_latex(settings_in(tmp_path))
    assert check.level == FAIL and "latex, dvisvgm" in check.detail and "dvisvgm" in check.fix


def test_folder_check(tmp_path: Path):
    settings = settings_in(tmp_path)
    assert doctor.check_folders(settings).level == FAIL  # no inbox: the daemon would refuse to start
    settings.folders.inbox.mkdir()
    missing = doctor.check_folders(settings)
    assert missing.level == WARN and "processing, done, failed, work" in missing.detail
    for key in ("processing", "done", "failed", "work"):
        getattr(settings.folders, key).mkdir()
    assert doctor.check_folders(settings).level == OK
    settings.folders.done.rmdir()
    settings.folders.done.write_text("not a folder")
    broken = doctor.check_folders(settings)
    assert broken.level == FAIL and "folders.done" in broken.detail


def test_isolation_checks_report_each_layer(tmp_path: Path):
    checks = doctor.check_isolation(settings_in(tmp_path))
    assert [c.name for c in checks] == [f"sandbox: {name}" for name in SANDBOX_LAYERS]
    assert all(c.level in (OK, WARN) and (c.level == OK or c.fix) for c in checks)
    assert all(c.detail for c in checks)  # each says what it does, or why it is missing


def test_a_missing_layer_that_strict_requires_is_a_fail(tmp_path: Path):
    settings = dataclasses.replace(settings_in(tmp_path), sandbox=Sandbox(mode="strict", require=tuple(SANDBOX_LAYERS)))
    checks = {c.name: c for c in doctor.check_isolation(settings)}
    layers = sandbox.detect(settings)
    for name, layer in layers.items():
        assert checks[f"sandbox: {name}"].level == (OK if layer.available else FAIL)


def test_a_check_that_breaks_is_a_fail_line_not_a_crash(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    def broken() -> Check:
        raise RuntimeError("boom")

    monkeypatch.setattr(doctor, "check_inotify", broken)
    monkeypatch.setattr(doctor, "check_latex", lambda settings: Check("latex, dvisvgm", OK, "skipped here"))
    checks = doctor.run_checks(settings_in(tmp_path))
    inotify = next(c for c in checks if c.name == "inotify")
    assert inotify.level == FAIL and "RuntimeError: boom" in inotify.detail
    assert {"python", "manim", "systemd"} <= {c.name for c in checks}


def test_check_line_format():
    assert Check("inotify", OK, "fine", "unused").line() == "OK    inotify            fine"
    assert Check("systemd", WARN, "absent", "install it").line() == "WARN  systemd            absent; fix: install it"


@pytest.fixture
def private_folder() -> Iterator[Path]:
    """A folder only root may enter, as `mktemp -d` makes; in /tmp, which everyone may search.

    Skips unless root with the render user present: only then do renders switch users.
    """
    if os.geteuid() != 0:
        pytest.skip("needs root: only a root daemon runs renders as sandbox.user")
    try:
        pwd.getpwnam(Sandbox().user)
    except KeyError:
        pytest.skip(f"no user {Sandbox().user} on this host (scripts/setup.sh creates it)")
    # Not under tmp_path: pytest makes its own base folder 0700 too, which would be found first.
    folder = Path(tempfile.mkdtemp(prefix="watcher-private-", dir="/tmp"))
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    yield folder
    shutil.rmtree(folder)


def test_render_user_check_names_the_folder_that_blocks_the_work_folder(private_folder: Path):
    settings = settings_in(private_folder)
    settings.folders.work.mkdir()
    blocked = [c for c in doctor.check_render_user(settings) if "folders.work" in c.detail]
    assert len(blocked) == 1 and blocked[0].level == WARN, blocked
    assert f"cannot search {private_folder} (mode 0700)" in blocked[0].detail
    assert blocked[0].fix.startswith(f"chmod o+x {private_folder} ")
    private_folder.chmod(0o711)  # the fix it gives
    assert not [c for c in doctor.check_render_user(settings) if "folders.work" in c.detail]


def test_render_user_check_names_the_folder_that_blocks_python(private_folder: Path):
    # The known failure: a clone (here its virtualenv, reached through a link) inside a
    # folder only root may enter. The real command, run by that Python.
    (private_folder / "clone").mkdir()
    (private_folder / "clone" / ".venv").symlink_to(Path(sys.prefix))
    python = private_folder / "clone" / ".venv" / "bin" / "python"
    probe = (
        "import json; from watcher import doctor; from watcher.config import load_config;"
        "print(json.dumps([c.__dict__ for c in doctor.check_render_user(load_config(None))]))"
    )
    done = subprocess.run([python, "-I", "-c", probe], capture_output=True, text=True, timeout=60, cwd="/")
    assert done.returncode == 0, done.stderr
    check = json.loads(done.stdout)[0]
    assert check["level"] == WARN and check["name"] == "render user", check
    assert f"cannot search {private_folder} (mode 0700) on the way to Python and watcher ({python})" in check["detail"]
    assert "without it every render fails" in check["detail"]
    assert check["fix"].startswith(f"chmod o+x {private_folder} ")


def test_render_user_check_has_nothing_to_say_when_renders_keep_the_daemon_user(tmp_path: Path):
    settings = dataclasses.replace(settings_in(tmp_path), sandbox=Sandbox(mode="off"))
    assert doctor.check_render_user(settings) == []
    settings = dataclasses.replace(settings_in(tmp_path), sandbox=Sandbox(user="no-such-user-here"))
    assert doctor.check_render_user(settings) == []
