"""multipart/form-data and CSV parsing for job uploads: well-formed, malformed, fuzzed."""

from __future__ import annotations

import contextlib
import csv
import io

import pytest
from hypothesis import given, settings
from hypothesis import strategies as s

from smppd.api import forms
from smppd.api.validation import ApiError

TYPE = b"multipart/form-data; boundary=XyZ"


def test_parts_by_name_with_crlf_and_binary_content() -> None:
    body = (b'--XyZ\r\nContent-Disposition: form-data; name="name"\r\n\r\nspring sale\r\n'
            b'--XyZ\r\nContent-Disposition: form-data; name="file"; filename="a.csv"\r\n'
            b"Content-Type: text/csv\r\n\r\nto\r\n+48500000001\r\n\xff\r\n--XyZ--\r\n")
    parts = forms.parse_multipart(body, TYPE)
    assert parts == {"name": b"spring sale", "file": b"to\r\n+48500000001\r\n\xff"}


@pytest.mark.parametrize(("body", "content_type", "message"), [
    (b"--XyZ\r\nno headers here\r\n--XyZ--", TYPE, "malformed multipart"),
    (b'--XyZ\r\nContent-Disposition: form-data\r\n\r\nx\r\n--XyZ--', TYPE, "without a name"),
    (b'--XyZ\r\nContent-Disposition: form-data; name="a"\r\n\r\nnever closed', TYPE,
     "closing boundary"),
    (b"anything", b"multipart/form-data", "without a boundary"),
])
def test_malformed_multipart_is_a_400(body: bytes, content_type: bytes, message: str) -> None:
    with pytest.raises(ApiError) as caught:
        forms.parse_multipart(body, content_type)
    assert caught.value.status == 400 and message in caught.value.message


def test_csv_rows_carry_their_line_numbers_and_bad_lines() -> None:
    data = '\ufeffto,name\r\n+48500000001,"Ann\r\nMarie"\r\n\r\n+48500000002,\xff\r\n'.encode(
        "utf-8", "surrogateescape").replace(b"\xc3\xbf", b"\xff")
    rows = list(forms.csv_rows(data))
    assert rows[0] == (3, {"to": "+48500000001", "name": "Ann\r\nMarie"})
    assert rows[1][0] == 5 and rows[1][1].reason == "the line is not UTF-8 text"


@pytest.mark.parametrize(("data", "message"), [(b"", "empty"), (b"number\r\n1\r\n", "'to'")])
def test_csv_without_rows_or_to_column(data: bytes, message: str) -> None:
    with pytest.raises(ApiError) as caught:
        forms.csv_rows(data)
    assert caught.value.field == "file" and message in caught.value.message


@given(s.binary(max_size=400))
@settings(max_examples=400)
def test_random_bytes_never_raise_anything_but_api_errors(data: bytes) -> None:
    for attempt in (lambda: forms.parse_multipart(data, TYPE),
                    lambda: list(forms.csv_rows(data)),
                    lambda: forms.parse_multipart(b"--XyZ\r\n" + data, TYPE)):
        with contextlib.suppress(ApiError):
            attempt()


def _part(disposition: bytes, content: bytes, extra: bytes = b"") -> bytes:
    return b"--XyZ\r\nContent-Disposition: " + disposition + b"\r\n" + extra + b"\r\n" \
        + content + b"\r\n"


@pytest.mark.parametrize(("disposition", "name"), [
    (b'form-data; filename="a.csv"; name="file"', "file"),  # once read as 'a.csv'
    (b"form-data; name=file", "file"),  # unquoted: once refused
    (b'form-data; name="file"; filename="name=x.csv"', "file"),
    (b'form-data; name="a;b"', "a;b"),
    (b'FORM-DATA; NAME="file"', "file"),
    (b'form-data;name="file";filename="a.csv"', "file"),
    ('form-data; name="Zażółć"'.encode(), "Zażółć"),
])
def test_the_name_parameter_is_read_as_rfc_7578_says(disposition: bytes, name: str) -> None:
    body = _part(disposition, b"content") + b"--XyZ--\r\n"
    assert forms.parse_multipart(body, TYPE) == {name: b"content"}


def test_header_names_are_case_insensitive_and_other_headers_ignored() -> None:
    body = (b'--XyZ\r\ncontent-type: text/csv\r\nCONTENT-DISPOSITION: form-data; name="f"\r\n'
            b"\r\nx\r\n--XyZ--")
    assert forms.parse_multipart(body, TYPE) == {"f": b"x"}


def test_a_quoted_boundary_and_an_epilogue() -> None:
    body = _part(b'form-data; name="a"', b"1") + b"--XyZ--\r\nepilogue"
    assert forms.parse_multipart(body, b'multipart/form-data; boundary="XyZ"') == {"a": b"1"}


def test_data_that_almost_contains_the_boundary_is_kept_whole() -> None:
    tricky = b"a\r\n--Xy\r\n-\r\r\n--X\r\n\r\n\r\n--\r\nend\r\n-"
    body = _part(b'form-data; name="file"', tricky) + b"--XyZ--\r\n"
    assert forms.parse_multipart(body, TYPE) == {"file": tricky}


