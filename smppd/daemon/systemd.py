"""sd_notify(3) for Type=notify and notify-reload: READY, RELOADING, STOPPING, STATUS
and WATCHDOG pings.

Written out here rather than taken from a package: the protocol is one datagram
to the socket named by $NOTIFY_SOCKET, the packages that wrap it are either
unmaintained (sdnotify) or need libsystemd headers to build (systemd-python), and
without systemd (tests, a terminal) every call is a no-op.
"""

from __future__ import annotations

import logging
import os
import socket
import time

log = logging.getLogger("smppd.systemd")


def notify(*assignments: str) -> bool:
    """Send e.g. notify("READY=1", "STATUS=bound"); False when not under systemd."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):  # abstract namespace socket
        address = "\0" + address[1:]
    # This runs on the reactor. A datagram socket whose reader has fallen behind (its
    # queue holds ten) blocks a plain send until it reads: a watchdog ping, sent every
    # few seconds, is dropped then instead; a state change (READY, STOPPING,
    # RELOADING, STATUS) waits up to a second, as it happens once.
    ping = assignments == ("WATCHDOG=1",)
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.settimeout(0.0 if ping else 1.0)
            sock.connect(address)
            sock.sendall("\n".join(assignments).encode())
        return True
    except (BlockingIOError, TimeoutError):
        (log.debug if ping else log.warning)(
            "sd_notify to %s dropped (%s): its reader is behind", address,
            ", ".join(assignments))
        return False
    except OSError as exc:
        log.warning("sd_notify to %s failed: %s", address, exc)
        return False


def monotonic_usec() -> str:
    """The MONOTONIC_USEC= assignment that goes with RELOADING=1 (sd_notify(3))."""
    return f"MONOTONIC_USEC={time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000}"


def watchdog_interval() -> float | None:
    """Seconds between WATCHDOG=1 pings (half systemd's WatchdogSec), or None."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or not usec.isdigit() or (pid and pid != str(os.getpid())):
        return None
    return int(usec) / 1_000_000 / 2
