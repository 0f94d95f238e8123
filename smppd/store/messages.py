"""New messages: charged and stored `queued` in the transaction that accepts them."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ..status import Status
from . import idempotency, ledger, links
from . import schema as t
from .cache import MessageState
from .operations import Accept, InsufficientBalance, Warm
from .sql import BulkInsert, utc

if TYPE_CHECKING:
    from .context import BatchContext

QUEUED_LITERAL = _QUEUED = f"'{Status.QUEUED.value}'"
INSERT_MESSAGE = BulkInsert(t.messages, (
    "id", "account_id", "job_id", "sender", "recipient", "country", "text", "encoding",
    "parts", "points", "concat_ref", "smsc", "ref_id", "params", "created_at",
    "updated_at", "channel", "sent_by", "partner", "callback_id", "lease_owner"),
    {"refunded": "0", "status": _QUEUED})
INSERT_PART = BulkInsert(t.parts, ("message_id", "part_no", "updated_at"),
                         {"status": _QUEUED})


def accept(ctx: BatchContext, by_kind: dict[type, list[tuple[int, Any]]]) -> None:
    """Charge and store; one the balance cannot pay for is refused (its result is
    InsufficientBalance) and changes nothing."""
    # A retried request whose Idempotency-Key is kept already gets its first answer
    # instead of a second message; the other keys are kept with their messages.
    items = idempotency.claimed(ctx.conn, by_kind[Accept], ctx.results)
    for (index, _), result in zip(items, charge_and_insert(ctx, [op for _, op in items]),
                                  strict=True):
        ctx.results[index] = result
    idempotency.record(ctx.conn, [op.idempotency for index, op in items
                                  if op.idempotency and isinstance(ctx.results[index], str)])


def charge_and_insert(ctx: BatchContext, accepts: Sequence[Accept]) -> list[Any]:
    """Per message: its id, or InsufficientBalance (then nothing of it is written).
    Also used for the replies an MO causes, in the MO's own transaction."""
    if not accepts:
        return []
    # A lone accept (or one written again after a BalanceRace) locks its account's
    # row at once, so it cannot race another instance (smppd.store.ledger).
    balances = ledger.balances(ctx, (op.account_id for op in accepts),
                               lock=len(accepts) == 1)
    charged: dict[int, int] = defaultdict(int)
    accepted, results = [], []
    for op in accepts:
        balance = balances.get(op.account_id, 0)
        if balance < op.points:
            results.append(InsufficientBalance(op.points, balance))
            continue
        balances[op.account_id] = balance - op.points
        charged[op.account_id] += op.points
        accepted.append(op)
        results.append(op.message_id)
    ledger.charge(ctx, charged)
    recoded = insert(ctx, accepted)
    if recoded:  # a short link's code was taken meanwhile: the text to send changed
        for position, op in enumerate(accepts):
            if op.message_id in recoded:
                results[position] = links.Recoded(op.message_id, recoded[op.message_id])
    return results


def insert(ctx: BatchContext, accepted: Sequence[Accept],
           remember: bool = True) -> dict[str, str]:
    """Write messages and their parts, `queued`, and their short links. `remember`:
    keep their state in the writer's memory (not for a big job's rows, which would
    push the messages in flight out of it; those are learnt a page at a time, see
    `warm`). Returns message id -> text for messages whose link codes were replaced."""
    accepted, recoded = links.store(ctx, accepted)
    rows, parts = [], []
    stamps: dict[float, Any] = {}  # a job's rows share one moment: converted once
    # Several instances (issue 14): what this instance's dispatcher takes straight
    # into memory is leased to it; a job's rows are leased a page at a time later.
    owner = ctx.memory.owner if remember else None
    for op in accepted:
        created = stamps.get(op.created_at)
        if created is None:
            created = stamps[op.created_at] = ctx.sql.ts(utc(op.created_at))
        rows.append((op.message_id, op.account_id, op.job_id, op.sender, op.recipient,
                     op.country, op.text, op.encoding, op.parts, op.points, op.concat_ref,
                     op.smsc, op.ref_id, op.params, created, created,
                     op.channel or ("job" if op.job_id else "api"), op.sent_by, op.partner,
                     op.callback_id, owner))
        ctx.rollups.add(op.account_id, op.message_id, Status.QUEUED, None, op.parts, op.points,
                        0)
        parts.extend((op.message_id, n, created) for n in range(1, op.parts + 1))
        if remember:
            ctx.cache.remember(op.message_id,
                               MessageState.new(op.account_id, op.points, op.smsc, op.parts))
    ctx.sql.run(ctx.conn, INSERT_MESSAGE, rows)
    ctx.sql.run(ctx.conn, INSERT_PART, parts)
    return recoded


def warm(ctx: BatchContext, by_kind: dict[type, list[tuple[int, Any]]]) -> None:
    """A job's next page is about to be sent: learn its messages' state now."""
    cache = ctx.cache
    for _, op in by_kind[Warm]:
        for message_id, account_id, points, smsc, parts in op.messages:
            if message_id not in cache:
                cache.remember(message_id, MessageState.new(account_id, points, smsc, parts))


def params_json(params: dict[str, Any] | None) -> str | None:
    """Custom parameters as stored: compact JSON, as the customer wrote them."""
    return None if params is None else json.dumps(params, ensure_ascii=False,
                                                  separators=(",", ":"))
