"""Upload bodies kept on disk past a size (smppd.api.uploads): read back as they were
sent, parsed as the same body in memory parses, and refused with a 503 that says why
when the disk will not take them."""

from __future__ import annotations

import errno
import gc
import json
import os
import tempfile
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as s

from smppd.api import forms, idempotency, uploads
from smppd.api.uploads import SpooledBody, UploadBuffer
from smppd.api.validation import ApiError, parse_json_object
from tests.support.process import query
from tests.support.running import TOKEN_A

TYPE = b"multipart/form-data; boundary=XyZ"
_REAL_TEMPORARY_FILE = tempfile.TemporaryFile  # the tests below replace it


def _spooled(data: bytes) -> SpooledBody:
    file = tempfile.TemporaryFile()  # noqa: SIM115 (held by the body it becomes)
    file.write(data)
    file.flush()
    return SpooledBody(file)


def _form(fields: dict[str, bytes], boundary: bytes = b"XyZ") -> bytes:
    body = b""
    for name, content in fields.items():
        filename = b'; filename="r.csv"' if name == "file" else b""
        body += (b"--" + boundary + b'\r\nContent-Disposition: form-data; name="'
                 + name.encode() + b'"' + filename + b"\r\n\r\n" + content + b"\r\n")
    return body + b"--" + boundary + b"--\r\n"


def test_a_body_past_the_spool_size_goes_to_an_unlinked_file(monkeypatch: Any) -> None:
    monkeypatch.setattr(uploads, "SPOOL_BYTES", 16)
    buffer = UploadBuffer(spool=True)
    sent = [b"to,name\r\n", b"+48500100200,Ann\r\n", b"+48500100201,Bo\r\n"]
    for chunk in sent:
        buffer.add(chunk)
    body = buffer.finish()
    whole = b"".join(sent)
    assert isinstance(body, SpooledBody)
    assert os.fstat(body._file.fileno()).st_nlink == 0  # nothing left behind by a crash
    assert (len(body), bytes(body), body[3:11], body[-4:], body[44:], body[50:60]) == (
        44, whole, whole[3:11], whole[-4:], b"", b"")
    part = body.window(9, 27)
    assert (bytes(part), part[0:5], len(part)) == (whole[9:27], b"+4850", 18)
    assert b"".join(body.chunks(5)) == whole and body.decode() == whole.decode()
    with pytest.raises(TypeError):
        body[3]  # type: ignore[index]  # an index, not a slice: refused


def test_a_small_body_and_one_not_to_be_spooled_stay_in_memory(monkeypatch: Any) -> None:
    monkeypatch.setattr(uploads, "SPOOL_BYTES", 16)
    small, json_body = UploadBuffer(spool=True), UploadBuffer(spool=False)
    small.add(b"to\r\n")
    json_body.add(b'{"recipients": [' + b'"+48500100200",' * 10)
    assert small.finish() == bytearray(b"to\r\n")
    assert isinstance(json_body.finish(), bytearray)


class _Disk:
    """A temporary file on a disk with `room` bytes left, taking at most `step` bytes
    a write (unbuffered writes may be partial); its close fails as a full disk's may."""

    def __init__(self, room: int, step: int = 1 << 30) -> None:
        self.real = _REAL_TEMPORARY_FILE(buffering=0)
        self.room, self.step = room, step

    def write(self, data: Any) -> int:
        if self.room <= 0:
            raise OSError(errno.ENOSPC, "No space left on device")
        taken = min(len(data), self.step, self.room)
        self.room -= taken
        return self.real.write(bytes(data[:taken]))

    def fileno(self) -> int:
        return self.real.fileno()

    def close(self) -> None:
        self.real.close()
        raise OSError(errno.ENOSPC, "No space left on device")


def _disks(monkeypatch: Any, room: int, step: int = 1 << 30) -> list[_Disk]:
    made: list[_Disk] = []
    monkeypatch.setattr(tempfile, "TemporaryFile",
                        lambda **kwargs: made.append(_Disk(room, step)) or made[-1])
    return made


def test_a_disk_that_will_not_take_the_upload_is_named(monkeypatch: Any) -> None:
    def full(*args: Any, **kwargs: Any) -> Any:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(uploads, "SPOOL_BYTES", 4)
    monkeypatch.setattr(tempfile, "TemporaryFile", full)
    buffer = UploadBuffer(spool=True)
    buffer.add(b"to,name\r\n")
    buffer.add(b"more")  # ignored once it failed
    assert buffer.finish() is None
    assert buffer.error == "No space left on device"


