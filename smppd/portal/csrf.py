"""CSRF: every form carries a token, and every POST is refused (403) without the
right one.

A signed-in session has its own token, kept server side with the session (the
synchronizer pattern). Forms shown before sign-in (the login form) use a
double-submit cookie: a random value set as a cookie and repeated in the form; a
page of another site can neither read the cookie nor set it, so it cannot repeat
it. SameSite=Lax cookies are the second fence, not the only one.
"""

from __future__ import annotations

import hmac
import secrets

FIELD = "csrf"  # the hidden form field
HEADER = b"x-csrf-token"  # the same token, for the page's own fetch() calls
PRE_COOKIE = "smppd_pre"


def new_token() -> str:
    return secrets.token_urlsafe(32)


def matches(expected: str | None, given: str | None) -> bool:
    """Constant-time comparison; nothing matches a missing token."""
    if not expected or not given:
        return False
    return hmac.compare_digest(expected.encode(), given.encode())
