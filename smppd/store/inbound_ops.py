"""Operations of the inbound domain (issue 11): reservations, settings, contacts,
discount codes, polls and the e-mail forward outbox. Frozen for the same reason as
smppd.store.operations: they cross from the reactor to the writer thread."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from .operations import _cut


class Conflict(Exception):
    """A 409: the request clashes with what is stored (a prefix, a number)."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class NotHeld(LookupError):
    """The account does not hold that number (or prefix): the API answers 404."""


@dataclass(frozen=True, slots=True)
class InboundStored:
    """What the listener does after an MO's commit: hand the replies it queued to the
    dispatcher, wake the e-mail forwarder, count it."""

    inbound_id: int
    account_id: int | None
    route: str
    reason: str | None
    accepts: tuple[Any, ...] = ()  # ops.Accept committed with the MO
    emails: int = 0  # e-mail forwards queued
    forward_url: str | None = None  # for the webhook outbox (issue 12)
    vote: str | None = None  # the vote's outcome, when it was one
    pool_empty: bool = False


@dataclass(frozen=True, slots=True)
class Reserve:
    account_id: int
    number: str
    prefix: str | None
    prefix_key: str
    starts_at: float
    ends_at: float | None
    retry: ClassVar[bool] = False


@dataclass(frozen=True, slots=True)
class Release:
    """End the account's reservation of a number (and prefix) now. Result: bool."""

    account_id: int
    number: str
    prefix_key: str
    retry: ClassVar[bool] = False


@dataclass(frozen=True, slots=True)
class ChargeMonthly:
    """Charge the monthly fee of reservations whose paid period ended; one the
    balance cannot pay for lapses. Result: (charged, lapsed)."""

    retry: ClassVar[bool] = False


@dataclass(frozen=True, slots=True)
class SaveSettings:
    account_id: int
    number: str
    prefix_key: str
    prefix: str | None
    auto_reply_from: str | None
    auto_reply_text: str | None
    forward_email: str | None  # JSON list
    forward_sms: str | None  # JSON list
    forward_url: str | None
    retry: ClassVar[bool] = False


@dataclass(frozen=True, slots=True)
class Contact:
    phone: str
    first_name: str | None
    last_name: str | None
    email: str | None
    fields: str | None  # JSON object
    groups: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class SaveContacts:
    """Create or update contacts by phone; their groups are set to those given
    (groups are created as needed). Result: (created, updated)."""

    account_id: int
    contacts: tuple[Contact, ...]
    retry: ClassVar[bool] = False


@dataclass(frozen=True, slots=True)
class DeleteContact:
    account_id: int
    phone: str
    retry: ClassVar[bool] = False


@dataclass(frozen=True, slots=True)
class AddCodes:
    """Codes into a discount pool; one already in it is skipped. Result: (added, skipped)."""

    account_id: int
    pool: str
    codes: tuple[str, ...]
    retry: ClassVar[bool] = False


@dataclass(frozen=True, slots=True)
class CreatePoll:
    poll_id: str
    account_id: int
    name: str
    number: str
    prefix: str | None
    prefix_key: str
    starts_at: float
    ends_at: float
    sender: str
    replies: str  # JSON
    limit_votes: int
    limit_seconds: int | None
    groups: str | None  # JSON list
    discount_pool: str | None
    options: tuple[tuple[str, str, str | None], ...]  # (keyword, folded, reply)
    created_at: float
    retry: ClassVar[bool] = False


@dataclass(frozen=True, slots=True)
class UpdatePoll:
    """Change a poll of the account (issue 15's edit form; PUT /v1/polls/{id}): its
    number and prefix stay; options change only while no vote is counted (after
    that only their replies). Result: the poll id, None when it is not the
    account's, or Conflict."""

    poll_id: str
    account_id: int
    number: str
    prefix_key: str
    name: str
    starts_at: float
    ends_at: float
    sender: str
    replies: str  # JSON
    limit_votes: int
    limit_seconds: int | None
    groups: str | None
    discount_pool: str | None
    options: tuple[tuple[str, str, str | None], ...]
    retry: ClassVar[bool] = False


@dataclass(frozen=True, slots=True)
class ForwardDone:
    """An e-mail forward was sent (or failed; retried at `retry_at`, or given up)."""

    forward_id: int
    sent: bool
    error: str | None = None
    retry_at: float | None = None  # None with sent=False: failed for good
    retry: ClassVar[bool] = True

    def __post_init__(self) -> None:
        _cut(self, error=1000)