def test_a_disk_that_fills_part_way_fails_the_write_that_met_it(monkeypatch: Any) -> None:
    monkeypatch.setattr(uploads, "SPOOL_BYTES", 4)
    disks = _disks(monkeypatch, room=12)
    buffer = UploadBuffer(spool=True)
    buffer.add(b"to,name\r\n")  # spooled: 9 bytes on disk
    buffer.add(b"+48500100200\r\n")  # 3 more fit, then the disk is full
    assert (buffer.finish(), buffer.error) == (None, "No space left on device")
    assert disks[0].real.closed  # closed although its close failed


def test_partial_writes_are_written_whole(monkeypatch: Any) -> None:
    monkeypatch.setattr(uploads, "SPOOL_BYTES", 4)
    _disks(monkeypatch, room=1 << 20, step=3)
    buffer = UploadBuffer(spool=True)
    for chunk in (b"to,name\r\n", b"+48500100200,Ann\r\n"):
        buffer.add(chunk)
    body = buffer.finish()
    assert isinstance(body, SpooledBody)
    assert bytes(body) == b"to,name\r\n+48500100200,Ann\r\n"


def test_past_the_uploads_allowed_on_disk_one_stays_in_memory(monkeypatch: Any) -> None:
    gc.collect()  # files of earlier tests' bodies
    before = uploads.SPOOLED.count
    monkeypatch.setattr(uploads, "SPOOL_BYTES", 4)
    monkeypatch.setattr(uploads, "MAX_SPOOLED", before + 1)
    first, second = UploadBuffer(spool=True), UploadBuffer(spool=True)
    first.add(b"to\r\n+48500100200\r\n")
    second.add(b"to\r\n+48500100201\r\n")
    kept = first.finish()
    assert isinstance(kept, SpooledBody) and uploads.SPOOLED.count == before + 1
    assert second.finish() == bytearray(b"to\r\n+48500100201\r\n")
    del kept, first
    gc.collect()
    assert uploads.SPOOLED.count == before  # its file collected: room for the next


_NAMES = s.text(s.characters(blacklist_characters='"\\\r\n', blacklist_categories=("Cs",)),
                min_size=1, max_size=12)
# Data near a boundary: the parser's look-behind crosses the blocks it is given.
_CONTENT = s.one_of(s.binary(max_size=200), s.lists(s.sampled_from(
    [b"\r\n", b"--", b"Xy", b"Z", b"-", b"\r", b"a,b"]), max_size=30).map(b"".join))


def _outcome(body: Any) -> Any:
    try:
        return {name: bytes(value) for name, value in forms.parse_multipart(body, TYPE).items()}
    except ApiError as exc:
        return exc.status, exc.message


@given(s.dictionaries(_NAMES, _CONTENT, min_size=1, max_size=4), s.integers(1, 64))
@settings(max_examples=300)
def test_a_form_on_disk_parses_as_the_same_form_in_memory(fields: dict[str, bytes],
                                                          block: int) -> None:
    """The same fields or the same 400 (content may hold the boundary itself)."""
    body = _form(fields)
    old = uploads.READ_BYTES
    uploads.READ_BYTES = block  # blocks cut anywhere, boundaries included
    try:
        on_disk = _outcome(_spooled(body))
    finally:
        uploads.READ_BYTES = old
    assert on_disk == _outcome(body)
    if not any(b"\r\n--XyZ" in content for content in fields.values()):
        assert on_disk == fields


def test_a_csv_part_on_disk_is_a_window_read_as_the_bytes_are() -> None:
    csv = b"to,name\r\n" + b"".join(b"+485001%05d,N%d\r\n" % (i, i) for i in range(3000))
    body = _form({"name": b"spring", "file": csv})
    on_disk = forms.parse_multipart(_spooled(body), TYPE, views=True)
    in_memory = forms.parse_multipart(body, TYPE, views=True)
    assert isinstance(on_disk["file"], SpooledBody)
    assert forms.form_text(on_disk, "name") == "spring"
    assert list(forms.csv_rows(on_disk["file"])) == list(forms.csv_rows(in_memory["file"]))
    assert idempotency.form_fingerprint("POST /v1/jobs", on_disk) == \
        idempotency.form_fingerprint("POST /v1/jobs", in_memory)


