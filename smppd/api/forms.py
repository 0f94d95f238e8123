"""multipart/form-data and CSV for job uploads.

The multipart grammar is python-multipart's (the parser behind Starlette's forms):
the boundary search, and part headers read as RFC 7578 says (a `name` parameter
anywhere in Content-Disposition, quoted or not, never mistaken for `filename`).
What is done here is only the memory discipline for a 30 MB upload: a body in memory
is written to the parser in one piece, and one on disk a block at a time, so each
part's data comes back as offsets into that body, and each part is copied out once
or not at all (the standard library's email parser copies an upload several times
over).
"""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import Iterator
from typing import Any

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

from . import uploads
from .uploads import Body, SpooledBody
from .validation import ApiError

MAX_BOUNDARY = 70  # RFC 2046
_QUIET = logging.getLogger("smppd.api.multipart")  # what the parser would warn is the 400
_QUIET.setLevel(logging.ERROR)
MAX_PARTS = 100  # a job form has a handful of fields and one file


def is_multipart(content_type: bytes) -> bool:
    return content_type.lower().startswith(b"multipart/form-data")


def parse_multipart(body: Body, content_type: bytes,
                    views: bool = False) -> dict[str, Any]:
    """name -> content of each part (the last wins for a repeated name). With
    `views`, a part that lies in one piece of `body` is a memoryview of it, not a
    copy (issue 14: a 30 MB CSV was held twice, the body and its part, while its job
    was built); form_text, csv_rows and hashlib take either. A body kept on disk
    (uploads.SpooledBody) is read a block at a time, and a part of it that lies in
    one piece is a window of the same file, whatever `views` says."""
    kind, options = parse_options_header(content_type)
    boundary = options.get(b"boundary")
    if kind != b"multipart/form-data" or not boundary:
        raise ApiError(400, "multipart/form-data without a boundary")
    if len(boundary) > MAX_BOUNDARY:
        raise ApiError(400, f"a multipart boundary has at most {MAX_BOUNDARY} characters")
    parts = _Parts(body, views)
    parser = MultipartParser(boundary, parts.callbacks())
    parser.logger = _QUIET  # it logs each malformed body: a client's flood in our log
    try:
        if isinstance(body, SpooledBody):
            offset = 0
            for chunk in body.chunks(uploads.READ_BYTES):
                parts.at(chunk, offset)
                parser.write(chunk)
                offset += len(chunk)
        else:
            parser.write(body)
    except MultipartParseError as exc:
        raise ApiError(400, f"malformed multipart body: {exc}") from None
    if not parts.complete:
        raise ApiError(400, "a multipart body without its closing boundary")
    return parts.fields


class _Parts:
    """Callbacks for MultipartParser that keep, per part, where its data lies in
    `body` (copied out once at the part's end) and the name its headers give."""

    def __init__(self, body: Body, views: bool = False) -> None:
        self.body = body
        self._views = views
        self._view: Any = body if isinstance(body, SpooledBody) else memoryview(body)
        self._chunk: Any = body  # what the parser is being given, at `_base` in body
        self._base = 0
        self.fields: dict[str, Any] = {}
        self.complete = False
        self.count = 0
        self._header_name = b""
        self._header_value = b""
        self._disposition: bytes | None = None
        self._name: str | None = None
        self._pieces: list[tuple[int, int] | bytes] = []

    def at(self, chunk: bytes, base: int) -> None:
        self._chunk, self._base = chunk, base

    def callbacks(self) -> dict[str, Any]:
        return {"on_part_begin": self._begin, "on_header_field": self._field,
                "on_header_value": self._value, "on_header_end": self._header_end,
                "on_headers_finished": self._headers_done, "on_part_data": self._data,
                "on_part_end": self._end, "on_end": self._finished}

    def _begin(self) -> None:
        self.count += 1
        if self.count > MAX_PARTS:
            raise ApiError(400, f"at most {MAX_PARTS} multipart parts")
        self._disposition = None
        self._name = None
        self._pieces = []

    def _field(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]

    def _value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def _header_end(self) -> None:
        if self._header_name.strip().lower() == b"content-disposition":
            self._disposition = self._header_value.strip()
        self._header_name = self._header_value = b""

    def _headers_done(self) -> None:
        if self._disposition is None:
            raise ApiError(400, "a multipart part without a name (no Content-Disposition)")
        kind, params = parse_options_header(self._disposition)
        if kind != b"form-data":
            raise ApiError(400, f"a multipart part that is not form-data "
                           f"({kind.decode('latin-1')[:40]})")
        name = params.get(b"name")
        if name is None:
            raise ApiError(400, "a multipart part without a name")
        self._name = name.decode("utf-8", "replace")

    def _data(self, data: bytes, start: int, end: int) -> None:
        if data is self._chunk:
            start, end = start + self._base, end + self._base
            last = self._pieces[-1] if self._pieces else None
            if isinstance(last, tuple) and last[1] == start:
                self._pieces[-1] = (last[0], end)  # contiguous: still one slice
            else:
                self._pieces.append((start, end))
        else:  # bytes of a boundary that turned out to be data: small
            self._pieces.append(bytes(data[start:end]))

    def _end(self) -> None:
        pieces, self._pieces = [self._piece(p) for p in self._pieces], []
        if self._name is None:
            return
        if len(pieces) != 1:  # a look-behind split it: copied out whole
            self.fields[self._name] = b"".join(map(bytes, pieces))
        elif isinstance(self._view, SpooledBody) or self._views:
            self.fields[self._name] = pieces[0]  # a window of the file, or a memoryview
        else:
            self.fields[self._name] = bytes(pieces[0])

    def _piece(self, piece: tuple[int, int] | bytes) -> Any:
        if not isinstance(piece, tuple):
            return piece
        start, end = piece
        view = self._view
        return view.window(start, end) if isinstance(view, SpooledBody) else view[start:end]

    def _finished(self) -> None:
        self.complete = True


