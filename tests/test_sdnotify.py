"""sd_notify over a real AF_UNIX datagram socket, as systemd listens for it."""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from watcher import sdnotify


@pytest.fixture
def listener(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[socket.socket]:
    """A bound datagram socket named by NOTIFY_SOCKET."""
    path = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(path))
        sock.settimeout(2)
        monkeypatch.setenv("NOTIFY_SOCKET", str(path))
        yield sock


def test_messages_arrive_on_the_socket(listener: socket.socket) -> None:
    assert sdnotify.ready()
    assert listener.recv(4096) == b"READY=1"
    assert sdnotify.status("rendering 2,\n queued 5")
    assert listener.recv(4096) == b"STATUS=rendering 2, queued 5"
    assert sdnotify.watchdog_ping()
    assert listener.recv(4096) == b"WATCHDOG=1"
    assert sdnotify.stopping()
    assert listener.recv(4096) == b"STOPPING=1"
    assert sdnotify.reloading()
    first, second = listener.recv(4096).decode().split("\n")
    assert first == "RELOADING=1" and second.startswith("MONOTONIC_USEC=") and int(second.split("=")[1]) > 0


def test_abstract_namespace_socket(monkeypatch: pytest.MonkeyPatch) -> None:
    name = f"watcher-test-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(2)
        monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
        assert sdnotify.ready()
        assert sock.recv(4096) == b"READY=1"


def test_unset_socket_is_a_no_op(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert sdnotify.notify("READY=1") is False
    assert sdnotify.ready() is False


def test_a_socket_nobody_listens_on_is_not_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "gone.sock"))
    assert sdnotify.ready() is False
    monkeypatch.setenv("NOTIFY_SOCKET", "vsock:2:1234")
    assert sdnotify.ready() is False


@pytest.mark.parametrize(
    ("usec", "pid", "expected"),
    [
        ("10000000", None, 5.0),
        ("10000000", "self", 5.0),
        ("10000000", "1", None),  # meant for another process
        (None, None, None),
        ("0", None, None),
        ("soon", None, None),
    ],
)
def test_watchdog_interval(
    monkeypatch: pytest.MonkeyPatch, usec: str | None, pid: str | None, expected: float | None
) -> None:
    for key, value in (("WATCHDOG_USEC", usec), ("WATCHDOG_PID", pid)):
        if value is None:
            monkeypatch.delenv(key, raising=False)
        else:
            monkeypatch.setenv(key, str(os.getpid()) if value == "self" else value)
    assert sdnotify.watchdog_interval() == expected


def test_a_full_receiver_never_blocks_the_sender(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A unix datagram receiver that stops reading fills up after a few messages
    # (net.unix.max_dgram_qlen: 10 by default, but a host may set any number); sd_notify
    # must then drop, not wait. Send until the first drop, however deep the queue is.
    path = tmp_path / "full.sock"
    limit = 100_000  # far beyond any queue length a host sets
    sent: list[bool] = []

    def send_until_dropped() -> None:
        for i in range(limit):
            sent.append(sdnotify.status(f"message {i}"))
            if not sent[-1]:
                return

    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as receiver:
        receiver.bind(str(path))
        monkeypatch.setenv("NOTIFY_SOCKET", str(path))
        sender = threading.Thread(target=send_until_dropped, daemon=True)
        sender.start()
        sender.join(120)  # a sender that blocks on the full queue never returns
        assert not sender.is_alive(), f"sd_notify blocked on a full receiver after {len(sent)} messages"
        assert sent[0] and sent[-1] is False, f"nothing was dropped in {len(sent)} messages"
        # Each message reported sent is queued, in order; the dropped one is not.
        receiver.setblocking(False)
        queued = []
        with contextlib.suppress(BlockingIOError):
            while True:
                queued.append(receiver.recv(4096).decode())
    assert queued == [f"STATUS=message {i}" for i in range(len(sent) - 1)]
