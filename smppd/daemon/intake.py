"""Intake: what turns a valid request into a message the store can accept: its
route, how its text is cut there, its price, and the Accept operation. One path for
a message sent through the API and for every row of a bulk job, so the two cannot
drift apart (route, parts and price are computed the same way for both)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..api import validation
from ..api.validation import ApiError
from ..ids import new_id
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

    def prepare(self, account_id: int, sender: str, recipient: str, country: str | None,
                text: str, references: ConcatReferences, now: float, *,
                ref_id: str | None = None, params: str | None = None,
                job_id: str | None = None, channel: str | None = None,
                sent_by: str | None = None) -> Prepared:
        """Raises ApiError naming `to` (no route) or `text` (cannot be sent there)."""
        route = self.router.route_for(recipient)
        if route == NO_ROUTE:
            raise ApiError(400, f"no route to +{recipient}: no configured prefix matches it",
                           "to")
        settings = self.router.text_for(route)
        info = validation.text_info(text, settings.profile, settings.policy)
        points = self.tariff.price(recipient) * info.parts
        reference = references.next(recipient) if info.parts > 1 else 0
        op = ops.Accept(account_id, new_id(now), sender, recipient, country, text,
                        info.encoding.value, info.parts, points, reference,
                        None if route == ANY_SMSC else route, ref_id, params, now, job_id,
                        channel, sent_by)
        return Prepared(op, info)


class Intake:
    def __init__(self, router: Router, tariff: Tariff) -> None:
        self.admission = Admission(router, tariff)
        self.references = ConcatReferences(bits=16)  # single messages, reactor thread

    def configure(self, router: Router, tariff: Tariff) -> None:
        """On reload (reactor thread): one assignment swaps both."""
        self.admission = Admission(router, tariff)


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
