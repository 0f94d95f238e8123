"""The message status vocabulary of DESIGN.md and the rule that states never regress.

Shared by the protocol layer (which maps receipts to it) and the store.
"""

from __future__ import annotations

QUEUED = "queued"
SCHEDULED = "scheduled"
SUBMITTED = "submitted"
DELIVERED = "delivered"
UNDELIVERED = "undelivered"
EXPIRED = "expired"
REJECTED = "rejected"
DELETED = "deleted"
UNKNOWN = "unknown"
FAILED = "failed"
CANCELLED = "cancelled"

ALL = (QUEUED, SCHEDULED, SUBMITTED, DELIVERED, UNDELIVERED, EXPIRED, REJECTED, DELETED,
       UNKNOWN, FAILED, CANCELLED)

FINAL = frozenset({DELIVERED, UNDELIVERED, EXPIRED, REJECTED, DELETED, FAILED, CANCELLED})

# `unknown` is final for billing but an explicit receipt may still settle it later:
# a resp timeout leaves a message `unknown`, and its receipt may arrive afterwards.
_RANK = {QUEUED: 0, SCHEDULED: 0, SUBMITTED: 1, UNKNOWN: 2}


def merge(current: str, incoming: str) -> str:
    """The status after `incoming` is reported for a message now in `current`.

    A final status is never replaced (a late ENROUTE after DELIVRD, or a duplicate
    receipt, changes nothing); otherwise the further-along status wins.
    """
    if current in FINAL:
        return current
    if incoming in FINAL:
        return incoming
    return incoming if _RANK.get(incoming, 0) >= _RANK.get(current, 0) else current


def combine_parts(part_statuses: list[str], policy: str = "all") -> str:
    """A multi-part message's status from its parts' statuses.

    policy `all`: delivered only when every part is (DESIGN.md); any failed part makes
    the message that failure. `first`/`last`: trust the receipt of that one part (for
    carriers that report only one part). `any`: delivered once any part is.
    """
    if not part_statuses:
        return QUEUED
    if policy == "first":
        return part_statuses[0]
    if policy == "last":
        return part_statuses[-1]
    failures = [s for s in part_statuses if s in FINAL and s != DELIVERED]
    if policy == "any" and DELIVERED in part_statuses:
        return DELIVERED
    if failures:
        return failures[0]
    if all(s == DELIVERED for s in part_statuses):
        return DELIVERED
    if UNKNOWN in part_statuses:
        return UNKNOWN
    if SUBMITTED in part_statuses:
        return SUBMITTED
    return part_statuses[0]


# What each status means, in the customer's words (GET /v1/statuses, history, reports).
DESCRIPTIONS = {
    QUEUED: "Accepted and charged; waiting to be sent to the operator.",
    SCHEDULED: "Accepted; waits for its job's start time.",
    SUBMITTED: "Accepted by the operator's SMSC; waiting for the delivery report.",
    DELIVERED: "Delivered to the phone (every part of a long message).",
    UNDELIVERED: "The operator could not deliver it (the number may be switched off, out "
                 "of service or blocked); see the error code.",
    EXPIRED: "The operator gave up: the phone was unreachable for the whole validity "
             "period.",
    REJECTED: "The operator refused it (e.g. an invalid number or sender); parts it never "
              "accepted are refunded.",
    DELETED: "Deleted at the operator before delivery.",
    UNKNOWN: "Sent, but the operator did not answer in time; it is charged and not resent, "
             "and a late delivery report still settles it.",
    FAILED: "Could not be sent after repeated temporary errors; refunded.",
    CANCELLED: "Not sent: its job was stopped first; refunded.",
}
