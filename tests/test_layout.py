"""The folders: claim races, safe ingest, atomic publish without overwrites, crash recovery."""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from watcher.config import Folders
from watcher.errors import ErrorRecord, WatcherError
from watcher.folders import FOLDER_KEYS, LOCK_NAME
from watcher.layout import Claimed, Layout, Rejected
from watcher.recovery import recover

SCENE = b"from manim import *\n\nclass A(Scene):\n    def construct(self):\n        pass\n"
TAG = r"\.\d{8}T\d{6}Z-\d{3}"
ROOT = Path(__file__).resolve().parents[1]


def make_folders(base: Path) -> Folders:
    return Folders(**{key: base / key for key in FOLDER_KEYS})


@pytest.fixture
def folders(tmp_path: Path) -> Folders:
    return make_folders(tmp_path)


@pytest.fixture
def layout(folders: Folders) -> Layout:
    lay = Layout(folders, max_source_bytes=1000, max_attempts=3)
    lay.ensure()
    return lay


def drop(folders: Folders, name: str = "x.py", data: bytes = SCENE) -> Path:
    path = folders.inbox / name
    path.write_bytes(data)
    return path


def make_video(folders: Folders, name: str = "x.mp4", data: bytes = b"\x00\x00\x00\x18ftypmp42 video") -> Path:
    job = Path(tempfile.mkdtemp(prefix="job-", dir=folders.work))
    path = job / name
    path.write_bytes(data)
    return path


def claim(layout: Layout, name: str = "x.py", data: bytes = SCENE) -> Claimed:
    result = layout.ingest(drop(layout.folders, name, data))
    assert isinstance(result, Claimed)
    return result


def listing(folder: Path) -> list[str]:
    return sorted(os.listdir(folder))


