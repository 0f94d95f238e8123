"""The writer's memory of messages in progress: their state, and the SMSC ids that
point at their parts.

Why: the writer thread is the only writer of message state, so it can know the
state of what it is tracking without a SELECT per outcome or per receipt. The
memory is bounded (least recently used first out) and is only a cache: after a
failed transaction it is dropped, and a miss reads the database, which stays the
truth.
"""

from __future__ import annotations

from collections import OrderedDict, defaultdict
from collections.abc import Iterable
from typing import Any

from sqlalchemy import Connection, select, tuple_

from ..status import Status
from . import schema as t
from .sql import chunks

CACHE_LIMIT = 200_000  # messages in progress kept in memory by the writer
PartKey = tuple[str, str]  # (smsc, normalised SMSC id)


class MessageState:
    """What the writer needs to know of a message in progress."""

    __slots__ = ("account_id", "error", "keys", "parts", "points", "refunded", "smsc",
                 "status")

    def __init__(self, status: str, account_id: int, points: int, smsc: str | None,
                 refunded: int, parts: list[str], error: str | None = None) -> None:
        self.status = status
        self.error = error  # the message's error_code column (the rollups key on it)
        self.account_id = account_id
        self.points = points
        self.smsc = smsc
        self.refunded = refunded
        self.parts = parts  # status of part n at index n - 1
        self.keys: list[PartKey] = []

    @classmethod
    def new(cls, account_id: int, points: int, smsc: str | None,
            parts: int) -> MessageState:
        return cls(Status.QUEUED, account_id, points, smsc, 0, [Status.QUEUED] * parts)


class InProgress:
    """Message id -> state, and SMSC id -> the parts it names."""

    def __init__(self, limit: int = CACHE_LIMIT) -> None:
        self.limit = limit
        self.states: OrderedDict[str, MessageState] = OrderedDict()
        self.keys: dict[PartKey, list[tuple[str, int]]] = {}

    def clear(self) -> None:
        self.states.clear()
        self.keys.clear()

    def get(self, message_id: str) -> MessageState | None:
        return self.states.get(message_id)

    def __contains__(self, message_id: str) -> bool:
        return message_id in self.states

    def remember(self, message_id: str, state: MessageState) -> None:
        self.states[message_id] = state
        if len(self.states) > self.limit:
            _, oldest = self.states.popitem(last=False)
            self._forget_keys(oldest)

    def forget(self, message_id: str) -> None:
        state = self.states.pop(message_id, None)
        if state is not None:
            self._forget_keys(state)

    def forget_key(self, key: PartKey) -> None:
        """Another writer stored this SMSC id (smppd.store.epoch): which parts it names
        is read again from the database on its next receipt."""
        self.keys.pop(key, None)

    def _forget_keys(self, state: MessageState) -> None:
        for key in state.keys:
            self.keys.pop(key, None)

    def add_key(self, state: MessageState, key: PartKey, message_id: str,
                part_no: int) -> None:
        targets = self.keys.setdefault(key, [])
        if (message_id, part_no) not in targets:
            targets.append((message_id, part_no))
            state.keys.append(key)

    def parts_for(self, key: PartKey) -> list[tuple[str, int]] | None:
        return self.keys.get(key)

    # Misses: read the database ------------------------------------------------------

    def load(self, conn: Connection, message_ids: Iterable[str]) -> None:
        """Read the state of messages not in memory (and their parts' SMSC ids)."""
        missing = [m for m in message_ids if m not in self.states]
        m, p = t.messages.c, t.parts.c
        for chunk in chunks(missing):
            rows = conn.execute(select(m.id, m.status, m.account_id, m.points, m.smsc,
                                       m.refunded, m.parts, m.error_code)
                                .where(m.id.in_(chunk))).all()
            found: dict[str, dict[int, tuple[str, str | None, str | None]]] = \
                defaultdict(dict)
            for message_id, part_no, status, smsc, key in conn.execute(select(
                    p.message_id, p.part_no, p.status, p.smsc, p.smsc_key).where(
                    p.message_id.in_(chunk))):
                found[message_id][part_no] = (status, smsc, key)
            for row in rows:
                parts = found[row.id]
                state = MessageState(row.status, row.account_id, row.points, row.smsc,
                                     row.refunded,
                                     [parts.get(n, (Status.QUEUED, None, None))[0]
                                      for n in range(1, row.parts + 1)], row.error_code)
                for part_no, (_status, smsc, key) in parts.items():
                    if smsc and key:
                        self.add_key(state, (smsc, key), row.id, part_no)
                self.remember(row.id, state)

    def load_keys(self, conn: Connection, keys: list[PartKey]) -> None:
        """Read which parts carry these SMSC ids (receipts for messages not in memory)."""
        p, a = t.parts.c, t.part_aliases.c
        found: list[Any] = []
        for chunk in chunks(keys):
            found.extend(conn.execute(select(p.smsc, p.smsc_key, p.message_id, p.part_no)
                                      .where(tuple_(p.smsc, p.smsc_key).in_(chunk))).all())
            found.extend(conn.execute(select(a.smsc, a.smsc_key, a.message_id, a.part_no)
                                      .where(tuple_(a.smsc, a.smsc_key).in_(chunk))).all())
        self.load(conn, {row[2] for row in found})
        for smsc, key, message_id, part_no in found:
            state = self.states.get(message_id)
            if state is not None:
                self.add_key(state, (smsc, key), message_id, part_no)
