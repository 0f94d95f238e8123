"""Applying one batch of operations in one transaction.

Why by hand and in bulk: 10,000 receipts must not become 10,000 transactions, nor
10,000 round trips. Each kind of operation becomes a few set-based statements per
batch (one SELECT ... IN for the rows it touches, one executemany for the changes),
and the message-level status is recomputed once per touched message from its parts.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, and_, bindparam, delete, func, select, tuple_, update

from .. import status as st
from . import schema as t
from .operations import (
    Accept,
    FragmentSeen,
    InboundComplete,
    InsufficientBalance,
    LateId,
    PartFailed,
    PartSubmitted,
    PartUnknown,
    ReceiptSeen,
)

CHUNK = 500  # rows per IN (...) list: well under every backend's parameter limit
# Parts the SMSC accepted (charged by the carrier): never refunded.
ACCEPTED_PART = frozenset({st.SUBMITTED, st.DELIVERED, st.UNDELIVERED, st.EXPIRED,
                           st.UNKNOWN, st.DELETED})
DEDUPE_WINDOW_SECONDS = 3600.0


def utc(moment: float | None = None) -> datetime:
    """Naive UTC, the one time zone the store speaks."""
    if moment is None:
        return datetime.now(UTC).replace(tzinfo=None)
    return datetime.fromtimestamp(moment, UTC).replace(tzinfo=None)


def _chunks(items: Sequence[Any]) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), CHUNK):
        yield items[start:start + CHUNK]


class BatchApplier:
    """Stateless between batches except for two hints that save queries: whether
    any receipt is waiting for its id, and the receipt policy per SMSC."""

    def __init__(self, receipt_policy: dict[str, str] | None = None,
                 pending_receipts: int = 0) -> None:
        self.receipt_policy = receipt_policy or {}
        self.pending_receipts = pending_receipts

    def apply(self, conn: Connection, ops: Sequence[Any]) -> list[Any]:
        now = utc()
        results: list[Any] = [None] * len(ops)
        by_kind: dict[type, list[tuple[int, Any]]] = defaultdict(list)
        for index, op in enumerate(ops):
            by_kind[type(op)].append((index, op))
        touched = _Touched()
        if Accept in by_kind:
            self._accept(conn, by_kind[Accept], results, now)
        # Responses before receipts: a receipt in the same batch as its response
        # then finds its part instead of waiting in pending_receipts.
        if PartSubmitted in by_kind:
            self._submitted(conn, [op for _, op in by_kind[PartSubmitted]], touched, now)
        if LateId in by_kind:
            self._late_ids(conn, [op for _, op in by_kind[LateId]], touched, now)
        for kind, new_status in ((PartUnknown, st.UNKNOWN), (PartFailed, None)):
            if kind in by_kind:
                self._part_outcomes(conn, [op for _, op in by_kind[kind]], new_status,
                                    touched, now)
        if ReceiptSeen in by_kind:
            self._receipts(conn, [op for _, op in by_kind[ReceiptSeen]], touched, now)
        if touched:
            self._settle_messages(conn, touched, now)
        if FragmentSeen in by_kind:
            self._fragments(conn, by_kind[FragmentSeen], results, now)
        for index, op in by_kind.get(InboundComplete, []):
            results[index] = self._inbound(conn, op, now)
        return results

    # API accepts -------------------------------------------------------------------

    def _accept(self, conn: Connection, items: list[tuple[int, Accept]], results: list[Any],
                now: datetime) -> None:
        account_ids = sorted({op.account_id for _, op in items})
        query = select(t.accounts.c.id, t.accounts.c.balance).where(
            t.accounts.c.id.in_(account_ids))
        if conn.dialect.name == "postgresql":
            query = query.with_for_update()
        balances = dict(conn.execute(query).all())
        start = dict(balances)
        messages, parts, events = [], [], []
        for index, op in items:
            balance = balances.get(op.account_id, 0)
            if balance < op.points:
                results[index] = InsufficientBalance(op.points, balance)
                continue
            balances[op.account_id] = balance - op.points
            created = utc(op.created_at)
            messages.append({
                "id": op.message_id, "account_id": op.account_id, "job_id": op.job_id,
                "sender": op.sender, "recipient": op.recipient, "country": op.country,
                "text": op.text, "encoding": op.encoding, "parts": op.parts,
                "points": op.points, "refunded": 0, "concat_ref": op.concat_ref,
                "status": st.QUEUED, "smsc": op.smsc, "error_code": None,
                "ref_id": op.ref_id, "params": op.params, "created_at": created,
                "updated_at": created, "submitted_at": None, "final_at": None})
            parts.extend({"message_id": op.message_id, "part_no": n, "smsc": None,
                          "smsc_id": None, "smsc_key": None, "status": st.QUEUED,
                          "error_code": None, "submitted_at": None, "updated_at": created}
                         for n in range(1, op.parts + 1))
            events.append({"message_id": op.message_id, "part_no": None,
                           "status": st.QUEUED, "error_code": None, "at": created})
            results[index] = op.message_id
        changed = [{"b_id": k, "b_balance": v} for k, v in balances.items() if v != start[k]]
        if changed:
            conn.execute(update(t.accounts).where(t.accounts.c.id == bindparam("b_id"))
                         .values(balance=bindparam("b_balance")), changed)
        if messages:
            conn.execute(t.messages.insert(), messages)
            conn.execute(t.parts.insert(), parts)
            conn.execute(t.message_events.insert(), events)

    # SMSC outcomes -------------------------------------------------------------------

    def _submitted(self, conn: Connection, ops: list[PartSubmitted], touched: _Touched,
                   now: datetime) -> None:
        current = _part_statuses(conn, [(op.message_id, op.part_no) for op in ops])
        rows = []
        for op in ops:
            before = current.get((op.message_id, op.part_no))
            if before is None:
                continue
            after = st.merge(before, st.SUBMITTED)
            rows.append({"b_message": op.message_id, "b_part": op.part_no, "b_smsc": op.smsc,
                         "b_id": op.smsc_id, "b_key": op.smsc_key, "b_status": after,
                         "b_at": now})
            touched.add(op.message_id, op.part_no, after, None, before != after)
        if rows:
            conn.execute(
                update(t.parts).where(and_(t.parts.c.message_id == bindparam("b_message"),
                                           t.parts.c.part_no == bindparam("b_part")))
                .values(smsc=bindparam("b_smsc"), smsc_id=bindparam("b_id"),
                        smsc_key=bindparam("b_key"), status=bindparam("b_status"),
                        submitted_at=bindparam("b_at"), updated_at=bindparam("b_at")), rows)
        if self.pending_receipts:
            self._match_pending(conn, [(op.smsc, op.smsc_key) for op in ops], touched, now)

    def _late_ids(self, conn: Connection, ops: list[LateId], touched: _Touched,
                  now: datetime) -> None:
        rows = [{"b_message": op.message_id, "b_part": op.part_no, "b_smsc": op.smsc,
                 "b_id": op.smsc_id, "b_key": op.smsc_key, "b_at": now} for op in ops]
        conn.execute(
            update(t.parts).where(and_(t.parts.c.message_id == bindparam("b_message"),
                                       t.parts.c.part_no == bindparam("b_part")))
            .values(smsc=bindparam("b_smsc"), smsc_id=bindparam("b_id"),
                    smsc_key=bindparam("b_key"), updated_at=bindparam("b_at")), rows)
        if self.pending_receipts:
            self._match_pending(conn, [(op.smsc, op.smsc_key) for op in ops], touched, now)

    def _part_outcomes(self, conn: Connection, ops: list[Any], fixed_status: str | None,
                       touched: _Touched, now: datetime) -> None:
        current = _part_statuses(conn, [(op.message_id, op.part_no) for op in ops])
        rows = []
        for op in ops:
            before = current.get((op.message_id, op.part_no))
            if before is None:
                continue
            incoming = fixed_status or op.status
            after = st.merge(before, incoming)
            error = getattr(op, "error_code", None) or getattr(op, "reason", None)
            rows.append({"b_message": op.message_id, "b_part": op.part_no, "b_status": after,
                         "b_error": error, "b_smsc": op.smsc, "b_at": now})
            touched.add(op.message_id, op.part_no, after, error, before != after)
        if rows:
            conn.execute(
                update(t.parts).where(and_(t.parts.c.message_id == bindparam("b_message"),
                                           t.parts.c.part_no == bindparam("b_part")))
                .values(status=bindparam("b_status"), error_code=bindparam("b_error"),
                        smsc=bindparam("b_smsc"), updated_at=bindparam("b_at")), rows)

    # Receipts ------------------------------------------------------------------------

    def _receipts(self, conn: Connection, ops: list[ReceiptSeen], touched: _Touched,
                  now: datetime) -> None:
        keys = list({(op.smsc, op.smsc_key) for op in ops})
        found: dict[tuple[str, str], list[tuple[str, int, str]]] = defaultdict(list)
        for chunk in _chunks(keys):
            query = select(t.parts.c.smsc, t.parts.c.smsc_key, t.parts.c.message_id,
                           t.parts.c.part_no, t.parts.c.status).where(
                tuple_(t.parts.c.smsc, t.parts.c.smsc_key).in_(chunk))
            for smsc, key, message_id, part_no, status in conn.execute(query):
                found[(smsc, key)].append((message_id, part_no, status))
        rows, waiting = [], []
        state: dict[tuple[str, int], str] = {}
        for op in ops:
            matches = found.get((op.smsc, op.smsc_key))
            if not matches:
                waiting.append({"smsc": op.smsc, "smsc_key": op.smsc_key, "status": op.status,
                                "error_code": op.error_code, "received_at": now})
                continue
            for message_id, part_no, status in matches:
                before = state.get((message_id, part_no), status)
                after = st.merge(before, op.status)
                state[(message_id, part_no)] = after
                if after != before:
                    rows.append({"b_message": message_id, "b_part": part_no,
                                 "b_status": after, "b_error": op.error_code, "b_at": now})
                touched.add(message_id, part_no, after, op.error_code, after != before)
        if rows:
            conn.execute(
                update(t.parts).where(and_(t.parts.c.message_id == bindparam("b_message"),
                                           t.parts.c.part_no == bindparam("b_part")))
                .values(status=bindparam("b_status"), error_code=bindparam("b_error"),
                        updated_at=bindparam("b_at")), rows)
        if waiting:
            conn.execute(t.pending_receipts.insert(), waiting)
            self.pending_receipts += len(waiting)

    def _match_pending(self, conn: Connection, keys: list[tuple[str, str]],
                       touched: _Touched, now: datetime) -> None:
        waiting: list[ReceiptSeen] = []
        ids: list[int] = []
        for chunk in _chunks(keys):
            query = select(t.pending_receipts.c.id, t.pending_receipts.c.smsc,
                           t.pending_receipts.c.smsc_key, t.pending_receipts.c.status,
                           t.pending_receipts.c.error_code).where(
                tuple_(t.pending_receipts.c.smsc, t.pending_receipts.c.smsc_key).in_(chunk))
            for row_id, smsc, key, status, error in conn.execute(query):
                ids.append(row_id)
                waiting.append(ReceiptSeen(smsc, key, status, error))
        if not waiting:
            return
        for chunk in _chunks(ids):
            conn.execute(delete(t.pending_receipts).where(t.pending_receipts.c.id.in_(chunk)))
        self.pending_receipts = max(0, self.pending_receipts - len(ids))
        self._receipts(conn, waiting, touched, now)

    # Message-level status ------------------------------------------------------------

    def _settle_messages(self, conn: Connection, touched: _Touched, now: datetime) -> None:
        """Recompute each touched message's status from all its parts; refund parts
        never accepted when it fails; write history."""
        ids = list(touched.messages)
        info: dict[str, tuple[str, int, int, int, str | None, int]] = {}
        part_rows: dict[str, list[tuple[int, str]]] = defaultdict(list)
        for chunk in _chunks(ids):
            for row in conn.execute(select(
                    t.messages.c.id, t.messages.c.status, t.messages.c.account_id,
                    t.messages.c.points, t.messages.c.parts, t.messages.c.smsc,
                    t.messages.c.refunded).where(t.messages.c.id.in_(chunk))):
                info[row[0]] = (row[1], row[2], row[3], row[4], row[5], row[6])
            for message_id, part_no, status in conn.execute(select(
                    t.parts.c.message_id, t.parts.c.part_no, t.parts.c.status).where(
                    t.parts.c.message_id.in_(chunk)).order_by(t.parts.c.message_id,
                                                              t.parts.c.part_no)):
                part_rows[message_id].append((part_no, status))
        updates, events, refunds = [], [], defaultdict(int)
        for message_id in ids:
            if message_id not in info:
                continue
            current, account_id, points, total, smsc, refunded = info[message_id]
            statuses = [s for _, s in part_rows[message_id]]
            failed = any(s in (st.REJECTED, st.FAILED) for s in statuses)
            if failed:
                # A message the SMSC refused in part is not sent in part: its
                # unsent parts are cancelled, so they neither go out nor count.
                statuses = [st.CANCELLED if s == st.QUEUED else s for s in statuses]
            policy = self.receipt_policy.get(smsc or "", "all")
            combined = _combine(statuses, policy)
            after = st.merge(current, combined) if current != combined else current
            for part_no, status, error, changed in touched.parts.get(message_id, []):
                if changed and total > 1:
                    events.append({"message_id": message_id, "part_no": part_no,
                                   "status": status, "error_code": error, "at": now})
            if after == current:
                continue
            error = touched.error.get(message_id)
            values = {"b_id": message_id, "b_status": after, "b_error": error, "b_at": now,
                      "b_submitted": now if after == st.SUBMITTED else None,
                      "b_final": now if after in st.FINAL else None, "b_refund": refunded}
            if failed and after in (st.REJECTED, st.FAILED) and not refunded:
                unaccepted = sum(1 for s in statuses if s not in ACCEPTED_PART)
                refund = points * unaccepted // max(total, 1)
                if refund:
                    values["b_refund"] = refund
                    refunds[account_id] += refund
                if any(s == st.CANCELLED for s in statuses):
                    conn.execute(update(t.parts).where(and_(
                        t.parts.c.message_id == message_id, t.parts.c.status == st.QUEUED))
                        .values(status=st.CANCELLED, updated_at=now))
            updates.append(values)
            events.append({"message_id": message_id, "part_no": None, "status": after,
                           "error_code": error, "at": now})
        if updates:
            conn.execute(
                update(t.messages).where(t.messages.c.id == bindparam("b_id")).values(
                    status=bindparam("b_status"), updated_at=bindparam("b_at"),
                    error_code=func.coalesce(bindparam("b_error"), t.messages.c.error_code),
                    refunded=bindparam("b_refund"),
                    submitted_at=_coalesce(t.messages.c.submitted_at, "b_submitted"),
                    final_at=_coalesce(t.messages.c.final_at, "b_final")), updates)
        if events:
            conn.execute(t.message_events.insert(), events)
        for account_id, amount in refunds.items():
            conn.execute(update(t.accounts).where(t.accounts.c.id == account_id)
                         .values(balance=t.accounts.c.balance + amount))

    # Inbound -------------------------------------------------------------------------

    def _fragments(self, conn: Connection, items: list[tuple[int, FragmentSeen]],
                   results: list[Any], now: datetime) -> None:
        since = utc(now.replace(tzinfo=UTC).timestamp() - DEDUPE_WINDOW_SECONDS)
        keys = list({op.dedupe_key for _, op in items})
        seen: set[str] = set()
        for chunk in _chunks(keys):
            seen.update(conn.execute(select(t.inbound_fragments.c.dedupe_key).where(
                t.inbound_fragments.c.dedupe_key.in_(chunk),
                t.inbound_fragments.c.received_at >= since)).scalars())
        for index, op in items:
            if op.dedupe_key in seen:
                results[index] = None  # a redelivery: already kept
                continue
            seen.add(op.dedupe_key)
            results[index] = conn.execute(t.inbound_fragments.insert().values(
                smsc=op.smsc, source=op.source, destination=op.destination,
                data_coding=op.data_coding, reference=op.reference, total=op.total,
                number=op.number, payload=op.payload, tlvs=op.tlvs,
                dedupe_key=op.dedupe_key, received_at=now)).inserted_primary_key[0]

    def _inbound(self, conn: Connection, op: InboundComplete, now: datetime) -> int:
        inbound_id = conn.execute(t.inbound_messages.insert().values(
            smsc=op.smsc, source=op.source, destination=op.destination,
            data_coding=op.data_coding, text=op.text, payload=op.payload, parts=op.parts,
            tlvs=op.tlvs, received_at=now)).inserted_primary_key[0]
        for chunk in _chunks(op.fragment_ids):
            conn.execute(update(t.inbound_fragments).where(
                t.inbound_fragments.c.id.in_(chunk)).values(inbound_id=inbound_id))
        return inbound_id


class _Touched:
    """Messages whose parts changed in this batch, for one settle pass."""

    def __init__(self) -> None:
        self.messages: dict[str, None] = {}  # ordered set
        self.parts: dict[str, list[tuple[int, str, str | None, bool]]] = defaultdict(list)
        self.error: dict[str, str | None] = {}

    def __bool__(self) -> bool:
        return bool(self.messages)

    def add(self, message_id: str, part_no: int, status: str, error: str | None,
            changed: bool) -> None:
        self.messages[message_id] = None
        self.parts[message_id].append((part_no, status, error, changed))
        if error:
            self.error[message_id] = error


def _part_statuses(conn: Connection, keys: list[tuple[str, int]]) -> dict[tuple[str, int], str]:
    result: dict[tuple[str, int], str] = {}
    ids = list({message_id for message_id, _ in keys})
    for chunk in _chunks(ids):
        for message_id, part_no, status in conn.execute(select(
                t.parts.c.message_id, t.parts.c.part_no, t.parts.c.status).where(
                t.parts.c.message_id.in_(chunk))):
            result[(message_id, part_no)] = status
    return result


def _combine(statuses: list[str], policy: str) -> str:
    if all(s == st.CANCELLED for s in statuses):
        return st.CANCELLED
    if st.QUEUED in statuses:
        return st.QUEUED  # still work to send: recovery finds it by this status
    return st.combine_parts([s for s in statuses if s != st.CANCELLED] or statuses, policy)


def _coalesce(column: Any, param: str) -> Any:
    return func.coalesce(column, bindparam(param))


def params_json(params: dict[str, Any] | None) -> str | None:
    return None if params is None else json.dumps(params, ensure_ascii=False,
                                                  separators=(",", ":"))
