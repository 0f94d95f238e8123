"""What became of each part: the SMSC's responses, timeouts, errors and receipts,
and the message status settled from its parts (with the refund of what the SMSC
never accepted). States never go backwards (smppd.status.merge)."""

from __future__ import annotations

from collections import defaultdict
from itertools import chain
from typing import TYPE_CHECKING, Any

from .. import status as vocabulary
from ..status import Status
from . import ledger, outbox, receipts
from . import schema as t
from .operations import (
    LateId,
    PartFailed,
    PartResent,
    PartSubmitted,
    PartUnknown,
    ReceiptSeen,
)
from .sql import BulkInsert, BulkUpdate

if TYPE_CHECKING:
    from .cache import MessageState
    from .context import BatchContext

KINDS = (PartSubmitted, LateId, PartUnknown, PartFailed, PartResent, ReceiptSeen)
# Parts the SMSC accepted (charged by the carrier): never refunded.
ACCEPTED_PART = frozenset({Status.SUBMITTED, Status.DELIVERED, Status.UNDELIVERED,
                           Status.EXPIRED, Status.UNKNOWN, Status.DELETED})

INSERT_EVENT = BulkInsert(t.message_events, ("message_id", "part_no", "status", "error_code",
                                             "at"))
PART_SUBMITTED = BulkUpdate(t.parts, ("message_id", "part_no"), {
    "smsc": "", "smsc_id": "", "smsc_key": "", "status": "", "submitted_at": "",
    "updated_at": ""})
# A late response names the part only if nothing else did (a resend's id may be there);
# its id is also kept as an alias, so a receipt for either attempt settles the part.
PART_ID = BulkUpdate(t.parts, ("message_id", "part_no"), {
    "smsc": "COALESCE(parts.smsc, {})", "smsc_id": "COALESCE(parts.smsc_id, {})",
    "smsc_key": "COALESCE(parts.smsc_key, {})", "updated_at": ""})
INSERT_ALIAS = BulkInsert(t.part_aliases, ("smsc", "smsc_key", "message_id", "part_no"))
PART_STATUS = BulkUpdate(t.parts, ("message_id", "part_no"), {
    "status": "", "error_code": "COALESCE({}, parts.error_code)",
    "smsc": "COALESCE({}, parts.smsc)", "updated_at": ""})
MESSAGE_STATUS = BulkUpdate(t.messages, ("id",), {
    "status": "", "error_code": "COALESCE({}, messages.error_code)", "updated_at": "",
    "submitted_at": "COALESCE(messages.submitted_at, {})",
    "final_at": "COALESCE(messages.final_at, {})", "refunded": ""})


class Changes:
    """Rows one batch will write, gathered before any is written."""

    def __init__(self) -> None:
        self.part_submitted: list[tuple[Any, ...]] = []
        self.part_id: list[tuple[Any, ...]] = []
        self.aliases: list[tuple[Any, ...]] = []
        self.part_status: list[tuple[Any, ...]] = []
        self.events: list[tuple[Any, ...]] = []
        self.touched: dict[str, str | None] = {}  # message id -> newest error in batch
        self.submitted: set[str] = set()  # messages with a part accepted in this batch

    def touch(self, message_id: str, error: str | None) -> None:
        if error or message_id not in self.touched:
            self.touched[message_id] = error


def apply(ctx: BatchContext, by_kind: dict[type, list[tuple[int, Any]]]) -> None:
    def of(kind: type) -> list[Any]:
        return [op for _, op in by_kind.get(kind, ())]

    changes = Changes()
    responses, late = of(PartSubmitted), of(LateId)
    unknown, failed = of(PartUnknown), of(PartFailed)
    settled = responses + late + unknown + failed
    if settled:
        ctx.cache.load(ctx.conn, {op.message_id for op in settled})
    for op in responses:
        _submitted(ctx, op, changes)
    for op in late:
        _late_id(ctx, op, changes)
    for op in unknown:
        _part_status(ctx, op.message_id, op.part_no, Status.UNKNOWN, op.reason, op.smsc,
                     changes)
    for op in failed:
        _part_status(ctx, op.message_id, op.part_no, op.status, op.error_code, op.smsc,
                     changes)
    changes.events.extend((op.message_id, op.part_no, Status.QUEUED, op.reason, ctx.stamp)
                          for op in of(PartResent))
    seen = list(by_kind.get(ReceiptSeen, ()))
    # With several instances (issue 14) another one's bind may have kept a receipt for
    # these ids a moment ago: always look.
    if (ctx.memory.pending_receipts or ctx.memory.owner is not None) and (responses or late):
        seen = [(receipts.LEARNT, op) for op in receipts.take_pending(
            ctx, {(op.smsc, op.smsc_key) for op in responses + late})] + seen
    if seen:
        for message_id, part_no, status, error in receipts.match(ctx, seen):
            _part_status(ctx, message_id, part_no, status, error, None, changes)
    # Lazily: nothing is built for them on a single instance (ctx.touch ignores them).
    ctx.touch(changes.touched, chain(((row[2], row[4]) for row in changes.part_submitted),
                                     ((row[0], row[1]) for row in changes.aliases)))
    run = ctx.sql.run
    run(ctx.conn, PART_SUBMITTED, changes.part_submitted)
    run(ctx.conn, PART_ID, changes.part_id)
    run(ctx.conn, INSERT_ALIAS, changes.aliases)
    if changes.touched:
        _settle(ctx, changes)
    run(ctx.conn, PART_STATUS, changes.part_status)
    run(ctx.conn, INSERT_EVENT, changes.events)


