"""The PDU trace: every PDU sent and received, one line each, at DEBUG on the
logger `smppd.pdu` (`log_level: debug`, or that logger alone).

Fed by the Twisted transport with the bytes it moves, never by the session, so
the sans-I/O core stays free of it. When the logger is not at DEBUG the cost is
one cached level check per read or write. Passwords are never shown; message
bodies are shown by length, except delivery receipts, whose text is what one
debugs. Numbers are shown whole: this is the carrier-debugging level, and
INFO and above mask them (smppd.logs.mask_number).
"""

from __future__ import annotations

import logging
from typing import Any

from .constants import COMMAND_NAMES, status_name
from .framing import Framer, FramingError
from .pdu import HEADER_SIZE, PduDecodeError, decode

log = logging.getLogger("smppd.pdu")
_SECRET_FIELDS = frozenset({"password"})
_BODY_FIELDS = frozenset({"short_message", "message_payload"})
_RECEIPT_BIT = 0x04


def enabled() -> bool:
    return log.isEnabledFor(logging.DEBUG)


class PduTrace:
    """One connection's trace. Writes always start at a PDU boundary (the session
    emits whole PDUs); reads are reframed here, and when the trace is switched
    on mid-connection it waits for a read that starts with a plausible header."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._framer: Framer | None = None

    def sent(self, data: bytes) -> None:
        start = 0
        while len(data) - start >= HEADER_SIZE:
            length = int.from_bytes(data[start:start + 4], "big")
            if length < HEADER_SIZE:
                return
            self._line(">", data[start:start + length])
            start += length

    def received(self, data: bytes) -> None:
        if self._framer is None:
            if not _plausible_header(data):
                return  # mid-PDU: wait for a read that starts a PDU
            self._framer = Framer()
        try:
            frames = self._framer.feed(data)
        except FramingError:
            self._framer = None  # lost the thread; resynchronise on a later read
            return
        for frame in frames:
            self._line("<", frame)

    def reset(self) -> None:
        """Tracing was switched off: a later switch-on must resynchronise."""
        self._framer = None

    def _line(self, direction: str, frame: bytes) -> None:
        try:
            pdu = decode(frame)
        except PduDecodeError as exc:
            log.debug("smsc=%s %s undecodable %d octets: %s", self.name, direction,
                      len(frame), exc)
            return
        status = f" status={status_name(pdu.status)}" if pdu.is_response or pdu.status else ""
        log.debug("smsc=%s %s %s seq=%d%s%s", self.name, direction, pdu.command, pdu.sequence,
                  status, _fields(pdu.fields, pdu.get("esm_class", 0)))


def _plausible_header(data: bytes) -> bool:
    if len(data) < HEADER_SIZE:
        return False
    length = int.from_bytes(data[:4], "big")
    return HEADER_SIZE <= length <= 65536 and int.from_bytes(data[4:8], "big") in COMMAND_NAMES


def _fields(fields: dict[str, Any], esm_class: int) -> str:
    shown = []
    for name, value in fields.items():
        if value in (None, b"", "", 0) and name not in ("data_coding",):
            continue
        if name in _SECRET_FIELDS:
            value = "***"
        elif name in _BODY_FIELDS and isinstance(value, bytes):
            if esm_class & _RECEIPT_BIT:
                value = value.decode("latin-1")
            else:
                value = f"<{len(value)} octets>"
        shown.append(f"{name}={value!r}" if isinstance(value, str | bytes) else f"{name}={value}")
    return (" " + " ".join(shown)) if shown else ""
