"""Intake: what turns a valid request into a message the store can accept: its
route, how its text is cut there, its price, and the Accept operation. One path for
a message sent through the API and for every row of a bulk job, so the two cannot
drift apart (route, parts and price are computed the same way for both)."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..api import validation
from ..api.validation import ApiError
from ..callbacks.links import Shortener
from ..ids import new_id
from ..protocol import gsm
from ..protocol.segmentation import ConcatReferences, TextInfo
from ..store import operations as ops
from ..store.queries import QueuedMessage
from .router import ANY_SMSC, NO_ROUTE, Router


@dataclass(frozen=True, slots=True)
class Tariff:
    """Points per SMS part: the longest matching destination prefix, else the default."""

    default: int
    by_prefix: tuple[tuple[str, int], ...] = ()

    def price(self, recipient: str) -> int:
        best, price = -1, self.default
        for prefix, points in self.by_prefix:
            if recipient.startswith(prefix) and len(prefix) > best:
                best, price = len(prefix), points
        return price


# Characters of one septet in GSM 03.38's basic table that Latin-1 holds too. A text
# made of them only is described by its length alone (issue 14): every one of them
# is GSM (so GSM is chosen, whatever the SMSC's dcs0_charset: the text is Latin-1
# as well), each costs one septet, so the septets are the length, and the parts are
# a greedy cut of equal-cost characters, a function of the length and the policy.
# describe() is still what answers, once per (route, length); see Admission.info.
_PLAIN = re.compile("[" + "".join(re.escape(ch) for ch, cost in gsm.COST.items()
                                  if cost == 1 and ord(ch) < 256) + "]*")


@dataclass(frozen=True, slots=True)
class Prepared:
    op: ops.Accept
    info: TextInfo


@dataclass(frozen=True, slots=True)
class Admission:
    """Routes and prices as they were when a request began: a job priced on a pool
    thread keeps this snapshot even if a reload swaps in new ones meanwhile."""

    router: Router
    tariff: Tariff
    shortener: Shortener | None = None  # links.base_url configured (issue 12)
    # (route, length) -> TextInfo of plain texts (_PLAIN); per snapshot, so a reload
    # that changes a route's charset or split policy starts afresh.
    _infos: dict[tuple[str, int], TextInfo] = field(default_factory=dict, compare=False,
                                                    hash=False, repr=False)

    def __reduce__(self) -> tuple[Any, ...]:
        # To the writer process (smppd.store.child) without `_infos`: a cache that other
        # threads fill while this one pickles ("dictionary changed size").
        return Admission, (self.router, self.tariff, self.shortener)

    def prepare(self, account_id: int, sender: str, recipient: str, country: str | None,
                text: str, references: ConcatReferences, now: float, *,
                ref_id: str | None = None, params: str | None = None,
                job_id: str | None = None, channel: str | None = None,
                sent_by: str | None = None, partner: str | None = None,
                callback_id: str | None = None, shorten_links: bool = False) -> Prepared:
        """Raises ApiError naming `to` (no route) or `text` (cannot be sent there).
        With `shorten_links`, URLs are replaced first: the parts and the price are
        those of the text as sent."""
        route, text, links, info, points, reference = self.priced(
            recipient, text, references, shorten_links)
        op = ops.Accept(account_id, new_id(now), sender, recipient, country, text,
                        info.encoding.value, info.parts, points, reference,
                        None if route == ANY_SMSC else route, ref_id, params, now, job_id,
                        channel=channel, sent_by=sent_by, partner=partner,
                        callback_id=callback_id, links=links)
        return Prepared(op, info)

    def job_message(self, account_id: int, sender: str, recipient: str,
                    country: str | None, text: str, references: ConcatReferences,
                    now: float, job_id: str, ref_id: str | None, params: str | None,
                    sent_by: str | None, partner: str | None, callback_id: str | None,
                    shorten_links: bool, make_id: Callable[[], str] | None = None
                    ) -> ops.Accept | ops.JobMessage:
        """A job's row, priced as `prepare` prices a message (the same `priced`),
        as a JobMessage: the same fields as an Accept, a type of its own (issue 14).
        A row with short links is an Accept, which the store may rewrite. `make_id`: the
        job's ids.IdBlocks (else new_id(now))."""
        route, text, links, info, points, reference = self.priced(
            recipient, text, references, shorten_links)
        smsc = None if route == ANY_SMSC else route
        message_id = make_id() if make_id is not None else new_id(now)
        if links:
            return ops.Accept(account_id, message_id, sender, recipient, country, text,
                              info.encoding.value, info.parts, points, reference, smsc,
                              ref_id, params, now, job_id, channel="job", sent_by=sent_by,
                              partner=partner, callback_id=callback_id, links=links)
        return ops.JobMessage(account_id, message_id, sender, recipient, country, text,
                              info.encoding.value, info.parts, points, reference, smsc,
                              ref_id, params, now, job_id, None, "job", sent_by, partner,
                              callback_id)

    def priced(self, recipient: str, text: str, references: ConcatReferences,
               shorten_links: bool) -> tuple[str, str, tuple[tuple[str, str], ...],
                                             TextInfo, int, int]:
        """(route, text as sent, short links, its TextInfo, points, concat reference)."""
        route = self.router.route_for(recipient)
        if route == NO_ROUTE:
            raise ApiError(400, f"no route to +{recipient}: no configured prefix matches it",
                           "to")
        links: tuple[tuple[str, str], ...] = ()
        if shorten_links:
            if self.shortener is None:
                raise ApiError(400, "short links are not configured on this server "
                               "(links.base_url)", "shorten_links")
            text, links = self.shortener.shorten(text)
        info = self.info(route, text)
        points = self.tariff.price(recipient) * info.parts
        reference = references.next(recipient) if info.parts > 1 else 0
        return route, text, links, info, points, reference

    def info(self, route: str, text: str) -> TextInfo:
        """validation.text_info for `route`'s charset and split policy; for a plain
        text (_PLAIN), the answer it gave for the first text of that length on that
        route: a job's rendered rows differ in their fields, not in what they cost."""
        if _PLAIN.fullmatch(text) is not None:
            key = (route, len(text))
            known = self._infos.get(key)
            if known is None:
                settings = self.router.text_for(route)
                known = self._infos[key] = validation.text_info(text, settings.profile,
                                                                settings.policy)
            return known
        settings = self.router.text_for(route)
        return validation.text_info(text, settings.profile, settings.policy)


class Intake:
    def __init__(self, router: Router, tariff: Tariff,
                 shortener: Shortener | None = None) -> None:
        self.admission = Admission(router, tariff, shortener)
        self.references = ConcatReferences(bits=16)  # single messages, reactor thread

    def configure(self, router: Router, tariff: Tariff) -> None:
        """On reload (reactor thread): one assignment swaps both."""
        self.admission = Admission(router, tariff, self.admission.shortener)


def queued(op: ops.Accept) -> QueuedMessage:
    """The dispatcher's view of a message just committed."""
    return QueuedMessage(op.message_id, op.sender, op.recipient, op.text, op.encoding,
                         op.parts, op.concat_ref, op.smsc, tuple(range(1, op.parts + 1)),
                         op.job_id, op.account_id, op.points)


def refused(failure: Any, what: str = "") -> Any:
    """A short balance is the client's 402; anything else goes on as it was."""
    if failure.check(ops.InsufficientBalance):
        raise ApiError(402, f"insufficient balance{what}: {failure.value}", "balance")
    return failure
