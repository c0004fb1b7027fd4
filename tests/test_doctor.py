"""`watcher doctor`'s checks, one by one, on this host."""

from __future__ import annotations

import dataclasses
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
