"""Which account an MO belongs to: the routing decision, without I/O.

- A dedicated number or a short code belongs to its holder (a reservation active
  at the time the MO arrived, or the holder named in the configuration). Its first
  word is split off as a prefix only when the holder uses that prefix on the number
  (a poll's or a settings' prefix), since several polls may share one number.
- A shared number: the holder whose prefix is the first word, folded.
- Nothing matches: `unassigned`, with the reason; never dropped.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from .pool import InboundNumber
from .text import first_word

UNASSIGNED = "unassigned"


@dataclass(frozen=True, slots=True)
class Holding:
    """One reservation of a number (or a configured holder), with its period."""

    account_id: int
    prefix_key: str  # '' for the whole number
    starts_at: float
    ends_at: float | None

    def active(self, at: float) -> bool:
        return self.starts_at <= at and (self.ends_at is None or at < self.ends_at)


@dataclass(frozen=True, slots=True)
class Route:
    account_id: int | None
    route: str  # dedicated | shared | shortcode | unassigned
    prefix: str | None  # the first word as sent, when it was a prefix
    prefix_key: str  # '' without one
    body: str | None  # the text after the prefix (the whole text without one)
    reason: str | None = None  # why unassigned: unknown_number | no_holder | no_prefix | lapsed


def route(number: InboundNumber | None, text: str | None, holdings: Iterable[Holding],
          at: float, prefixes_in_use: dict[int, set[str]]) -> Route:
    """`prefixes_in_use`: account -> prefix keys its polls and settings use on this
    number (only read for dedicated numbers and short codes)."""
    if number is None:
        return Route(None, UNASSIGNED, None, "", text, "unknown_number")
    holdings = list(holdings)
    split = first_word(text)
    if number.kind == "shared":
        key = split.key
        if key:
            for holding in holdings:
                if holding.prefix_key == key and holding.active(at):
                    return Route(holding.account_id, "shared", split.word, key, split.rest)
        lapsed = any(h.prefix_key == key for h in holdings) if key else False
        return Route(None, UNASSIGNED, None, "", text, "lapsed" if lapsed else "no_prefix")
    holder = next((h for h in holdings if h.prefix_key == "" and h.active(at)), None)
    if holder is None:
        reason = "lapsed" if any(h.prefix_key == "" for h in holdings) else "no_holder"
        return Route(None, UNASSIGNED, None, "", text, reason)
    if split.word and split.key in prefixes_in_use.get(holder.account_id, ()):
        return Route(holder.account_id, number.kind, split.word, split.key, split.rest)
    return Route(holder.account_id, number.kind, None, "", text)
