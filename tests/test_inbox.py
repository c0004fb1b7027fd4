"""Noticing files with a real watchdog observer, and the job queue that de-duplicates them."""

from __future__ import annotations

import logging
import os
import shutil
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from watcher.config import Daemon
from watcher.errors import WatcherError
from watcher.inbox import InboxWatcher, is_candidate
from watcher.jobqueue import JobQueue

from .daemon_helpers import wait_for

SETTLE = 0.2
pytestmark = pytest.mark.timeout(60)


class Collector:
    """An on_ready callback that remembers what it got, and the file's size at that moment."""

    def __init__(self) -> None:
        self.paths: list[Path] = []
        self.sizes: dict[Path, int] = {}
        self.cond = threading.Condition()

    def __call__(self, path: Path) -> None:
        with self.cond:
            self.paths.append(path)
            try:
                self.sizes[path] = os.lstat(path).st_size
            except FileNotFoundError:
                self.sizes[path] = -1
            self.cond.notify_all()

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Path]:
        with self.cond:
            self.cond.wait_for(lambda: len(self.paths) >= count, timeout)
            return list(self.paths)

    def names(self) -> list[str]:
        with self.cond:
            return [p.name for p in self.paths]


Start = Callable[..., tuple[InboxWatcher, Collector]]


@pytest.fixture
def inbox(tmp_path: Path) -> Path:
    (tmp_path / "inbox").mkdir()
    (tmp_path / "elsewhere").mkdir()
    return tmp_path / "inbox"


@pytest.fixture
def start(inbox: Path) -> Iterator[Start]:
    """start(**daemon_settings) -> a running watcher on `inbox` and its collector; stopped at teardown."""
    running: list[InboxWatcher] = []

    def _start(
        on_ready: Callable[[Path], None] | None = None, scan: bool = True, **settings: object
    ) -> tuple[InboxWatcher, Collector]:
        collector = Collector()
        options: dict = {"settle_time": SETTLE, "rescan_interval": 0.0, "poll_interval": 0.1, **settings}
        watcher = InboxWatcher(inbox, Daemon(**options), on_ready or collector)
        watcher.start(scan=scan)
        running.append(watcher)
        return watcher, collector

    yield _start
    for watcher in running:
        watcher.stop()


def quiet(seconds: float = SETTLE + 0.4) -> None:
    """Give late (duplicate) reports a chance to show up."""
    time.sleep(seconds)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("scene.py", True),
        ("my scene.v2.py", True),
        (".hidden.py", False),
        (".#scene.py", False),
        ("scene.py~", False),
        ("scene.py.tmp", False),
        ("scene.py.part", False),
        ("scene.py.swp", False),
        ("#scene.py#", False),
        ("scene.txt", False),
        ("scene.PY", False),
        ("scene.pyc", False),
    ],
)
def test_is_candidate(name: str, expected: bool) -> None:
    assert is_candidate(name) is expected


@pytest.fixture(params=[False, True], ids=["inotify", "polling"])
def polling(request: pytest.FixtureRequest) -> bool:
    return request.param


def test_a_file_written_in_place_is_reported_once(start: Start, inbox: Path, polling: bool) -> None:
    _, got = start(polling=polling)
    (inbox / "a.py").write_text("x = 1\n")
    assert got.wait_for(1) == [inbox / "a.py"]
    quiet()
    assert got.names() == ["a.py"]


def test_a_copied_file_is_reported_once(start: Start, inbox: Path, polling: bool) -> None:
    _, got = start(polling=polling)
    (inbox.parent / "elsewhere" / "b.py").write_text("x = 1\n" * 1000)
    shutil.copy(inbox.parent / "elsewhere" / "b.py", inbox / "b.py")
    assert got.wait_for(1) == [inbox / "b.py"]
    quiet()
    assert got.names() == ["b.py"] and got.sizes[inbox / "b.py"] == 6000


def test_a_file_moved_in_from_another_folder_is_reported_after_settling(
    start: Start, inbox: Path, polling: bool
) -> None:
    _, got = start(polling=polling)
    (inbox.parent / "elsewhere" / "c.py").write_text("x = 1\n")
    moved_at = time.monotonic()
    os.rename(inbox.parent / "elsewhere" / "c.py", inbox / "c.py")  # inotify: a bare Created
    assert got.wait_for(1) == [inbox / "c.py"]
    assert time.monotonic() - moved_at >= SETTLE
    quiet()
    assert got.names() == ["c.py"]


def test_a_temp_name_renamed_in_place_is_reported_once_under_its_final_name(
    start: Start, inbox: Path, polling: bool
) -> None:
    _, got = start(polling=polling)
    (inbox / "d.py.tmp").write_text("x = 1\n")
    os.rename(inbox / "d.py.tmp", inbox / "d.py")
    assert got.wait_for(1) == [inbox / "d.py"]
    quiet()
    assert got.names() == ["d.py"]


