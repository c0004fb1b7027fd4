"""sd_notify in pure Python: tell systemd we are ready, what we are doing, that we are alive.

Every call is a no-op returning False when `NOTIFY_SOCKET` is unset (not run by systemd),
and a failure to send is logged, never raised: notifications must not stop the daemon.
"""

from __future__ import annotations

import logging
import os
import socket
import time

log = logging.getLogger(__name__)


def notify(message: str) -> bool:
    """Send one datagram to `$NOTIFY_SOCKET` ('@' = abstract namespace); True if it was sent."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]
    elif not address.startswith("/"):
        log.debug("unsupported NOTIFY_SOCKET %r", address)  # e.g. vsock:, not for us
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            # Never block: a receiver whose queue is full (10 datagrams by default) would
            # otherwise stall the service loop inside sendto, signals and shutdown included.
            sock.send(message.encode("utf-8", "replace"), socket.MSG_DONTWAIT)
    except OSError as e:
        log.debug("sd_notify %r failed: %s", message, e)
        return False
    return True


def ready() -> bool:
    """Start-up is complete (Type=notify units are "active" from here)."""
    return notify("READY=1")


def status(text: str) -> bool:
    """A one-line status shown by `systemctl status`."""
    return notify("STATUS=" + " ".join(text.split()))


def stopping() -> bool:
    """Shutdown has begun."""
    return notify("STOPPING=1")


def reloading() -> bool:
    """A configuration reload has begun; send `ready()` when it is done."""
    return notify(f"RELOADING=1\nMONOTONIC_USEC={time.monotonic_ns() // 1000}")


def watchdog_ping() -> bool:
    """Tell the service manager we are alive (WatchdogSec=)."""
    return notify("WATCHDOG=1")


def watchdog_interval() -> float | None:
    """Seconds between watchdog pings (half of `WATCHDOG_USEC`), or None when not asked for.

    None too when `WATCHDOG_PID` names another process (the variables were inherited).
    """
    pid = os.environ.get("WATCHDOG_PID")
    if pid and pid != str(os.getpid()):
        return None
    try:
        usec = int(os.environ.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    return usec / 2 / 1_000_000 if usec > 0 else None
