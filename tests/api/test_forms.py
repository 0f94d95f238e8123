"""multipart/form-data and CSV parsing for job uploads: well-formed, malformed, fuzzed."""

from __future__ import annotations

import contextlib

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
    (b"--XyZ\r\nno headers here\r\n--XyZ--", TYPE, "without headers"),
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
