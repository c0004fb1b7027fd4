"""Distributed mode with real parts: redis-server on 127.0.0.1, real prefork Celery workers
(Celery's in-process test worker, and `watcher worker` subprocesses), real renders.

The front is `CeleryExecutor` in this process, or the daemon as a subprocess.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import os
import shutil
import signal
import threading
from pathlib import Path

import pytest

pytest.importorskip("celery", reason="the celery extra is not installed (scripts/setup.sh installs it)")
if shutil.which("redis-server") is None:
    pytest.skip("redis-server is not installed (scripts/setup.sh installs it)", allow_module_level=True)

from tests.celery_parts import RedisServer, WorkerProc, write_config  # noqa: E402
from tests.daemon_helpers import DaemonProc, scene, wait_for  # noqa: E402
from watcher.batch import run_batch  # noqa: E402
from watcher.celeryexec import MARKER, CeleryExecutor  # noqa: E402
from watcher.config import load_config  # noqa: E402
from watcher.job import JobSpec, content_key  # noqa: E402
from watcher.payload import TaskRefused, decode_task, encode_task  # noqa: E402

BAD = (
    "from manim import *\n\n\nclass Bad(Scene):\n    def construct(self):\n"
    "        self.add(Square())\n        x = 1 / 0\n"
)
LOOP = "from manim import *\n\n\nclass Loop(Scene):\n    def construct(self):\n        while True:\n            pass\n"
# About 5-30 s of rendering on this machine: long enough to kill its worker process mid-render.
HEAVY = (
    "from manim import *\n\n\nclass Heavy(Scene):\n    def construct(self):\n"
    "        g = VGroup(*[Circle(radius=0.01 * i) for i in range(1, 200)])\n"
    "        self.play(Rotate(g, PI), run_time=10)\n"
)


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory):
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def worker(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory):
    """One `watcher worker` subprocess with two processes, shared by the tests that do not kill it."""
    config = write_config(tmp_path_factory.mktemp("worker"), redis_server)
    proc = WorkerProc(config).start()
    yield proc
    proc.stop()


def front(root: Path, worker_config: Path, **sections: dict):
    """Settings of a front on its own folders, talking to the worker of `worker_config`."""
    own = yaml_load(worker_config)
    root.mkdir(parents=True, exist_ok=True)
    config = {
        "executor": "celery",
        "celery": {**own["celery"], "shared_folder": str(load_config(worker_config).celery.shared_folder)},
        "render": dict(own["render"]),
        "workers": {"count": 2},
    }
    for section, values in sections.items():
        config.setdefault(section, {}).update(values)
    (root / "config.yaml").write_text(json.dumps(config))
    return load_config(root / "config.yaml")


def yaml_load(path: Path) -> dict:
    import yaml

    return yaml.safe_load(path.read_text())


def files(folder: Path, scenes: dict[str, str]) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, text in scenes.items():
        (folder / name).write_text(text)
        paths.append(folder / name)
    return paths


def comparable(record: dict) -> dict:
    """What a person or generator acts on; durations and the worker's versions may differ."""
    keys = ("source", "phase", "type", "message", "line", "column", "excerpt", "hint", "frames", "limit")
    return {key: record.get(key) for key in keys}


# -- the task payload: what a worker accepts (no broker needed) ---------------------------------


def test_a_forged_task_cannot_ask_for_less_isolation_or_larger_limits(tmp_path: Path):
    own = load_config(write_config(tmp_path, RedisServer(tmp_path / "unused")))
    spec = JobSpec(b"from manim import *\n", "a.py", own, ["A"])
    good = encode_task(spec)
    assert decode_task(good, own).settings.sandbox == own.sandbox  # the front's own settings pass

    def forged(**changes) -> dict:
        payload = json.loads(json.dumps(good))
        for key, value in changes.items():
            section, _, name = key.partition("__")
            if name:
                payload[section][name] = value
            else:
                payload[section] = value
        return payload

    refusals = {
        "sandbox": forged(sandbox="off"),
        "timeout": forged(render__timeout=own.render.timeout * 10),
        "grace": forged(render__grace=own.render.grace + 100),
        "memory": forged(render__memory_limit_mb=0),
        "validation": forged(validation=False),
        "keys": {**good, "visible_paths": ["/"]},
        "filename": forged(filename="../../etc/cron.d/x"),
        "base64": forged(source="not base64!"),
        "version": forged(v=99),
    }
    for what, payload in refusals.items():
        with pytest.raises(TaskRefused) as refused:
            decode_task(payload, own)
        assert str(refused.value), what

    # Asking for more isolation or smaller limits is allowed; the worker's refusals always hold.
    stricter = decode_task(
        forged(sandbox="strict", render__timeout=1, policy={"calls": ["print"], "imports": []}), own
    ).settings
    assert stricter.sandbox.mode == "strict" and stricter.render.timeout == 1
    assert "print" in stricter.validation.forbidden_calls and "eval" in stricter.validation.forbidden_calls
    assert set(own.validation.forbidden_imports) <= set(stricter.validation.forbidden_imports)


