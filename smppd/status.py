"""The vocabularies of DESIGN.md: message statuses, job states, and the rule that a
message's status never regresses.

Shared by the protocol layer (which maps receipts to statuses), the store and the
API; StrEnums so that a value is written, compared and serialised as its name and
a misspelt state is an AttributeError instead of a silent new state.
"""

from __future__ import annotations

from enum import StrEnum


class Status(StrEnum):
    """A message's (or one part's) status."""

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


class JobState(StrEnum):
    """A bulk job's state. `creating` is internal: the job is being written and
    nothing outside the store sees it (DESIGN.md names the other five)."""

    CREATING = "creating"
    SCHEDULED = "scheduled"
    RUNNING = "running"
    PAUSED = "paused"
    STOPPED = "stopped"
    COMPLETED = "completed"


ALL = tuple(Status)

FINAL = frozenset({Status.DELIVERED, Status.UNDELIVERED, Status.EXPIRED, Status.REJECTED,
                   Status.DELETED, Status.FAILED, Status.CANCELLED})

# `unknown` is final for billing but an explicit receipt may still settle it later:
# a resp timeout leaves a message `unknown`, and its receipt may arrive afterwards.
_RANK = {Status.QUEUED: 0, Status.SCHEDULED: 0, Status.SUBMITTED: 1, Status.UNKNOWN: 2}


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
        return Status.QUEUED
    if policy == "first":
        return part_statuses[0]
    if policy == "last":
        return part_statuses[-1]
    failures = [s for s in part_statuses if s in FINAL and s != Status.DELIVERED]
    if policy == "any" and Status.DELIVERED in part_statuses:
        return Status.DELIVERED
    if failures:
        return failures[0]
    if all(s == Status.DELIVERED for s in part_statuses):
        return Status.DELIVERED
    if Status.UNKNOWN in part_statuses:
        return Status.UNKNOWN
    if Status.SUBMITTED in part_statuses:
        return Status.SUBMITTED
    return part_statuses[0]


# What each status means, in the customer's words (GET /v1/statuses, history, reports).
DESCRIPTIONS = {
    Status.QUEUED: "Accepted and charged; waiting to be sent to the operator.",
    Status.SCHEDULED: "Accepted; waits for its job's start time.",
    Status.SUBMITTED: "Accepted by the operator's SMSC; waiting for the delivery report.",
    Status.DELIVERED: "Delivered to the phone (every part of a long message).",
    Status.UNDELIVERED: "The operator could not deliver it (the number may be switched off, out "
                 "of service or blocked); see the error code.",
    Status.EXPIRED: "The operator gave up: the phone was unreachable for the whole validity "
             "period.",
    Status.REJECTED: "The operator refused it (e.g. an invalid number or sender); parts it never "
              "accepted are refunded.",
    Status.DELETED: "Deleted at the operator before delivery.",
    Status.UNKNOWN: "Sent, but the operator did not answer in time; it is charged and not resent, "
             "and a late delivery report still settles it.",
    Status.FAILED: "Could not be sent after repeated temporary errors; refunded.",
    Status.CANCELLED: "Not sent: its job was stopped first; refunded.",
}