def record_of(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def assert_settled(folders: Folders) -> None:
    """Nothing in flight, no temp files, every source beside its result."""
    assert [n for n in listing(folders.processing) if n != LOCK_NAME] == []
    assert listing(folders.work) == []
    for folder, result in ((folders.done, ".mp4"), (folders.failed, ".error.json")):
        names = listing(folder)
        assert not [n for n in names if n.startswith(".")], names
        for source in (n for n in names if n.endswith(".py")):
            stem = source[: -len(".py")]
            assert any(n.startswith(stem + ".") and n.endswith(result) for n in names), (source, names)


# -- folders and the lock ---------------------------------------------------------------


def test_ensure_creates_every_folder_and_check_passes(folders: Folders) -> None:
    lay = Layout(folders)
    lay.ensure()
    for key in FOLDER_KEYS:
        assert getattr(folders, key).is_dir()
    lay.check()
    assert listing(folders.inbox) == [] and listing(folders.processing) == []  # probes are gone


def test_a_file_where_a_folder_should_be_is_one_clear_line(folders: Folders) -> None:
    folders.done.parent.mkdir(exist_ok=True)
    folders.done.write_text("oops")
    with pytest.raises(WatcherError, match=r"^folders\.done: .*done exists and is not a directory$"):
        Layout(folders).ensure()


def test_check_names_missing_and_duplicate_folders(tmp_path: Path) -> None:
    folders = make_folders(tmp_path)
    with pytest.raises(WatcherError, match=r"^folders\.inbox: .* does not exist$"):
        Layout(folders).check()
    same = Folders(tmp_path / "a", tmp_path / "b", tmp_path / "a", tmp_path / "c", tmp_path / "d")
    Layout(same).ensure()
    with pytest.raises(WatcherError, match=r"folders\.done and folders\.inbox are the same directory"):
        Layout(same).check()


def test_check_reports_an_unwritable_folder(layout: Layout) -> None:
    layout.folders.failed.chmod(0o500)
    try:
        try:
            (layout.folders.failed / "probe").touch()
            pytest.skip("this user can write anywhere (root)")
        except PermissionError:
            pass
        with pytest.raises(WatcherError, match=r"^folders\.failed: cannot write to .*: Permission denied$"):
            layout.check()
    finally:
        layout.folders.failed.chmod(0o700)


@pytest.mark.skipif(not Path("/dev/shm").is_dir(), reason="needs a tmpfs at /dev/shm")
def test_check_refuses_inbox_and_processing_on_different_filesystems(tmp_path: Path) -> None:
    shm = Path(tempfile.mkdtemp(dir="/dev/shm"))
    try:
        if os.stat(shm).st_dev == os.stat(tmp_path).st_dev:
            pytest.skip("/dev/shm is on the same filesystem")
        folders = Folders(shm / "inbox", tmp_path / "p", tmp_path / "d", tmp_path / "f", tmp_path / "w")
        Layout(folders).ensure()
        with pytest.raises(WatcherError, match="must be on one filesystem"):
            Layout(folders).check()
    finally:
        shutil.rmtree(shm)


def test_a_second_daemon_on_the_same_folders_is_refused(layout: Layout) -> None:
    code = textwrap.dedent(
        """
        import sys
        from pathlib import Path
        from watcher.config import Folders
        from watcher.layout import Layout
        lock = Layout(Folders(*map(Path, sys.argv[1:]))).lock()
        print("locked", flush=True)
        sys.stdin.read()
        """
    )
    argv = [sys.executable, "-c", code, *(str(getattr(layout.folders, k)) for k in FOLDER_KEYS)]
    holder = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "locked\n"
        with pytest.raises(WatcherError) as info:
            layout.lock()
        assert (
            str(info.value) == f"another watcher (pid {holder.pid}) is already running on {layout.folders.processing}"
        )
    finally:
        holder.communicate("")
    with layout.lock():  # released when the holder exited
        with pytest.raises(WatcherError, match=f"pid {os.getpid()}"):
            layout.lock()
    with layout.lock():
        pass


# -- claim --------------------------------------------------------------------------------


def test_ingest_claims_a_plain_file(layout: Layout) -> None:
    claimed = claim(layout)
    assert claimed.name == "x.py" and claimed.attempts == 0
    assert claimed.path.parent.parent == layout.folders.processing
    assert listing(layout.folders.inbox) == []
    assert layout.read_source(claimed) == SCENE
    assert layout.ingest(layout.folders.inbox / "x.py") is None  # gone now


def test_two_threads_racing_on_one_file_exactly_one_wins(layout: Layout) -> None:
    for i in range(50):
        path = drop(layout.folders, f"race{i}.py")
        barrier = threading.Barrier(2)
        results: list[object] = []

        def grab(path: Path = path, barrier: threading.Barrier = barrier, results: list[object] = results) -> None:
            barrier.wait()
            results.append(layout.ingest(path))

        threads = [threading.Thread(target=grab) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(type(r).__name__ for r in results) == ["Claimed", "NoneType"]
    claims = [d for d in listing(layout.folders.processing) if not d.startswith(".")]
    assert len(claims) == 50  # the losers left no empty claim directory


def test_two_daemon_processes_sharing_an_inbox_claim_each_file_once(tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    names = {f"s{i:03d}.py" for i in range(200)}
    for name in names:
        (inbox / name).write_bytes(SCENE)
    code = textwrap.dedent(
        """
        import os, sys
        from pathlib import Path
        from watcher.config import Folders
        from watcher.layout import Claimed, Layout
        base, inbox = Path(sys.argv[1]), Path(sys.argv[2])
        lay = Layout(Folders(inbox, base / "p", base / "d", base / "f", base / "w"))
        lay.ensure()
        sys.stdin.readline()  # start together
        for name in sorted(os.listdir(inbox)):
            if isinstance(lay.ingest(inbox / name), Claimed):
                print(name)
        """
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, str(tmp_path / who), str(inbox)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        for who in ("a", "b")
    ]
    outs = [p.communicate("go\n", timeout=60)[0].split() for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert set(outs[0]) | set(outs[1]) == names
    assert not set(outs[0]) & set(outs[1])
    assert len(outs[0]) + len(outs[1]) == len(names)


def test_an_empty_claim_dir_from_a_crash_before_the_rename_is_removed(layout: Layout) -> None:
    layout._new_claim_dir()  # SIGKILL after mkdir, before the rename
    drop(layout.folders)
    assert recover(layout) == []
    assert_settled(layout.folders)
    assert listing(layout.folders.inbox) == ["x.py"]


# -- safe ingest ------------------------------------------------------------------------------


def assert_rejected(result: object, folders: Folders, type_: str, words: str) -> dict:
    assert isinstance(result, Rejected), result
    assert result.record.phase == "ingest" and result.record.type == type_
    assert words in result.record.message
    assert result.paths == [folders.failed / "x.error.json", folders.failed / "x.py"]
    record = record_of(folders.failed / "x.error.json")
    assert (record["phase"], record["type"], record["source"]) == ("ingest", type_, "x.py")
    assert listing(folders.inbox) == []
    assert_settled(folders)
    return record


def test_a_symlink_is_moved_aside_never_followed(layout: Layout, tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("root:hash")
    os.symlink(secret, layout.folders.inbox / "x.py")
    result = layout.ingest(layout.folders.inbox / "x.py")
    assert_rejected(result, layout.folders, "NotARegularFile", "is a symbolic link")
    moved = layout.folders.failed / "x.py"
    assert moved.is_symlink() and os.readlink(moved) == str(secret)
    assert secret.read_text() == "root:hash"
    assert "root:hash" not in (layout.folders.failed / "x.error.json").read_text()


def test_a_dangling_symlink_is_moved_aside(layout: Layout) -> None:
    os.symlink("/nonexistent/target", layout.folders.inbox / "x.py")
    assert_rejected(layout.ingest(layout.folders.inbox / "x.py"), layout.folders, "NotARegularFile", "symbolic link")


@pytest.mark.timeout(10)
def test_a_fifo_is_moved_aside_without_blocking(layout: Layout) -> None:
    os.mkfifo(layout.folders.inbox / "x.py")
    assert_rejected(layout.ingest(layout.folders.inbox / "x.py"), layout.folders, "NotARegularFile", "FIFO")
    assert stat.S_ISFIFO(os.lstat(layout.folders.failed / "x.py").st_mode)


def test_a_directory_named_like_a_scene_is_moved_aside(layout: Layout) -> None:
    (layout.folders.inbox / "x.py").mkdir()
    (layout.folders.inbox / "x.py" / "inner.txt").write_text("kept")
    assert_rejected(layout.ingest(layout.folders.inbox / "x.py"), layout.folders, "NotARegularFile", "a directory")
    assert (layout.folders.failed / "x.py" / "inner.txt").read_text() == "kept"


@pytest.mark.skipif(os.geteuid() != 0, reason="mknod needs root")
def test_a_device_node_is_moved_aside_without_opening_it(layout: Layout) -> None:
    os.mknod(layout.folders.inbox / "x.py", stat.S_IFCHR | 0o600, os.makedev(1, 3))  # like /dev/null
    assert_rejected(layout.ingest(layout.folders.inbox / "x.py"), layout.folders, "NotARegularFile", "character device")


def test_a_hard_link_is_rejected(layout: Layout, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere.py"
    elsewhere.write_bytes(SCENE)
    os.link(elsewhere, layout.folders.inbox / "x.py")
    assert_rejected(layout.ingest(layout.folders.inbox / "x.py"), layout.folders, "HardLink", "2 hard links")
    assert elsewhere.read_bytes() == SCENE


def test_an_oversize_file_is_rejected_with_the_limit_named(layout: Layout) -> None:
    record = assert_rejected(
        layout.ingest(drop(layout.folders, data=b"#" * 1001)), layout.folders, "TooLarge", "1001 bytes"
    )
    assert record["limit"] == "render.max_source_bytes"
    assert claim(layout, "ok.py", b"#" * 1000).name == "ok.py"  # the cap itself is allowed


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("chattr"), reason="needs root and chattr")
def test_an_entry_that_cannot_be_moved_is_logged_once_and_ignored(
    layout: Layout, caplog: pytest.LogCaptureFixture
) -> None:
    path = drop(layout.folders)
    if subprocess.run(["chattr", "+i", str(path)], capture_output=True).returncode != 0:
        pytest.skip("this filesystem has no immutable flag")
    try:
        assert layout.ingest(path) is None
        assert layout.ingest(path) is None
    finally:
        subprocess.run(["chattr", "-i", str(path)], check=True)
    assert [r.getMessage() for r in caplog.records].count(
        "x.py: cannot be claimed (Operation not permitted); left where it is and ignored"
    ) == 1
    assert listing(layout.folders.inbox) == ["x.py"]
    assert_settled(layout.folders)


# -- publish ------------------------------------------------------------------------------


def test_publish_done_files_the_video_then_the_source(layout: Layout) -> None:
    claimed = claim(layout)
    video = make_video(layout.folders, data=b"VIDEO")
    paths = layout.publish_done(claimed, [video])
    assert paths == [layout.folders.done / "x.mp4", layout.folders.done / "x.py"]
    assert (layout.folders.done / "x.mp4").read_bytes() == b"VIDEO"
    assert (layout.folders.done / "x.py").read_bytes() == SCENE
    assert not video.exists()
    shutil.rmtree(video.parent)
    assert_settled(layout.folders)


def test_the_same_name_dropped_twice_keeps_both(layout: Layout) -> None:
    first = claim(layout, data=SCENE + b"# one\n")
    layout.publish_done(first, [make_video(layout.folders, data=b"ONE")])
    second = claim(layout, data=SCENE + b"# two\n")
    paths = layout.publish_done(second, [make_video(layout.folders, data=b"TWO")])
    assert re.fullmatch(rf"x{TAG}\.mp4", paths[0].name) and paths[1].name == paths[0].name[: -len(".mp4")] + ".py"
    assert (layout.folders.done / "x.mp4").read_bytes() == b"ONE"
    assert (layout.folders.done / "x.py").read_bytes().endswith(b"# one\n")
    assert paths[0].read_bytes() == b"TWO" and paths[1].read_bytes().endswith(b"# two\n")
    # and in failed/ too
    for _ in range(2):
        layout.publish_failed(claim(layout), ErrorRecord(source="x.py", phase="render", type="E", message="m"))
    names = listing(layout.folders.failed)
    assert len(names) == 4 and "x.py" in names and "x.error.json" in names
    assert sum(bool(re.fullmatch(rf"x{TAG}\.(py|error\.json)", n)) for n in names) == 2
    for folder in (layout.folders.work,):
        for job in listing(folder):
            shutil.rmtree(folder / job)
    assert_settled(layout.folders)


def test_one_taken_member_moves_the_whole_group_to_a_new_suffix(layout: Layout) -> None:
    (layout.folders.done / "x.mp4").write_bytes(b"SOMEONE ELSE'S")
    paths = layout.publish_done(claim(layout), [make_video(layout.folders)])
    assert (layout.folders.done / "x.mp4").read_bytes() == b"SOMEONE ELSE'S"
    assert not (layout.folders.done / "x.py").exists()
    stems = {p.name.rsplit(".", 1)[0] for p in paths}
    assert len(stems) == 1 and re.fullmatch(rf"x{TAG}", stems.pop())


def test_several_videos_keep_their_names_after_the_stem(layout: Layout) -> None:
    job = make_video(layout.folders, "x.Intro.mp4").parent
    (job / "x.Outro.mp4").write_bytes(b"OUT")
    (job / "Credits.mp4").write_bytes(b"CRED")
    videos = [job / "x.Intro.mp4", job / "x.Outro.mp4", job / "Credits.mp4"]
    paths = layout.publish_done(claim(layout), videos)
    assert [p.name for p in paths] == ["x.Intro.mp4", "x.Outro.mp4", "x.Credits.mp4", "x.py"]
    for i, name in enumerate(("x.Intro.mp4", "x.Outro.mp4", "Credits.mp4")):
        (job / name).write_bytes(b"%d" % i)
    again = layout.publish_done(claim(layout), videos)
    assert all(re.fullmatch(rf"x{TAG}\.(Intro\.mp4|Outro\.mp4|Credits\.mp4|py)", p.name) for p in again), again
    assert len({p.name.split(".")[1] for p in again}) == 1  # one suffix for the whole group


def test_a_symlinked_output_is_not_published(layout: Layout, tmp_path: Path) -> None:
    claimed = claim(layout)
    secret = tmp_path / "secret"
    secret.write_text("secret")
    job = Path(tempfile.mkdtemp(dir=layout.folders.work))
    os.symlink(secret, job / "x.mp4")
    with pytest.raises(WatcherError, match="not a regular file"):
        layout.publish_done(claimed, [job / "x.mp4"])
    assert listing(layout.folders.done) == []
    record = ErrorRecord(source="x.py", phase="render", type="BadOutput", message="output was a symlink")
    layout.publish_failed(claimed, record)
    assert listing(layout.folders.failed) == ["x.error.json", "x.py"]
    shutil.rmtree(job)
    assert_settled(layout.folders)


def test_a_failure_record_carries_the_attempt_count(layout: Layout) -> None:
    claimed = claim(layout)
    assert layout.begin_attempt(claimed) == 1
    layout.publish_failed(claimed, ErrorRecord(source="x.py", phase="render", type="E", message="m"))
    assert record_of(layout.folders.failed / "x.error.json")["attempts"] == 1


def test_requeue_puts_the_source_back_without_overwriting_a_newer_file(layout: Layout) -> None:
    claimed = claim(layout, data=b"old = 1\n")
    assert layout.requeue(claimed) == layout.folders.inbox / "x.py"
    claimed = claim(layout, data=b"old = 1\n")
    drop(layout.folders, data=b"new = 2\n")
    back = layout.requeue(claimed)
    assert re.fullmatch(rf"x{TAG}\.py", back.name)
    assert back.read_bytes() == b"old = 1\n" and (layout.folders.inbox / "x.py").read_bytes() == b"new = 2\n"
    assert_settled(layout.folders)


@pytest.mark.skipif(not Path("/dev/shm").is_dir(), reason="needs a tmpfs at /dev/shm")
def test_publishing_across_filesystems_copies_then_renames(tmp_path: Path) -> None:
    shm = Path(tempfile.mkdtemp(dir="/dev/shm"))
    try:
        if os.stat(shm).st_dev == os.stat(tmp_path).st_dev:
            pytest.skip("/dev/shm is on the same filesystem")
        folders = Folders(tmp_path / "i", tmp_path / "p", shm / "done", shm / "failed", shm / "work")
        lay = Layout(folders)
        lay.ensure()
        lay.check()
        paths = lay.publish_done(claim(lay), [make_video(folders, data=b"V")])
        assert [p.read_bytes() for p in paths] == [b"V", SCENE]
        again = lay.publish_done(claim(lay), [make_video(folders, data=b"W")])
        assert again[0].read_bytes() == b"W" and again[0].name != "x.mp4"
        for job in listing(folders.work):
            shutil.rmtree(folders.work / job)
        assert_settled(folders)
    finally:
        shutil.rmtree(shm)


# -- recovery ---------------------------------------------------------------------------


def test_attempts_survive_a_restart_and_poison_after_max_attempts(layout: Layout) -> None:
    claimed = claim(layout)
    for expected in (1, 2):
        assert layout.begin_attempt(claimed) == expected
        (recovered,) = recover(Layout(layout.folders, max_attempts=3))  # the render crashed
        assert (recovered.name, recovered.attempts, recovered.path) == ("x.py", expected, claimed.path)
        claimed = recovered
    layout.begin_attempt(claimed)  # the third crash
    assert recover(Layout(layout.folders, max_attempts=3)) == []
    record = record_of(layout.folders.failed / "x.error.json")
    assert record["phase"] == "poison" and record["attempts"] == 3
    assert "crashed the renderer 3 times" in record["message"]
    assert (layout.folders.failed / "x.py").read_bytes() == SCENE
    assert_settled(layout.folders)


def test_recover_cleans_orphans_and_returns_claims_oldest_first(layout: Layout) -> None:
    f = layout.folders
    first, second = claim(layout, "a.py"), claim(layout, "b.py")
    job = f.work / "job-x"
    (job / "partial_movie_files" / "locked").mkdir(parents=True)
    (job / "partial_movie_files" / "locked" / "part.mp4").write_bytes(b"partial")
    (job / "partial_movie_files" / "locked").chmod(0o000)
    orphan = layout._new_claim_dir()  # a sidecar whose source is gone
    (orphan / ".job.json").write_text('{"name": "gone.py", "attempts": 1}')
    (f.done / ".x.mp4.tmp-0123abcd").write_bytes(b"half a copy")
    (f.processing / "stray.py").write_bytes(SCENE)  # dropped into processing/ by hand
    stale_stage = first.path.parent / ".out-0.mp4"  # staged before a crash, no plan yet
    stale_stage.write_bytes(b"staged")
    claims = recover(Layout(f))
    assert [c.name for c in claims] == ["a.py", "b.py", "stray.py"]
    assert [c.path for c in claims[:2]] == [first.path, second.path]
    assert not stale_stage.exists() and not orphan.exists()
    assert listing(f.work) == [] and listing(f.done) == []


def two_videos(folders: Folders, data: bytes) -> list[Path]:
    intro = make_video(folders, "x.Intro.mp4", data)
    (intro.parent / "x.Outro.mp4").write_bytes(data)
    return [intro, intro.parent / "x.Outro.mp4"]


def published(layout: Layout, claimed: Claimed, how: str, data: bytes) -> list[Path]:
    if how == "done":
        return layout.publish_done(claimed, two_videos(layout.folders, data))
    if how == "failed":
        return layout.publish_failed(claimed, ErrorRecord(source=claimed.name, phase="render", type="E", message="m"))
    return [layout.requeue(claimed)]


def steps_of(layout: Layout, claimed: Claimed, how: str, data: bytes) -> Iterator[None]:
    """The same publish as `published`, as steps that can be stopped part way."""
    if how == "done":
        outputs = [(video, video.name[1:]) for video in two_videos(layout.folders, data)]
        return layout._publish_steps(claimed, "done", outputs)
    if how == "failed":
        record = ErrorRecord(source=claimed.name, phase="render", type="E", message="m")
        return layout._publish_steps(claimed, "failed", [(record, ".error.json")])
    return layout._publish_steps(claimed, "inbox", [])


def assert_paired(folders: Folders) -> None:
    """done/x.py never without done/x.Intro.mp4, failed/x.py never without failed/x.error.json."""
    for folder, result in ((folders.done, ".Intro.mp4"), (folders.failed, ".error.json")):
        names = listing(folder)
        for source in (n for n in names if n.endswith(".py")):
            assert source[: -len(".py")] + result in names, (source, names)


@pytest.mark.parametrize("earlier", [False, True], ids=["fresh", "name-taken"])
@pytest.mark.parametrize("how", ["done", "failed", "requeue"])
def test_a_crash_between_any_two_steps_leaves_every_input_in_exactly_one_place(
    tmp_path: Path, how: str, earlier: bool
) -> None:
    """SIGKILL after step k of a publish (for every k), restart, finish: nothing lost or doubled."""
    k = 0
    while True:
        folders = make_folders(tmp_path / f"k{k}")
        lay = Layout(folders)
        lay.ensure()
        if earlier:  # a result of the same name is already there
            published(lay, claim(lay, data=b"earlier = 1\n"), "failed" if how == "failed" else "done", b"EARLIER")
        claimed = claim(lay, data=b"mine = 1\n")
        lay.begin_attempt(claimed)
        steps = steps_of(lay, claimed, how, b"FIRST")
        finished = False
        for _ in range(k):
            try:
                next(steps)
            except StopIteration:
                finished = True
                break
            assert_paired(folders)
        # -- SIGKILL here; restart --
        restarted = Layout(folders)
        for again in recover(restarted):
            restarted.begin_attempt(again)
            published(restarted, again, how, b"SECOND")
        if how == "requeue":
            for name in listing(folders.inbox):  # what came back is processed normally
                if (path := folders.inbox / name).read_bytes() == b"mine = 1\n":
                    back = restarted.ingest(path)
                    assert isinstance(back, Claimed)
                    published(restarted, back, "done", b"THIRD")
        for job in listing(folders.work):
            shutil.rmtree(folders.work / job)
        mine = [
            (folder.name, name)
            for folder in (folders.inbox, folders.processing, folders.done, folders.failed)
            for name in listing(folder)
            if name.endswith(".py") and (folder / name).read_bytes() == b"mine = 1\n"
        ]
        assert len(mine) == 1, (k, mine)
        assert mine[0][0] == ("failed" if how == "failed" else "done"), (k, mine)
        assert_settled(folders)
        assert_paired(folders)
        videos = [n for n in listing(folders.done) if n.endswith(".mp4")]
        assert len(videos) == (0 if how == "failed" else 2 + 2 * earlier), (k, videos)
        for name in videos:
            assert (folders.done / name).read_bytes() in (b"FIRST", b"SECOND", b"THIRD", b"EARLIER")
        if finished:
            break
        k += 1
    assert k >= 3