def test_an_output_that_differs_from_the_result_is_not_filed(tmp_path: Path):
    """The front checks size and sha256 of what it takes from the shared folder."""
    settings = front(tmp_path / "front", write_config(tmp_path / "w", RedisServer(tmp_path / "unused")))
    task_id = "ab" * 32
    delivery = "cd" * 16
    folder = settings.celery.shared_folder / task_id / delivery
    folder.mkdir(parents=True)
    (folder / "out.mp4").write_bytes(b"not the video the worker described")
    meta = {
        "task_id": task_id,
        "status": "SUCCESS",
        "result": {
            "v": 1,
            "ok": True,
            "record": None,
            "scenes": ["A"],
            "suffixes": [".mp4"],
            "duration": 1.0,
            "overridden": {},
            "outputs": [
                {
                    "suffix": ".mp4",
                    "size": 34,
                    "sha256": hashlib.sha256(b"x").hexdigest(),
                    "name": f"{delivery}/out.mp4",
                }
            ],
            "worker": "w",
        },
    }
    spec = JobSpec(b"", "a.py", settings, ["A"])
    results = tmp_path / "results"
    results.mkdir()
    result = CeleryExecutor()._take(meta, task_id, spec, settings, results, 0.0)
    assert not result.ok and result.record is not None and result.record.type == "BadResult"
    assert "sha256" in result.record.message and list(results.iterdir()) == []
    # A name that leaves the task's folder is refused before anything is read.
    meta["result"]["outputs"][0]["name"] = "../../../../etc/passwd"
    result = CeleryExecutor()._take(meta, task_id, spec, settings, results, 0.0)
    assert result.record is not None and "outside" in result.record.message
    # Outputs missing (a worker whose shared folder is not the front's): the record says so.
    meta["result"]["outputs"][0]["name"] = f"{'ef' * 16}/out.mp4"
    result = CeleryExecutor()._take(meta, task_id, spec, settings, results, 0.0)
    assert result.record is not None and result.record.hint and "shared_folder" in result.record.hint


# -- with a broker and workers ------------------------------------------------------------------


def test_scenes_render_on_the_in_process_test_worker_and_errors_match_local_mode(
    redis_server: RedisServer, tmp_path: Path
):
    """Celery's own test worker (prefork, in this process) runs the task like `watcher worker`."""
    from celery.contrib.testing.worker import start_worker

    from watcher.celeryconf import make_app
    from watcher.celeryworker import add_render_task

    worker_settings = load_config(write_config(tmp_path / "worker", redis_server))
    app = make_app(worker_settings)
    add_render_task(app, worker_settings)
    settings = front(tmp_path / "front", worker_settings.path)
    sources = files(tmp_path / "in", {"sq.py": scene(0.3), "bad.py": BAD})
    with start_worker(app, pool="prefork", concurrency=2, perform_ping_check=False, shutdown_timeout=60):
        summary = run_batch(sources, settings, tmp_path / "out", executor=CeleryExecutor())
    assert [o.status for o in summary.outcomes] == ["rendered", "failed"], summary.outcomes
    meta = json.loads((tmp_path / "out" / "sq.meta.json").read_text())
    assert meta["videos"][0]["frames"] > 0  # verified on the front, as in local mode
    remote = json.loads((tmp_path / "out" / "bad.error.json").read_text())

    local = dataclasses.replace(settings, executor="local")
    run_batch(sources[1:], local, tmp_path / "local")
    here = json.loads((tmp_path / "local" / "bad.error.json").read_text())
    assert comparable(remote) == comparable(here)
    assert remote["type"] == "ZeroDivisionError" and remote["line"] == 7
    # Taken results leave nothing behind: no outputs in the shared folder, no marker in Redis.
    assert not any(settings.celery.shared_folder.iterdir())
    assert not redis_server.client().keys(f"{MARKER}*")


