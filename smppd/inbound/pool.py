"""The operator's pool of inbound numbers, as the writer thread sees it: the
configured numbers with their kind, price and pre-assigned holder (resolved to an
account id once the accounts are seeded), and the limit on automatic replies.

One immutable snapshot, swapped whole on reload, so the writer never reads a pool
half-updated by the reactor.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class InboundNumber:
    """One number of the operator's pool (`inbound_numbers`)."""

    number: str  # digits, no '+'
    kind: str  # dedicated | shared | shortcode
    account: str | None = None  # pre-assigned holder (a shortcode always has one)
    reservation_fee: int = 0  # points, once when reserved
    monthly_fee: int = 0  # points, at the start of every month of a reservation


@dataclass(frozen=True, slots=True)
class Pool:
    numbers: dict[str, InboundNumber] = field(default_factory=dict)
    holders: dict[str, int] = field(default_factory=dict)  # number -> pre-assigned account
    replies_per_hour: int = 5

    @classmethod
    def of(cls, numbers: tuple[InboundNumber, ...], account_ids: dict[str, int],
           replies_per_hour: int = 5) -> Pool:
        return cls({n.number: n for n in numbers},
                   {n.number: account_ids[n.account] for n in numbers
                    if n.account is not None and n.account in account_ids},
                   replies_per_hour)

    def get(self, number: str) -> InboundNumber | None:
        return self.numbers.get(normalise(number))


def display(address: str) -> str:
    """An address as people write it: '+' and digits for a phone number; a short
    code (up to 6 digits) or an alphanumeric sender as it is."""
    return "+" + address if address.isdigit() and len(address) > 6 else address


def normalise(number: str) -> str:
    """Pool numbers are digits; SMSCs write destinations with or without '+'."""
    return number.strip().removeprefix("+")


@dataclass(slots=True)
class InboundRuntime:
    """What the writer needs to route MO and queue replies. `intake` is the daemon's
    Intake, whose `admission` (route, text, price) is read at each use so a reload
    applies; `references` are the writer thread's own concatenation references."""

    pool: Pool = field(default_factory=Pool)
    intake: Any = None  # smppd.daemon.intake.Intake, or None: no replies
    references: Any = None
