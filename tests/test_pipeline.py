"""The one pipeline behind the daemon, the batch commands and the library call, and its executor seam.

The daemon tests here run `Daemon.run` in this process with `StubExecutor`
(tests/stub_executor.py): they are about folders and lifecycle, not rendering, so they
render nothing and wait on conditions, never on the clock. The classification test
renders real scenes with the local executor.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from tests.daemon_helpers import scene, wait_for
from tests.stub_executor import StubExecutor, tiny_mp4
from watcher import pool
from watcher.batch import run_batch
from watcher.config import load_config
from watcher.daemon import Daemon
from watcher.job import content_key

KEYS = ("inbox", "processing", "done", "failed", "work")


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_mp4(tmp_path_factory.mktemp("stub") / "tiny.mp4")


def _config(root: Path, extra: dict | None = None) -> Path:
    config = {
        "folders": {key: str(root / key) for key in KEYS},
        "workers": {"count": 2},
        "daemon": {"settle_time": 0.05, "rescan_interval": 0.5, "shutdown_grace": 0},
        "validation": {"api_check": "off"},
    }
    for section, values in (extra or {}).items():
        config.setdefault(section, {}).update(values)
    (root / "inbox").mkdir(parents=True, exist_ok=True)
    path = root / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _run_daemon(daemon: Daemon, drive: Callable[[Daemon], None]) -> int:
    """`daemon.run()` in this (the main) thread, where signals go; `drive` in another, then SIGTERM."""
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
    failures: list[BaseException] = []

    def driver() -> None:
        try:
            wait_for(lambda: daemon._workers and daemon.queue is not None, 30, "the daemon to start")
            drive(daemon)
        except BaseException as e:  # noqa: BLE001 - reported by the test below
            failures.append(e)
        finally:
            os.kill(os.getpid(), signal.SIGTERM)

    thread = threading.Thread(target=driver, name="test-driver")
    thread.start()
    try:
        code = daemon.run()
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
        thread.join(30)
    if failures:
        raise failures[0]
    return code


def test_the_daemon_files_results_and_a_meta_json_for_every_job(tmp_path: Path, video: Path):
    path = _config(tmp_path)
    settings = load_config(path)
    stub = StubExecutor(video)
    good, bad = scene(), scene() + "# STUB_FAIL\n"

    def drive(d: Daemon) -> None:
        (d.settings.folders.inbox / "good.py").write_text(good)
        (d.settings.folders.inbox / "bad.py").write_text(bad)
        wait_for(lambda: (tmp_path / "done" / "good.py").exists(), 30, "good.py filed")
        wait_for(lambda: (tmp_path / "failed" / "bad.py").exists(), 30, "bad.py filed")

    assert _run_daemon(Daemon(settings, executor=stub), drive) == 0
    assert sorted(stub.finished) == ["bad.py", "good.py"] and stub.closed == 1
    done, failed = tmp_path / "done", tmp_path / "failed"
    assert sorted(p.name for p in done.iterdir()) == ["good.meta.json", "good.mp4", "good.py"]
    assert sorted(p.name for p in failed.iterdir()) == ["bad.error.json", "bad.meta.json", "bad.py"]
    meta = json.loads((done / "good.meta.json").read_text())
    assert meta["ok"] is True and meta["key"] == content_key(good.encode(), settings)
    assert [v["suffix"] for v in meta["videos"]] == [".mp4"] and meta["videos"][0]["frames"] == 3
    meta = json.loads((failed / "bad.meta.json").read_text())
    assert meta["ok"] is False and meta["error"] == ".error.json"
    assert json.loads((failed / "bad.error.json").read_text())["type"] == "StubError"


def test_a_render_running_at_shutdown_goes_back_to_the_inbox(tmp_path: Path, video: Path):
    settings = load_config(_config(tmp_path))
    stub = StubExecutor(video)

    def drive(d: Daemon) -> None:
        (d.settings.folders.inbox / "long.py").write_text(scene() + "# STUB_BLOCK\n")
        wait_for(lambda: "long.py" in stub.started, 30, "the job to start")

    assert _run_daemon(Daemon(settings, executor=stub), drive) == 0
    assert (tmp_path / "inbox" / "long.py").read_text().endswith("# STUB_BLOCK\n")
    assert list((tmp_path / "done").iterdir()) == list((tmp_path / "failed").iterdir()) == []
    assert [p.name for p in (tmp_path / "processing").iterdir() if not p.name.startswith(".")] == []


def test_a_reload_applies_every_key_or_names_those_that_need_a_restart(
    tmp_path: Path, video: Path, caplog: pytest.LogCaptureFixture
):
    path = _config(tmp_path)
    stub = StubExecutor(video)
    big = scene() + "#" * 3000 + "\n"

    def drive(d: Daemon) -> None:
        _config(
            tmp_path,
            {
                "render": {"max_source_bytes": 2000},
                "daemon": {"max_attempts": 7, "settle_time": 0.2, "queue_size": 50},
                "folders": {"done": str(tmp_path / "elsewhere")},
            },
        )
        os.kill(os.getpid(), signal.SIGHUP)
        wait_for(lambda: d.layout.max_source_bytes == 2000, 30, "the reload")
        (d.settings.folders.inbox / "big.py").write_text(big)
        wait_for(lambda: (tmp_path / "failed" / "big.py").exists(), 30, "big.py filed")
        assert d.layout.max_attempts == 7 and d.queue.maxsize == 50
        assert d.settings.daemon.settle_time == 0.2 and d.settings.folders.done == tmp_path / "done"

    with caplog.at_level(logging.INFO, logger="watcher"):
        assert _run_daemon(Daemon(load_config(path), executor=stub), drive) == 0
    record = json.loads((tmp_path / "failed" / "big.error.json").read_text())
    assert (record["phase"], record["type"]) == ("ingest", "TooLarge")
    assert stub.started == []  # refused on the new limit, before any render
    assert "folders.done change only on restart" in caplog.text
    assert not (tmp_path / "elsewhere").exists()


CLASSIFIED = {
    # A scene's own message never decides the phase: only where and what was raised.
    "says_latex.py": ("render", "ValueError", 'raise ValueError("latex error converting to dvi")'),
    "says_thread.py": ("render", "RuntimeError", 'raise RuntimeError("can\'t start new thread")'),
    "opens_notes.py": ("render", "MissingAsset", 'open("latex_notes.txt").read()'),
    "real_latex.py": ("render", "LaTeXError", r'self.add(MathTex(r"f: \R^2 \to \R"))'),
}


def test_failures_are_classified_by_what_was_raised_not_by_their_text(tmp_path: Path):
    files = []
    for name, (_, _, line) in CLASSIFIED.items():
        files.append(tmp_path / name)
        files[-1].write_text(scene(body=line))
    settings = load_config(None, [f"folders.work={tmp_path / 'work'}", "validation.api_check=off"])
    summary = run_batch(files, settings, tmp_path / "out")
    for outcome in summary.outcomes:
        phase, type_, _ = CLASSIFIED[outcome.source.name]
        record = outcome.record
        assert record is not None, outcome
        assert (record.phase, record.type) == (phase, type_), record.to_json()
        assert "not installed" not in (record.hint or "")
    latex = next(o.record for o in summary.outcomes if o.source.name == "real_latex.py")
    assert latex is not None and latex.latex and latex.latex["errors"]


def test_a_wait_for_a_warm_worker_still_importing_manim_is_cancellable():
    workers = pool.Pool()
    cancel = threading.Event()
    timer = threading.Timer(0.05, cancel.set)
    timer.start()
    try:
        with pytest.raises(pool.Cancelled), workers.checkout(cancel):
            pass
        # It returned while the import was still under way (which takes seconds), not after it.
        assert not any(zygote.ready for zygote in workers._all)
    finally:
        timer.cancel()
        workers.shutdown()
