"""Reading and removing job directories that a hostile scene shaped (watcher.jobfs).

Real files, links, FIFOs and trees on a real filesystem; the scene's part is played by
this test, which builds what a scene could leave behind.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from watcher import jobfs
from watcher.config import load_config
from watcher.layout import Layout
from watcher.recovery import recover

pytestmark = pytest.mark.usefixtures("remove_tmp_path")  # scenes here build trees too deep for pytest

OWNERS = {os.geteuid()}


@pytest.fixture
def job(tmp_path: Path) -> jobfs.JobDir:
    return jobfs.create(tmp_path / "work", "job", "scene")


def test_a_new_job_directory_has_its_three_parts(job: jobfs.JobDir):
    assert job.path.parent == job.results.parent == job.root
    assert job.root.name.startswith(f"job-{os.getpid()}-scene-")
    assert oct(job.root.stat().st_mode & 0o777) == oct(0o711)  # the render user may pass, not list
    assert oct(job.results.stat().st_mode & 0o777) == oct(0o700)
    assert len(job.path.name) == 32  # unguessable
    renewed = jobfs.renew(job)
    assert renewed.path != job.path and renewed.path.is_dir() and renewed.root == job.root


def _fd(path: Path) -> int:
    return jobfs.open_dir(path)


def test_plain_files_are_read(job: jobfs.JobDir):
    (job.path / "out").mkdir()
    (job.path / "out" / "a.txt").write_bytes(b"hello")
    fd = _fd(job.path)
    try:
        assert jobfs.read_file(fd, "out/a.txt", max_bytes=5, owners=OWNERS) == b"hello"
        with pytest.raises(jobfs.UnsafeEntry, match="over the limit"):
            jobfs.read_file(fd, "out/a.txt", max_bytes=4, owners=OWNERS)
        with pytest.raises(jobfs.UnsafeEntry, match="not to the job"):
            jobfs.read_file(fd, "out/a.txt", max_bytes=5, owners={12345})
        with pytest.raises(jobfs.Missing):
            jobfs.read_file(fd, "out/none.txt", max_bytes=5, owners=OWNERS)
        with pytest.raises(ValueError):
            jobfs.read_file(fd, "../escape", max_bytes=5, owners=OWNERS)
    finally:
        os.close(fd)


@pytest.mark.parametrize("kind", ["symlink", "fifo", "hard_link", "directory", "dir_symlink"])
def test_what_is_not_a_plain_file_of_the_job_is_never_opened(job: jobfs.JobDir, tmp_path: Path, kind: str):
    host = tmp_path / "host.txt"
    host.write_text("a host file")
    (job.path / "out").mkdir()
    entry = job.path / "out" / "x"
    relpath = "out/x"
    if kind == "symlink":
        entry.symlink_to(host)
    elif kind == "fifo":
        os.mkfifo(entry)  # opening it for reading without O_NONBLOCK would hang
    elif kind == "hard_link":
        os.link(host, entry)
    elif kind == "directory":
        entry.mkdir()
    else:  # a link in the middle of the path
        (job.path / "out").rmdir()
        (job.path / "out").symlink_to(tmp_path)
        relpath = "out/host.txt"
    fd = _fd(job.path)
    outcome: list[object] = []
    worker = threading.Thread(target=lambda: outcome.append(_try_read(fd, relpath)), daemon=True)
    worker.start()
    worker.join(5)
    os.close(fd)
    assert outcome, "the read blocked"
    assert isinstance(outcome[0], jobfs.UnsafeEntry), outcome
    assert host.read_text() == "a host file"


def _try_read(fd: int, relpath: str) -> object:
    try:
        return jobfs.read_file(fd, relpath, max_bytes=1 << 20, owners=OWNERS)
    except Exception as e:  # noqa: BLE001 - the test looks at what it was
        return e


def test_copy_out_makes_a_file_of_ours(job: jobfs.JobDir):
    (job.path / "v.mp4").write_bytes(b"x" * 1000)
    os.chmod(job.path / "v.mp4", 0o4777)
    fd = _fd(job.path)
    try:
        jobfs.copy_out(fd, "v.mp4", job.results / "v.mp4", max_bytes=1000, owners=OWNERS)
        with pytest.raises(jobfs.UnsafeEntry):
            jobfs.copy_out(fd, "v.mp4", job.results / "w.mp4", max_bytes=999, owners=OWNERS)
    finally:
        os.close(fd)
    st = (job.results / "v.mp4").stat()
    assert (st.st_mode & 0o7777, st.st_size, st.st_ino) == (0o644, 1000, st.st_ino)
    assert st.st_ino != (job.path / "v.mp4").stat().st_ino
    assert not (job.results / "w.mp4").exists()


def test_read_dir_keeps_only_matching_plain_files(job: jobfs.JobDir, tmp_path: Path):
    tex = job.path / "media" / "Tex"
    tex.mkdir(parents=True)
    (tex / "abcdef0123456789.svg").write_text("<svg/>")
    (tex / "0123456789abcdef.svg").symlink_to("/etc/passwd")
    (tex / "notes.txt").write_text("x")
    fd = _fd(job.path)
    try:
        found = jobfs.read_dir(fd, "media/Tex", re.compile(r"[0-9a-f]{16}\.svg"), max_bytes=100, owners=OWNERS)
        assert found == {"abcdef0123456789.svg": b"<svg/>"}
        assert jobfs.read_dir(fd, "nothing/here", re.compile(".*"), max_bytes=100, owners=OWNERS) == {}
    finally:
        os.close(fd)


def _deep_tree(top: Path, depth: int) -> None:
    """`depth` nested directories under `top` (deeper than any path name can reach), the last one locked."""
    fd = os.open(top, os.O_RDONLY | os.O_DIRECTORY)
    for _ in range(depth):
        os.mkdir("d", dir_fd=fd)
        new = os.open("d", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
        os.close(fd)
        fd = new
    open(os.open("f", os.O_WRONLY | os.O_CREAT, 0o600, dir_fd=fd), "w").close()  # noqa: SIM115
    os.fchmod(fd, 0)
    os.close(fd)


def test_remove_tree_handles_any_depth_and_locked_directories(tmp_path: Path):
    top = tmp_path / "tree"
    top.mkdir()
    _deep_tree(top, 3000)  # shutil.rmtree raises RecursionError at about 1,000
    (top / "locked").mkdir()
    (top / "locked" / "f").write_text("x")
    (top / "locked").chmod(0)
    (top / "link").symlink_to(tmp_path / "keep")
    (tmp_path / "keep").mkdir()
    (tmp_path / "keep" / "precious").write_text("x")
    assert jobfs.remove_tree(top)
    assert not top.exists() and (tmp_path / "keep" / "precious").exists()


def test_discard_moves_what_it_cannot_remove_in_time_to_the_trash(tmp_path: Path):
    work = tmp_path / "work"
    job = jobfs.create(work, "job", "slow")
    for i in range(2000):
        (job.path / f"f{i}").write_text("x")
    assert jobfs.discard(job.root, budget=0)  # no time at all: it moves aside
    assert not job.root.exists() and [p.name for p in work.iterdir()] == [jobfs.TRASH]
    jobfs.empty_trash(work)
    assert list(work.iterdir()) == []


HOLDER = """
import sys
from pathlib import Path
from watcher import jobfs
print(jobfs.make_dir(Path(sys.argv[1]), sys.argv[2]), flush=True)
sys.stdin.read()
"""


def test_a_starting_daemon_removes_what_dead_processes_left_whatever_the_name(tmp_path: Path):
    keys = ("inbox", "processing", "done", "failed", "work")
    layout = Layout.from_settings(load_config(None, [f"folders.{k}={tmp_path / k}" for k in keys]))
    layout.ensure()
    work = tmp_path / "work"
    orphan = work / "job-1-deep-abc"
    orphan.mkdir(parents=True)
    _deep_tree(orphan, 1500)
    # A live pid in a name says nothing (pids are reused): pytest's parent holds nothing here.
    named_live = work / f"rerender-{os.getppid()}-x"
    named_live.mkdir()
    stray = work / "stray-file"
    stray.write_text("x")
    # Held by live processes, under any name: another process's, and this process's own.
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(work), "sandbox-probe-"], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    try:
        assert holder.stdout is not None
        held = Path(holder.stdout.readline().decode().strip())
        ours = jobfs.make_dir(work, "anything-")
        assert recover(layout) == []
        assert held.is_dir() and ours.is_dir()
        assert not orphan.exists() and not named_live.exists() and not stray.exists()
    finally:
        holder.communicate(b"")
    # Once its owner has exited, the directory is an orphan like any other.
    assert recover(layout) == []
    assert not held.exists() and ours.is_dir()
    jobfs.discard(ours)
    assert not ours.exists()
