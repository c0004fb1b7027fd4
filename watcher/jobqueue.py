"""The daemon's queue of inbox paths: bounded, each path once whether queued or in flight."""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Hashable
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

K = TypeVar("K", bound=Hashable)


class JobQueue(Generic[K]):
    """A bounded FIFO that holds each item once, whether queued or in flight. Thread-safe.

    `get()` hands an item out and marks it in flight until `done(item)`. Putting an item that
    is in flight does not queue it a second time, but remembers to queue it again at
    `done()`: a new file dropped under a name being processed is not missed. Call `done()`
    as soon as the inbox entry is claimed (or found gone).
    """

    def __init__(self, maxsize: int):
        self.maxsize = maxsize
        self._items: deque[K] = deque()
        self._queued: set[K] = set()
        self._in_flight: set[K] = set()
        self._again: set[K] = set()
        self._closed = False
        self._full = False  # warned about being full; reset once there is room
        self._cond = threading.Condition()

    def put(self, item: K) -> bool:
        """Queue `item`; True if it was queued (or will be, when its in-flight copy is done).

        False when it is already queued, the queue is full (the file stays in the inbox for
        the next rescan) or the queue is closed.
        """
        with self._cond:
            if self._closed or item in self._queued:
                return False
            if item in self._in_flight:
                self._again.add(item)
                return True
            if len(self._items) >= self.maxsize:
                if not self._full:
                    self._full = True
                    log.warning("queue full (%d items); further files wait in the inbox for a rescan", self.maxsize)
                return False
            self._items.append(item)
            self._queued.add(item)
            self._cond.notify()
            return True

    def get(self, timeout: float | None = None) -> K | None:
        """The oldest item, now in flight; None on timeout or once closed."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while not self._items and not self._closed:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return None
                self._cond.wait(remaining)
            if self._closed:
                return None
            item = self._items.popleft()
            self._full = False
            self._queued.discard(item)
            self._in_flight.add(item)
            return item

    def done(self, item: K) -> None:
        """Release an item from `get()`; it is queued again if it was put meanwhile."""
        with self._cond:
            self._in_flight.discard(item)
            again = item in self._again
            self._again.discard(item)
        if again:
            self.put(item)

    def close(self) -> None:
        """Stop intake: `put` refuses, `get` returns None at once; queued items are dropped."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    @property
    def in_flight(self) -> int:
        with self._cond:
            return len(self._in_flight)

    def __len__(self) -> int:
        with self._cond:
            return len(self._items)
