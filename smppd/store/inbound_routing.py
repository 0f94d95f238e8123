"""A completed MO in the transaction that stores it: routed to its account, counted
as a vote when a poll catches it, answered and forwarded.

Everything an MO causes is decided and written in the one transaction that stores
it: its account, its vote and the vote's outcome, the discount code it got, the
replies and SMS forwards (as queued, charged messages: smppd.store.messages) and
the e-mail forwards (an outbox row). The deliver_sm that completed the MO is
answered after that commit, so a crash either loses none of it or redoes all of it
(the SMSC redelivers the unanswered part) and never half of it; and a reply can
neither be lost nor sent twice.

Per batch, each kind of fact is read once for all the batch's messages (holders,
polls, settings, earlier votes, group members, reply counts) and written as one
statement per table where no id is needed back.
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import DateTime, bindparam, func, select

from ..checks import ApiError
from ..ids import new_id
from ..inbound import polls as pl
from ..inbound.guards import reply_address
from ..inbound.pool import InboundRuntime, display, normalise
from ..inbound.routing import Holding, Route, route
from ..logs import mask_number
from . import messages, outbox
from . import schema as t
from .inbound_ops import InboundStored
from .operations import Accept, InboundComplete
from .sql import BulkInsert, chunks, utc

if TYPE_CHECKING:
    from .context import BatchContext

log = logging.getLogger("smppd.inbound")
HOUR = 3600.0
_INSERT_MESSAGE = BulkInsert(t.inbound_messages, (
    "id", "smsc", "source", "destination", "data_coding", "text", "payload", "parts", "tlvs",
    "received_at", "account_id", "prefix", "body", "route", "reason"))
_INSERT_VOTE = BulkInsert(t.poll_votes, (
    "id", "poll_id", "inbound_id", "sender", "option_no", "answer", "outcome", "code",
    "reply_message_id", "received_at"))
_INSERT_REPLY = BulkInsert(t.inbound_replies, (
    "account_id", "inbound_id", "kind", "recipient", "message_id", "created_at"))
_INSERT_FORWARD = BulkInsert(t.inbound_forwards, (
    "account_id", "inbound_id", "recipients", "next_attempt_at", "created_at"),
    {"state": "'pending'", "attempts": "0"})
_AUTOMATIC = ("auto_reply", "poll")  # the kinds the hourly limit counts

# The batch's reads, built once. A select() built per batch cost SQLAlchemy more
# (building the expression, then its cache key) than the database's own work: several
# milliseconds of CPU per batch, whatever its size, so most of an MO's cost when MO
# come a few at a time. Lists go in as expanding parameters.
_r, _p, _o, _s = (t.inbound_reservations.c, t.polls.c, t.poll_options.c,
                  t.inbound_settings.c)
_HOLDINGS = select(_r.account_id, _r.number, _r.prefix_key, _r.starts_at, _r.ends_at).where(
    _r.number.in_(bindparam("numbers", expanding=True)))
_POLLS = select(t.polls).where(_p.number.in_(bindparam("numbers", expanding=True)),
                               _p.ends_at > bindparam("ended_after", type_=DateTime))
_OPTIONS = select(t.poll_options).where(
    _o.poll_id.in_(bindparam("polls", expanding=True))).order_by(_o.poll_id, _o.option_no)
_SETTINGS = select(t.inbound_settings).where(
    _s.number.in_(bindparam("numbers", expanding=True)))
_c, _m, _g = t.contacts.c, t.contact_group_members.c, t.contact_groups.c
_MEMBERS = select(_c.phone).distinct().select_from(t.contacts.join(
    t.contact_group_members, _m.contact_id == _c.id).join(
    t.contact_groups, _g.id == _m.group_id)).where(
    _c.account_id == bindparam("account"), _c.phone.in_(bindparam("phones", expanding=True)),
    _g.name.in_(bindparam("groups", expanding=True)))
_v, _ir = t.poll_votes.c, t.inbound_replies.c
_EARLIER_VOTES = select(_v.sender, _v.received_at).where(
    _v.poll_id == bindparam("poll"), _v.sender.in_(bindparam("senders", expanding=True)),
    _v.outcome == pl.ACCEPTED, _v.received_at >= bindparam("since", type_=DateTime))
_RECENT_REPLIES = select(_ir.recipient, func.count()).where(
    _ir.recipient.in_(bindparam("recipients", expanding=True)), _ir.kind.in_(_AUTOMATIC),
    _ir.message_id.isnot(None), _ir.created_at >= bindparam("since", type_=DateTime)
).group_by(_ir.recipient)


def _seconds(value: Any) -> float:
    return value.replace(tzinfo=UTC).timestamp()


@dataclass(slots=True)
class _Mo:
    index: int
    op: InboundComplete
    at: float
    number: str
    sender: str  # digits as the SMSC wrote them, '+' removed
    route: Route
    loop: bool
    stamp: Any  # `at` as the store's timestamp parameter (the message's and its vote's)
    inbound_id: int = 0
    poll: pl.Poll | None = None
    option: pl.Option | None = None
    outcome: str | None = None
    code: str | None = None
    code_id: int | None = None
    pool_empty: bool = False
    accepts: list[Accept] = field(default_factory=list)
    emails: int = 0
    forward_url: str | None = None


@dataclass(slots=True)
class _Reply:
    mo: _Mo
    kind: str
    recipient: str
    op: Accept | None


def store(ctx: BatchContext, items: list[tuple[int, InboundComplete]]) -> dict[int, InboundStored]:
    runtime: InboundRuntime = ctx.memory.inbound
    now = ctx.now.replace(tzinfo=UTC).timestamp()
    numbers = sorted({normalise(op.destination) for _, op in items})
    holdings = _holdings(ctx, numbers, runtime)
    poll_list = _polls(ctx, numbers, now)
    settings = _settings(ctx, numbers)
    in_use: dict[str, dict[int, set[str]]] = defaultdict(lambda: defaultdict(set))
    for poll in poll_list:
        if poll.prefix_key:
            in_use[poll.number][poll.account_id].add(poll.prefix_key)
    for (account_id, number, key) in settings:
        if key:
            in_use[number][account_id].add(key)
    mos = []
    for index, op in items:
        at = op.received_at if op.received_at is not None else now
        number = normalise(op.destination)
        sender = normalise(op.source)
        routed = route(runtime.pool.get(number), op.text, holdings.get(number, ()), at,
                       in_use.get(number, {}))
        mos.append(_Mo(index, op, at, number, sender, routed,
                       routed.account_id is not None and sender in runtime.pool.numbers,
                       ctx.sql.ts(utc(at))))
    ids = _insert_messages(ctx, mos)
    for mo, inbound_id in zip(mos, ids, strict=True):
        mo.inbound_id = inbound_id
    live = [mo for mo in mos if mo.route.account_id is not None and not mo.loop]
    if live:
        _Automation(ctx, runtime, poll_list, settings, now).run(live)
        _callbacks(ctx, live)
    return {mo.index: InboundStored(mo.inbound_id, mo.route.account_id, mo.route.route,
                                    mo.route.reason or ("loop" if mo.loop else None),
                                    tuple(mo.accepts), mo.emails, mo.forward_url, mo.outcome,
                                    mo.pool_empty)
            for mo in mos}


def _insert_messages(ctx: BatchContext, mos: list[_Mo]) -> list[int]:
    """The batch's messages in one statement; their ids in the order of `mos`.

    On PostgreSQL: INSERT ... RETURNING, which SQLAlchemy sends a batch at a time with
    the ids sorted back into the order of the rows. On SQLite it cannot tell that
    order from a RETURNING, so it sent one INSERT per row (an MO flood's only
    statement per message). There the ids are chosen instead, after the highest one:
    the writer's transaction began IMMEDIATE and holds SQLite's one write lock, so
    no other connection can insert meanwhile."""
    reasons = [mo.route.reason or ("loop" if mo.loop else None) for mo in mos]
    if ctx.sql.postgres:
        return list(ctx.conn.execute(
            t.inbound_messages.insert().returning(t.inbound_messages.c.id,
                                                  sort_by_parameter_order=True),
            [{"smsc": mo.op.smsc, "source": mo.op.source, "destination": mo.op.destination,
              "data_coding": mo.op.data_coding, "text": mo.op.text, "payload": mo.op.payload,
              "parts": mo.op.parts, "tlvs": mo.op.tlvs, "received_at": utc(mo.at),
              "account_id": mo.route.account_id, "prefix": mo.route.prefix,
              "body": mo.route.body, "route": mo.route.route, "reason": reason}
             for mo, reason in zip(mos, reasons, strict=True)]).scalars())
    highest = ctx.conn.exec_driver_sql("SELECT max(id) FROM inbound_messages").scalar()
    ids = list(range((highest or 0) + 1, (highest or 0) + 1 + len(mos)))
    ctx.sql.run(ctx.conn, _INSERT_MESSAGE, [
        (inbound_id, mo.op.smsc, mo.op.source, mo.op.destination, mo.op.data_coding,
         mo.op.text, mo.op.payload, mo.op.parts, mo.op.tlvs, mo.stamp,
         mo.route.account_id, mo.route.prefix, mo.route.body, mo.route.route, reason)
        for inbound_id, mo, reason in zip(ids, mos, reasons, strict=True)])
    return ids


def _callbacks(ctx: BatchContext, live: list[_Mo]) -> None:
    """`inbound.received` for each routed MO, in its transaction: to the account's
    endpoints that want MO, and to the number's forward URL (signed with the
    account's key) when one is set. The endpoints are read once for the batch, and
    an MO nobody wants an event for costs nothing (not even its JSON)."""
    endpoints = outbox.inbound_endpoints(ctx, {mo.route.account_id for mo in live
                                               if mo.route.account_id is not None})
    events = []
    for mo in live:
        account_id = mo.route.account_id
        assert account_id is not None
        targets = endpoints.get(account_id, ())
        if not targets and not mo.forward_url:
            continue
        data = {"id": str(mo.inbound_id), "from": "+" + mo.sender, "to": display(mo.number),
                "text": mo.op.text, "parts": mo.op.parts, "keyword": mo.route.prefix,
                "body": mo.route.body, "route": mo.route.route,
                "poll": mo.poll.id if mo.poll is not None else None,
                "vote": mo.outcome, "received_at": datetime.fromtimestamp(mo.at, UTC).isoformat(
                    timespec="milliseconds").replace("+00:00", "Z")}
        events.append((account_id, outbox.EVENT_INBOUND, data, targets, mo.forward_url))
    outbox.enqueue_many(ctx, events)


# Reads, one per batch --------------------------------------------------------------------

def _holdings(ctx: BatchContext, numbers: list[str],
              runtime: InboundRuntime) -> dict[str, list[Holding]]:
    found: dict[str, list[Holding]] = defaultdict(list)
    for number in numbers:
        holder = runtime.pool.holders.get(number)
        if holder is not None:
            found[number].append(Holding(holder, "", 0.0, None))
    for row in ctx.conn.execute(_HOLDINGS, {"numbers": numbers}):
        found[row.number].append(Holding(row.account_id, row.prefix_key,
                                         _seconds(row.starts_at),
                                         _seconds(row.ends_at) if row.ends_at else None))
    return found


def _polls(ctx: BatchContext, numbers: list[str], now: float) -> list[pl.Poll]:
    rows = ctx.conn.execute(_POLLS, {"numbers": numbers, "ended_after": utc(
        now - pl.GRACE_SECONDS - HOUR)}).all()
    if not rows:
        return []
    options: dict[str, list[pl.Option]] = defaultdict(list)
    for row in ctx.conn.execute(_OPTIONS, {"polls": [row.id for row in rows]}):
        options[row.poll_id].append(pl.Option(row.option_no, row.keyword, row.keyword_key,
                                              row.reply))
    return [pl.Poll(row.id, row.account_id, row.number, row.prefix_key,
                    _seconds(row.starts_at), _seconds(row.ends_at), _seconds(row.created_at),
                    row.sender, json.loads(row.replies), row.limit_votes, row.limit_seconds,
                    tuple(json.loads(row.groups)) if row.groups else (), row.discount_pool,
                    tuple(options[row.id]))
            for row in rows]


def _settings(ctx: BatchContext, numbers: list[str]) -> dict[tuple[int, str, str], Any]:
    return {(row.account_id, row.number, row.prefix_key): row for row in ctx.conn.execute(
        _SETTINGS, {"numbers": numbers})}


class _Automation:
    """Votes, replies and forwards of the routed messages of one batch."""

    def __init__(self, ctx: BatchContext, runtime: InboundRuntime, poll_list: list[pl.Poll],
                 settings: dict[tuple[int, str, str], Any], now: float) -> None:
        self.ctx = ctx
        self.runtime = runtime
        self.polls = poll_list
        self.settings = settings
        self.now = now
        self.replies: list[_Reply] = []

    def run(self, mos: list[_Mo]) -> None:
        voting = []
        for mo in mos:
            mo.poll = pl.pick(self.polls, mo.route.account_id, mo.number,
                              mo.route.prefix_key, mo.at)
            if mo.poll is not None:
                mo.option = pl.option_for(mo.poll, mo.route.body)
                voting.append(mo)
        if voting:
            self._votes(voting)
        for mo in mos:
            setting = self._setting(mo)
            if mo.poll is None and setting is not None and setting.auto_reply_text:
                self._reply(mo, "auto_reply", setting.auto_reply_from,
                            setting.auto_reply_text)
            if setting is not None:
                self._forward(mo, setting)
        self._send()
        if voting:
            self._write_votes(voting)

    def _setting(self, mo: _Mo) -> Any:
        account_id = mo.route.account_id
        return self.settings.get((account_id, mo.number, mo.route.prefix_key)) \
            or self.settings.get((account_id, mo.number, ""))

    # Votes ---------------------------------------------------------------------------

    def _votes(self, voting: list[_Mo]) -> None:
        earlier = self._earlier_votes(voting)
        members = self._members(voting)
        counted: dict[tuple[str, str], list[float]] = defaultdict(list)
        for mo in sorted(voting, key=lambda m: m.at):
            poll = mo.poll
            assert poll is not None
            times = earlier.get((poll.id, mo.sender), []) + counted[(poll.id, mo.sender)]
            since = poll.limit_since(mo.at)
            before = sum(1 for moment in times if since <= moment <= mo.at)
            allowed = not poll.groups or (poll.id, mo.sender) in members
            mo.outcome = pl.judge(poll, mo.option, mo.at, allowed, before)
            if mo.outcome == pl.ACCEPTED:
                counted[(poll.id, mo.sender)].append(mo.at)
        self._codes([mo for mo in voting if mo.outcome == pl.ACCEPTED
                     and mo.poll is not None and mo.poll.discount_pool])
        for mo in voting:
            assert mo.poll is not None and mo.outcome is not None
            try:
                text = pl.reply_for(mo.poll, mo.outcome, mo.option, mo.code, mo.pool_empty)
            except ApiError as exc:  # a template checked at creation cannot fail; be safe
                log.error("poll=%s reply not rendered: %s", mo.poll.id, exc.message)
                text = None
            if text:
                self._reply(mo, "poll", mo.poll.sender, text)

    def _earlier_votes(self, voting: list[_Mo]) -> dict[tuple[str, str], list[float]]:
        found: dict[tuple[str, str], list[float]] = defaultdict(list)
        by_poll: dict[str, tuple[pl.Poll, set[str], float]] = {}
        for mo in voting:
            poll = mo.poll
            assert poll is not None
            if not poll.limit_votes:
                continue
            _, senders, since = by_poll.get(poll.id, (poll, set(), mo.at))
            senders.add(mo.sender)
            by_poll[poll.id] = (poll, senders, min(since, poll.limit_since(mo.at)))
        for poll_id, (_poll, senders, since) in by_poll.items():
            for chunk in chunks(sorted(senders)):
                for sender, received_at in self.ctx.conn.execute(_EARLIER_VOTES, {
                        "poll": poll_id, "senders": list(chunk), "since": utc(since)}):
                    found[(poll_id, sender)].append(_seconds(received_at))
        return found

    def _members(self, voting: list[_Mo]) -> set[tuple[str, str]]:
        """(poll, sender) for the voters in one of the poll's allowed groups: one read
        per poll (and 500 senders) rather than one per vote."""
        senders: dict[str, tuple[pl.Poll, set[str]]] = {}
        for mo in voting:
            poll = mo.poll
            assert poll is not None
            if poll.groups:
                senders.setdefault(poll.id, (poll, set()))[1].add(mo.sender)
        found: set[tuple[str, str]] = set()
        for poll_id, (poll, phones) in senders.items():
            for chunk in chunks(sorted(phones)):
                found.update((poll_id, phone) for phone in self.ctx.conn.execute(_MEMBERS, {
                    "account": poll.account_id, "phones": list(chunk),
                    "groups": list(poll.groups)}).scalars())
        return found

    def _codes(self, winners: list[_Mo]) -> None:
        """One unused code per accepted vote, in the order the votes came; a code is
        marked with its vote in this transaction, so it is never given twice."""
        d = t.discount_codes.c
        wanted: dict[tuple[int, str], list[_Mo]] = defaultdict(list)
        for mo in winners:
            assert mo.poll is not None and mo.poll.discount_pool is not None
            wanted[(mo.poll.account_id, mo.poll.discount_pool)].append(mo)
        for (account_id, pool), voters in wanted.items():
            query = select(d.id, d.code).where(
                d.account_id == account_id, d.pool == pool, d.vote_id.is_(None)).order_by(
                d.id).limit(len(voters))
            if self.ctx.sql.postgres:
                query = query.with_for_update(skip_locked=True)
            free = self.ctx.conn.execute(query).all()
            for mo, row in zip(voters, free, strict=False):
                mo.code = row.code
                mo.code_id = row.id
            for mo in voters[len(free):]:
                mo.pool_empty = True
                log.warning("discount pool %r of account %d is empty: vote from %s got no "
                            "code", pool, account_id, mask_number(mo.sender))

    def _write_votes(self, voting: list[_Mo]) -> None:
        ctx = self.ctx
        reply_ids = {id(r.mo): r.op.message_id for r in self.replies
                     if r.kind == "poll" and r.op is not None}
        rows, given = [], []
        for mo in voting:
            assert mo.poll is not None
            vote_id = new_id(mo.at)
            rows.append((vote_id, mo.poll.id, mo.inbound_id, mo.sender,
                         mo.option.number if mo.option else None, mo.route.body, mo.outcome,
                         mo.code, reply_ids.get(id(mo)), mo.stamp))
            if mo.code is not None:
                given.append((mo.code_id, vote_id))
        ctx.sql.run(ctx.conn, _INSERT_VOTE, rows)
        d = t.discount_codes
        for code_id, vote_id in given:
            ctx.conn.execute(d.update().where(d.c.id == code_id).values(
                vote_id=vote_id, given_at=ctx.now))

    # Replies and forwards ------------------------------------------------------------

    def _reply(self, mo: _Mo, kind: str, sender: str | None, text: str) -> None:
        address = reply_address(mo.sender)
        if address is None or not sender:
            return  # a short code or an alphanumeric sender: never answered
        self.replies.append(_Reply(mo, kind, address[0], self._prepare(
            mo, sender, address, text)))

    def _forward(self, mo: _Mo, setting: Any) -> None:
        ctx = self.ctx
        if setting.forward_email:
            ctx.sql.run(ctx.conn, _INSERT_FORWARD, [(
                mo.route.account_id, mo.inbound_id, setting.forward_email,
                ctx.sql.ts(ctx.now), ctx.stamp)])
            mo.emails += 1
        for target in json.loads(setting.forward_sms or "[]"):
            text = (f"SMS from {display(mo.sender)} to {display(mo.number)}: "
                    f"{mo.op.text or '(binary)'}")
            self.replies.append(_Reply(mo, "forward", target, self._prepare(
                mo, mo.number, (target, None), text)))
        mo.forward_url = setting.forward_url

    def _prepare(self, mo: _Mo, sender: str, address: tuple[str, str | None],
                 text: str) -> Accept | None:
        intake = self.runtime.intake
        if intake is None:
            return None
        try:
            return intake.admission.prepare(mo.route.account_id, sender, address[0],
                                            address[1], text, self.runtime.references,
                                            self.now).op
        except ApiError as exc:
            log.warning("MO %d: reply to +%s not sent: %s", mo.inbound_id, address[0],
                        exc.message)
            return None

    def _send(self) -> None:
        """Apply the hourly limit, then charge and queue what is left, all in this
        transaction; what the balance cannot pay for is recorded unsent."""
        if not self.replies:
            return
        ctx = self.ctx
        limit = self.runtime.pool.replies_per_hour
        automatic = [r for r in self.replies if r.kind in _AUTOMATIC and r.op is not None]
        sent_before = self._recent_counts({r.recipient for r in automatic})
        for reply in automatic:
            if sent_before[reply.recipient] >= limit:
                log.info("MO %d: no %s to %s: %d automatic replies in the last hour",
                         reply.mo.inbound_id, reply.kind, mask_number("+" + reply.recipient),
                         limit)
                reply.op = None
                continue
            sent_before[reply.recipient] += 1
        ready = [r for r in self.replies if r.op is not None]
        results = messages.charge_and_insert(ctx, [r.op for r in ready])
        for reply, result in zip(ready, results, strict=True):
            if isinstance(result, Exception):
                log.warning("MO %d: %s to %s not sent: %s", reply.mo.inbound_id, reply.kind,
                            mask_number("+" + reply.recipient), result)
                reply.op = None
            else:
                reply.mo.accepts.append(reply.op)
        ctx.sql.run(ctx.conn, _INSERT_REPLY, [
            (r.mo.route.account_id, r.mo.inbound_id, r.kind, r.recipient,
             r.op.message_id if r.op else None, ctx.stamp) for r in self.replies])

    def _recent_counts(self, recipients: set[str]) -> dict[str, int]:
        counts: dict[str, int] = defaultdict(int)
        for chunk in chunks(sorted(recipients)):
            counts.update(self.ctx.conn.execute(_RECENT_REPLIES, {
                "recipients": list(chunk), "since": utc(self.now - HOUR)}).all())
        return counts
