from __future__ import annotations

import os
from pathlib import Path

import pytest


def job_processes(work: Path) -> list[int]:
    """PIDs of live processes that belong to a job under `work` (their HOME is a job dir).

    Every render child, and everything it starts, inherits HOME=<job dir>, so this finds
    descendants even after they changed session or process group.
    """
    marker = f"HOME={work}/".encode()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as f:
                env = f.read()
            with open(f"/proc/{entry}/stat", "rb") as f:
                state = f.read().rsplit(b")", 1)[1].split()[0]
        except OSError:
            continue
        try:
            cwd = os.readlink(f"/proc/{entry}/cwd")
        except OSError:
            cwd = ""
        # A job forked from a warm worker keeps the worker's original environ block in
        # /proc, so its working directory (the job dir) identifies it too.
        if (marker in env or cwd.startswith(f"{work}/")) and state != b"Z":
            found.append(int(entry))
    return found


@pytest.fixture
def work_dir(tmp_path: Path) -> Path:
    return tmp_path / "work"


@pytest.fixture
def remove_tmp_path(tmp_path: Path):
    """Remove what the test left in tmp_path, however deep: pytest's own clean-up of old temp
    folders (shutil.rmtree) dies with RecursionError on the trees hostile scenes build."""
    yield
    from watcher import jobfs

    if not os.environ.get("WATCHER_KEEP_TMP"):  # set it to look at what a failed test left
        jobfs.remove_tree(tmp_path, budget=60)
