"""Logging set-up for every command, and the one place subscriber numbers are masked.

Under systemd (stderr is the journal's stream, $JOURNAL_STREAM) each line starts
with its syslog priority (`<3>` error ... `<7>` debug) and carries no time stamp:
journald stamps it and files it by priority, so `journalctl -p warning` works.
In a terminal or a file the lines keep their time stamp. Twisted's own events
(unhandled errors in Deferreds, failures inside the reactor) go through Python
logging too, under the logger `twisted`, instead of being lost or printed raw.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any, TextIO

# syslog(3) priorities as sd-daemon(3) prefixes, by Python level.
_PRIORITIES = ((logging.CRITICAL, 2), (logging.ERROR, 3), (logging.WARNING, 4),
               (logging.INFO, 6))
_handler: logging.Handler | None = None  # the one configure() added


class JournalFormatter(logging.Formatter):
    """`<N>logger: message`, every line of a multi-line record (a traceback)
    prefixed, so journald keeps the whole record at its priority."""

    def __init__(self) -> None:
        super().__init__("%(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        prefix = f"<{priority(record.levelno)}>"
        return "\n".join(prefix + line for line in super().format(record).splitlines())


def priority(level: int) -> int:
    for threshold, value in _PRIORITIES:
        if level >= threshold:
            return value
    return 7  # debug


def under_journald(stream: TextIO) -> bool:
    """True when `stream` is the journal's stream socket ($JOURNAL_STREAM names its
    device and inode: a stream redirected elsewhere by the service is not it)."""
    expected = os.environ.get("JOURNAL_STREAM", "")
    device, _, inode = expected.partition(":")
    if not (device.isdigit() and inode.isdigit()):
        return False
    try:
        status = os.fstat(stream.fileno())
    except (OSError, ValueError, AttributeError):
        return False
    return (status.st_dev, status.st_ino) == (int(device), int(inode))


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever sys.stderr is when a record comes (a test harness swaps it)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property  # type: ignore[override]
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, _value: TextIO) -> None:
        pass


def configure(level: str, stream: TextIO | None = None) -> None:
    """Root logging for a command: journald format under systemd, else time stamps.
    Calling it again replaces the handler it added, and only that one."""
    global _handler
    handler = logging.StreamHandler(stream) if stream is not None else _StderrHandler()
    if under_journald(stream or sys.stderr):
        handler.setFormatter(JournalFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    if _handler is not None:
        root.removeHandler(_handler)
    root.addHandler(handler)
    _handler = handler
    set_level(level)
    logging.getLogger("alembic").setLevel(logging.WARNING)  # its INFO is per-plugin noise


def set_level(level: str) -> None:
    """The root level (also on reload). Twisted's own events come through
    smppd.twistedlog, which passes warnings and errors only (its INFO is a factory
    start/stop on every reconnect)."""
    logging.getLogger().setLevel(getattr(logging, level.upper(), logging.INFO))


def print_error(text: object, stream: TextIO | None = None) -> None:
    """A user-facing error on stderr (a bad configuration, an unreachable database):
    plain text in a terminal, at error priority (`<3>`) when stderr is the journal."""
    stream = stream or sys.stderr
    prefix = "<3>" if under_journald(stream) else ""
    print("\n".join(prefix + line for line in str(text).splitlines()), file=stream)


def mask_number(number: Any) -> str:
    """A subscriber's number as it may appear in a log at INFO or above:
    +48500100200 -> +48500***200. Alphanumeric senders ("Acme") are not numbers and
    stay as they are; short numbers keep less, so a short code stays recognisable
    and a long number never shows whole."""
    text = "" if number is None else str(number)
    plus = "+" if text.startswith("+") else ""
    digits = text[len(plus):]
    if not digits.isdigit():
        return text
    keep_tail = min(3, len(digits) // 3)
    keep_head = max(0, min(len(digits) - keep_tail - 3, 5))
    hidden = len(digits) - keep_head - keep_tail
    return plus + digits[:keep_head] + "*" * hidden + digits[len(digits) - keep_tail:]
