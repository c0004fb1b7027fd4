"""/proc helpers shared by the benchmark scripts."""

from __future__ import annotations

import os


def children(pid: int) -> list[int]:
    """Child processes of every thread of `pid` (a process started by a thread is that thread's child)."""
    found = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as f:
                found += [int(p) for p in f.read().split()]
    except FileNotFoundError:
        pass
    return found
