"""The daemon as a real subprocess: real inotify observer, real folders, real renders, real signals."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from watcher.verify import verify_mp4

from .conftest import job_processes
from .daemon_helpers import DaemonProc, all_warmed_up, gone, scene, started, wait_for, warm_workers


def _sources(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.glob("*.py"))


def test_every_way_of_dropping_a_file_is_noticed_once(tmp_path: Path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    with DaemonProc(tmp_path / "w") as d:
        # write in place (Created, Modified, Closed)
        (d.inbox / "in_place.py").write_text(scene())
        # cp from elsewhere
        (elsewhere / "copied.py").write_text(scene())
        shutil.copy(elsewhere / "copied.py", d.inbox / "copied.py")
        # mv from another folder on the same filesystem (a bare Created / Moved)
        (elsewhere / "moved.py").write_text(scene())
        os.rename(elsewhere / "moved.py", d.inbox / "moved.py")
        # temp name, then rename inside the inbox
        d.drop("renamed.py", scene())

        # written slowly in chunks through one open file: must not be read half-written
        def slow_writer() -> None:
            data = scene().encode()
            with open(d.inbox / "slow.py", "wb") as f:
                for i in range(0, len(data), 20):
                    f.write(data[i : i + 20])
                    f.flush()
                    time.sleep(0.1)

        writer = threading.Thread(target=slow_writer)
        writer.start()
        writer.join(60)
        assert not writer.is_alive()
        wait_for(lambda: d.settled(5), 90, "5 results")
        time.sleep(1)  # anything rendered twice would show up now
        assert _sources(d.done) == ["copied.py", "in_place.py", "moved.py", "renamed.py", "slow.py"], d.log()
        assert not list(d.failed.iterdir()), d.log()
        for name in ("copied", "in_place", "moved", "renamed", "slow"):
            assert verify_mp4(d.done / f"{name}.mp4").frames >= 1
        assert _sources(d.inbox) == [] and not [p for p in d.processing.iterdir() if not p.name.startswith(".")]
        assert d.stop() == 0
    log = d.log()
    assert "slow.py: done" in log and log.count("slow.py: rendering") == 1


def test_bad_inbox_entries_are_moved_aside_and_never_followed(tmp_path: Path):
    outside = tmp_path / "outside.py"
    outside.write_text(scene())
    with DaemonProc(tmp_path / "w") as d:
        os.symlink("/etc/shadow", d.inbox / "link.py")
        os.mkfifo(d.inbox / "fifo.py")
        (d.inbox / "dir.py").mkdir()
        os.link(outside, d.inbox / "hard.py")
        (d.inbox / "big.py").write_bytes(b"#" * 2_000_000)
        (d.inbox / "after.py").write_text(scene())  # the daemon is not stuck on the FIFO
        wait_for(lambda: (d.done / "after.mp4").exists(), 60, "the good file after the bad ones")
        wait_for(lambda: len(list(d.failed.glob("*.error.json"))) == 5, 30, "5 error records")
        records = {p.name: json.loads(p.read_text()) for p in d.failed.glob("*.error.json")}
        assert {r["phase"] for r in records.values()} == {"ingest"}, records
        assert outside.read_text() == scene()  # the hard link's other name is untouched
        assert os.path.islink(d.failed / "link.py")  # moved as a link, never followed
    assert "shadow" not in json.dumps(records).replace("/etc/shadow", "")


def test_the_same_name_twice_keeps_both(tmp_path: Path):
    with DaemonProc(tmp_path / "w") as d:
        d.drop("twice.py", scene(0.3))
        wait_for(lambda: (d.done / "twice.py").exists(), 60, "the first result")
        first = (d.done / "twice.mp4").read_bytes()
        d.drop("twice.py", scene(0.6))
        wait_for(lambda: len(_sources(d.done)) == 2, 60, "the second result")
        assert (d.done / "twice.mp4").read_bytes() == first  # never overwritten
        mp4s = sorted(d.done.glob("twice*.mp4"))
        assert len(mp4s) == 2 and all(verify_mp4(p).frames >= 1 for p in mp4s)
        other = [p for p in _sources(d.done) if p != "twice.py"][0]
        assert (d.done / other.replace(".py", ".mp4")).exists()


SLEEPY = scene(body="import time; open('started', 'w').close(); time.sleep(120)")


def _render_running(d: DaemonProc) -> None:
    """Wait until sleepy.py's scene runs and both warm workers (workers.count: 2) imported Manim.

    "rendering" is logged before the render waits for a warm worker, and a render still
    waiting for Manim's import sees no cancel (the shutdown then wakes it by shutting the
    pool): what these tests are about is stopping a render that runs.
    """
    work = d.root / "work"
    wait_for(lambda: started(work, "sleepy"), 120, "the scene to run")
    wait_for(lambda: all_warmed_up(d.proc.pid, 2), 120, "the warm workers to import Manim")


def test_sigterm_during_a_render_puts_the_source_back(tmp_path: Path):
    config = {"daemon": {"shutdown_grace": 1}, "validation": {"enabled": False}, "render": {"timeout": 300}}
    d = DaemonProc(tmp_path / "w", config)
    with d:
        d.drop("sleepy.py", SLEEPY)
        _render_running(d)
        sent = time.monotonic()
        assert d.stop(timeout=90) == 0
        # The scene sleeps 120 s more (its timeout is 300 s): cancelled, not waited for.
        assert time.monotonic() - sent < 60, d.log()
    assert _sources(d.inbox) == ["sleepy.py"], d.log()
    assert not _sources(d.done) and not _sources(d.failed)
    assert job_processes(tmp_path / "w" / "work") == []
    assert "put back" in d.log()


def test_second_sigterm_forces(tmp_path: Path):
    config = {"daemon": {"shutdown_grace": 300}, "validation": {"enabled": False}, "render": {"timeout": 300}}
    d = DaemonProc(tmp_path / "w", config)
    with d:
        d.drop("sleepy.py", SLEEPY)
        _render_running(d)
        d.signal(signal.SIGTERM)
        # Two SIGTERMs pending at once are one: the second is sent once the first was handled.
        wait_for(lambda: "stopping: no new files" in d.log(), 60, "the first SIGTERM to be handled")
        assert d.proc.poll() is None, d.log()  # waiting for the render (shutdown_grace: 300 s)
        sent = time.monotonic()
        d.signal(signal.SIGTERM)
        try:
            assert d.proc.wait(90) == 0, d.log()
        except subprocess.TimeoutExpired:
            pytest.fail(f"the second SIGTERM did not stop the daemon within 90 s:\n{d.log()}")
        # Neither the grace (300 s) nor the render (120 s more) was waited for.
        assert time.monotonic() - sent < 60, d.log()
    assert _sources(d.inbox) == ["sleepy.py"], d.log()
    assert not _sources(d.done) and not _sources(d.failed)
    assert "put back" in d.log()


def test_sigkill_during_a_render_then_restart_files_it_once(tmp_path: Path):
    d = DaemonProc(tmp_path / "w", {"validation": {"enabled": False}})
    with d:
        d.drop("victim.py", scene(body="import time; time.sleep(2); self.play(FadeIn(Dot()), run_time=0.3)"))
        wait_for(lambda: "victim.py: rendering" in d.log(), 30, "the render to start")
        d.kill()
    # The orphaned render child dies with its parent (PR_SET_PDEATHSIG).
    wait_for(lambda: job_processes(tmp_path / "w" / "work") == [], 30, "the orphaned render to die")
    with d:
        wait_for(lambda: d.settled(1), 60, "the recovered job")
        assert _sources(d.done) == ["victim.py"], d.log()
        assert "recovered 1 interrupted job" in d.log()


def test_sighup_reloads_a_good_config_and_refuses_a_bad_one(tmp_path: Path):
    d = DaemonProc(tmp_path / "w")
    with d:
        d.config["render"]["timeout"] = 1.5
        d.write_config()
        d.signal(signal.SIGHUP)
        wait_for(lambda: "config reloaded" in d.log(), 30, "the reload")
        d.drop("slow.py", scene(body="import time; time.sleep(30)"))
        # The render may first wait for a warm worker to import Manim (not part of its timeout).
        wait_for(lambda: d.settled(1), 120, "the timeout under the new config")
        record = json.loads((d.failed / "slow.error.json").read_text())
        assert record["phase"] == "timeout" and record["settings"]["timeout"] == 1.5

        d.write_config("render: {timeout: [\n")
        d.signal(signal.SIGHUP)
        wait_for(lambda: "reload refused" in d.log(), 30, "the refusal")
        assert "invalid YAML" in d.log()
        d.drop("fine.py", scene())
        wait_for(lambda: (d.done / "fine.mp4").exists(), 60, "a render after the refused reload")
        assert d.proc.poll() is None


def test_sd_notify_messages(tmp_path: Path):
    sock_path = tmp_path / "notify.sock"
    d = DaemonProc(tmp_path / "w", env={"NOTIFY_SOCKET": str(sock_path), "WATCHDOG_USEC": "2000000"})
    messages: list[str] = []
    done = threading.Event()

    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(sock_path))
        sock.settimeout(0.2)

        def drain() -> None:
            # Read every datagram as it comes, from the start: the daemon never blocks on a
            # full queue (net.unix.max_dgram_qlen, often 10), it drops, so a message left
            # unread while the test waits for something else could be lost.
            while not done.is_set():
                try:
                    messages.append(sock.recv(4096).decode())
                except TimeoutError:
                    continue

        def received(wanted: str) -> bool:
            return any(wanted in m for m in list(messages))

        reader = threading.Thread(target=drain, daemon=True)
        reader.start()
        try:
            with d:
                for wanted in ("READY=1", "STATUS=", "WATCHDOG=1"):
                    wait_for(lambda w=wanted: received(w), 60, wanted)
                # What this test is about is the message. How fast the daemon then exits is
                # test_sigterm_does_not_wait_for_warm_workers_still_importing_manim's concern.
                d.signal(signal.SIGTERM)
                wait_for(lambda: received("STOPPING=1"), 60, "STOPPING=1")
                assert d.proc.wait(90) == 0, d.log()
        finally:
            done.set()
            reader.join(10)
    seen = list(messages)
    assert seen.index(next(m for m in seen if "READY=1" in m)) < len(seen) - 1


def test_sigterm_does_not_wait_for_warm_workers_still_importing_manim(tmp_path: Path):
    # Under load, importing Manim took long enough that SIGTERM waited for it (the glyph
    # build waits for a warm worker to say it is ready, for up to pool.READY_TIMEOUT).
    # Stopped warm workers are that import, made as slow as we like.
    d = DaemonProc(tmp_path / "w").start(wait=False)
    stopped: set[int] = set()

    def stop_warm_workers() -> bool:
        for pid in warm_workers(d.proc.pid):
            if pid not in stopped:
                os.kill(pid, signal.SIGSTOP)
                stopped.add(pid)
        return len(stopped) >= 2  # workers.count: 2, started at once

    wait_for(stop_warm_workers, 60, "the warm workers to start")
    wait_for(lambda: "watching" in d.log(), 60, "the daemon to start")
    sent = time.monotonic()
    assert d.stop(timeout=110) == 0
    # Waiting for the stopped workers would take pool.READY_TIMEOUT (120 s); the daemon's own
    # bounded waits (shutdown_grace 5 s, then twice STOP_WAIT) take far less, even on a busy machine.
    assert time.monotonic() - sent < 60, d.log()
    wait_for(lambda: all(gone(pid) for pid in stopped), 30, "the stopped warm workers to be killed")
    assert "stopped (done 0, failed 0)" in d.log()


def test_start_up_errors_are_one_clear_line(tmp_path: Path):
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "watcher", "run", *args],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
        )

    (tmp_path / "bad.yaml").write_text("render:\n  timeout: -5\n")
    r = run("--config", "bad.yaml")
    assert r.returncode == 2 and r.stderr.strip().count("\n") == 0
    assert "render.timeout must be >= 0.1, got -5" in r.stderr

    (tmp_path / "c.yaml").write_text("folders: {inbox: nowhere}\n")
    r = run("--config", "c.yaml")
    assert r.returncode == 1 and "folders.inbox" in r.stderr and "nowhere" in r.stderr
    assert r.stderr.strip().count("\n") == 0
    assert not (tmp_path / "done").exists()  # nothing touched

    r = run("--config", "missing.yaml")
    assert r.returncode == 2 and "config file not found" in r.stderr

    with DaemonProc(tmp_path / "w"):
        r = run("--config", str(tmp_path / "w" / "config.yaml"))
        assert r.returncode == 1 and "already running" in r.stderr, r.stderr


@pytest.mark.skipif(os.geteuid() != 0, reason="a read-only folder does not stop root; needs a read-only mount")
def test_unwritable_folder_is_refused(tmp_path: Path):
    # As root, permissions do not stop writes; a read-only bind mount does.
    w = tmp_path / "w"
    d = DaemonProc(w)
    d.done.mkdir()
    if subprocess.run(["mount", "--bind", "-o", "ro", str(d.done), str(d.done)], capture_output=True).returncode:
        pytest.skip("cannot make a read-only bind mount here")
    try:
        r = subprocess.run(
            [sys.executable, "-m", "watcher", "run", "--config", str(w / "config.yaml")],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert r.returncode == 1 and "folders.done" in r.stderr and "cannot write" in r.stderr, r.stderr
    finally:
        subprocess.run(["umount", str(d.done)], check=False)


def test_two_hundred_files_at_once(tmp_path: Path):
    # Invalid scenes (validation only) keep this fast while exercising the whole pipeline:
    # the observer, the queue, the claim, the publish.
    d = DaemonProc(tmp_path / "w")
    with d:
        for i in range(200):
            (d.inbox / f"f{i:03}.py").write_text(f"this is not valid python {i}")
        wait_for(lambda: d.settled(200), 120, "200 results")
        time.sleep(1)
        assert len(_sources(d.failed)) == 200 and len(list(d.failed.glob("*.error.json"))) == 200
        assert _sources(d.inbox) == []
        record = json.loads((d.failed / "f123.error.json").read_text())
        assert record["phase"] == "validate" and record["type"] == "SyntaxError"


@pytest.mark.slow
def test_kill_loop_accounts_for_every_input(tmp_path: Path):
    """scripts/kill_loop.py, smaller: SIGKILL at random moments (claim, render, publish alike)."""
    script = Path(__file__).resolve().parent.parent / "scripts" / "kill_loop.py"
    r = subprocess.run(
        [sys.executable, str(script), "--scenes", "24", "--kills", "5", "--seed", "7", "--keep", str(tmp_path / "k")],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert "RESULT: every input accounted for exactly once" in r.stdout
    assert len(list((tmp_path / "k" / "done").glob("*.mp4"))) >= 21  # 3 of the 24 are meant to fail


def _claims(d: DaemonProc) -> list[Path]:
    return [p for p in d.processing.iterdir() if not p.name.startswith(".")]


@pytest.mark.parametrize("folder", ["done", "failed"])
def test_a_result_that_cannot_be_filed_is_retried_without_rendering_again(tmp_path: Path, folder: str):
    d = DaemonProc(tmp_path / "w", {"logging": {"level": "DEBUG"}, "daemon": {"rescan_interval": 0}})
    with d:
        target = d.done if folder == "done" else d.failed
        target.rmdir()
        target.write_text("a file where the folder should be\n")  # the place of each result fails
        d.drop("keep.py", scene() if folder == "done" else "this is not python\n")
        wait_for(lambda: "keep.py: cannot file the result" in d.log(), 60, "the publish to fail")
        assert len(list(d.processing.glob("*/keep.py"))) == 1 and _sources(d.inbox) == []  # kept, not lost
        wait_for(lambda: d.log().count("keep.py: still cannot file") >= 2, 30, "two more tries")
        assert d.log().count("keep.py: cannot file the result") == 1  # one line, not one per try
        target.unlink()  # the folder can be made again
        wait_for(lambda: "keep.py: filed after all" in d.log(), 30, "the result to be filed")
        assert d.log().count("keep.py: rendering") == 1  # rolled forward from what was staged
        if folder == "done":
            assert verify_mp4(d.done / "keep.mp4").frames >= 1
        else:
            assert json.loads((d.failed / "keep.error.json").read_text())["phase"] == "validate"
        assert _claims(d) == [] and _sources(d.inbox) == []
        # The daemon carries on as before.
        d.drop("next.py", "still not python\n")
        wait_for(lambda: (d.failed / "next.py").exists(), 30, "the next file")


def test_an_inbox_deleted_and_made_again_is_watched_again(tmp_path: Path):
    d = DaemonProc(tmp_path / "w", {"daemon": {"rescan_interval": 0}})  # no rescan to fall back on
    with d:
        shutil.rmtree(d.inbox)
        wait_for(lambda: "is gone; waiting for it to come back" in d.log(), 30, "the warning")
        d.inbox.mkdir()
        d.drop("after.py", "not python\n")
        wait_for(lambda: not (d.inbox / "after.py").exists(), 30, "the claim")
        wait_for(lambda: (d.failed / "after.error.json").exists(), 30, "the result")
        assert "watching the inbox" in d.log() and d.log().count("is gone") == 1
        assert d.proc.poll() is None


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_control_characters_in_a_name_cannot_forge_or_colour_log_lines(tmp_path: Path, fmt: str):
    d = DaemonProc(tmp_path / "w", {"logging": {"format": fmt}})
    name = "evil\nINFO fake line\x1b[31m\x7f.py"
    with d:
        d.drop(name, "not python\n")
        wait_for(lambda: d.settled(1), 30, "the result")
        assert (d.failed / name).exists()
    raw = d.log_path.read_bytes()
    assert b"\x1b" not in raw and b"\x7f" not in raw
    lines = raw.decode().splitlines()
    assert not [line for line in lines if line.startswith("INFO fake line")]
    escaped = r"evil\nINFO fake line\x1b[31m\x7f.py"
    if fmt == "json":
        messages = [json.loads(line)["message"] for line in lines if line.startswith("{")]
    else:
        messages = lines
    assert sum(escaped in m for m in messages) >= 2, lines  # rendering, then failed
