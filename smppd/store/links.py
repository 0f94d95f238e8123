"""Short links in the store (issue 12): each message's codes are inserted with it,
and clicks are recorded a batch at a time (first or repeat decided here, by the one
writer, so two clicks of one code in one batch cannot both be first)."""

from __future__ import annotations

import re
import secrets
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from . import schema as t
from .callback_operations import ClickSeen, ClicksSeen
from .operations import Accept
from .sql import BulkInsert, BulkUpdate, chunks, utc

if TYPE_CHECKING:
    from .context import BatchContext

INSERT_LINK = BulkInsert(t.links, ("code", "message_id", "account_id", "job_id", "url",
                                   "created_at"), {"clicks": "0"})
INSERT_CLICK = BulkInsert(t.link_clicks, ("code", "message_id", "account_id", "job_id", "at",
                                          "agent", "is_repeat"))
LINK_CLICKED = BulkUpdate(t.links, ("code",), {
    "clicks": "links.clicks + {}", "first_click_at": "COALESCE(links.first_click_at, {})"})


# The agent class (smppd.callbacks.agents) of link-preview fetchers and crawlers: their
# requests are recorded, but they are not a person clicking, so no "clicked" and no
# click-through rate counts them.
BOT = "bot"


def by_a_person() -> Any:
    """The condition on link_clicks that a click was a person's."""
    return t.link_clicks.c.agent != BOT


# Short-link codes: random, so unguessable; the store keeps them unique (see `store`).
CODE_LENGTH = 9
_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
CODE_BITS = 53  # 62**9 > 2**53 >= 2**48: unguessable, still 9 characters
CODE = re.compile(rf"^[0-9A-Za-z]{{{CODE_LENGTH}}}$")


def new_code() -> str:
    """CODE_LENGTH characters from 53 random bits of the OS's generator."""
    value = secrets.randbits(CODE_BITS)
    digits = []
    for _ in range(CODE_LENGTH):
        value, digit = divmod(value, 62)
        digits.append(_ALPHABET[digit])
    return "".join(digits)


class Recoded(str):
    """The result of an accepted message whose link code was already taken and was
    replaced here: the message id, carrying the text as stored (`.text`), which the
    dispatcher must send instead of the one the API prepared."""

    text: str

    def __new__(cls, message_id: str, text: str) -> Recoded:
        value = super().__new__(cls, message_id)
        value.text = text
        return value


def store(ctx: BatchContext, accepted: Sequence[Accept],
          make_code: Callable[[], str] = new_code) -> tuple[list[Accept], dict[str, str]]:
    """Insert the links of these messages. A code that is already taken (53 random
    bits make that rare, not impossible) is replaced by a fresh one of the same length
    in the message's text, so its parts and price do not change. Returns the messages
    as they must be stored, and message id -> new text for those recoded."""
    if not any(op.links for op in accepted):
        return list(accepted), {}
    codes = [code for op in accepted for code, _ in op.links]
    seen: set[str] = set()
    taken: set[str] = set()
    for code in codes:  # the same code twice in one batch
        (taken if code in seen else seen).add(code)
    for chunk in chunks(codes):
        taken.update(ctx.conn.execute(select(t.links.c.code).where(
            t.links.c.code.in_(chunk))).scalars())
    result, recoded, rows, used = [], {}, [], set()
    for op in accepted:
        if op.links and any(code in taken or code in used for code, _ in op.links):
            op = _recode(op, taken | used, make_code)
            recoded[op.message_id] = op.text
        created = ctx.sql.ts(utc(op.created_at))
        for code, url in op.links:
            used.add(code)
            rows.append((code, op.message_id, op.account_id, op.job_id, url, created))
        result.append(op)
    ctx.sql.run(ctx.conn, INSERT_LINK, rows)
    return result, recoded


def _recode(op: Accept, taken: set[str], make_code: Callable[[], str]) -> Accept:
    text, links = op.text, []
    for code, url in op.links:
        if code in taken:
            fresh = make_code()
            while fresh in taken:
                fresh = make_code()
            taken.add(fresh)
            text = text.replace(code, fresh, 1)
            code = fresh
        links.append((code, url))
    return op._replace(text=text, links=tuple(links))


def clicks(ctx: BatchContext, by_kind: dict[type, list[tuple[int, Any]]]) -> None:
    """Result per ClickSeen: the URL to redirect to, or None for an unknown code; per
    ClicksSeen: how many of its clicks were recorded. In the order they came, so the
    first click of a code is the first put."""
    seen: list[tuple[int, Any, str, float, str]] = [
        (index, op, op.code, op.at, op.agent) for index, op in by_kind.get(ClickSeen, ())]
    for index, op in by_kind.get(ClicksSeen, ()):
        ctx.results[index] = 0
        seen.extend((index, op, code, at, agent) for code, at, agent in op.clicks)
    seen.sort(key=lambda item: item[0])  # stable: a batch's clicks keep their order
    l = t.links.c  # noqa: E741
    found: dict[str, Any] = {}
    for chunk in chunks(list({code for _, _, code, _, _ in seen})):
        for row in ctx.conn.execute(select(l.code, l.url, l.message_id, l.account_id, l.job_id,
                                           l.first_click_at).where(l.code.in_(chunk))):
            found[row.code] = row
    ts = ctx.sql.ts
    counts: dict[str, int] = defaultdict(int)
    first_at: dict[str, Any] = {}
    rows = []
    for index, op, code, at, agent in seen:
        link = found.get(code)
        single = isinstance(op, ClickSeen)
        if link is None:
            if single:
                ctx.results[index] = None
            continue
        repeat = link.first_click_at is not None or code in counts
        stamp = ts(utc(at))
        counts[code] += 1
        first_at.setdefault(code, stamp)
        rows.append((code, link.message_id, link.account_id, link.job_id, stamp, agent,
                     repeat))
        if single:
            ctx.results[index] = link.url
        else:
            ctx.results[index] += 1
    ctx.sql.run(ctx.conn, INSERT_CLICK, rows)
    ctx.sql.run(ctx.conn, LINK_CLICKED, [(code, count, first_at[code])
                                         for code, count in counts.items()])