def test_a_form_on_disk_where_json_is_wanted_is_a_400() -> None:
    with pytest.raises(ApiError) as caught:
        parse_json_object(_spooled(_form({"file": b"to\r\n"})))
    assert caught.value.status == 400 and "not valid JSON" in caught.value.message


# Through a running daemon ----------------------------------------------------------


def _send(client: Any, path: str, body: bytes, content_type: str,
          key: str | None = None, chunked: bool = False) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {TOKEN_A}", "Content-Type": content_type}
    if key is not None:
        headers["Idempotency-Key"] = key
    if chunked:  # no Content-Length: the size is known only as the body arrives
        client.conn.request("POST", path, body=iter([body[:100], body[100:]]),
                            headers=headers, encode_chunked=True)
    else:
        client.conn.request("POST", path, body=body, headers=headers)
    response = client.conn.getresponse()
    return response.status, json.loads(response.read())


def test_a_csv_job_kept_on_disk_is_created_whole_and_replayed_by_its_key(
        start_daemon: Any, monkeypatch: Any) -> None:
    made: list[Any] = []
    finish = UploadBuffer.finish
    monkeypatch.setattr(uploads, "SPOOL_BYTES", 256)
    monkeypatch.setattr(UploadBuffer, "finish", lambda self: made.append(finish(self))
                        or made[-1])
    running = start_daemon()
    csv = b"to,name\r\n" + b"".join(b"+485001%05d,N%d\r\n" % (i, i) for i in range(300))
    fields = {"name": b"spooled", "from": b"Acme", "text": b"Hi {name}",
              "start_at": b"2099-01-01T00:00:00Z", "file": csv}
    kind = "multipart/form-data; boundary=XyZ"
    status, job = _send(running.client, "/v1/jobs", _form(fields), kind, key="big-1",
                        chunked=True)
    assert status == 201 and job["messages"] == 300, job
    assert isinstance(made[-1], SpooledBody)
    # A retry with another boundary is the same request: its answer, nothing new.
    status, again = _send(running.client, "/v1/jobs", _form(fields, b"Other"),
                          "multipart/form-data; boundary=Other", key="big-1")
    assert (status, again) == (201, job)
    assert query(running.path / "smppd.db", "SELECT count(*) FROM messages") == [(300,)]


@pytest.mark.parametrize("room", [None, 100], ids=["no-file", "fills-part-way"])
def test_an_upload_the_disk_will_not_take_is_a_503(start_daemon: Any, monkeypatch: Any,
                                                   room: int | None) -> None:
    def full(*args: Any, **kwargs: Any) -> Any:
        raise OSError(errno.ENOSPC, "No space left on device")

    running = start_daemon()
    monkeypatch.setattr(uploads, "SPOOL_BYTES", 64)
    if room is None:
        monkeypatch.setattr(tempfile, "TemporaryFile", full)
    else:
        _disks(monkeypatch, room)
    csv = b"to\r\n" + b"+48500100200\r\n" * 20
    status, answer = _send(running.client, "/v1/jobs", _form({"name": b"j", "file": csv}),
                           "multipart/form-data; boundary=XyZ")
    assert (status, answer["error"]) == (503, "the upload could not be stored; retry later")
    assert query(running.path / "smppd.db", "SELECT count(*) FROM jobs") == [(0,)]


def test_a_contact_csv_kept_on_disk_is_imported_whole(start_daemon: Any,
                                                      monkeypatch: Any) -> None:
    monkeypatch.setattr(uploads, "SPOOL_BYTES", 64)
    running = start_daemon()
    csv = b"phone,first_name\r\n" + b"".join(b"+486001%05d,N%d\r\n" % (i, i)
                                             for i in range(50))
    status, answer = _send(running.client, "/v1/contacts", csv, "text/csv")
    assert (status, answer["created"], answer["rejected_rows"]) == (201, 50, 0), answer
    status, form = _send(running.client, "/v1/contacts", _form({"file": csv.replace(
        b"+486001", b"+486002")}), "multipart/form-data; boundary=XyZ")
    assert (status, form["created"]) == (201, 50), form


@pytest.mark.parametrize(("data", "blank"), [(b"", True), (b" \r\n\t" * 5000, True),
                                             (b" " * 300_000 + b"x", False), (b"to\n", False)])
def test_blank_is_read_a_block_at_a_time_whatever_holds_it(data: bytes, blank: bool) -> None:
    for held in (data, memoryview(data), _spooled(data)):
        assert forms.is_blank(held) is blank
