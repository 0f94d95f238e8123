"""Applying one batch of operations in one transaction.

Why by hand and in bulk: 10,000 receipts must not become 10,000 transactions, nor
10,000 round trips. The writer thread is the only writer of message state, so it
keeps the state of messages still in progress in memory (`MessageState`, bounded,
reloaded from the database on a miss or after a failed transaction) and turns a
batch into a few executemany statements: no SELECT per message on the hot path.

The hot statements are plain SQL sent through the driver (`exec_driver_sql`):
SQLAlchemy's per-row parameter processing cost more than SQLite's own work. The
SQL is the same for SQLite and PostgreSQL but for the parameter marker; the rare
paths (cache misses, MO, reads) stay in SQLAlchemy Core.
"""

from __future__ import annotations

import json
from collections import OrderedDict, defaultdict
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, func, select, tuple_, update

from .. import status as st
from . import schema as t
from .operations import (
    AbortJob,
    Accept,
    CreateJob,
    FinishJob,
    FragmentSeen,
    InboundComplete,
    InsufficientBalance,
    LateId,
    LedgerEntry,
    PartFailed,
    PartSubmitted,
    PartUnknown,
    PurgePending,
    ReceiptSeen,
    SetJobState,
    StopJob,
    Warm,
)
from .rollups import RollupDeltas, slot_of  # issue 10: reports' rollups, one upsert a batch

CHUNK = 500  # rows per IN (...) list: well under every backend's parameter limit
# Parts the SMSC accepted (charged by the carrier): never refunded.
ACCEPTED_PART = frozenset({st.SUBMITTED, st.DELIVERED, st.UNDELIVERED, st.EXPIRED,
                           st.UNKNOWN, st.DELETED})
DEDUPE_WINDOW_SECONDS = 3600.0
CACHE_LIMIT = 200_000  # messages in progress kept in memory by the writer
ERROR_LENGTH = 32  # error_code columns
ID_LENGTH = 64  # smsc_id / smsc_key columns
ADDRESS_LENGTH = 32  # inbound source / destination columns

_SQL = {
    "insert_message": (
        "INSERT INTO messages (id, account_id, job_id, sender, recipient, country, text, "
        "encoding, parts, points, refunded, concat_ref, status, smsc, error_code, ref_id, "
        "params, created_at, updated_at, submitted_at, final_at, channel, sent_by, partner) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?, 'queued', ?, NULL, ?, ?, ?, ?, NULL, NULL, "
        "?, ?, ?)"),
    "insert_part": "INSERT INTO parts (message_id, part_no, status, updated_at) "
                   "VALUES (?, ?, 'queued', ?)",
    "insert_event": "INSERT INTO message_events (message_id, part_no, status, error_code, at) "
                    "VALUES (?, ?, ?, ?, ?)",
    "charge": "UPDATE accounts SET balance = balance - ? WHERE id = ?",
    "refund": "UPDATE accounts SET balance = balance + ? WHERE id = ?",
    "part_submitted": "UPDATE parts SET smsc = ?, smsc_id = ?, smsc_key = ?, status = ?, "
                      "submitted_at = ?, updated_at = ? WHERE message_id = ? AND part_no = ?",
    "part_id": "UPDATE parts SET smsc = ?, smsc_id = ?, smsc_key = ?, updated_at = ? "
               "WHERE message_id = ? AND part_no = ?",
    "part_status": "UPDATE parts SET status = ?, error_code = COALESCE(?, error_code), "
                   "smsc = COALESCE(?, smsc), updated_at = ? "
                   "WHERE message_id = ? AND part_no = ?",
    "message_status": "UPDATE messages SET status = ?, error_code = COALESCE(?, error_code), "
                      "updated_at = ?, submitted_at = COALESCE(submitted_at, ?), "
                      "final_at = COALESCE(final_at, ?), refunded = ? WHERE id = ?",
    "insert_pending": "INSERT INTO pending_receipts (smsc, smsc_key, status, error_code, "
                      "received_at) VALUES (?, ?, ?, ?, ?)",
}