@pytest.mark.parametrize(("body", "content_type", "message"), [
    (_part(b'attachment; name="a"', b"x") + b"--XyZ--", TYPE, "not form-data"),
    (b"--XyZ\r\nContent-Type: text/plain\r\n\r\nx\r\n--XyZ--", TYPE, "no Content-Disposition"),
    (_part(b"form-data; name*=UTF-8''a", b"x") + b"--XyZ--", TYPE, "without a name"),
    (_part(b'form-data; filename="a.csv"', b"x") + b"--XyZ--", TYPE, "without a name"),
    (b"x", b"multipart/form-data; boundary=" + b"b" * 71, "at most 70"),
    (b"x", b"multipart/form-data; boundary=", "without a boundary"),
    (b"x", b"multipart/mixed; boundary=XyZ", "without a boundary"),
    (_part(b'form-data; name="a"', b"x") * 101 + b"--XyZ--", TYPE, "at most 100"),
    (_part(b'form-data; name="a"', b"x"), TYPE, "closing boundary"),
    (b"", TYPE, "closing boundary"),
])
def test_more_malformed_multipart(body: bytes, content_type: bytes, message: str) -> None:
    with pytest.raises(ApiError) as caught:
        forms.parse_multipart(body, content_type)
    assert caught.value.status == 400 and message in caught.value.message


def test_a_big_file_part_is_copied_once() -> None:
    """The body is in memory already; parsing adds one copy of the file, not four."""
    import tracemalloc

    size = 8 * 1024 * 1024
    content = (b"+48500100200,Ann\r\n" * (size // 18 + 1))[:size]
    body = _part(b'form-data; name="name"', b"spring") + _part(
        b'form-data; name="file"; filename="a.csv"', content) + b"--XyZ--\r\n"
    tracemalloc.start()
    try:
        parts = forms.parse_multipart(body, TYPE)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert parts["file"] == content and parts["name"] == b"spring"
    assert size <= peak < 1.25 * size, peak


_NAMES = s.text(s.characters(blacklist_characters='"\\\r\n', blacklist_categories=("Cs",)),
                min_size=1, max_size=12)


@given(s.dictionaries(_NAMES, s.binary(max_size=300), min_size=1, max_size=5),
       s.booleans())
@settings(max_examples=300)
def test_any_form_round_trips(fields: dict[str, bytes], filenames: bool) -> None:
    boundary = b"----smppd-test-7d3a1c"
    body = b""
    for name, content in fields.items():
        disposition = b'form-data; name="' + name.encode() + b'"'
        if filenames:
            disposition = b'form-data; filename="name.csv"; ' + disposition[len(b"form-data; "):]
        body += b"--" + boundary + b"\r\nContent-Disposition: " + disposition + b"\r\n\r\n" \
            + content + b"\r\n"
    body += b"--" + boundary + b"--\r\n"
    assert forms.parse_multipart(body, b"multipart/form-data; boundary=" + boundary) == fields


def _csv_rows_line_by_line(data: bytes) -> list[tuple[int, object]]:
    """The reading before issue 14 (every line decoded on its own), as the reference."""
    def lines():  # type: ignore[no-untyped-def]
        for number, raw in enumerate(io.BytesIO(data)):
            line = raw.decode("utf-8", "replace")
            yield line.removeprefix("\ufeff") if number == 0 else line

    reader = csv.reader(lines())
    header = [column.strip() for column in next(reader)]
    found: list[tuple[int, object]] = []
    while True:
        try:
            values = next(reader)
        except StopIteration:
            return found
        except csv.Error as exc:
            found.append((reader.line_num, f"unreadable CSV line: {exc}"))
            continue
        if not values or values == [""]:
            continue
        if any("\ufffd" in value for value in values):
            found.append((reader.line_num, "the line is not UTF-8 text"))
            continue
        found.append((reader.line_num, dict(zip(header, values, strict=False))))


_PIECES = [b"to,name\n", b"\xef\xbb\xbf", b"+48500100200", b",", b"\n", b"\r\n", b'"', b'"a\nb"',
           b"\xff", b"\xc3", b"\xc3\xa9", "\ufffd".encode(), b"x", b"\x00", b" ", b"\r"]


@given(s.lists(s.sampled_from(_PIECES), max_size=40), s.sampled_from([1, 3, 8, 1 << 20]))
@settings(max_examples=500)
def test_csv_read_in_blocks_reads_as_line_by_line(pieces: list[bytes], block: int) -> None:
    """Decoding a block of lines at once changes nothing: the same rows, line numbers
    and refusals, whatever the block size."""
    data = b"to,name\n" + b"".join(pieces)
    old_block, forms._BLOCK = forms._BLOCK, block
    try:
        try:
            expected = _csv_rows_line_by_line(data)
        except Exception as exc:  # compared with what csv_rows does
            with pytest.raises(type(exc)):
                list(forms.csv_rows(data))
            return
        got = [(number, row.reason if isinstance(row, forms._BadRow) else row)
               for number, row in forms.csv_rows(data)]
        viewed = [(number, row.reason if isinstance(row, forms._BadRow) else row)
                  for number, row in forms.csv_rows(memoryview(data))]
    finally:
        forms._BLOCK = old_block
    assert got == expected and viewed == expected


def test_views_of_the_parts_hold_what_the_copies_hold() -> None:
    """parse_multipart(views=True): memoryviews into the body, the same content, and
    form_text and csv_rows read them as they read bytes."""
    body = (b"--XyZ\r\nContent-Disposition: form-data; name=\"name\"\r\n\r\nbulk\r\n"
            b"--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"r.csv\"\r\n"
            b"\r\nto,name\n+48500100200,Ann\n\r\n--XyZ--\r\n")
    copies = forms.parse_multipart(body, TYPE)
    views = forms.parse_multipart(body, TYPE, views=True)
    assert isinstance(views["file"], memoryview)
    assert {name: bytes(value) for name, value in views.items()} == copies
    assert forms.form_text(views, "name") == "bulk"
    assert list(forms.csv_rows(views["file"])) == list(forms.csv_rows(copies["file"])) == [
        (2, {"to": "+48500100200", "name": "Ann"})]
