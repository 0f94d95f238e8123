"""The session's one timer: a deadline that can move later without waking the reactor.

Why not a DelayedCall alone: Twisted sleeps until the first entry of its heap of timed
calls, cancelled or not (a cancelled call leaves the heap only when it comes due), and
`DelayedCall.reset()` to a later time leaves the entry where it was. An SMPP session's
deadline moves later all the time: an enquire_link is sent with a 10-s response
deadline, its answer comes a few milliseconds later, and the next deadline is the
next enquire_link, 30 s on. With a DelayedCall the idle reactor still woke at the old
deadline, a third of an idle daemon's wake-ups, and on a virtual machine that
charges for waking (bench/coldwake.py) a wake-up of an idle process costs far more
than the work it does (issue 13: the CPU of an idle daemon).

`KernelTimer` is a Linux timerfd registered with the reactor as a reader: moving it is
one `timerfd_settime` call, and the reactor wakes only when the current deadline
passes. Python 3.11 has no `os.timerfd_create` (3.13 adds it), so the two calls go
through ctypes; they are plain foreign calls, no callbacks, so they work under
systemd's MemoryDenyWriteExecute. `CallLaterTimer` keeps a DelayedCall (any
IReactorTime: task.Clock in tests, a platform without timerfd). Either is moved only
when it would fire more than `slack` s early (a tick with nothing due is harmless), so
a busy window's creeping deadline costs no call per response.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import logging
import os
import sys
from collections.abc import Callable
from typing import Any, Protocol

from twisted.internet.interfaces import IDelayedCall, IReactorTime, IReadDescriptor
from twisted.python.failure import Failure
from zope.interface import implementer

log = logging.getLogger("smppd.connector")
_CLOCK_MONOTONIC = 1
_TFD_NONBLOCK = os.O_NONBLOCK
_TFD_CLOEXEC = os.O_CLOEXEC


class DeadlineTimer(Protocol):
    def set(self, when: float) -> None:
        """Fire at `when` (the reactor's clock), instead of any earlier setting."""

    def clear(self) -> None:
        """Fire at no time."""

    def close(self) -> None:
        """Clear, and give back what the timer holds (its descriptor)."""

    @property
    def closed(self) -> bool:
        """True once it cannot be set any more (a KernelTimer closed)."""


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


class _Itimerspec(ctypes.Structure):
    _fields_ = [("it_interval", _Timespec), ("it_value", _Timespec)]


def _libc() -> Any | None:
    """libc's timerfd functions, or None where there are none (not Linux)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        create, settime = libc.timerfd_create, libc.timerfd_settime
    except (OSError, AttributeError):
        return None
    create.argtypes, create.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    settime.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.POINTER(_Itimerspec),
                        ctypes.c_void_p]
    settime.restype = ctypes.c_int
    return libc


_LIBC = _libc()


@implementer(IReadDescriptor)
class KernelTimer:
    """A timerfd watched by the reactor; `fire` is called on the reactor thread."""

    def __init__(self, reactor: Any, fire: Callable[[], None], slack: float = 1.0) -> None:
        if _LIBC is None:
            raise OSError(errno.ENOSYS, "timerfd is not available here")
        fd = _LIBC.timerfd_create(_CLOCK_MONOTONIC, _TFD_NONBLOCK | _TFD_CLOEXEC)
        if fd < 0:
            code = ctypes.get_errno()
            raise OSError(code, f"timerfd_create: {os.strerror(code)}")
        self._fd = fd
        self._reactor = reactor
        self._fire = fire
        self._slack = slack
        self._when = 0.0
        self.armed = False
        try:
            reactor.addReader(self)
        except BaseException:
            os.close(fd)
            self._fd = -1
            raise

    @property
    def closed(self) -> bool:
        """Closed by `close`, or by the reactor (at shutdown): make a new one."""
        return self._fd < 0

    def set(self, when: float) -> None:
        if self.armed and when - self._slack <= self._when <= when:
            # Fires early enough (a tick with nothing due is harmless): at full speed
            # the window's oldest deadline creeps forward with every response, and a
            # system call for each would cost more than the tick it saves.
            return
        self._when = when
        # Relative to now: the reactor's clock is the wall clock, the timer's the
        # monotonic one. All zeros would disarm it: a deadline past is 1 ns away.
        delay = max(when - self._reactor.seconds(), 0.0)
        seconds = int(delay)
        self._settime(seconds, max(int((delay - seconds) * 1e9), 0 if seconds else 1))
        self.armed = True

    def clear(self) -> None:
        if self.armed and self._fd >= 0:
            self._settime(0, 0)
        self.armed = False

    def close(self) -> None:
        if self._fd < 0:
            return
        self._reactor.removeReader(self)
        os.close(self._fd)
        self._fd = -1
        self.armed = False

    def _settime(self, seconds: int, nanoseconds: int) -> None:
        spec = _Itimerspec(_Timespec(0, 0), _Timespec(seconds, nanoseconds))
        if _LIBC.timerfd_settime(self._fd, 0, ctypes.byref(spec), None) != 0:
            code = ctypes.get_errno()
            raise OSError(code, f"timerfd_settime: {os.strerror(code)}")

    # IReadDescriptor ---------------------------------------------------------------

    def fileno(self) -> int:
        return self._fd

    def doRead(self) -> None:
        try:
            os.read(self._fd, 8)  # the expiry count: reading it re-arms readiness
        except BlockingIOError:
            return  # moved after it became readable: not due any more
        self.armed = False
        try:
            self._fire()
        except Exception:
            # A guarded handler: an error in what the timer runs is logged, and the
            # timer stays (raised out of doRead, the reactor would close it for good).
            log.exception("the session's timer: its tick failed")

    def connectionLost(self, reason: Failure) -> None:
        with contextlib.suppress(OSError):
            self.close()

    def logPrefix(self) -> str:
        return "KernelTimer"


class CallLaterTimer:
    """A DelayedCall at the deadline, moved later only when more than `slack` s early."""

    closed = False  # nothing to give back: usable after `close`

    def __init__(self, clock: IReactorTime, fire: Callable[[], None],
                 slack: float = 1.0) -> None:
        self._clock = clock
        self._fire = fire
        self._slack = slack
        self._call: IDelayedCall | None = None

    @property
    def armed(self) -> bool:
        return self._call is not None and self._call.active()

    def set(self, when: float) -> None:
        call = self._call
        if call is not None and call.active():
            if when - self._slack <= call.getTime() <= when:
                return  # fires early enough; a tick with nothing due is harmless
            call.cancel()
        self._call = self._clock.callLater(max(0.0, when - self._clock.seconds()), self._due)

    def clear(self) -> None:
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._call = None

    close = clear

    def _due(self) -> None:
        self._call = None
        self._fire()


def deadline_timer(clock: IReactorTime, fire: Callable[[], None],
                   slack: float = 1.0) -> DeadlineTimer:
    """A KernelTimer on a real reactor where timerfd exists, else a CallLaterTimer."""
    from twisted.internet.posixbase import PosixReactorBase

    if _LIBC is not None and isinstance(clock, PosixReactorBase):
        with contextlib.suppress(OSError):  # out of descriptors: the DelayedCall will do
            return KernelTimer(clock, fire, slack)
    return CallLaterTimer(clock, fire, slack)
