"""Idempotency-Key on POST /v1/messages and POST /v1/jobs: retrying safely.

A client that lost the answer to a POST (a timeout, a dropped connection, smppd
killed between its commit and its 201) retries with the same `Idempotency-Key`
header. What it gets, as draft-ietf-httpapi-idempotency-key-header describes:
- the same key and the same request: the original answer (status and body), with
  `Idempotent-Replayed: true`, and nothing new is made or charged;
- the same key and another request: 422, naming the header;
- the same key while the first request is still being handled: 409.
Keys belong to the account and are kept 24 h. Only a 201 is kept: a refused
request (400, 402, 503) made nothing, so its retry simply runs again.

"The same request" is the same JSON value (key order and spacing aside), or for a
form upload the same fields and file; a fingerprint (sha256) of it is kept.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any

from twisted.internet import defer

from ..store.idempotency import Stored
from .server import HttpRequest, HttpResponse
from .uploads import chunks_of
from .validation import ApiError

HEADER = "Idempotency-Key"
# One encoder: json.dumps with separators builds a new JSONEncoder per answer.
_ENCODER = json.JSONEncoder(separators=(",", ":"))
MAX_KEY_LENGTH = 255
REPLAYED = (b"Idempotent-Replayed", b"true")


def json_body(value: Any) -> bytes:
    """The bytes of a JSON answer: one encoder for the answer and for its replay."""
    return _ENCODER.encode(value).encode()


def key_of(request: HttpRequest) -> str | None:
    """The request's key: printable ASCII, 1 to 255 characters; a structured-field
    string ("...", as the draft writes it) or the bare token most clients send."""
    raw = request.headers.get(b"idempotency-key")
    if raw is None:
        return None
    value = raw.strip()
    if len(value) >= 2 and value[:1] == value[-1:] == b'"':
        value = value[1:-1]
    if not value or len(value) > MAX_KEY_LENGTH or not all(0x20 <= b < 0x7F for b in value):
        raise ApiError(400, f"expected 1 to {MAX_KEY_LENGTH} printable ASCII characters",
                       HEADER)
    return value.decode("ascii")


def fingerprint(endpoint: str, data: Any) -> str:
    """Of a JSON request: the endpoint and the value, keys sorted."""
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(f"{endpoint}\n{canonical}".encode()).hexdigest()


def form_fingerprint(endpoint: str, parts: dict[str, Any]) -> str:
    """Of a form upload: the endpoint, each field's name and a hash of its content
    (the boundary differs from one try to the next). A part may be on disk
    (uploads.SpooledBody): it is hashed a block at a time."""
    digest = hashlib.sha256(f"{endpoint}\nform".encode())
    for name in sorted(parts):
        content = hashlib.sha256()
        for block in chunks_of(parts[name]):
            content.update(block)
        digest.update(b"\n" + name.encode() + b"=" + content.digest())
    return digest.hexdigest()


def answer(stored: Stored, fingerprint: str | None) -> HttpResponse:
    """The kept answer, replayed; 422 when the key came with another request."""
    if fingerprint is not None and stored.fingerprint != fingerprint:
        raise ApiError(422, "this Idempotency-Key was used with a different request; use "
                       "a new key for a new request", HEADER)
    return HttpResponse(stored.status, stored.response.encode(), headers=[REPLAYED])


class InProgress:
    """Keys whose first request is still being handled, per account (this process;
    instances sharing a database are kept apart by the store's own check)."""

    def __init__(self) -> None:
        self._keys: set[tuple[int, str]] = set()

    def run(self, account_id: int, key: str,
            work: Callable[[], defer.Deferred[Any]]) -> defer.Deferred[Any]:
        slot = (account_id, key)
        if slot in self._keys:
            raise ApiError(409, "a request with this Idempotency-Key is still being "
                           "handled; retry in a moment", HEADER)
        self._keys.add(slot)
        try:
            d = work()
        except BaseException:
            self._keys.discard(slot)
            raise

        def release(result: Any) -> Any:
            self._keys.discard(slot)
            return result

        return d.addBoth(release)

