"""The e-mail forward outbox in the writer: a forward sent, retried later, or given up."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import update

from . import schema as t
from .inbound_ops import ForwardDone
from .sql import utc

if TYPE_CHECKING:
    from .context import BatchContext


def done(ctx: BatchContext, by_kind: dict[type, list[tuple[int, Any]]]) -> None:
    f = t.inbound_forwards
    for index, op in by_kind[ForwardDone]:
        if op.sent:
            values: dict[str, Any] = {"state": "sent", "sent_at": ctx.now, "last_error": None}
        elif op.retry_at is not None:
            values = {"next_attempt_at": utc(op.retry_at), "last_error": op.error}
        else:
            values = {"state": "failed", "last_error": op.error}
        ctx.conn.execute(update(f).where(f.c.id == op.forward_id).values(
            attempts=f.c.attempts + 1, **values))
        ctx.results[index] = True