def test_a_timeout_is_the_same_record_as_in_local_mode(worker: WorkerProc, tmp_path: Path):
    settings = front(tmp_path / "front", worker.config, render={"timeout": 3, "grace": 1})
    sources = files(tmp_path / "in", {"loop.py": LOOP})
    summary = run_batch(sources, settings, tmp_path / "out", executor=CeleryExecutor())
    assert summary.outcomes[0].status == "failed"
    remote = json.loads((tmp_path / "out" / "loop.error.json").read_text())
    run_batch(sources, dataclasses.replace(settings, executor="local"), tmp_path / "local")
    here = json.loads((tmp_path / "local" / "loop.error.json").read_text())
    assert remote["phase"] == "timeout" and remote["line"] in (6, 7)  # the loop
    assert comparable(remote) == comparable(here)


def test_a_task_asking_for_a_weaker_sandbox_is_refused_by_the_worker(worker: WorkerProc, tmp_path: Path):
    settings = front(tmp_path / "front", worker.config, sandbox={"mode": "off"})
    sources = files(tmp_path / "in", {"sq.py": scene(0.3)})
    summary = run_batch(sources, settings, tmp_path / "out", executor=CeleryExecutor())
    record = summary.outcomes[0].record
    assert record is not None and record.type == "TaskRefused" and "sandbox" in record.message, record
    assert not (tmp_path / "out" / "sq.mp4").exists()
    assert "task " in worker.log() and "refused" in worker.log()


def test_a_duplicate_submission_renders_once(
    redis_server: RedisServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
):
    """Two jobs with the same content at once: one task, one render, both filed. The worker
    starts only once both are submitted, so that the two surely overlap."""
    caplog.set_level("INFO", logger="watcher.celeryexec")
    config = write_config(tmp_path / "worker", redis_server)
    settings = front(tmp_path / "front", config)
    text = scene(0.4).replace("Square()", "Square(color=RED)")
    sources = files(tmp_path / "a", {"dup.py": text}) + files(tmp_path / "b", {"dup.py": text})
    executor = CeleryExecutor()
    outcomes = {}

    def run(path: Path) -> None:
        outcomes[path] = run_batch([path], settings, path.parent / "out", executor=executor).outcomes[0]

    threads = [threading.Thread(target=run, args=(p,)) for p in sources]
    for t in threads:
        t.start()
    wait_for(lambda: "attached to task" in caplog.text, 60, "the second job to attach to the first's task")
    assert redis_server.client().llen(settings.celery.queue) == 1  # one task for two jobs
    late = WorkerProc(config, concurrency=2).start()
    try:
        for t in threads:
            t.join(120)
    finally:
        late.stop()
    assert [o.status for o in outcomes.values()] == ["rendered", "rendered"]
    videos = [(p.parent / "out" / "dup.mp4").read_bytes() for p in sources]
    assert videos[0] == videos[1]
    task_id = content_key(text.encode(), settings)
    assert late.log().count(f"task {task_id}: rendering") == 1, late.log()


def test_a_worker_process_killed_mid_render_is_redelivered_and_filed_once(redis_server: RedisServer, tmp_path: Path):
    config = write_config(tmp_path / "worker", redis_server, render={"timeout": 240, "grace": 2})
    killed = WorkerProc(config).start()
    try:
        settings = front(tmp_path / "front", config)
        sources = files(tmp_path / "in", {"heavy.py": HEAVY})
        done: dict = {}
        batch = threading.Thread(
            target=lambda: done.update(s=run_batch(sources, settings, tmp_path / "out", executor=CeleryExecutor()))
        )
        batch.start()
        wait_for(lambda: killed.rendering("heavy") is not None, 60, "the render to start on the worker")
        victim = killed.rendering("heavy")
        assert victim is not None
        os.kill(victim, signal.SIGKILL)
        batch.join(180)
        assert not batch.is_alive()
        outcome = done["s"].outcomes[0]
        assert outcome.status == "rendered", outcome.record
        log = killed.log()
        assert "WorkerLostError" in log, log
        assert log.count("rendering heavy.py (run 2)") == 1 and log.count("rendering heavy.py") == 2, log
        assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["heavy.meta.json", "heavy.mp4"]
        assert killed.proc is not None and killed.proc.poll() is None  # the worker replaced its process
    finally:
        killed.stop()


