"""Guards against reply loops and abuse, as pure checks.

- Never answer a short code or an alphanumeric sender: only a valid international
  number (phonenumbers) is answered. Machines send from those, and two machines
  answering each other is the classic SMS loop.
- Never answer or forward an MO that comes from one of our own pool numbers: that
  is our own SMS (a forward or a reply) coming back.
- At most N automatic replies per sender per hour (`inbound.auto_replies_per_hour`),
  counted over auto-replies and poll replies together.
"""

from __future__ import annotations

from functools import lru_cache

from ..checks import ApiError, recipient


@lru_cache(maxsize=65536)
def reply_address(sender: str) -> tuple[str, str | None] | None:
    """(E.164 digits, region) when `sender` may be answered, else None. Remembered
    per sender: phonenumbers' validity check (tens of microseconds) was the largest
    single cost of an MO vote in the writer, and voters send again (a poll's limit
    per number exists because they do); the answer depends on the sender alone."""
    digits = sender.strip().removeprefix("+")
    if not digits.isdigit() or len(digits) < 7:
        return None  # alphanumeric, or a short code
    try:
        return recipient("+" + digits)
    except ApiError:
        return None
