"""Standard Webhooks 1.0 keys and signatures (`webhook-id`, `webhook-timestamp`,
`webhook-signature: v1,<base64 HMAC-SHA256(key, id.timestamp.body)>`).

Signing keeps one keyed HMAC-SHA256 per secret (the key decoded and its pads
hashed once) and copies it per attempt: the `standardwebhooks` package's signer
(used here before) built a datetime, a new HMAC and three strings per attempt, an
eighth of the drainer's reactor time in bench/callbacks.py; a copy costs about
one SHA-256 of the message (hmac.digest, which looks the digest up by name in
OpenSSL each call, measured three times that).
The tests verify what is sent with that package's verifier, so a receiver's
library of the specification accepts it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from functools import lru_cache

PREFIX = "whsec_"
KEY_BYTES = 32  # the generated key: as long as the HMAC-SHA256 output
MIN_KEY_BYTES, MAX_KEY_BYTES = 24, 64


def new_secret() -> str:
    return PREFIX + base64.b64encode(secrets.token_bytes(KEY_BYTES)).decode()


def check_secret(value: str) -> str | None:
    """None when `value` is a usable key (`whsec_` + base64 of 24 to 64 bytes), else
    what is wrong with it, for the API's 400."""
    if not value.startswith(PREFIX):
        return f"expected a Standard Webhooks key: '{PREFIX}' followed by base64"
    try:
        key = base64.b64decode(value[len(PREFIX):], validate=True)
    except (binascii.Error, ValueError):
        return f"the part after '{PREFIX}' is not base64"
    if not MIN_KEY_BYTES <= len(key) <= MAX_KEY_BYTES:
        return f"the key must be {MIN_KEY_BYTES} to {MAX_KEY_BYTES} bytes, got {len(key)}"
    return None


@lru_cache(maxsize=4096)
def _keyed(secret: str) -> hmac.HMAC:
    """HMAC-SHA256 keyed with a `whsec_` secret: its base64 part decoded (padding
    added, as the specification's libraries do, for a key written without it)."""
    encoded = secret[len(PREFIX):] if secret.startswith(PREFIX) else secret
    return hmac.new(base64.b64decode(encoded + "=="), digestmod=hashlib.sha256)


def signature(secret: str, event_id: str, timestamp: int, body: bytes) -> bytes:
    """`webhook-signature` of one attempt: v1,<base64 HMAC-SHA256(key, id.timestamp.body)>."""
    mac = _keyed(secret).copy()
    mac.update(b"%s.%d.%s" % (event_id.encode(), timestamp, body))
    return b"v1," + base64.b64encode(mac.digest())


def headers(secret: str, event_id: str, timestamp: int, body: str) -> dict[str, str]:
    """The three headers of one attempt; `timestamp` is the attempt's Unix time, so a
    retry is signed anew and the receiver's replay window applies to each."""
    return {"webhook-id": event_id, "webhook-timestamp": str(timestamp),
            "webhook-signature": signature(secret, event_id, timestamp,
                                           body.encode()).decode()}