def test_the_front_restarted_with_jobs_in_flight_attaches_to_them(worker: WorkerProc, tmp_path: Path):
    """The daemon SIGKILLed while its tasks run: on restart it files each result once."""
    own = yaml_load(worker.config)
    shared = str(load_config(worker.config).celery.shared_folder)
    daemon = DaemonProc(
        tmp_path / "front",
        {"celery": {**own["celery"], "shared_folder": shared}, "render": own["render"]},
    )
    daemon.config["executor"] = "celery"
    daemon.write_config()
    names = [f"f{i}.py" for i in range(3)]
    with daemon:
        for i, name in enumerate(names):
            daemon.drop(name, scene(2.0 + i).replace("Square()", f"Square(side_length={1 + i / 10})"))
        wait_for(lambda: "rendering f" in worker.log(), 60, "a task to start on the worker")
        daemon.kill()
        daemon.start()
        wait_for(lambda: daemon.settled(3), 120, "every scene to be filed")
    assert daemon.results()["failed"] == []
    assert sorted(n for n in daemon.results()["done"] if n.endswith(".mp4")) == [n[:-3] + ".mp4" for n in names]
    for name in names:
        assert worker.log().count(f": rendering {name}") == 1, worker.log()
    assert "attached to task" in daemon.log(), daemon.log()


def test_jobs_queued_survive_a_redis_restart(tmp_path: Path):
    """Tasks queued while no worker runs; Redis restarts (append-only file); a worker then takes them."""
    server = RedisServer(tmp_path / "redis").start()
    try:
        config = write_config(tmp_path / "worker", server)
        settings = front(tmp_path / "front", config)
        sources = files(tmp_path / "in", {"a.py": scene(0.3), "b.py": scene(0.5)})
        done: dict = {}
        batch = threading.Thread(
            target=lambda: done.update(s=run_batch(sources, settings, tmp_path / "out", executor=CeleryExecutor()))
        )
        batch.start()
        queue = settings.celery.queue
        wait_for(lambda: server.client().llen(queue) == 2, 60, "both tasks to be queued")
        server.restart()
        assert server.client().llen(queue) == 2  # kept by the append-only file
        restarted = WorkerProc(config).start()
        try:
            batch.join(120)
            assert not batch.is_alive()
        finally:
            restarted.stop()
        assert [o.status for o in done["s"].outcomes] == ["rendered", "rendered"]
    finally:
        server.stop()


def test_inline_results_need_no_shared_folder(redis_server: RedisServer, tmp_path: Path):
    config = write_config(tmp_path / "worker", redis_server, celery={"results": "inline"})
    inline = WorkerProc(config, concurrency=1).start()
    try:
        settings = front(tmp_path / "front", config)
        sources = files(tmp_path / "in", {"sq.py": scene(0.3).replace("Square()", "Square(color=BLUE)")})
        summary = run_batch(sources, settings, tmp_path / "out", executor=CeleryExecutor())
        assert summary.outcomes[0].status == "rendered"
        assert (tmp_path / "out" / "sq.mp4").stat().st_size > 0
        assert not settings.celery.shared_folder.exists() or not any(settings.celery.shared_folder.iterdir())
    finally:
        inline.stop()


def test_payload_round_trip_keeps_the_source_bytes(tmp_path: Path):
    own = load_config(write_config(tmp_path, RedisServer(tmp_path / "unused")))
    source = "# ünïcode\nfrom manim import *\n".encode() + bytes(range(256))
    payload = encode_task(JobSpec(source, "x.py", own, ["A"]))
    assert base64.b64decode(payload["source"]) == source
    assert decode_task(json.loads(json.dumps(payload)), own).source == source


