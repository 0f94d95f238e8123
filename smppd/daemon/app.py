"""The daemon: configuration -> store, writer, dispatcher, connectors, HTTP.

Start order makes "ready" mean ready: the schema is migrated and the accounts
seeded (on a thread), then the writer runs, the dispatcher reads back queued
work, the connectors bind, and only then does the HTTP port listen. Stop order is
the reverse and drains: no new API work, no new submits, responses in flight are
awaited and their outcomes committed, the binds unbind, the writer empties.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

from twisted.internet import defer, task
from twisted.internet.threads import deferToThreadPool
from twisted.python.threadpool import ThreadPool

from .. import status as st
from ..api import validation
from ..api.http import API_CREDENTIAL, Account, make_factory, token_digest
from ..api.validation import ApiError, ValidMessage
from ..config import Settings, SmscSettings
from ..ids import new_id
from ..protocol.connector import Connector, ConnectorConfig, TlsConfig
from ..protocol.inbound import Concat, MoFragment
from ..protocol.segmentation import ConcatReferences
from ..protocol.session import SessionConfig
from ..reports.campaigns import Campaigns
from ..reports.service import ReportService
from ..store import database, queries
from ..store import operations as ops
from ..store.batch import BatchApplier, params_json
from ..store.queries import QueuedMessage
from ..store.writer import Writer
from .dispatcher import NO_ROUTE, Channel, Dispatcher, TextSettings
from .jobs import JobManager
from .listener import DaemonListener
from .metrics import Metrics

log = logging.getLogger("smppd.daemon")
PENDING_RECEIPT_DAYS = 7


def connector_config(smsc: SmscSettings) -> ConnectorConfig:
    tls = TlsConfig(smsc.tls.ca_file, smsc.tls.server_name) if smsc.tls else None
    session = SessionConfig(smsc.system_id, smsc.password, smsc.system_type,
                            window=smsc.window, response_timeout=smsc.response_timeout,
                            enquire_link_interval=smsc.enquire_link_interval)
    return ConnectorConfig(smsc.name, smsc.host, smsc.port, session, smsc.bind, tls)


class Daemon:
    def __init__(self, settings: Settings, reactor: Any | None = None,
                 memory_limit: int = 20_000) -> None:
        if reactor is None:
            from twisted.internet import reactor as default_reactor

            reactor = default_reactor
        self.settings = settings
        self.reactor = reactor
        self.metrics = Metrics()
        self.engine = database.make_engine(settings.database)
        self.pool = ThreadPool(minthreads=1, maxthreads=4, name="smppd-read")
        self.applier = BatchApplier({s.name: s.receipt_policy for s in settings.smscs})
        self.writer = Writer(self.engine, self.applier, reactor, on_batch=self.metrics.batch)
        routes = {r.prefix: r.smscs for r in settings.routes}
        self.dispatcher = Dispatcher(
            reactor, self.writer.put, self._load_queued, routes,
            TextSettings.of(settings.smscs[0]), settings.retry_initial, settings.retry_max,
            settings.max_attempts, memory_limit, self.metrics)
        self.listener = DaemonListener(self.dispatcher, self.writer.put, self.metrics, reactor)
        self.jobs = JobManager(self)
        # Issue 10: reports (own thread pools) and campaigns.
        self.reports = ReportService(self.engine, settings, reactor, self._read,
                                     registry=self.metrics.registry)
        self.campaigns = Campaigns(self.engine, self._read, self._transaction)
        self.connectors: dict[str, Connector] = {}
        self.references = ConcatReferences(bits=16)
        self.accounts: dict[str, Account] = {}
        self.tokens: dict[bytes, Account] = {}
        self.port: Any = None
        self._expiry: task.LoopingCall | None = None
        self._ticker: task.LoopingCall | None = None
        self._purger: task.LoopingCall | None = None
        self.accepting = False
        self.started = False
        self.metrics.add_state(self._state)

    # Start ---------------------------------------------------------------------------

    @defer.inlineCallbacks
    def start(self) -> Any:
        self.pool.start()
        yield self._in_thread(database.upgrade, self.engine)
        self._set_accounts((yield self._in_thread(self._seed_accounts)))
        self.applier.pending_receipts = yield self._read(queries.count_pending_receipts)
        fragments = yield self._read(queries.unassembled_fragments,
                                     self.listener.reassembler.timeout)
        self.writer.start()
        for row in fragments:
            self._reload_fragment(row)
        for smsc in self.settings.smscs:
            self._add_connector(smsc)
        self.dispatcher.refill()
        yield self.jobs.restore()
        yield self.reports.start()  # issue 10
        factory = make_factory(self, self.tokens, self.settings.max_body_bytes,
                               self.settings.max_job_body_bytes)
        self.port = self.reactor.listenTCP(self.settings.http_listen_port, factory,
                                           interface=self.settings.http_listen_host)
        self._expiry = task.LoopingCall(self.listener.expire)
        self._expiry.start(60.0, now=False)
        self._ticker = task.LoopingCall(self.dispatcher.tick)
        self._ticker.start(1.0, now=False)
        self._purger = task.LoopingCall(self._purge)
        self._purger.start(3600.0, now=True)
        self.accepting = True
        self.started = True
        log.info("smppd ready: HTTP on %s:%d, %d SMSC(s), database %s",
                 self.settings.http_listen_host, self.port.getHost().port,
                 len(self.connectors), self.engine.url.render_as_string(hide_password=True))
        return self

    def _seed_accounts(self) -> dict[str, int]:
        """On a pool thread: create missing accounts; returns name -> id."""
        with self.engine.begin() as conn:
            return queries.seed_accounts(conn, [(a.name, a.balance)
                                                for a in self.settings.accounts])

    def _set_accounts(self, ids: dict[str, int]) -> None:
        """On the reactor thread: the token table the API reads."""
        self.accounts = {a.name: Account(ids[a.name], a.name) for a in self.settings.accounts}
        self.tokens.clear()
        self.tokens.update({token_digest(a.token): self.accounts[a.name]
                            for a in self.settings.accounts})
        self.reports.set_accounts(self.accounts)  # issue 10

    def _add_connector(self, smsc: SmscSettings) -> None:
        connector = Connector(connector_config(smsc), self.listener, self.reactor)
        self.connectors[smsc.name] = connector
        self.dispatcher.add_channel(Channel(smsc, connector, self.reactor.seconds()))
        connector.start()

    def _reload_fragment(self, row: Any) -> None:
        concat = Concat(row.reference, row.total, row.number) if row.total else None
        fragment = MoFragment(row.source, row.destination, row.data_coding, row.payload, concat)
        self.listener.add_fragment(row.smsc, fragment, row.id)

    def _purge(self) -> None:
        """Hourly: receipts that waited a week for a message that never came."""

        def done(purged: int) -> None:
            if purged:
                log.warning("store: %d receipts never matched a message in %d days; "
                            "removed", purged, PENDING_RECEIPT_DAYS)

        self.writer.put(ops.PurgePending(PENDING_RECEIPT_DAYS * 86400.0)).addCallbacks(
            done, lambda failure: log.error("store: purge failed: %s",
                                            failure.getErrorMessage()))

    @property
    def http_port(self) -> int:
        return self.port.getHost().port

    # Threads -------------------------------------------------------------------------

    def _in_thread(self, fn: Any, *args: Any) -> defer.Deferred[Any]:
        return deferToThreadPool(self.reactor, self.pool, fn, *args)

    def _read(self, fn: Any, *args: Any) -> defer.Deferred[Any]:
        def run() -> Any:
            with self.engine.connect() as conn:
                return fn(conn, *args)
        return deferToThreadPool(self.reactor, self.pool, run)

    def _transaction(self, fn: Any, *args: Any) -> defer.Deferred[Any]:
        def run() -> Any:
            with self.engine.begin() as conn:
                return fn(conn, *args)
        return deferToThreadPool(self.reactor, self.pool, run)

    def _load_queued(self, after_id: str, limit: int) -> defer.Deferred[Any]:
        return self._read(queries.load_queued, after_id, limit)

    # What the API calls ----------------------------------------------------------------

    def accept_message(self, account: Account, message: ValidMessage) -> defer.Deferred[Any]:
        if not self.accepting:
            return defer.fail(ApiError(503, "smppd is shutting down; retry on another "
                                            "instance or later"))
        route = self.dispatcher.route_for(message.recipient)
        if route == NO_ROUTE:
            raise ApiError(400, f"no route to +{message.recipient}: no configured prefix "
                           "matches it", "to")
        text = self.dispatcher.text_for(route)
        info = validation.text_info(message.text, text.profile, text.policy)
        points = self._price(message.recipient) * info.parts
        now = self.reactor.seconds()
        message_id = new_id()
        reference = self.references.next(message.recipient) if info.parts > 1 else 0
        smsc = None if route == "*" else route
        op = ops.Accept(account.id, message_id, message.sender, message.recipient,
                        message.country, message.text, info.encoding.value, info.parts, points,
                        reference, smsc, message.ref_id, params_json(message.params), now,
                        channel="api", sent_by=API_CREDENTIAL, partner=message.partner)
        counter = self.metrics.api_messages

        def stored(_: Any) -> dict[str, Any]:
            counter.labels("accepted").inc()
            self.dispatcher.accepted(QueuedMessage(
                message_id, message.sender, message.recipient, message.text,
                info.encoding.value, info.parts, reference, smsc,
                tuple(range(1, info.parts + 1))))
            return {"id": message_id, "status": st.QUEUED, "parts": info.parts,
                    "encoding": info.encoding.value, "points": points}

        def refused(failure: Any) -> Any:
            if failure.check(ops.InsufficientBalance):
                counter.labels("insufficient_balance").inc()
                raise ApiError(402, f"insufficient balance: {failure.value}", "balance")
            counter.labels("unavailable").inc()
            return failure

        return self.writer.put(op).addCallbacks(stored, refused)

    def _price(self, recipient: str) -> int:
        best, price = -1, self.settings.price_default
        for prefix, points in self.settings.price_by_prefix:
            if recipient.startswith(prefix) and len(prefix) > best:
                best, price = len(prefix), points
        return price

    def get_message(self, account: Account, message_id: str) -> defer.Deferred[Any]:
        if not validation.looks_like_id(message_id):
            return defer.succeed(None)
        return self._read(queries.get_message, account.id, message_id)

    def list_messages(self, account: Account, where: Any, cursor: str | None,
                      limit: int) -> defer.Deferred[Any]:
        return self._read(queries.list_messages, account.id, where, cursor, limit)

    def get_balance(self, account: Account) -> defer.Deferred[Any]:
        return self._read(queries.balance, account.id)

    def create_job(self, account: Account, read_job: Any) -> defer.Deferred[Any]:
        return self.jobs.create(account, read_job)

    def get_job(self, account: Account, job_id: str) -> defer.Deferred[Any]:
        return self.jobs.get(account, job_id)

    def job_action(self, account: Account, job_id: str, action: str) -> defer.Deferred[Any]:
        return self.jobs.act(account, job_id, action)

    def readiness(self) -> tuple[bool, dict[str, Any]]:
        smscs = {name: c.state() for name, c in self.connectors.items()}
        bound = any(c.bound for c in self.connectors.values())
        ready = self.accepting and bound and self.writer.healthy
        return ready, {"ready": ready, "smscs": smscs, "store": "ok" if self.writer.healthy
                       else "unavailable", "accepting": self.accepting}

    def _state(self) -> dict[str, Any]:
        return {"connectors": self.connectors, "queue_depth": self.dispatcher.depth,
                "store_backlog": self.writer.backlog, "unsettled": self.dispatcher.unsettled}

    # Reload and stop -------------------------------------------------------------------

    def reload(self, settings: Settings) -> list[str]:
        """Apply what can change without a restart: log level, SMSC credentials and
        throughput (binds that did not change stay up), new SMSCs, routes, prices,
        accounts' tokens. Returns what was changed, for the log."""
        changes: list[str] = []
        if settings.database != self.settings.database:
            changes.append("database: needs a restart (ignored)")
            settings = replace(settings, database=self.settings.database)
        if (settings.http_listen_host, settings.http_listen_port) != (
                self.settings.http_listen_host, self.settings.http_listen_port):
            changes.append("http.listen: needs a restart (ignored)")
            settings = replace(settings, http_listen_host=self.settings.http_listen_host,
                               http_listen_port=self.settings.http_listen_port)
        logging.getLogger().setLevel(settings.log_level.upper())
        for smsc in settings.smscs:
            connector = self.connectors.get(smsc.name)
            if connector is None:
                self._add_connector(smsc)
                changes.append(f"smsc {smsc.name}: added")
                continue
            channel = self.dispatcher.channels[smsc.name]
            if smsc != channel.settings:
                rebinding = connector.reload(connector_config(smsc))
                channel.reconfigure(smsc)
                self.applier.receipt_policy[smsc.name] = smsc.receipt_policy
                changes.append(f"smsc {smsc.name}: " + ("re-binding" if rebinding
                                                         else "updated, binds kept"))
        removed = set(self.connectors) - {s.name for s in settings.smscs}
        for name in removed:
            changes.append(f"smsc {name}: removed from the configuration; it stays bound "
                           "until restart")
        self.dispatcher.set_routes({r.prefix: r.smscs for r in settings.routes})
        new_accounts = {a.name for a in settings.accounts} - set(self.accounts)
        self.settings = replace(settings, smscs=tuple(
            list(settings.smscs) + [self.dispatcher.channels[n].settings for n in removed]))
        if new_accounts:
            changes.append("accounts added: " + ", ".join(sorted(new_accounts)))
            self._in_thread(self._seed_accounts).addCallbacks(
                self._set_accounts,
                lambda failure: log.error("reload: accounts not added: %s",
                                          failure.getErrorMessage()))
        else:
            ids = {a.name: a.id for a in self.accounts.values()}
            self._set_accounts({name: ids[name] for name in (a.name for a in settings.accounts)
                                if name in ids})
        self.reports.reload(self.settings)  # issue 10: account time zones
        self.dispatcher.pump_soon()
        for change in changes:
            log.info("reload: %s", change)
        return changes

    @defer.inlineCallbacks
    def stop(self, drain_timeout: float = 30.0) -> Any:
        """Drain and stop. Safe to call twice."""
        if not self.started:
            return
        self.started = False
        self.accepting = False
        log.info("smppd stopping: draining %d part(s) in flight", self.dispatcher.unsettled)
        if self.port is not None:
            yield self.port.stopListening()
        self.dispatcher.stop()
        self.jobs.stop()
        self.reports.stop()  # issue 10
        for loop in (self._expiry, self._ticker, self._purger):
            if loop is not None and loop.running:
                loop.stop()
        yield defer.DeferredList([c.stop() for c in self.connectors.values()])
        waited = 0.0
        while self.dispatcher.unsettled > 0 and waited < drain_timeout:
            yield task.deferLater(self.reactor, 0.05, lambda: None)
            waited += 0.05
        yield self._in_thread(self.reports.join)  # issue 10
        yield self._in_thread(self.writer.stop)
        self.pool.stop()
        self.engine.dispose()
        log.info("smppd stopped")
