"""The inbound subsystem in the daemon: what the API asks of it (numbers, settings,
the inbound list, the phonebook, codes, polls), what follows an MO's
commit (its replies handed to the dispatcher, e-mail forwards woken, metrics), and
its loops (monthly fees, the e-mail outbox).

Given its collaborators rather than the whole daemon: the store's reader and
writer, a thread runner, the dispatcher's `accepted`, the pool and SMTP settings.
"""

from __future__ import annotations

import csv
import io
import json
import logging
from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from twisted.internet import defer, task
from twisted.internet.threads import blockingCallFromThread

from ..api import inbound_bodies as bodies
from ..api.validation import ApiError
from ..config import Settings
from ..ids import looks_like_id, new_id
from ..inbound.pool import InboundRuntime, Pool, display
from ..logs import mask_number
from ..protocol.segmentation import ConcatReferences
from ..reports.inbound_documents import POLL_COLUMNS, tally_rows
from ..store import inbound_queries as iq
from ..store import operations as ops
from ..store.inbound_ops import (
    AddCodes,
    ChargeMonthly,
    Conflict,
    CreatePoll,
    DeleteContact,
    InboundStored,
    NotHeld,
    Release,
    Reserve,
    SaveContacts,
    SaveSettings,
    UpdatePoll,
)
from .mail_outbox import Forwarder

log = logging.getLogger("smppd.inbound")
CONTACT_BATCH = 5000