@pytest.mark.slow
def test_fifty_scenes_into_the_inbox_with_a_worker_process_killed(redis_server: RedisServer, tmp_path: Path):
    """The issue's acceptance run: the daemon in front, a two-process `watcher worker`, 50 scenes
    dropped at once (5 of them broken), one worker process SIGKILLed mid-render."""
    from watcher.verify import verify_mp4

    config = write_config(tmp_path / "worker", redis_server)
    workers = WorkerProc(config, concurrency=2).start()
    own = yaml_load(config)
    daemon = DaemonProc(
        tmp_path / "front",
        {
            "celery": {**own["celery"], "shared_folder": str(load_config(config).celery.shared_folder)},
            "render": own["render"],
            "workers": {"count": 4},  # jobs in flight at once: more than the worker's processes
        },
    )
    daemon.config["executor"] = "celery"
    daemon.write_config()
    names = [f"s{i:02d}.py" for i in range(50)]
    broken = set(names[::10])
    try:
        with daemon:
            for i, name in enumerate(names):
                text = scene(0.3).replace("Square()", f"Square(side_length={1 + i / 50:.2f})")
                daemon.drop(name, BAD.replace("Bad", f"Bad{i}") if name in broken else text)
            wait_for(lambda: daemon.settled(10), 300, "the first 10 scenes to be filed")
            wait_for(lambda: workers.rendering() is not None, 60, "a render running on the worker")
            victim = workers.rendering()
            assert victim is not None
            os.kill(victim, signal.SIGKILL)
            wait_for(lambda: daemon.settled(50), 600, "all 50 scenes to be filed")
        results = daemon.results()
        done = {n for n in results["done"] if n.endswith(".py")}
        failed = {n for n in results["failed"] if n.endswith(".py")}
        assert done | failed == set(names) and not done & failed
        assert failed == broken, results["failed"]
        for name in done:
            verify_mp4(daemon.done / (name[:-3] + ".mp4"))
        for name in failed:
            assert json.loads((daemon.failed / (name[:-3] + ".error.json")).read_text())["type"] == "ZeroDivisionError"
        assert list(daemon.inbox.iterdir()) == [] and list(daemon.processing.glob("[!.]*")) == []
        log = workers.log()
        assert log.count("WorkerLostError") >= 1 and "(run 2)" in log, log
        print(
            f"\n50 scenes: {len(done)} done, {len(failed)} failed (the broken ones); worker process {victim} "
            f"SIGKILLed mid-render, its task ran again: {log.count('(run 2)')}"
        )
    finally:
        workers.stop()


def test_doctor_checks_the_broker_and_the_workers(worker: WorkerProc, tmp_path: Path):
    from watcher.doctor import check_broker

    settings = front(tmp_path / "front", worker.config)
    got = {c.name: c for c in check_broker(settings)}
    assert got["celery broker"].level == "OK" and got["celery workers"].level == "OK", got
    other_queue = dataclasses.replace(settings, celery=dataclasses.replace(settings.celery, queue="nobody-here"))
    assert {c.name: c.level for c in check_broker(other_queue)}["celery workers"] == "WARN"
    wrong = settings.celery.broker_url.rsplit(":", 1)[0] + ":1/0"  # nothing listens on port 1
    unreachable = dataclasses.replace(settings, celery=dataclasses.replace(settings.celery, broker_url=wrong))
    (failed,) = check_broker(unreachable)
    assert failed.level == "FAIL" and "broker" in failed.detail and failed.fix
    assert check_broker(dataclasses.replace(settings, executor="local")) == []


def test_a_worker_told_to_stop_finishes_its_running_task_first(redis_server: RedisServer, tmp_path: Path):
    """SIGTERM drains a worker: the render under way is completed and filed, then it exits."""
    config = write_config(tmp_path / "worker", redis_server)
    draining = WorkerProc(config, concurrency=1).start()
    try:
        settings = front(tmp_path / "front", config)
        sources = files(tmp_path / "in", {"drain.py": scene(6.0).replace("Square()", "Square(color=GREEN)")})
        done: dict = {}
        batch = threading.Thread(
            target=lambda: done.update(s=run_batch(sources, settings, tmp_path / "out", executor=CeleryExecutor()))
        )
        batch.start()
        wait_for(lambda: draining.rendering("drain") is not None, 60, "the render to start on the worker")
        assert draining.proc is not None
        draining.proc.terminate()
        assert draining.proc.wait(120) == 0
        batch.join(60)
        assert not batch.is_alive() and done["s"].outcomes[0].status == "rendered"
        assert draining.log().count("rendering drain.py") == 1
    finally:
        draining.stop()
