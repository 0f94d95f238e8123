"""Operations of the portal's domain (issue 15): users and sessions. Frozen for the
same reason as smppd.store.operations: they cross from the reactor (or a command
line process) to the writer."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from .inbound_ops import Conflict

__all__ = ["Conflict", "CreateSession", "CreateUser", "DeleteUser", "EndSessions",
           "PurgeSessions", "SetPassword", "TouchSession", "UpdateUser"]


@dataclass(frozen=True, slots=True)
class CreateUser:
    """A portal user of an account. Result: the user's id, or Conflict when the login
    is taken (logins are unique across accounts: the login form asks nothing else)."""

    account_id: int
    login: str
    email: str | None
    password_hash: str
    role: str
    must_change_password: bool
    locale: str
    created_by: str | None
    retry: ClassVar[bool] = False


@dataclass(frozen=True, slots=True)
class UpdateUser:
    """Role, language or disabled flag of a user of `account_id` (None: unchanged).
    Disabling ends the user's sessions. Result: True when the user was found."""

    user_id: int
    account_id: int | None  # None: the operator, for any account
    role: str | None = None
    locale: str | None = None
    disabled: bool | None = None
    retry: ClassVar[bool] = False


@dataclass(frozen=True, slots=True)
class SetPassword:
    """A new password hash; every session of the user but `keep_session` ends.
    Result: True when the user was found."""

    user_id: int
    account_id: int | None
    password_hash: str
    must_change_password: bool
    keep_session: str | None = None
    retry: ClassVar[bool] = False


@dataclass(frozen=True, slots=True)
class DeleteUser:
    """Remove a user of the account and end their sessions. Messages they sent keep
    their login in `sent_by`. Result: True when found."""

    user_id: int
    account_id: int | None
    retry: ClassVar[bool] = False


@dataclass(frozen=True, slots=True)
class CreateSession:
    """A new session (at login: always a new id). `replaces`: a session to end in the
    same transaction. A user's login time is recorded."""

    session_id: str  # the SHA-256 of the cookie value, hex
    kind: str  # user | operator
    user_id: int | None
    operator: str | None
    csrf: str
    address: str | None
    created_at: float
    replaces: str | None = None
    retry: ClassVar[bool] = False


@dataclass(frozen=True, slots=True)
class TouchSession:
    """The session was used: its idle expiry starts again from `at`."""

    session_id: str
    at: float
    retry: ClassVar[bool] = False


@dataclass(frozen=True, slots=True)
class EndSessions:
    """Log out: these sessions end."""

    session_ids: tuple[str, ...]
    retry: ClassVar[bool] = False


@dataclass(frozen=True, slots=True)
class PurgeSessions:
    """Remove sessions idle since `idle_before` or created before `created_before`.
    Result: how many."""

    idle_before: float
    created_before: float
    retry: ClassVar[bool] = False