def _submitted(ctx: BatchContext, op: PartSubmitted, changes: Changes) -> None:
    state = ctx.cache.get(op.message_id)
    if state is None or not 1 <= op.part_no <= len(state.parts):
        return
    before = state.parts[op.part_no - 1]
    after = vocabulary.merge(before, Status.SUBMITTED)
    state.parts[op.part_no - 1] = after
    ctx.cache.add_key(state, (op.smsc, op.smsc_key), op.message_id, op.part_no)
    changes.part_submitted.append((op.message_id, op.part_no, op.smsc, op.smsc_id,
                                   op.smsc_key, after, ctx.stamp, ctx.stamp))
    changes.submitted.add(op.message_id)
    _part_event(state, op.message_id, op.part_no, before, after, None, changes, ctx.stamp)


def _late_id(ctx: BatchContext, op: LateId, changes: Changes) -> None:
    state = ctx.cache.get(op.message_id)
    if state is None:
        return
    ctx.cache.add_key(state, (op.smsc, op.smsc_key), op.message_id, op.part_no)
    changes.part_id.append((op.message_id, op.part_no, op.smsc, op.smsc_id, op.smsc_key,
                            ctx.stamp))
    changes.aliases.append((op.smsc, op.smsc_key, op.message_id, op.part_no))


def _part_status(ctx: BatchContext, message_id: str, part_no: int, incoming: str,
                 error: str | None, smsc: str | None, changes: Changes) -> None:
    state = ctx.cache.get(message_id)
    if state is None or not 1 <= part_no <= len(state.parts):
        return
    before = state.parts[part_no - 1]
    after = vocabulary.merge(before, incoming)
    if after == before:
        return  # a duplicate or a late, lesser status: nothing changes
    state.parts[part_no - 1] = after
    changes.part_status.append((message_id, part_no, after, error, smsc, ctx.stamp))
    _part_event(state, message_id, part_no, before, after, error, changes, ctx.stamp)


def _part_event(state: MessageState, message_id: str, part_no: int, before: str,
                after: str, error: str | None, changes: Changes, stamp: Any) -> None:
    changes.touch(message_id, error)
    if after != before and len(state.parts) > 1:
        changes.events.append((message_id, part_no, after, error, stamp))


def _settle(ctx: BatchContext, changes: Changes) -> None:
    """Recompute each touched message's status from its parts; refund the parts
    never accepted when it fails; write history; forget finished messages."""
    stamp = ctx.stamp
    cache = ctx.cache
    updates, refunds = [], defaultdict(int)
    changed: list[tuple[str, int, str, str | None]] = []  # for callbacks (issue 12)
    for message_id, error in changes.touched.items():
        state = cache.get(message_id)
        if state is None:
            continue
        parts = state.parts
        if any(s in (Status.REJECTED, Status.FAILED) for s in parts) and \
                Status.QUEUED in parts:
            # A message the SMSC refused in part is not sent in part: the unsent
            # parts are cancelled, so they neither go out nor count.
            for index, status in enumerate(parts):
                if status == Status.QUEUED:
                    parts[index] = Status.CANCELLED
                    changes.part_status.append((message_id, index + 1, Status.CANCELLED,
                                                None, None, stamp))
        combined = _combine(parts, ctx.memory.receipt_policy.get(state.smsc or "", "all"))
        current = state.status
        after = vocabulary.merge(current, combined) if combined != current else current
        if after != current:
            refund = state.refunded
            before = (current, state.error, state.refunded)  # for the reports' rollups
            if after in (Status.REJECTED, Status.FAILED) and not state.refunded:
                unaccepted = sum(1 for s in parts if s not in ACCEPTED_PART)
                refund = state.points * unaccepted // max(len(parts), 1)
                refunds[state.account_id] += refund
                state.refunded = refund
            state.status = after
            submitted = after == Status.SUBMITTED or message_id in changes.submitted
            if after != Status.SUBMITTED and message_id in changes.submitted and \
                    current == Status.QUEUED:
                # Accepted and settled within one batch (a fast receipt): the
                # history still shows that it was submitted.
                changes.events.append((message_id, None, Status.SUBMITTED, None, stamp))
                changed.append((message_id, state.account_id, Status.SUBMITTED, None))
            updates.append((message_id, after, error, stamp, stamp if submitted else None,
                            stamp if after in vocabulary.FINAL else None, refund))
            state.error = error or state.error  # as COALESCE(?, error_code) writes it
            ctx.rollups.move(state.account_id, message_id, len(parts), state.points, before,
                             (after, state.error, refund))
            changes.events.append((message_id, None, after, error, stamp))
            changed.append((message_id, state.account_id, after, error))
        if after in vocabulary.FINAL and all(s in vocabulary.FINAL for s in parts):
            cache.forget(message_id)
    ctx.sql.run(ctx.conn, MESSAGE_STATUS, updates)
    outbox.message_events(ctx, changed)
    ledger.refund(ctx, refunds)


def _combine(statuses: list[str], policy: str) -> str:
    if all(s == Status.CANCELLED for s in statuses):
        return Status.CANCELLED
    if Status.QUEUED in statuses:
        return Status.QUEUED  # still work to send: recovery finds it by this status
    return vocabulary.combine_parts(
        [s for s in statuses if s != Status.CANCELLED] or statuses, policy)