# SQLite only: the same writes as one statement per batch (multi-row VALUES, and
# UPDATE ... FROM (VALUES ...)). sqlite3's executemany releases and re-takes the GIL
# around every row, and with the reactor thread waiting for the GIL each row became
# a thread switch: the daemon's CPU per message varied by half from run to run. One
# statement is one switch. The number is how many leading columns of a row are
# its key (rows later in a batch win over earlier ones with the same key).
_SQLITE_BULK = {
    "insert_message": _SQL["insert_message"],
    "insert_part": _SQL["insert_part"],
    "insert_event": _SQL["insert_event"],
    "insert_pending": _SQL["insert_pending"],
    "part_submitted": (
        "UPDATE parts SET smsc = v.column3, smsc_id = v.column4, smsc_key = v.column5, "
        "status = v.column6, submitted_at = v.column7, updated_at = v.column8 "
        "FROM (VALUES {rows}) AS v "
        "WHERE parts.message_id = v.column1 AND parts.part_no = v.column2", 2),
    "part_id": (
        "UPDATE parts SET smsc = v.column3, smsc_id = v.column4, smsc_key = v.column5, "
        "updated_at = v.column6 FROM (VALUES {rows}) AS v "
        "WHERE parts.message_id = v.column1 AND parts.part_no = v.column2", 2),
    "part_status": (
        "UPDATE parts SET status = v.column3, error_code = COALESCE(v.column4, "
        "parts.error_code), smsc = COALESCE(v.column5, parts.smsc), updated_at = v.column6 "
        "FROM (VALUES {rows}) AS v "
        "WHERE parts.message_id = v.column1 AND parts.part_no = v.column2", 2),
    "message_status": (
        "UPDATE messages SET status = v.column2, error_code = COALESCE(v.column3, "
        "messages.error_code), updated_at = v.column4, "
        "submitted_at = COALESCE(messages.submitted_at, v.column5), "
        "final_at = COALESCE(messages.final_at, v.column6), refunded = v.column7 "
        "FROM (VALUES {rows}) AS v WHERE messages.id = v.column1", 1),
}
# Row layouts for the bulk updates: the key first (see _SQLITE_BULK), then the values.
_KEY_FIRST = {"part_submitted": (6, 7, 0, 1, 2, 3, 4, 5), "part_id": (4, 5, 0, 1, 2, 3),
              "part_status": (4, 5, 0, 1, 2, 3), "message_status": (6, 0, 1, 2, 3, 4, 5)}
_MAX_SQLITE_PARAMETERS = 30_000


def utc(moment: float | None = None) -> datetime:
    """Naive UTC, the one time zone the store speaks."""
    if moment is None:
        return datetime.now(UTC).replace(tzinfo=None)
    return datetime.fromtimestamp(moment, UTC).replace(tzinfo=None)


def _chunks(items: Sequence[Any]) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), CHUNK):
        yield items[start:start + CHUNK]


class MessageState:
    """What the writer needs to know of a message in progress."""

    __slots__ = ("account_id", "error", "keys", "parts", "points", "refunded", "smsc", "status")

    def __init__(self, status: str, account_id: int, points: int, smsc: str | None,
                 refunded: int, parts: list[str], error: str | None = None) -> None:
        self.status = status
        self.error = error  # the message's error_code column (the rollups key on it)
        self.account_id = account_id
        self.points = points
        self.smsc = smsc
        self.refunded = refunded
        self.parts = parts  # status of part n at index n - 1
        self.keys: list[tuple[str, str]] = []


class _Changes:
    """Rows one batch will write, gathered before any is written."""

    def __init__(self) -> None:
        self.part_submitted: list[tuple[Any, ...]] = []
        self.part_id: list[tuple[Any, ...]] = []
        self.part_status: list[tuple[Any, ...]] = []
        self.events: list[tuple[Any, ...]] = []
        self.touched: dict[str, str | None] = {}  # message id -> newest error in batch
        self.submitted: set[str] = set()  # messages with a part accepted in this batch

    def touch(self, message_id: str, error: str | None) -> None:
        if error or message_id not in self.touched:
            self.touched[message_id] = error