@pytest.mark.parametrize("pause", [0.1, 3 * SETTLE], ids=["steady", "pausing"])
def test_a_slowly_written_file_is_reported_only_when_complete(start: Start, inbox: Path, pause: float) -> None:
    _, got = start()
    chunks = max(4, int(1.0 / pause))
    with open(inbox / "slow.py", "w") as f:
        for _ in range(chunks):
            f.write("x = 1\n")
            f.flush()
            time.sleep(pause)
        closed_at = time.monotonic()
    assert got.wait_for(1) == [inbox / "slow.py"]
    assert time.monotonic() >= closed_at
    assert got.sizes[inbox / "slow.py"] == 6 * chunks
    quiet()
    assert got.names() == ["slow.py"]


def test_a_slowly_written_file_is_complete_when_polled(start: Start, inbox: Path) -> None:
    # The polling observer sees no open or close: a file counts as complete once it stayed
    # unchanged for settle_time. The writer here pauses 0.1 s between writes, so several fall
    # in every settle window; but a busy machine can hold the writing thread back for longer
    # than settle_time, and then the file did stay unchanged that long. Such a try proves
    # nothing either way (its gaps are measured): the file is written again under a new name.
    settle = 1.0
    _, got = start(polling=True, settle_time=settle)
    for attempt in range(5):
        name = f"slow{attempt}.py"
        gaps = []
        with open(inbox / name, "w") as f:
            last = time.monotonic()
            for _ in range(10):
                f.write("x = 1\n")
                f.flush()
                now = time.monotonic()
                gaps.append(now - last)
                last = now
                time.sleep(0.1)
        found = got.wait_for(attempt + 1)  # this try's report, before the next try starts
        if max(gaps) < settle / 2:  # the premise held (from the open to the last write), with room to spare
            break
    else:
        pytest.fail(f"the writer was held back longer than {settle / 2} s in every try")
    assert found[-1] == inbox / name
    assert got.sizes[inbox / name] == 60


def test_ignored_names_and_subfolders_are_not_reported(start: Start, inbox: Path) -> None:
    _, got = start()
    for name in (".hidden.py", "x.py~", "x.py.swp", "#x.py#", "x.txt", "x.py.part"):
        (inbox / name).write_text("x\n")
    (inbox / "sub").mkdir()
    (inbox / "sub" / "deep.py").write_text("x\n")
    (inbox / "last.py").write_text("x\n")
    assert got.wait_for(1) == [inbox / "last.py"]
    quiet()
    assert got.names() == ["last.py"]


@pytest.mark.timeout(30)  # a FIFO opened by mistake would block forever
def test_links_fifos_and_directories_are_reported_for_ingest_to_move_aside(start: Start, inbox: Path) -> None:
    _, got = start()
    os.symlink("/etc/passwd", inbox / "link.py")
    os.mkfifo(inbox / "fifo.py")
    (inbox / "dir.py").mkdir()
    got.wait_for(3)
    quiet()
    assert sorted(got.names()) == ["dir.py", "fifo.py", "link.py"]


def test_files_already_there_are_reported_at_start_oldest_first(start: Start, inbox: Path) -> None:
    for age, name in ((30, "new.py"), (90, "old.py"), (60, "mid.py")):
        (inbox / name).write_text("x\n")
        os.utime(inbox / name, (time.time() - age, time.time() - age))
    (inbox / ".hidden.py").write_text("x\n")
    watcher, got = start()
    assert [p.name for p in watcher.scan()] == ["old.py", "mid.py", "new.py"]
    assert got.names() == ["old.py", "mid.py", "new.py"]  # reported by start() itself


def test_the_periodic_rescan_catches_a_file_the_observer_missed(start: Start, inbox: Path) -> None:
    watcher, got = start(rescan_interval=0.3)
    watcher.stop()  # e.g. an inotify overflow: events lost
    (inbox / "missed.py").write_text("x\n")
    watcher.start(scan=False)
    assert got.wait_for(1) == [inbox / "missed.py"]


def test_an_on_ready_that_raises_does_not_kill_the_observer(
    start: Start, inbox: Path, caplog: pytest.LogCaptureFixture
) -> None:
    got = Collector()

    def on_ready(path: Path) -> None:
        got(path)
        if path.name == "bad.py":
            raise RuntimeError("boom")

    watcher, _ = start(on_ready=on_ready)
    (inbox / "bad.py").write_text("x\n")
    got.wait_for(1)
    (inbox / "good.py").write_text("x\n")
    assert [p.name for p in got.wait_for(2)] == ["bad.py", "good.py"]
    assert watcher.alive
    assert any("bad.py: on_ready failed" in r.getMessage() for r in caplog.records)


def test_two_hundred_files_at_once_are_delivered_exactly_once(start: Start, inbox: Path) -> None:
    queue: JobQueue[Path] = JobQueue(10_000)
    delivered: Counter[str] = Counter()

    def consume() -> None:
        while (path := queue.get(timeout=5)) is not None:
            delivered[path.name] += 1
            path.rename(inbox.parent / "elsewhere" / path.name)  # as a claim would
            queue.done(path)

    consumer = threading.Thread(target=consume)
    consumer.start()
    start(on_ready=queue.put)
    names = {f"s{i:03d}.py" for i in range(200)}
    for name in names:
        (inbox / name).write_text("x = 1\n")
    wait_for(lambda: len(delivered) >= 200, 45, "200 deliveries")
    quiet()
    queue.close()
    consumer.join()
    assert set(delivered) == names
    assert set(delivered.values()) == {1}


