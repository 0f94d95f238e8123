"""Passwords: argon2id hashes (argon2-cffi, RFC 9106's parameters), one-time
passwords a person can read out, and the rule a new password must meet.

Hashing and verifying cost about a fifth of a second of CPU on purpose: callers in
the daemon run them on a pool thread, never on the reactor.
"""

from __future__ import annotations

import secrets
from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_HASHER = PasswordHasher()
# No 0/O, 1/l/I: a one-time password is read from a screen and typed in.
_ALPHABET = "abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"
MIN_LENGTH = 10
MAX_LENGTH = 256


@cache
def _dummy() -> str:
    """Verified against when a login does not exist, so that a wrong login costs the
    same time as a wrong password and the answer does not tell which logins exist.
    Made on first use (on a pool thread), not at import: a hash is a fifth of a CPU
    second, which every daemon start paid on the reactor thread."""
    return _HASHER.hash("smppd: no such user")


def hash_password(password: str) -> str:
    return _HASHER.hash(password)


def verify(password_hash: str | None, password: str) -> bool:
    """True when `password` matches; a missing or unreadable hash is a mismatch."""
    try:
        return _HASHER.verify(password_hash or _dummy(), password) and password_hash is not None
    except (VerificationError, InvalidHashError):
        return False


def one_time_password() -> str:
    """16 characters in four groups (about 93 bits), e.g. 'k7Rm-x2Qa-...'."""
    return "-".join("".join(secrets.choice(_ALPHABET) for _ in range(4)) for _ in range(4))


def problem(password: str, login: str) -> str | None:
    """Why a new password is refused (a message id for the page), or None."""
    if len(password) < MIN_LENGTH:
        return "too_short"
    if len(password) > MAX_LENGTH:
        return "too_long"
    if password.strip().lower() == login.strip().lower():
        return "same_as_login"
    return None
