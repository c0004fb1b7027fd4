"""The shipped systemd unit, generated for a config and checked by systemd's own verifier."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

DAEMON_CONFIG = "daemon: {shutdown_grace: 40}\nfolders: {done: /srv/results/done}\n"
WORKER_CONFIG = (
    "executor: celery\nrender: {timeout: 100, grace: 5}\ncelery: {shared_folder: /srv/shared, concurrency: 3}\n"
)


def _unit(tmp_path: Path, user: str = "root", config: str = DAEMON_CONFIG, *options: str) -> str:
    """`watcher service` on `config` (written to tmp_path/config.yaml) with `options`: the unit it prints."""
    (tmp_path / "config.yaml").write_text(config)
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "watcher",
            "service",
            *options,
            "--config",
            str(tmp_path / "config.yaml"),
            "--user",
            user,
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return r.stdout


def test_unit_has_the_service_contract_and_hardening(tmp_path: Path):
    unit = _unit(tmp_path)
    lines = dict(line.split("=", 1) for line in unit.splitlines() if "=" in line and not line.startswith("#"))
    assert lines["Type"] == "notify" and lines["Restart"] == "on-failure"
    assert int(lines["WatchdogSec"]) > 0
    assert int(lines["TimeoutStopSec"]) > 40  # above daemon.shutdown_grace
    for key in ("NoNewPrivileges", "PrivateTmp", "PrivateNetwork"):
        assert lines[key] == "yes"
    assert lines["ProtectSystem"] == "strict"
    assert lines["MemoryMax"].endswith("M") and int(lines["TasksMax"]) > 0
    rw = lines["ReadWritePaths"].split()
    assert "/srv/results/done" in rw and str(tmp_path / "inbox") in rw and str(tmp_path / "processing") in rw
    assert lines["ExecStart"].endswith(f"-m watcher run --config {tmp_path / 'config.yaml'}")
    assert lines["User"] == "root"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed here")
def test_systemd_accepts_the_unit(tmp_path: Path):
    path = tmp_path / "watcher.service"
    path.write_text(_unit(tmp_path))
    r = subprocess.run(["systemd-analyze", "verify", str(path)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "watcher.service" not in r.stderr, r.stderr  # no warnings about our own unit


def _worker_unit(tmp_path: Path) -> str:
    return _unit(tmp_path, "root", WORKER_CONFIG, "--worker")


def test_worker_unit_drains_within_its_stop_timeout_and_reaches_the_broker(tmp_path: Path):
    unit = _worker_unit(tmp_path)
    lines = dict(line.split("=", 1) for line in unit.splitlines() if "=" in line and not line.startswith("#"))
    assert lines["ExecStart"].endswith(f"-m watcher worker --config {tmp_path / 'config.yaml'}")
    assert int(lines["TimeoutStopSec"]) > 100 + 5 + 60  # a drain outlasts Celery's hard limit
    assert "PrivateNetwork" not in lines  # it talks to Redis; renders get no network from their own sandbox
    rw = lines["ReadWritePaths"].split()
    assert "/srv/shared" in rw and str(tmp_path / "work") in rw and str(tmp_path / "inbox") not in rw
    # A Celery front needs the network too; a local daemon does not.
    front = _unit(tmp_path)  # rewrites config.yaml: a local daemon
    assert "PrivateNetwork=yes" in front


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed here")
def test_systemd_accepts_the_worker_unit(tmp_path: Path):
    path = tmp_path / "watcher-worker.service"
    path.write_text(_worker_unit(tmp_path))
    r = subprocess.run(["systemd-analyze", "verify", str(path)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "watcher-worker.service" not in r.stderr, r.stderr
