"""Split a TCP byte stream into whole PDUs by command_length.

TCP delivers PDUs cut anywhere and glued together; command_length (which counts its
own four octets) is the only delimiter. A length below the header size or above the
configured maximum cannot be trusted to find the next PDU, so the stream is declared
unrecoverable and the session answers generic_nack(ESME_RINVCMDLEN) and disconnects.
"""

from __future__ import annotations

from .pdu import HEADER_SIZE

# message_payload may carry up to 64 KiB; leave room for the header and other fields.
DEFAULT_MAX_PDU_LENGTH = 70_000


class FramingError(ValueError):
    """The stream's next command_length is impossible; the connection must be dropped."""

    def __init__(self, message: str, sequence: int) -> None:
        super().__init__(message)
        self.sequence = sequence


class Framer:
    """Accumulates bytes; `feed` returns every PDU completed so far."""

    __slots__ = ("_buffer", "max_length")

    def __init__(self, max_length: int = DEFAULT_MAX_PDU_LENGTH) -> None:
        self._buffer = bytearray()
        self.max_length = max_length

    def feed(self, data: bytes) -> list[bytes]:
        buffer = self._buffer
        buffer += data
        frames: list[bytes] = []
        start = 0
        available = len(buffer)
        while available - start >= 4:
            length = int.from_bytes(buffer[start:start + 4], "big")
            if length < HEADER_SIZE or length > self.max_length:
                sequence = 0
                if available - start >= HEADER_SIZE:
                    sequence = int.from_bytes(buffer[start + 12:start + 16], "big")
                del buffer[:]
                raise FramingError(
                    f"command_length {length} is outside {HEADER_SIZE}..{self.max_length}",
                    sequence)
            if available - start < length:
                break
            frames.append(bytes(buffer[start:start + length]))
            start += length
        if start:
            del buffer[:start]
        return frames

    @property
    def pending(self) -> int:
        """Octets received but not yet part of a whole PDU."""
        return len(self._buffer)
