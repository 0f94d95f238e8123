"""Polls without I/O: which poll an MO votes in, which option it names, whether
the vote counts, and what it is answered.

The window is half-open, [starts_at, ends_at): a vote at exactly `ends_at` is
late. A poll keeps catching messages (to answer them `out_of_window`) from its
creation until `GRACE_SECONDS` after its end; after that its number and prefix
are free for ordinary traffic again.

Outcomes, checked in this order: out_of_window, not_allowed (the sender is in
none of the allowed contact groups), unknown_option, over_limit (accepted votes
from that number within the limit's period), accepted. Only accepted votes count
toward the limit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..checks import render
from .text import first_word, fold

GRACE_SECONDS = 7 * 86400
ACCEPTED = "accepted"
OUT_OF_WINDOW = "out_of_window"
OVER_LIMIT = "over_limit"
NOT_ALLOWED = "not_allowed"
UNKNOWN_OPTION = "unknown_option"
OUTCOMES = (ACCEPTED, OUT_OF_WINDOW, OVER_LIMIT, NOT_ALLOWED, UNKNOWN_OPTION)
REPLY_KEYS = ("default", OUT_OF_WINDOW, OVER_LIMIT, NOT_ALLOWED, UNKNOWN_OPTION, "no_codes")
PLACEHOLDERS = ("code", "keyword")


@dataclass(frozen=True, slots=True)
class Option:
    number: int
    keyword: str
    key: str
    reply: str | None


@dataclass(frozen=True, slots=True)
class Poll:
    id: str
    account_id: int
    number: str
    prefix_key: str
    starts_at: float
    ends_at: float
    created_at: float
    sender: str
    replies: dict[str, str]
    limit_votes: int  # 0: unlimited
    limit_seconds: int | None  # None: over the whole poll
    groups: tuple[str, ...]
    discount_pool: str | None
    options: tuple[Option, ...]

    def in_window(self, at: float) -> bool:
        return self.starts_at <= at < self.ends_at

    def catches(self, at: float) -> bool:
        return self.created_at <= at < self.ends_at + GRACE_SECONDS

    def limit_since(self, at: float) -> float:
        """Votes accepted after this moment count toward the limit."""
        return self.starts_at if self.limit_seconds is None else at - self.limit_seconds


def pick(polls: list[Poll], account_id: int, number: str, prefix_key: str,
         at: float) -> Poll | None:
    """The poll an MO to `number` with this prefix votes in: one in its window
    first, else the one that started last among those still catching messages."""
    candidates = [p for p in polls if p.account_id == account_id and p.number == number
                  and p.prefix_key == prefix_key and p.catches(at)]
    if not candidates:
        return None
    open_now = [p for p in candidates if p.in_window(at)]
    return max(open_now or candidates, key=lambda p: (p.starts_at, p.id))


def option_for(poll: Poll, answer: str | None) -> Option | None:
    """The whole answer, or else its first word, against each keyword, folded."""
    whole = fold(" ".join((answer or "").split()))
    word = first_word(answer).key
    for option in poll.options:
        if option.key == whole:
            return option
    for option in poll.options:
        if option.key == word:
            return option
    return None


def judge(poll: Poll, option: Option | None, at: float, allowed: bool,
          accepted_before: int) -> str:
    if not poll.in_window(at):
        return OUT_OF_WINDOW
    if not allowed:
        return NOT_ALLOWED
    if option is None:
        return UNKNOWN_OPTION
    if poll.limit_votes and accepted_before >= poll.limit_votes:
        return OVER_LIMIT
    return ACCEPTED


def reply_for(poll: Poll, outcome: str, option: Option | None, code: str | None,
              pool_empty: bool) -> str | None:
    """The text to answer with, or None for no reply. An accepted vote gets its
    option's reply, else the default one; with a discount pool that ran dry it gets
    `no_codes` (no reply when that is not set: the promised code cannot be sent).
    A refused vote gets the reply for its reason (unknown_option falls back to the
    default reply)."""
    replies = poll.replies
    if outcome == ACCEPTED:
        if pool_empty:
            template = replies.get("no_codes")
        else:
            template = (option.reply if option and option.reply else None) \
                or replies.get("default")
    elif outcome == UNKNOWN_OPTION:
        template = replies.get(UNKNOWN_OPTION) or replies.get("default")
    else:
        template = replies.get(outcome)
    if not template:
        return None
    fields: dict[str, Any] = {"code": code or "", "keyword": option.keyword if option else ""}
    return render(template, fields)