class BatchApplier:
    def __init__(self, receipt_policy: dict[str, str] | None = None,
                 pending_receipts: int = 0, cache_limit: int = CACHE_LIMIT) -> None:
        self.receipt_policy = receipt_policy or {}
        self.pending_receipts = pending_receipts  # a hint that saves a query per batch
        self.cache_limit = cache_limit
        self.states: OrderedDict[str, MessageState] = OrderedDict()
        self.keys: dict[tuple[str, str], list[tuple[str, int]]] = {}
        self._sql: dict[str, str] = {}
        self._postgres = False
        self.rollups = RollupDeltas()  # issue 10

    def reset(self) -> None:
        """Forget the cache: after a failed transaction it may be ahead of the
        database; the database is the truth and is read again on demand."""
        self.states.clear()
        self.keys.clear()

    def _prepare(self, conn: Connection) -> None:
        self._postgres = conn.dialect.name == "postgresql"
        marker = "%s" if conn.dialect.paramstyle in ("format", "pyformat") else "?"
        self._sql = {name: sql.replace("?", marker) for name, sql in _SQL.items()}

    def _ts(self, moment: datetime) -> Any:
        # SQLite keeps DATETIME as text in SQLAlchemy's layout; PostgreSQL takes the object.
        return moment if self._postgres else moment.strftime("%Y-%m-%d %H:%M:%S.%f")

    def _many(self, conn: Connection, name: str, rows: list[tuple[Any, ...]]) -> None:
        if not rows:
            return
        bulk = None if self._postgres else _SQLITE_BULK.get(name)
        if bulk is None:
            conn.exec_driver_sql(self._sql[name], rows)
            return
        if isinstance(bulk, tuple):  # UPDATE ... FROM (VALUES ...)
            template, key_length = bulk
            order = _KEY_FIRST[name]
            latest = {}
            for row in rows:
                arranged = tuple(row[i] for i in order)
                latest[arranged[:key_length]] = arranged
            rows = list(latest.values())
            head, tail = template.split("{rows}")
        else:  # INSERT ... VALUES (...), (...)
            head, values = bulk.split(" VALUES ")
            head, tail = head + " VALUES ", ""
            template = values
        width = len(rows[0])
        group = "(" + ", ".join(["?"] * width) + ")"
        if isinstance(bulk, str):
            group = template  # the INSERT's own VALUES group, constants included
        per_statement = max(1, _MAX_SQLITE_PARAMETERS // width)
        for start in range(0, len(rows), per_statement):
            chunk = rows[start:start + per_statement]
            sql = head + ", ".join([group] * len(chunk)) + tail
            conn.exec_driver_sql(sql, tuple(value for row in chunk for value in row))

    def apply(self, conn: Connection, ops: Sequence[Any]) -> list[Any]:
        if not self._sql:
            self._prepare(conn)
        now = utc()
        stamp = self._ts(now)
        self.rollups = RollupDeltas()  # issue 10: a failed batch's deltas are dropped
        results: list[Any] = [None] * len(ops)
        by_kind: dict[type, list[tuple[int, Any]]] = defaultdict(list)
        for index, op in enumerate(ops):
            _fit(op)
            by_kind[type(op)].append((index, op))
        if Accept in by_kind:
            self._accept(conn, by_kind[Accept], results)
        for index, op in by_kind.get(LedgerEntry, ()):
            results[index] = self._ledger(conn, op)
        for index, op in by_kind.get(CreateJob, ()):
            results[index] = self._create_job(conn, op)
        for _, op in by_kind.get(Warm, ()):
            for message_id, account_id, points, smsc, parts in op.messages:
                if message_id not in self.states:
                    self._remember(message_id, MessageState(st.QUEUED, account_id, points,
                                                            smsc, 0, [st.QUEUED] * parts))
        for index, op in by_kind.get(PurgePending, ()):
            results[index] = self._purge_pending(conn, op)
        for index, op in by_kind.get(FinishJob, ()):
            results[index] = self._finish_job(conn, op)
        for index, op in by_kind.get(AbortJob, ()):
            results[index] = self._abort_job(conn, op)
        for index, op in by_kind.get(SetJobState, ()):
            results[index] = self._set_job_state(conn, op, stamp)
        for index, op in by_kind.get(StopJob, ()):
            results[index] = self._stop_job(conn, op, stamp)
        changes = _Changes()
        outcome_kinds = (PartSubmitted, LateId, PartUnknown, PartFailed)
        outcomes = [op for kind in outcome_kinds for _, op in by_kind.get(kind, ())]
        receipts = [op for _, op in by_kind.get(ReceiptSeen, ())]
        if outcomes:
            self._load(conn, {op.message_id for op in outcomes})
        # Responses before receipts: a receipt in the same batch as its response
        # then finds its part instead of waiting in pending_receipts.
        for _, op in by_kind.get(PartSubmitted, ()):
            self._submitted(op, changes, stamp)
        for _, op in by_kind.get(LateId, ()):
            self._late_id(op, changes, stamp)
        for _, op in by_kind.get(PartUnknown, ()):
            self._part_status(op.message_id, op.part_no, st.UNKNOWN, op.reason, op.smsc,
                              changes, stamp)
        for _, op in by_kind.get(PartFailed, ()):
            self._part_status(op.message_id, op.part_no, op.status, op.error_code, op.smsc,
                              changes, stamp)
        if self.pending_receipts and (by_kind.get(PartSubmitted) or by_kind.get(LateId)):
            receipts = self._take_pending(conn, by_kind) + receipts
        if receipts:
            self._receipts(conn, receipts, changes, stamp)
        self._many(conn, "part_submitted", changes.part_submitted)
        self._many(conn, "part_id", changes.part_id)
        if changes.touched:
            self._settle(conn, changes, stamp)
        self._many(conn, "part_status", changes.part_status)
        self._many(conn, "insert_event", changes.events)
        if FragmentSeen in by_kind:
            self._fragments(conn, by_kind[FragmentSeen], results, now)
        for index, op in by_kind.get(InboundComplete, ()):
            results[index] = self._inbound(conn, op, now)
        self.rollups.write(conn)  # issue 10: one upsert for the batch
        return results

    # API accepts -------------------------------------------------------------------

    def _balances(self, conn: Connection, account_ids: Iterable[int]) -> dict[int, int]:
        query = select(t.accounts.c.id, t.accounts.c.balance).where(
            t.accounts.c.id.in_(sorted(set(account_ids))))
        if self._postgres:
            query = query.with_for_update()  # several instances may share the database
        return dict(conn.execute(query).all())

    def _accept(self, conn: Connection, items: list[tuple[int, Accept]],
                results: list[Any]) -> None:
        balances = self._balances(conn, (op.account_id for _, op in items))
        charged: dict[int, int] = defaultdict(int)
        accepted = []
        for index, op in items:
            balance = balances.get(op.account_id, 0)
            if balance < op.points:
                results[index] = InsufficientBalance(op.points, balance)
                continue
            balances[op.account_id] = balance - op.points
            charged[op.account_id] += op.points
            accepted.append(op)
            results[index] = op.message_id
        self._many(conn, "charge", [(points, account) for account, points in charged.items()])
        self._insert_messages(conn, accepted)

    def _ledger(self, conn: Connection, op: LedgerEntry) -> Any:
        balance = self._balances(conn, (op.account_id,)).get(op.account_id)
        if balance is None:
            return KeyError(f"no account with id {op.account_id}")
        after = balance + op.points
        if after < 0 and op.points < 0 and not op.allow_negative:
            return InsufficientBalance(-op.points, balance)
        conn.execute(update(t.accounts).where(t.accounts.c.id == op.account_id).values(
            balance=t.accounts.c.balance + op.points))
        conn.execute(t.ledger_entries.insert().values(
            account_id=op.account_id, kind=op.kind, points=op.points, balance_after=after,
            reference=op.reference, note=op.note, created_by=op.created_by,
            created_at=utc()))
        return after

    def _insert_messages(self, conn: Connection, accepted: Sequence[Accept],
                         remember: bool = True) -> None:
        messages, parts = [], []
        for op in accepted:
            created = self._ts(utc(op.created_at))
            messages.append((op.message_id, op.account_id, op.job_id, op.sender, op.recipient,
                             op.country, op.text, op.encoding, op.parts, op.points,
                             op.concat_ref, op.smsc, op.ref_id, op.params, created, created,
                             op.channel or ("job" if op.job_id else "api"), op.sent_by,
                             op.partner))
            self.rollups.add(op.account_id, op.message_id, st.QUEUED, None, op.parts,
                             op.points, 0)  # issue 10
            parts.extend((op.message_id, n, created) for n in range(1, op.parts + 1))
            if remember:
                self._remember(op.message_id, MessageState(
                    st.QUEUED, op.account_id, op.points, op.smsc, 0, [st.QUEUED] * op.parts))
        self._many(conn, "insert_message", messages)
        self._many(conn, "insert_part", parts)

    # Jobs --------------------------------------------------------------------------

    def _create_job(self, conn: Connection, op: CreateJob) -> Any:
        total = sum(message.points for message in op.messages)
        balance = self._balances(conn, [op.account_id]).get(op.account_id, 0)
        if balance < total:
            return InsufficientBalance(total, balance)
        j = t.jobs.c
        exists = conn.execute(select(j.id).where(j.id == op.job_id)).scalar()
        if exists is None:
            created = utc(op.created_at)
            conn.execute(t.jobs.insert().values(
                id=op.job_id, account_id=op.account_id, name=op.name, sender=op.sender,
                text=op.text, state="creating", throughput=op.throughput,
                start_at=utc(op.start_at) if op.start_at is not None else None,
                recipients=len(op.messages), rejected_rows=0, row_errors=None, points=total,
                refunded=0, created_at=created, updated_at=created,
                description=op.description))  # issue 10
        else:
            conn.execute(update(t.jobs).where(j.id == op.job_id).values(
                recipients=j.recipients + len(op.messages), points=j.points + total))
        self._many(conn, "charge", [(total, op.account_id)])
        # Not cached: a big job would push the messages in flight out of the cache.
        self._insert_messages(conn, op.messages, remember=False)
        return op.job_id

    def _purge_pending(self, conn: Connection, op: PurgePending) -> int:
        since = utc(datetime.now(UTC).timestamp() - op.max_age)
        result = conn.execute(t.pending_receipts.delete().where(
            t.pending_receipts.c.received_at < since))
        purged = result.rowcount or 0
        self.pending_receipts = max(0, self.pending_receipts - purged)
        return purged

    def _finish_job(self, conn: Connection, op: FinishJob) -> Any:
        j = t.jobs.c
        conn.execute(update(t.jobs).where(j.id == op.job_id, j.state == "creating").values(
            state=op.state, rejected_rows=op.rejected_rows, row_errors=op.row_errors,
            updated_at=utc()))
        return op.state

    def _abort_job(self, conn: Connection, op: AbortJob) -> Any:
        j, m = t.jobs.c, t.messages.c
        row = conn.execute(select(j.account_id, j.points).where(
            j.id == op.job_id, j.state == "creating")).first()
        if row is None:
            return 0
        self._unroll_job(conn, row.account_id, op.job_id)  # issue 10
        ids = select(m.id).where(m.job_id == op.job_id).scalar_subquery()
        conn.execute(t.parts.delete().where(t.parts.c.message_id.in_(ids)))
        conn.execute(t.messages.delete().where(m.job_id == op.job_id))
        conn.execute(t.jobs.delete().where(j.id == op.job_id))
        self._many(conn, "refund", [(row.points, row.account_id)])
        return row.points

    def _unroll_job(self, conn: Connection, account_id: int, job_id: str) -> None:
        """Issue 10: take a job's messages out of the rollups before they are deleted.
        A job's messages are written within minutes, so each (status, error) group
        almost always lies in one 15-minute slot: one row per group; otherwise its
        messages are read one by one (an abort is rare)."""
        m = t.messages.c
        groups = conn.execute(select(
            m.status, m.error_code, func.min(m.id), func.max(m.id), func.count(),
            func.sum(m.parts), func.sum(m.points), func.sum(m.refunded)).where(
            m.job_id == job_id).group_by(m.status, m.error_code)).all()
        for status, error, low, high, count, parts, points, refunded in groups:
            if slot_of(low) == slot_of(high):
                self.rollups.add_sums((account_id, slot_of(low), status, error or ""),
                                      -count, -int(parts), -int(points), -int(refunded))
                continue
            for row in conn.execute(select(m.id, m.parts, m.points, m.refunded).where(
                    m.job_id == job_id, m.status == status, m.error_code.is_(error)
                    if error is None else m.error_code == error)):
                self.rollups.add(account_id, row.id, status, error, row.parts, row.points,
                                 row.refunded, -1)

    def _set_job_state(self, conn: Connection, op: SetJobState, stamp: Any) -> Any:
        j = t.jobs.c
        state = conn.execute(select(j.state).where(
            j.id == op.job_id, j.account_id == op.account_id)).scalar()
        if state is None:
            return None
        if state == op.state or state not in op.allowed_from:
            return state  # idempotent, and a stopped or completed job stays so
        conn.execute(update(t.jobs).where(j.id == op.job_id).values(
            state=op.state, updated_at=utc()))
        return op.state

    def _stop_job(self, conn: Connection, op: StopJob, stamp: Any) -> Any:
        j, m, p = t.jobs.c, t.messages.c, t.parts.c
        state = conn.execute(select(j.state).where(
            j.id == op.job_id, j.account_id == op.account_id)).scalar()
        if state is None or state == "creating":
            return None  # a job still being written does not exist yet
        # Only messages not even partly sent: a part out of the door is the carrier's.
        started = select(p.message_id).where(p.message_id == m.id, p.status != st.QUEUED)
        rows = conn.execute(select(m.id, m.points, m.parts, m.error_code, m.refunded).where(
            m.job_id == op.job_id, m.status == st.QUEUED, ~started.exists())).all()
        cancelled = [row for row in rows if row.id not in op.in_flight]
        refund = sum(row.points for row in cancelled)
        ids = [row.id for row in cancelled]
        for row in cancelled:  # issue 10
            self.rollups.move(op.account_id, row.id, row.parts, row.points,
                              (st.QUEUED, row.error_code, row.refunded),
                              (st.CANCELLED, row.error_code, row.points))
        for chunk in _chunks(ids):
            conn.execute(update(t.messages).where(m.id.in_(chunk)).values(
                status=st.CANCELLED, refunded=m.points, updated_at=utc(), final_at=utc()))
            conn.execute(update(t.parts).where(p.message_id.in_(chunk)).values(
                status=st.CANCELLED, updated_at=utc()))
        self._many(conn, "insert_event", [(message_id, None, st.CANCELLED, "job stopped",
                                           stamp) for message_id in ids])
        for message_id in ids:
            state_cached = self.states.pop(message_id, None)
            if state_cached is not None:
                self._forget_keys(state_cached)
        if refund:
            self._many(conn, "refund", [(refund, op.account_id)])
        conn.execute(update(t.jobs).where(j.id == op.job_id).values(
            state="stopped" if state != "completed" else state,
            refunded=j.refunded + refund, updated_at=utc()))
        return len(ids), refund

    # Message state cache ---------------------------------------------------------------

    def _remember(self, message_id: str, state: MessageState) -> None:
        self.states[message_id] = state
        if len(self.states) > self.cache_limit:
            _, oldest = self.states.popitem(last=False)
            self._forget_keys(oldest)

    def _forget_keys(self, state: MessageState) -> None:
        for key in state.keys:
            self.keys.pop(key, None)

    def _load(self, conn: Connection, message_ids: Iterable[str]) -> None:
        missing = [m for m in message_ids if m not in self.states]
        for chunk in _chunks(missing):
            m = t.messages.c
            rows = conn.execute(select(m.id, m.status, m.account_id, m.points, m.smsc,
                                       m.refunded, m.parts, m.error_code)
                                .where(m.id.in_(chunk))).all()
            part_rows: dict[str, dict[int, tuple[str, str | None, str | None]]] = \
                defaultdict(dict)
            for message_id, part_no, status, smsc, key in conn.execute(select(
                    t.parts.c.message_id, t.parts.c.part_no, t.parts.c.status,
                    t.parts.c.smsc, t.parts.c.smsc_key).where(
                    t.parts.c.message_id.in_(chunk))):
                part_rows[message_id][part_no] = (status, smsc, key)
            for row in rows:
                found = part_rows[row.id]
                state = MessageState(row.status, row.account_id, row.points, row.smsc,
                                     row.refunded, [found.get(n, (st.QUEUED, None, None))[0]
                                                    for n in range(1, row.parts + 1)],
                                     row.error_code)
                for part_no, (_status, smsc, key) in found.items():
                    if smsc and key:
                        self._add_key(state, (smsc, key), row.id, part_no)
                self._remember(row.id, state)

    def _add_key(self, state: MessageState, key: tuple[str, str], message_id: str,
                 part_no: int) -> None:
        targets = self.keys.setdefault(key, [])
        if (message_id, part_no) not in targets:
            targets.append((message_id, part_no))
            state.keys.append(key)

    # SMSC outcomes -------------------------------------------------------------------

    def _submitted(self, op: PartSubmitted, changes: _Changes, stamp: Any) -> None:
        state = self.states.get(op.message_id)
        if state is None or not 1 <= op.part_no <= len(state.parts):
            return
        before = state.parts[op.part_no - 1]
        after = st.merge(before, st.SUBMITTED)
        state.parts[op.part_no - 1] = after
        self._add_key(state, (op.smsc, op.smsc_key), op.message_id, op.part_no)
        changes.part_submitted.append((op.smsc, op.smsc_id, op.smsc_key, after, stamp, stamp,
                                       op.message_id, op.part_no))
        changes.submitted.add(op.message_id)
        self._part_event(state, op.message_id, op.part_no, before, after, None, changes, stamp)

    def _late_id(self, op: LateId, changes: _Changes, stamp: Any) -> None:
        state = self.states.get(op.message_id)
        if state is None:
            return
        self._add_key(state, (op.smsc, op.smsc_key), op.message_id, op.part_no)
        changes.part_id.append((op.smsc, op.smsc_id, op.smsc_key, stamp, op.message_id,
                                op.part_no))

    def _part_status(self, message_id: str, part_no: int, incoming: str, error: str | None,
                     smsc: str | None, changes: _Changes, stamp: Any) -> None:
        state = self.states.get(message_id)
        if state is None or not 1 <= part_no <= len(state.parts):
            return
        before = state.parts[part_no - 1]
        after = st.merge(before, incoming)
        if after == before:
            return  # a duplicate or a late, lesser status: nothing changes
        state.parts[part_no - 1] = after
        changes.part_status.append((after, error, smsc, stamp, message_id, part_no))
        self._part_event(state, message_id, part_no, before, after, error, changes, stamp)

    @staticmethod
    def _part_event(state: MessageState, message_id: str, part_no: int, before: str,
                    after: str, error: str | None, changes: _Changes, stamp: Any) -> None:
        changes.touch(message_id, error)
        if after != before and len(state.parts) > 1:
            changes.events.append((message_id, part_no, after, error, stamp))

    # Receipts ------------------------------------------------------------------------

    def _receipts(self, conn: Connection, ops: list[ReceiptSeen], changes: _Changes,
                  stamp: Any) -> None:
        unknown = list({(op.smsc, op.smsc_key) for op in ops} - self.keys.keys())
        if unknown:
            self._load_keys(conn, unknown)
        waiting = []
        for op in ops:
            targets = self.keys.get((op.smsc, op.smsc_key))
            if not targets:
                waiting.append((op.smsc, op.smsc_key, op.status, op.error_code, stamp))
                continue
            for message_id, part_no in targets:
                self._part_status(message_id, part_no, op.status, op.error_code, None,
                                  changes, stamp)
        if waiting:
            self._many(conn, "insert_pending", waiting)
            self.pending_receipts += len(waiting)

    def _load_keys(self, conn: Connection, keys: list[tuple[str, str]]) -> None:
        found: list[tuple[str, str, str, int]] = []
        for chunk in _chunks(keys):
            found.extend(conn.execute(select(
                t.parts.c.smsc, t.parts.c.smsc_key, t.parts.c.message_id, t.parts.c.part_no)
                .where(tuple_(t.parts.c.smsc, t.parts.c.smsc_key).in_(chunk))).all())
        self._load(conn, {row[2] for row in found})
        for smsc, key, message_id, part_no in found:
            state = self.states.get(message_id)
            if state is not None:
                self._add_key(state, (smsc, key), message_id, part_no)

    def _take_pending(self, conn: Connection,
                      by_kind: dict[type, list[tuple[int, Any]]]) -> list[ReceiptSeen]:
        keys = list({(op.smsc, op.smsc_key) for kind in (PartSubmitted, LateId)
                     for _, op in by_kind.get(kind, ())})
        waiting: list[ReceiptSeen] = []
        ids: list[int] = []
        p = t.pending_receipts.c
        for chunk in _chunks(keys):
            for row_id, smsc, key, status, error in conn.execute(select(
                    p.id, p.smsc, p.smsc_key, p.status, p.error_code).where(
                    tuple_(p.smsc, p.smsc_key).in_(chunk)).order_by(p.id)):
                ids.append(row_id)
                waiting.append(ReceiptSeen(smsc, key, status, error))
        for chunk in _chunks(ids):
            conn.execute(t.pending_receipts.delete().where(p.id.in_(chunk)))
        self.pending_receipts = max(0, self.pending_receipts - len(ids))
        return waiting

    # Message-level status ------------------------------------------------------------

    def _settle(self, conn: Connection, changes: _Changes, stamp: Any) -> None:
        """Recompute each touched message's status from its parts; refund the parts
        never accepted when it fails; write history; forget finished messages."""
        updates, refunds = [], defaultdict(int)
        for message_id, error in changes.touched.items():
            state = self.states.get(message_id)
            if state is None:
                continue
            parts = state.parts
            if any(s in (st.REJECTED, st.FAILED) for s in parts) and st.QUEUED in parts:
                # A message the SMSC refused in part is not sent in part: the unsent
                # parts are cancelled, so they neither go out nor count.
                for index, status in enumerate(parts):
                    if status == st.QUEUED:
                        parts[index] = st.CANCELLED
                        changes.part_status.append((st.CANCELLED, None, None, stamp,
                                                    message_id, index + 1))
            combined = _combine(parts, self.receipt_policy.get(state.smsc or "", "all"))
            current = state.status
            after = st.merge(current, combined) if combined != current else current
            if after != current:
                refund = state.refunded
                before = (current, state.error, state.refunded)  # issue 10: rollups
                if after in (st.REJECTED, st.FAILED) and not state.refunded:
                    unaccepted = sum(1 for s in parts if s not in ACCEPTED_PART)
                    refund = state.points * unaccepted // max(len(parts), 1)
                    refunds[state.account_id] += refund
                    state.refunded = refund
                state.status = after
                submitted = after == st.SUBMITTED or message_id in changes.submitted
                if after != st.SUBMITTED and message_id in changes.submitted and \
                        current == st.QUEUED:
                    # Accepted and settled within one batch (a fast receipt): the
                    # history still shows that it was submitted.
                    changes.events.append((message_id, None, st.SUBMITTED, None, stamp))
                updates.append((after, error, stamp, stamp if submitted else None,
                                stamp if after in st.FINAL else None, refund, message_id))
                state.error = error or state.error  # as COALESCE(?, error_code) writes it
                self.rollups.move(state.account_id, message_id, len(parts), state.points,
                                  before, (after, state.error, refund))  # issue 10
                changes.events.append((message_id, None, after, error, stamp))
            if after in st.FINAL and all(s in st.FINAL for s in parts):
                self.states.pop(message_id, None)
                self._forget_keys(state)
        self._many(conn, "message_status", updates)
        self._many(conn, "refund", [(amount, account) for account, amount in refunds.items()
                                    if amount])

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


def _cut(text: str | None, length: int) -> str | None:
    return text[:length] if text else text


def _fit(op: Any) -> None:
    """Cut what the SMSC wrote to the columns that keep it. The codec reads fields as
    long as the peer sent them, and PostgreSQL refuses an over-long value: uncut, a
    vendor's long `err:` text or a 100-character id would fail its write, and the SMSC
    would redeliver it for ever. Ids are cut alike on both sides, so they still match."""
    if isinstance(op, PartSubmitted | LateId):
        op.smsc_id = _cut(op.smsc_id, ID_LENGTH)
        op.smsc_key = _cut(op.smsc_key, ID_LENGTH)
    elif isinstance(op, ReceiptSeen):
        op.smsc_key = _cut(op.smsc_key, ID_LENGTH)
        op.error_code = _cut(op.error_code, ERROR_LENGTH)
    elif isinstance(op, PartFailed):
        op.error_code = _cut(op.error_code, ERROR_LENGTH)
    elif isinstance(op, PartUnknown):
        op.reason = _cut(op.reason, ERROR_LENGTH)
    elif isinstance(op, FragmentSeen | InboundComplete):
        op.source = _cut(op.source, ADDRESS_LENGTH)
        op.destination = _cut(op.destination, ADDRESS_LENGTH)


def _combine(statuses: list[str], policy: str) -> str:
    if all(s == st.CANCELLED for s in statuses):
        return st.CANCELLED
    if st.QUEUED in statuses:
        return st.QUEUED  # still work to send: recovery finds it by this status
    return st.combine_parts([s for s in statuses if s != st.CANCELLED] or statuses, policy)


def params_json(params: dict[str, Any] | None) -> str | None:
    return None if params is None else json.dumps(params, ensure_ascii=False,
                                                  separators=(",", ":"))
