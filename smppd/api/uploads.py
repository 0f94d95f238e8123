"""Upload bodies (CSV files, multipart forms): gathered in memory, or past a size in an
unlinked temporary file that is read back a slice at a time.

Why (issue 14): a 1,000,000-row CSV is a 28 MB body, and the daemon held it whole
for the 20 s its job took to build, a third of its own memory at rest. The rows are
read from it once, front to back, on a pool thread, so the file costs one pread per
256 KB block and keeps the body out of the daemon's memory (page cache is the
kernel's to drop; a process's RSS is not). JSON bodies are parsed whole, so they are
never spooled: holding them on disk would only add a copy.

Writing to the file happens on the reactor, a chunk at a time as it arrives, as
twisted.web does with any body over 100 KB: a write into the page cache of at most
a read's size. The file is unbuffered, so a full disk shows in the write that met
it (and becomes the request's 503), not in a flush later. It is unlinked from the
start (tempfile.TemporaryFile), so nothing is left behind by a crash, and closed
when the last view of it goes.

At most MAX_SPOOLED uploads are on disk at once; past that an upload stays in
memory, as all did before. This bounds the descriptors (the listener reserves
them) and the disk that clients can take before their token is even checked.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import threading
import weakref
from collections.abc import Iterator
from typing import IO

SPOOL_BYTES = 1 << 20  # an upload past this goes to disk
READ_BYTES = 1 << 18  # read back this much at a time
MAX_SPOOLED = 32  # uploads on disk at once (each a descriptor until its job is built)


class _Spooled:
    """How many spool files are open; a file counts until it is collected (its last
    view may go on a pool thread, hence the lock)."""

    def __init__(self) -> None:
        self.count = 0
        self._lock = threading.Lock()

    def open(self) -> IO[bytes] | None:
        with self._lock:
            if self.count >= MAX_SPOOLED:
                return None
            self.count += 1
        try:
            # Not a `with`: the file outlives this call, held by the body it becomes.
            file = tempfile.TemporaryFile(prefix="smppd-upload-", buffering=0)  # noqa: SIM115
        except BaseException:
            self.released()
            raise
        weakref.finalize(file, self.released)
        return file

    def released(self) -> None:
        with self._lock:
            self.count -= 1


SPOOLED = _Spooled()


class SpooledBody:
    """A window (`start`, `size`) of a body on disk, with the little of `bytes` its
    readers use: len, slices (which come back as bytes) and bytes(). A multipart part
    is a narrower window of the same file."""

    __slots__ = ("_file", "_size", "_start")

    def __init__(self, file: IO[bytes], start: int = 0, size: int | None = None) -> None:
        self._file = file
        self._start = start
        self._size = os.fstat(file.fileno()).st_size - start if size is None else size

    def __len__(self) -> int:
        return self._size

    def __getitem__(self, key: slice) -> bytes:
        if not isinstance(key, slice) or key.step not in (None, 1):
            raise TypeError("a spooled body is read in slices")
        start, stop, _ = key.indices(self._size)
        if stop <= start:
            return b""
        return os.pread(self._file.fileno(), stop - start, self._start + start)

    def __bytes__(self) -> bytes:
        return self[:]

    def window(self, start: int, stop: int) -> SpooledBody:
        """A part of this body, without reading it."""
        return SpooledBody(self._file, self._start + start, stop - start)

    def chunks(self, size: int = 0) -> Iterator[bytes]:
        size = size or READ_BYTES
        for offset in range(0, self._size, size):
            yield self[offset:offset + size]

    def decode(self, encoding: str = "utf-8", errors: str = "strict") -> str:
        return bytes(self).decode(encoding, errors)


Body = bytes | bytearray | memoryview | SpooledBody


def chunks_of(data: Body, size: int = 0) -> Iterator[bytes | memoryview]:
    """`data` a block at a time: read from disk, or views of what is in memory."""
    size = size or READ_BYTES
    if isinstance(data, SpooledBody):
        yield from data.chunks(size)
        return
    view = memoryview(data)
    for offset in range(0, len(view), size):
        yield view[offset:offset + size]


class UploadBuffer:
    """A body as it arrives: in a bytearray (grown in place: a list of chunks joined
    at the end held the body twice at the join) and, once past SPOOL_BYTES when
    `spool` allows, in a temporary file."""

    __slots__ = ("_file", "_memory", "error", "spool")

    def __init__(self, spool: bool) -> None:
        self.spool = spool
        self._memory: bytearray | None = bytearray()
        self._file: IO[bytes] | None = None
        self.error: str | None = None  # the file could not be written: the answer's 503

    def add(self, chunk: bytes) -> None:
        if self.error is not None:
            return
        try:
            if self._file is not None:
                _write_all(self._file, chunk)
                return
            assert self._memory is not None
            self._memory += chunk
            if self.spool and len(self._memory) > SPOOL_BYTES:
                self._file = SPOOLED.open()
                if self._file is None:  # as many on disk as allowed: this one stays here
                    self.spool = False
                    return
                _write_all(self._file, self._memory)
                self._memory = None
        except OSError as exc:
            self.error = exc.strerror or str(exc)
            self.close()

    def finish(self) -> bytearray | SpooledBody | None:
        """The whole body; None when it could not be stored (`error` says why)."""
        if self.error is not None:
            return None
        if self._file is None:
            return self._memory if self._memory is not None else bytearray()
        return SpooledBody(self._file)

    def close(self) -> None:
        """Drop what was gathered (a body refused, or one that could not be stored)."""
        if self._file is not None:
            with contextlib.suppress(OSError):  # unbuffered: nothing is left to write
                self._file.close()
        self._file, self._memory = None, None


def _write_all(file: IO[bytes], data: bytes | bytearray) -> None:
    """An unbuffered write may take part of `data` (a disk nearly full, a signal)."""
    view = memoryview(data)
    while view:
        written = file.write(view)
        if not written:
            raise OSError(28, "No space left on device")  # ENOSPC: a write that took nothing
        view = view[written:]