@pytest.mark.parametrize("how", ["deleted", "replaced"])
def test_an_inbox_deleted_or_replaced_is_watched_again(
    start: Start, inbox: Path, polling: bool, how: str, caplog: pytest.LogCaptureFixture
) -> None:
    watcher, got = start(polling=polling)  # no periodic rescan: only the guard can bring it back
    if how == "deleted":
        shutil.rmtree(inbox)
        # Missing long enough to be seen missing (the polling observer stops then too).
        wait_for(lambda: "is gone" in caplog.text, 15, "the warning")
        inbox.mkdir()
    else:  # a new directory renamed over the name; the old one lives on elsewhere
        inbox.rename(inbox.parent / "old-inbox")
        (inbox.parent / "new-inbox").mkdir()
        (inbox.parent / "new-inbox").rename(inbox)
    (inbox / "after.py").write_text("x = 1\n")
    assert got.wait_for(1, timeout=15) == [inbox / "after.py"]
    assert watcher.alive


def test_a_missing_inbox_is_warned_about_once_and_watched_when_back(
    start: Start, inbox: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="watcher.inbox")
    watcher, got = start()
    shutil.rmtree(inbox)
    for _ in range(3):  # what the guard does every half second, driven here by hand
        watcher.check()
    assert watcher.alive  # waiting for the inbox is not a failure: the daemon keeps running
    assert [r.getMessage() for r in caplog.records if r.levelname == "WARNING"] == [
        f"the inbox {inbox} is gone; waiting for it to come back"
    ]
    inbox.mkdir()
    (inbox / "dropped_meanwhile.py").write_text("x = 1\n")
    os.utime(inbox / "dropped_meanwhile.py", (time.time() - 60, time.time() - 60))
    watcher.check()
    watcher.check()
    assert got.wait_for(1)[0] == inbox / "dropped_meanwhile.py"  # by the rescan after the restart
    assert sum("watching the inbox" in r.getMessage() for r in caplog.records) == 1
    (inbox / "new.py").write_text("x = 1\n")  # and by the new observer
    wait_for(lambda: "new.py" in got.names(), 10, "new.py to be reported")


def test_a_missing_inbox_is_one_clear_error(tmp_path: Path, polling: bool) -> None:
    watcher = InboxWatcher(tmp_path / "nowhere", Daemon(polling=polling), Collector())
    with pytest.raises(WatcherError, match=r"^cannot watch .*nowhere: No such file or directory$"):
        watcher.start()
    assert not watcher.alive


# -- JobQueue -------------------------------------------------------------------------------


def test_queue_is_fifo_and_deduplicates_queued_items() -> None:
    q: JobQueue[str] = JobQueue(10)
    assert q.put("a") and q.put("b") and not q.put("a")
    assert len(q) == 2
    assert [q.get(0), q.get(0), q.get(0)] == ["a", "b", None]


def test_an_item_put_while_in_flight_is_queued_again_when_done() -> None:
    q: JobQueue[str] = JobQueue(10)
    q.put("a")
    assert q.get(0) == "a" and q.in_flight == 1
    assert q.put("a")  # a new file under the same name arrived meanwhile
    assert q.get(0) is None
    q.done("a")
    assert q.in_flight == 0 and q.get(0) == "a"
    q.done("a")
    assert q.get(0) is None


def test_queue_is_bounded() -> None:
    q: JobQueue[int] = JobQueue(2)
    assert q.put(1) and q.put(2) and not q.put(3)
    assert q.get(0) == 1 and q.put(3)


def test_get_waits_and_close_wakes_it() -> None:
    q: JobQueue[str] = JobQueue(2)
    started = time.monotonic()
    assert q.get(0.2) is None and time.monotonic() - started >= 0.2
    result: list[object] = []
    getter = threading.Thread(target=lambda: result.append(q.get()))
    getter.start()
    time.sleep(0.1)
    q.close()
    getter.join(10)
    assert result == [None] and not q.put("x")


def test_queue_under_concurrent_producers_and_consumers() -> None:
    q: JobQueue[int] = JobQueue(50)
    got: list[int] = []
    lock = threading.Lock()

    def produce(offset: int) -> None:
        for i in range(offset, offset + 500):
            while not q.put(i):
                time.sleep(0.001)

    def consume() -> None:  # until the queue is closed (not until it looks empty for a while)
        while (item := q.get()) is not None:
            with lock:
                got.append(item)
            q.done(item)

    producers = [threading.Thread(target=produce, args=(n * 500,)) for n in range(4)]
    consumers = [threading.Thread(target=consume) for _ in range(4)]
    for t in producers + consumers:
        t.start()
    for t in producers:
        t.join(30)
    wait_for(lambda: len(got) >= 2000, 30, "every item consumed")
    q.close()  # wakes the consumers
    for t in consumers:
        t.join(10)
    assert not any(t.is_alive() for t in producers + consumers)
    assert sorted(got) == list(range(2000))
