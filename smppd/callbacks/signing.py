"""Standard Webhooks 1.0 keys and signatures (`webhook-id`, `webhook-timestamp`,
`webhook-signature: v1,<base64 HMAC-SHA256(key, id.timestamp.body)>`).

Signing is the `standardwebhooks` package's own, so what smppd sends is what every
receiver's verifier of that specification expects; this module only makes keys,
checks the ones customers bring, and keeps one signer per key.
"""

from __future__ import annotations

import base64
import binascii
import secrets
from datetime import UTC, datetime
from functools import lru_cache

from standardwebhooks import Webhook

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
def _signer(secret: str) -> Webhook:
    return Webhook(secret)


def headers(secret: str, event_id: str, timestamp: int, body: str) -> dict[str, str]:
    """The three headers of one attempt; `timestamp` is the attempt's Unix time, so a
    retry is signed anew and the receiver's replay window applies to each."""
    signature = _signer(secret).sign(event_id, datetime.fromtimestamp(timestamp, UTC), body)
    return {"webhook-id": event_id, "webhook-timestamp": str(timestamp),
            "webhook-signature": signature}
