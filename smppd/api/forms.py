"""multipart/form-data and CSV for job uploads.

The multipart split is written out here: the standard library's email parser copies
a 30 MB upload several times over, cgi is gone from Python 3.13, and what is needed is
only "the parts and their names" of a body that is already in memory.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from typing import Any

from .validation import ApiError

_BOUNDARY = re.compile(rb'boundary="?([^";]+)"?', re.IGNORECASE)
_NAME = re.compile(rb'name="([^"]*)"', re.IGNORECASE)


def is_multipart(content_type: bytes) -> bool:
    return content_type.lower().startswith(b"multipart/form-data")


def parse_multipart(body: bytes, content_type: bytes) -> dict[str, bytes]:
    """name -> content of each part (the last wins for a repeated name). Positions
    are found first and each part is copied once: an upload is not held four times."""
    match = _BOUNDARY.search(content_type)
    if match is None:
        raise ApiError(400, "multipart/form-data without a boundary")
    delimiter = b"--" + match.group(1)
    fields: dict[str, bytes] = {}
    position = body.find(delimiter)
    while position >= 0:
        start = position + len(delimiter)
        if body.startswith(b"--", start):
            break  # the closing delimiter
        end = body.find(b"\r\n" + delimiter, start)
        if end < 0:
            raise ApiError(400, "a multipart part without its closing boundary")
        head_end = body.find(b"\r\n\r\n", start, end + 2)
        if head_end < 0:
            raise ApiError(400, "a multipart part without headers")
        name = _NAME.search(body, start, head_end)
        if name is None:
            raise ApiError(400, "a multipart part without a name")
        fields[name.group(1).decode("utf-8", "replace")] = body[head_end + 4:end]
        position = end + 2
    return fields


def form_text(fields: dict[str, bytes], name: str) -> str | None:
    value = fields.get(name)
    if value is None:
        return None
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        raise ApiError(400, "not UTF-8 text", name) from None


def csv_rows(data: bytes, required: str = "to") -> Iterator[tuple[int, Any]]:
    """(line number, {column: value}) of a CSV with a `required` column (`to` for a
    job, `phone` for contacts), read as it goes; the header is line 1. A line that is
    not UTF-8 becomes a bad row, not a failure of the whole file: lines are decoded
    one at a time."""
    reader = csv.reader(_lines(data))
    try:
        header = [column.strip() for column in next(reader)]
    except StopIteration:
        raise ApiError(400, "the CSV file is empty", "file") from None
    except csv.Error as exc:
        raise ApiError(400, f"the CSV header cannot be read: {exc}", "file") from None
    if required not in header:
        raise ApiError(400, f"the CSV needs a '{required}' column (found: "
                       f"{', '.join(header)})", "file")
    return _rows(reader, header)


def _lines(data: bytes) -> Iterator[str]:
    for number, raw in enumerate(io.BytesIO(data)):
        line = raw.decode("utf-8", "replace")
        yield line.removeprefix("\ufeff") if number == 0 else line


def _rows(reader: Any, header: list[str]) -> Iterator[tuple[int, Any]]:
    while True:
        try:
            values = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield reader.line_num, _BadRow(f"unreadable CSV line: {exc}")
            continue
        if not values or values == [""]:
            continue
        if any("\ufffd" in value for value in values):
            yield reader.line_num, _BadRow("the line is not UTF-8 text")
            continue
        yield reader.line_num, dict(zip(header, values, strict=False))


class _BadRow:
    """A line the CSV reader could not read; the job reports it like any bad row."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