def csv_bytes(header: Iterable[str], rows: Iterable[Iterable[Any]]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue().encode("utf-8")


def _refused(failure: Any) -> Any:
    """Store outcomes as API answers."""
    if failure.check(Conflict):
        raise ApiError(409, str(failure.value), failure.value.field)
    if failure.check(NotHeld):
        raise ApiError(404, str(failure.value), "number")
    if failure.check(ops.InsufficientBalance):
        raise ApiError(402, f"insufficient balance: {failure.value}", "balance")
    return failure


class InboundMetrics:
    def __init__(self, registry: CollectorRegistry, unassigned: Callable[[], int]) -> None:
        self.routed = Counter("smppd_inbound_routed_total",
                              "MO messages stored, by route (dedicated, shared, shortcode, "
                              "unassigned)", ["route"], registry=registry)
        self.unassigned = Counter("smppd_inbound_unassigned_total",
                                  "MO messages no account holds, by reason", ["reason"],
                                  registry=registry)
        self.votes = Counter("smppd_poll_votes_total", "Poll votes by outcome", ["outcome"],
                             registry=registry)
        self.pool_empty = Counter("smppd_discount_pool_empty_total",
                                  "Accepted votes that found their discount pool empty",
                                  registry=registry)
        self.replies = Counter("smppd_inbound_replies_total",
                               "Messages queued because of an MO (auto-replies, poll "
                               "replies, SMS forwards)", registry=registry)
        registry.register(_Backlog(unassigned))
        self._children: dict[tuple[int, str], Any] = {}

    def child(self, metric: Counter, label: str) -> Any:
        """`metric.labels(label)`, looked up once per label value: labels() checks and
        locks on every call, which cost more than the increment in an MO flood. The
        labels here are a handful of fixed words (routes, outcomes, reasons)."""
        key = (id(metric), label)
        found = self._children.get(key)
        if found is None:
            found = self._children[key] = metric.labels(label)
        return found


class _Backlog(Collector):
    """Unassigned messages in the store (the operator's list), read at scrape time
    from a count the service refreshes, never a query per scrape."""

    def __init__(self, read: Callable[[], int]) -> None:
        self.read = read

    def collect(self) -> Iterable[Any]:
        yield GaugeMetricFamily("smppd_inbound_unassigned_stored", "Unassigned MO messages stored",
                                value=self.read())


class InboundService:
    def __init__(self, reactor: Any, read: Callable[..., defer.Deferred[Any]],
                 put: Callable[[Any], defer.Deferred[Any]],
                 in_thread: Callable[..., defer.Deferred[Any]], runtime: InboundRuntime,
                 accepted: Callable[[ops.Accept], None], registry: CollectorRegistry,
                 settings: Settings) -> None:
        self.reactor = reactor
        self.read = read
        self.put = put
        self.in_thread = in_thread
        self.runtime = runtime
        self.accepted = accepted
        self.settings = settings
        self.unassigned_stored = 0
        self.metrics = InboundMetrics(registry, lambda: self.unassigned_stored)
        self.forwarder = Forwarder(reactor, read, put, in_thread, lambda: self.settings.smtp)
        self._monthly: task.LoopingCall | None = None
        self.duty: Callable[[], bool] = lambda: True  # issue 14: one instance charges

    # Wiring ------------------------------------------------------------------------------

    def configure(self, settings: Settings, account_ids: dict[str, int], intake: Any) -> None:
        """At start and on reload (reactor thread): one assignment swaps the pool the
        writer reads."""
        self.settings = settings
        self.runtime.pool = Pool.of(settings.inbound_numbers, account_ids,
                                    settings.auto_replies_per_hour)
        self.runtime.intake = intake
        if self.runtime.references is None:
            self.runtime.references = ConcatReferences(bits=16)  # the writer thread's own
        self.forwarder.resume()  # smtp may have come or gone with a reload

    @defer.inlineCallbacks
    def start(self) -> Any:
        self.unassigned_stored = yield self.read(iq.unassigned_count)
        self.forwarder.start()
        self._monthly = task.LoopingCall(self._charge_monthly)
        self._monthly.clock = self.reactor
        self._monthly.start(3600.0, now=True)

    def stop(self) -> None:
        self.forwarder.stop()
        if self._monthly is not None and self._monthly.running:
            self._monthly.stop()

    def _charge_monthly(self) -> None:
        if not self.duty():
            return  # issue 14: another instance charges (twice would charge twice)
        def done(result: tuple[int, int]) -> None:
            if result[0] or result[1]:
                log.info("inbound numbers: %d monthly fee(s) charged, %d reservation(s) "
                         "lapsed for want of balance", *result)

        self.put(ChargeMonthly()).addCallbacks(
            done, lambda f: log.error("inbound numbers: monthly fees not charged: %s",
                                      f.getErrorMessage()))

    def stored(self, result: InboundStored) -> None:
        """After an MO's commit (reactor thread): its replies are committed as queued
        messages; the dispatcher learns of them now."""
        self.metrics.child(self.metrics.routed, result.route).inc()
        if result.account_id is None:
            self.unassigned_stored += 1
            self.metrics.child(self.metrics.unassigned, result.reason or "unknown").inc()
        if result.vote is not None:
            self.metrics.child(self.metrics.votes, result.vote).inc()
        if result.pool_empty:
            self.metrics.pool_empty.inc()
        for op in result.accepts:
            self.metrics.replies.inc()
            self.accepted(op)
        if result.emails:
            self.forwarder.wake()

    # Numbers -------------------------------------------------------------------------------

    def reserve(self, account: Any, body: bodies.Reservation) -> defer.Deferred[Any]:
        spec = self.runtime.pool.get(body.number)
        if spec is None:
            return defer.fail(ApiError(404, f"+{body.number} is not a number of this "
                                            "operator", "number"))
        if spec.kind == "shared" and body.prefix is None:
            return defer.fail(ApiError(400, f"+{body.number} is shared: reserve it with a "
                                            "prefix of 2-16 letters or digits", "prefix"))
        if spec.kind != "shared" and body.prefix is not None:
            return defer.fail(ApiError(400, f"+{body.number} is {spec.kind}: it is reserved "
                                            "whole, without a prefix", "prefix"))
        starts = body.starts_at if body.starts_at is not None else self.reactor.seconds()
        if body.ends_at is not None and body.ends_at <= self.reactor.seconds():
            return defer.fail(ApiError(400, "the period is over already", "until"))

        def made(result: dict[str, Any]) -> Any:
            log.info("account=%s reserved %s%s", account.name, mask_number("+" + body.number),
                     f" prefix {body.prefix}" if body.prefix else "")
            return {"id": result["id"], "number": display(body.number), "kind": spec.kind,
                    "prefix": body.prefix, "from": iq._iso(_utc(starts)),
                    "until": iq._iso(_utc(body.ends_at)) if body.ends_at else None,
                    "points": result["points"]}

        return self.put(Reserve(account.id, body.number, body.prefix, body.prefix_key, starts,
                                body.ends_at)).addCallbacks(made, _refused)

    def release(self, account: Any, number: str, prefix_key: str) -> defer.Deferred[Any]:
        return self.put(Release(account.id, number, prefix_key)).addCallback(
            lambda found: {"released": True} if found
            else ApiError(404, "no such reservation", "number"))

    def numbers(self, account: Any) -> defer.Deferred[Any]:
        return self.read(iq.numbers, account.id, self.runtime.pool)

    def save_settings(self, account: Any, number: str, prefix: str | None, key: str,
                      body: bodies.Settings) -> defer.Deferred[Any]:
        own = [n for n in body.sms if n in self.runtime.pool.numbers]
        if own:
            return defer.fail(ApiError(400, f"+{own[0]} is one of smppd's own inbound "
                                            "numbers: forwarding to it would loop",
                                       "forward.sms"))
        op = SaveSettings(account.id, number, key, prefix, body.auto_reply_from,
                          body.auto_reply_text,
                          json.dumps(list(body.email)) if body.email else None,
                          json.dumps(list(body.sms)) if body.sms else None, body.url)
        answer = {"number": display(number), "prefix": prefix,
                  "auto_reply": {"from": body.auto_reply_from, "text": body.auto_reply_text}
                  if body.auto_reply_text else None,
                  "forward": {"email": list(body.email), "sms": ["+" + n for n in body.sms],
                              "url": body.url}}
        return self.put(op).addCallbacks(lambda _: answer, _refused)

    # The inbound list --------------------------------------------------------------------------

    def list_inbound(self, account: Any, where: iq.InboundFilter, cursor: int | None,
                     limit: int) -> defer.Deferred[Any]:
        return self.read(iq.list_inbound, account.id, where, cursor, limit).addCallback(
            lambda page: {"items": page[0], "next_cursor": page[1]})

    # Phonebook -------------------------------------------------------------------------------

    def save_contacts(self, account: Any,
                      contacts: list[Any]) -> defer.Deferred[dict[str, Any]]:
        return self.put(SaveContacts(account.id, tuple(contacts))).addCallback(
            lambda result: {"created": result[0], "updated": result[1], "rejected_rows": 0,
                            "row_errors": []})

    def import_contacts(self, account: Any, read_rows: Callable[[], Any]) -> defer.Deferred[Any]:
        """A CSV upload: rows read and checked on a pool thread as they come and
        written CONTACT_BATCH at a time; a bad row is reported with its line."""
        def run() -> dict[str, Any]:
            counts = {"created": 0, "updated": 0, "rejected_rows": 0}
            errors: list[dict[str, Any]] = []
            batch: list[Any] = []

            def flush() -> None:
                created, updated = blockingCallFromThread(
                    self.reactor, self.put, SaveContacts(account.id, tuple(batch)))
                counts["created"] += created
                counts["updated"] += updated
                batch.clear()

            for line, row in read_rows():
                try:
                    if not isinstance(row, dict):
                        raise ApiError(400, getattr(row, "reason", "unreadable row"))
                    batch.append(bodies.contact({k: v for k, v in row.items()
                                                 if v not in (None, "") or k == "phone"}))
                except ApiError as exc:
                    counts["rejected_rows"] += 1
                    if len(errors) < 100:
                        errors.append({"row": line, "field": exc.field, "error": exc.message})
                    continue
                if len(batch) >= CONTACT_BATCH:
                    flush()
            if batch:
                flush()
            return {**counts, "row_errors": errors}

        return self.in_thread(run)

    def contacts(self, account: Any, group: str | None, cursor: int | None,
                 limit: int) -> defer.Deferred[Any]:
        def page(found: Any) -> Any:
            if found is None:
                return ApiError(404, "no such group", "group")
            return {"contacts": found[0], "next_cursor": found[1]}

        return self.read(iq.contacts, account.id, group, cursor, limit).addCallback(page)

    def contact(self, account: Any, phone: str) -> defer.Deferred[Any]:
        return self.read(iq.contact, account.id, phone)

    def delete_contact(self, account: Any, phone: str) -> defer.Deferred[Any]:
        return self.put(DeleteContact(account.id, phone)).addCallback(
            lambda found: {"deleted": True} if found
            else ApiError(404, "no such contact", "phone"))

    def groups(self, account: Any) -> defer.Deferred[Any]:
        return self.read(iq.groups, account.id).addCallback(lambda found: {"groups": found})

    def expand_group(self, engine: Any, account_id: int, job: Any) -> Any:
        """On a pool thread: a job that names a group gets its members as rows."""
        if getattr(job, "group", None) is None:
            return job
        from dataclasses import replace

        conn = engine.connect()
        rows = iq.group_recipients(conn, account_id, job.group)
        if rows is None:
            conn.close()
            raise ApiError(404, f"no contact group named {job.group!r}", "group")

        def stream() -> Any:
            try:
                yield from rows
            finally:
                conn.close()

        return replace(job, recipients=stream())

    # Discount codes and polls ----------------------------------------------------------------

    def add_codes(self, account: Any, pool: str, codes: tuple[str, ...]) -> defer.Deferred[Any]:
        return self.put(AddCodes(account.id, pool, codes)).addCallback(
            lambda result: {"pool": pool, "added": result[0], "skipped": result[1]})

    def create_poll(self, account: Any, body: bodies.PollBody) -> defer.Deferred[Any]:
        spec = self.runtime.pool.get(body.number)
        if spec is None:
            return defer.fail(ApiError(404, f"+{body.number} is not a number of this "
                                            "operator", "number"))
        if spec.kind == "shared" and body.prefix is None:
            return defer.fail(ApiError(400, "a poll on a shared number needs the prefix the "
                                            "account reserved", "prefix"))
        now = self.reactor.seconds()
        poll_id = new_id(now)
        op = CreatePoll(poll_id, account.id, body.name, body.number, body.prefix,
                        body.prefix_key, body.starts_at, body.ends_at, body.sender,
                        json.dumps(body.replies, ensure_ascii=False), body.limit_votes,
                        body.limit_seconds,
                        json.dumps(list(body.groups)) if body.groups else None,
                        body.discount_pool, body.options, now)
        return self.put(op).addCallbacks(lambda _: {"id": poll_id}, _refused)

    def update_poll(self, account: Any, poll_id: str,
                    body: bodies.PollBody) -> defer.Deferred[Any]:
        """PUT /v1/polls/{id} and the portal's edit form (issue 15). None: not the
        account's poll."""
        if not looks_like_id(poll_id):
            return defer.succeed(None)
        op = UpdatePoll(poll_id, account.id, body.number, body.prefix_key, body.name,
                        body.starts_at, body.ends_at, body.sender,
                        json.dumps(body.replies, ensure_ascii=False), body.limit_votes,
                        body.limit_seconds,
                        json.dumps(list(body.groups)) if body.groups else None,
                        body.discount_pool, body.options)
        return self.put(op).addCallbacks(
            lambda found: None if found is None else {"id": poll_id}, _refused)

    def poll(self, account: Any, poll_id: str) -> defer.Deferred[Any]:
        if not looks_like_id(poll_id):
            return defer.succeed(None)
        return self.read(iq.poll, account.id, poll_id)

    def poll_stats(self, account: Any, poll_id: str, cursor: str | None,
                   limit: int) -> defer.Deferred[Any]:
        if not looks_like_id(poll_id):
            return defer.succeed(None)
        return self.read(iq.poll_stats, account.id, poll_id, cursor, limit)

    def poll_csv(self, account: Any, poll_id: str, what: str) -> defer.Deferred[Any]:
        """`votes`: every vote; `stats`: the options and the outcomes."""
        if not looks_like_id(poll_id):
            return defer.succeed(None)

        def build(conn: Any) -> bytes | None:
            if what == "votes":
                rows = iq.iter_votes(conn, account.id, poll_id)
                return None if rows is None else csv_bytes(iq.VOTES_HEADER, rows)
            found = iq.poll(conn, account.id, poll_id)
            if found is None:
                return None
            # The rows of the `poll` report's tally (without its days).
            return csv_bytes([c.name for c in POLL_COLUMNS],
                             tally_rows(iq.poll_tally(conn, found)))

        return self.read(build)


def _utc(moment: float | None) -> Any:
    from ..store.sql import utc

    return utc(moment) if moment is not None else None