def is_blank(data: Body) -> bool:
    """Nothing but whitespace (a form's empty file input sends an empty part), read a
    block at a time: a file part on disk is not read into memory to say so."""
    return not any(bytes(block).strip() for block in uploads.chunks_of(data))


def form_text(fields: dict[str, Any], name: str) -> str | None:
    value = fields.get(name)
    if value is None:
        return None
    try:
        return bytes(value).decode("utf-8")
    except UnicodeDecodeError:
        raise ApiError(400, "not UTF-8 text", name) from None


def csv_rows(data: Body, required: str = "to") -> Iterator[tuple[int, Any]]:
    """(line number, {column: value}) of a CSV with a `required` column (`to` for a
    job, `phone` for contacts), read as it goes; the header is line 1. A line that is
    not UTF-8 becomes a bad row, not a failure of the whole file."""
    dirty = [False]  # some text read so far holds U+FFFD (see _lines)
    reader = csv.reader(_lines(data, dirty))
    try:
        header = [column.strip() for column in next(reader)]
    except StopIteration:
        raise ApiError(400, "the CSV file is empty", "file") from None
    except csv.Error as exc:
        raise ApiError(400, f"the CSV header cannot be read: {exc}", "file") from None
    if required not in header:
        raise ApiError(400, f"the CSV needs a '{required}' column (found: "
                       f"{', '.join(header)})", "file")
    return _rows(reader, header, dirty)


_BLOCK = 1 << 18  # bytes decoded at a time (whole lines; their text and StringIO: ~5x that)


def _lines(data: Body, dirty: list[bool]) -> Iterator[str]:
    """The lines of `data` as text, a block of whole lines decoded at once (issue 14:
    one decode per line was a tenth of a CSV row's CPU). A block that is not UTF-8
    is decoded line by line, each bad sequence becoming U+FFFD, so that only its bad
    lines are refused. `dirty[0]` is set before any text holding U+FFFD is given
    out: until then no row can hold one, and _rows need not look."""
    first = True
    for block in _blocks(data):
        try:
            text = block.decode("utf-8")
        except UnicodeDecodeError:
            dirty[0] = True
            lines: Any = [raw.decode("utf-8", "replace") for raw in io.BytesIO(block)]
        else:
            dirty[0] = dirty[0] or "\ufffd" in text
            lines = io.StringIO(text)  # splits at "\n" only, as BytesIO splits bytes
        if first:
            first = False
            lines = iter(lines)
            line = next(lines, None)
            if line is not None:
                yield line.removeprefix("\ufeff")
        yield from lines


def _blocks(data: Body) -> Iterator[bytes]:
    """`data` in blocks of whole lines: up to the last newline within _BLOCK bytes
    (further when one line is longer), each block copied out on its own."""
    start, size = 0, len(data)
    while start < size:
        end = min(start + _BLOCK, size)
        block = bytes(data[start:end])
        while end < size:
            cut = block.rfind(b"\n")
            if cut >= 0:
                end = start + cut + 1
                block = block[:cut + 1]
                break
            end = min(end + _BLOCK, size)
            block = bytes(data[start:end])
        yield block
        start = end


def _rows(reader: Any, header: list[str], dirty: list[bool]) -> Iterator[tuple[int, Any]]:
    while True:
        try:
            for values in reader:
                if not values or values == [""]:
                    continue
                if dirty[0] and any("\ufffd" in value for value in values):
                    yield reader.line_num, _BadRow("the line is not UTF-8 text")
                    continue
                yield reader.line_num, dict(zip(header, values, strict=False))
            return
        except csv.Error as exc:
            yield reader.line_num, _BadRow(f"unreadable CSV line: {exc}")


class _BadRow:
    """A line the CSV reader could not read; the job reports it like any bad row."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
