"""The daemon: configuration -> store, writer, dispatcher, connectors, HTTP.

Start order makes "ready" mean ready: the schema is migrated and the accounts
seeded (on a thread), then the writer runs, the dispatcher reads back queued
work, the connectors bind, and only then does the HTTP port listen. Stop order is
the reverse and drains: no new API work, no new submits, responses in flight are
awaited and their outcomes committed, the binds unbind, the writer empties.
"""

from __future__ import annotations

import logging
import os
from dataclasses import replace
from datetime import UTC
from typing import Any

from sqlalchemy.engine import make_url
from twisted.internet import defer, task
from twisted.internet.threads import deferToThreadPool
from twisted.python.threadpool import ThreadPool

from .. import logs
from ..api import validation
from ..api.http import Account, make_factory, token_digest
from ..api.idempotency import json_body
from ..api.links import LinkServer
from ..api.lockout import AuthLockout
from ..api.ops import make_ops_factory
from ..api.server import LISTEN_BACKLOG, HttpLimits, ensure_descriptors
from ..api.validation import ApiError, ValidMessage
from ..callbacks import drainer, process, signing, worker
from ..callbacks import queries as callback_queries
from ..callbacks.agents import AgentClasses
from ..callbacks.links import Shortener
from ..callbacks.metrics import CallbackMetrics
from ..callbacks.service import CallbackService
from ..config import Settings, SmscSettings
from ..protocol.connector import Connector, ConnectorConfig, ReconnectPolicy, TlsConfig
from ..protocol.inbound import Concat, MoFragment
from ..protocol.message_id import AutoIds, Reading, Source
from ..protocol.session import SessionConfig
from ..reports import queries as report_queries
from ..reports.campaigns import Campaigns
from ..reports.service import ReportService
from ..status import Status
from ..store import database, idempotency, leases, outbox, outcomes, queries, recovery
from ..store import operations as ops
from ..store.batch import BatchApplier
from ..store.child import EXIT_CHILD_GONE, WriterProcess
from ..store.links import Recoded
from ..store.messages import params_json
from ..store.writer import StoreUnavailable, Writer
from ..throttle.backoff import Backoff
from .cluster import Cluster, ClusterCollector
from .dispatcher import Channel, Dispatcher
from .inbound import InboundService
from .intake import Intake, Tariff, queued, refused
from .job_sync import JobSync
from .jobs import JobManager
from .listener import DaemonListener
from .metrics import Metrics
from .pages import make_portal
from .router import Router

log = logging.getLogger("smppd.daemon")
PENDING_RECEIPT_DAYS = 7
# After a quiet period, how long the writer waits for the rest of a burst of SMSC
# outcomes before writing them as one transaction (see smppd.store.writer). 30 ms,
# not 5: a release's submit_resps and the receipts that follow them then share one
# commit (at 100/s: 50 operations a batch instead of 30, the writer's CPU per
# operation 63 -> 52 us); a window slot is credited up to 30 ms later, which a
# paced bind (the only one that idles long enough to linger) does not notice.
OUTCOME_LINGER = 0.03
# ...and only after it waited this long for work: paced sending leaves gaps of about a
# second (one release a second by default; 0.2 s at four), while at full speed a gap
# this long is rare even when the machine's scheduler holds a thread back for tens of
# milliseconds.
OUTCOME_QUIET = 0.1
# Group commit under concurrency (see smppd.store.writer): how long the writer waits
# for more work once batches show several clients at once. 2 ms: the CPU per accept
# fell by a quarter and throughput rose (c=20); 4 ms gained no more CPU and lost
# throughput to the wait; 1 ms was noisy, sometimes no better than none.
GROUP_COMMIT = 0.002


def _writer_process_gone(how: str) -> None:
    """The writer process died under the daemon (on the writer thread): end the daemon
    as if it had been killed, so that it restarts and recovers as after any crash
    (smppd.store.child says why)."""
    log.critical("store: the writer process ended (%s); smppd exits (status %d) to "
                 "restart and recover", how, EXIT_CHILD_GONE)
    for handler in logging.getLogger().handlers:
        handler.flush()
    os._exit(EXIT_CHILD_GONE)


def _router(settings: Settings) -> Router:
    return Router.of({r.prefix: r.smscs for r in settings.routes}, settings.smscs)


def reconnect_backoff(policy: ReconnectPolicy) -> Backoff:
    return Backoff(policy.initial, policy.maximum, policy.factor)


def connector_config(smsc: SmscSettings) -> ConnectorConfig:
    tls = TlsConfig(smsc.tls.ca_file, smsc.tls.server_name) if smsc.tls else None
    session = SessionConfig(smsc.system_id, smsc.password, smsc.system_type,
                            window=smsc.window, response_timeout=smsc.response_timeout,
                            enquire_link_interval=smsc.enquire_link_interval)
    reconnect = ReconnectPolicy(smsc.reconnect_initial, smsc.reconnect_max)
    return ConnectorConfig(smsc.name, smsc.host, smsc.port, session, smsc.bind, tls, reconnect)


def http_limits(settings: Settings) -> HttpLimits:
    http = settings.http
    return HttpLimits(settings.max_body_bytes, settings.max_job_body_bytes, http.idle_timeout,
                      http.header_timeout, http.body_timeout, http.body_min_rate,
                      http.max_connections, http.max_pipelined)


class Daemon:
    def __init__(self, settings: Settings, reactor: Any | None = None,
                 memory_limit: int = 20_000) -> None:
        if reactor is None:
            from twisted.internet import reactor as default_reactor

            reactor = default_reactor
        self.settings = settings
        self.reactor = reactor
        self.metrics = Metrics()
        self.engine = database.make_engine(settings.database, limits=settings.store)
        self.reader = self._reader(settings, self.engine)
        self.pool = ThreadPool(minthreads=1, maxthreads=4, name="smppd-read")
        self.applier = BatchApplier({s.name: s.receipt_policy for s in settings.smscs})
        writer_process = WriterProcess(settings.database, settings.store,
                                       self.applier.memory, settings.log_level) \
            if settings.store.writer_process(self.engine.dialect.name) else None
        self.writer = Writer(self.engine, self.applier, reactor, on_batch=self._committed,
                             stall_timeout=settings.store.stall_timeout,
                             recovery=recovery.for_engine(self.engine),
                             linger=OUTCOME_LINGER, quiet=OUTCOME_QUIET,
                             linger_kinds=outcomes.KINDS, gather=GROUP_COMMIT,
                             process=writer_process, on_process_gone=_writer_process_gone)
        router = _router(settings)
        links = settings.links
        self.intake = Intake(router, Tariff(settings.price_default, settings.price_by_prefix),
                             Shortener(links.base_url) if links else None)
        self.dispatcher = Dispatcher(
            reactor, self.writer.put, self._load_queued, self._load_job_page, router,
            settings.retry_initial, settings.retry_max, settings.max_attempts, memory_limit,
            self.metrics)
        self.listener = DaemonListener(self.dispatcher, self.writer.put, self.metrics, reactor)
        # Inbound numbers, routing, polls (issue 11): replies it queues reach the
        # dispatcher after their commit, as API messages do.
        self.inbound = InboundService(
            reactor, self._read, self.writer.put, self._in_thread, self.applier.memory.inbound,
            lambda op: self.dispatcher.accepted(queued(op)), self.metrics.registry, settings)
        self.listener.on_inbound = self.inbound.stored
        self.jobs = JobManager(reactor, self._read, self.writer.put, self._in_thread,
                               self.dispatcher, self.intake, lambda: self.accepting)
        # Reports (own thread pools and worker processes) and campaigns (issue 10).
        self.reports = ReportService(self.engine, settings, reactor, self._read,
                                     registry=self.metrics.registry)
        self.campaigns = Campaigns(self.engine, self._read, self._transaction)
        self.connectors: dict[str, Connector] = {}
        self.accounts: dict[str, Account] = {}
        self.tokens: dict[bytes, Account] = {}
        self.port: Any = None
        self.ops_port: Any = None
        self.lockout: AuthLockout | None = None
        # Issue 12: callbacks (the outbox drained over HTTP) and the short-link listener.
        self.callback_metrics = CallbackMetrics(self.metrics.registry)
        self.callbacks = CallbackService(
            reactor, self._read, self.writer.put, settings.callbacks, self.callback_metrics,
            lambda: {a.id: a.name for a in self.accounts.values()},
            self._worker_spec if self._drains_apart(settings) else None)
        self.agents = AgentClasses(reactor)
        self.links = LinkServer(reactor, self._read, self.writer.put, self.callback_metrics,
                                links.base_url, self.agents) if links else None
        self.links_port: Any = None
        self.portal: Any = None  # issue 15: /portal/ and /ops/ pages
        # Issue 14: on PostgreSQL, one of any number of instances on the database.
        self.cluster: Cluster | None = None
        self.job_sync: JobSync | None = None
        if self.engine.dialect.name == "postgresql":
            self._join_cluster(settings)
        self._purger: task.LoopingCall | None = None
        self.accepting = False
        self.started = False
        self.metrics.add_state(self._state)

    def _join_cluster(self, settings: Settings) -> None:
        """Leases, heartbeats, job states and one-instance duties (smppd.daemon.cluster)."""
        cluster = self.cluster = Cluster(
            self.reactor, self._transaction, self.dispatcher, self.applier.memory,
            settings.cluster.lease, settings.cluster.heartbeat)
        self.jobs.owner = lambda: self.applier.memory.owner
        self.job_sync = JobSync(self.reactor, self._read, self.writer.put, self.jobs,
                                lambda: self.applier.memory.owner)
        self.callbacks.set_duty(lambda: cluster.holds("callbacks"))
        self.inbound.forwarder.duty = lambda: cluster.holds("mail")
        self.inbound.duty = lambda: cluster.holds("monthly")
        self.reports.set_duty(lambda: cluster.holds("report-schedules"))
        self.metrics.registry.register(ClusterCollector(cluster))  # type: ignore[arg-type]

    # Start ---------------------------------------------------------------------------

    @defer.inlineCallbacks
    def start(self) -> Any:
        self.pool.start()
        yield self._in_thread(database.upgrade_url, self.settings.database)
        self._set_accounts((yield self._in_thread(self._seed_accounts)))
        self.applier.pending_receipts = yield self._read(queries.count_pending_receipts)
        fragments = yield self._read(queries.unassembled_fragments,
                                     self.listener.reassembler.timeout)
        if self.cluster is not None:  # before the writer: accepts are leased from the first
            yield self.cluster.register()
        self.writer.start()
        for row in fragments:
            self._reload_fragment(row)
        for smsc in self.settings.smscs:
            self._add_connector(smsc)
        for smsc, origin, reading in (yield self._read(queries.id_modes)):
            channel = self.dispatcher.channels.get(smsc)
            if channel is not None and isinstance(channel.ids, AutoIds):
                channel.ids.set_mode(Source(origin), Reading(reading))
                log.info("smsc=%s receipt %s ids read %s (learnt earlier)", smsc, origin,
                         reading)
        self.dispatcher.refill()
        if self.cluster is not None:
            self.cluster.start()  # heartbeats, which also take over a dead one's work
        yield self.jobs.restore()
        if self.job_sync is not None:
            self.job_sync.start()
        yield self.inbound.start()
        yield self.reports.start()
        yield self.callbacks.start()
        if self.links is not None and self.settings.links is not None:
            self.agents.start()
            self.links_port = self.reactor.listenTCP(
                self.settings.links.listen_port, self.links.factory(http_limits(self.settings)),
                interface=self.settings.links.listen_host)
        ops_listen = self.settings.ops_listen
        if ops_listen is not None:  # issue 13: operators' paths off the customers' port
            self.ops_port = self.reactor.listenTCP(ops_listen[1], make_ops_factory(self),
                                                   interface=ops_listen[0])
        self.lockout = AuthLockout(self.reactor, self.settings.http.auth_failures,
                                   self.settings.http.auth_window)
        if self.settings.portal.enabled:  # issue 15
            self.portal = make_portal(self)
            self.portal.start(self.reactor)
        factory = make_factory(self, self.tokens, http_limits(self.settings), self.lockout,
                               self.reactor, serve_ops=ops_listen is None,
                               pages=self.portal.handle if self.portal is not None else None)
        warning = ensure_descriptors(self.settings.http.max_connections)
        if warning:
            log.warning("%s", warning)
        self.port = self.reactor.listenTCP(self.settings.http_listen_port, factory,
                                           backlog=LISTEN_BACKLOG,
                                           interface=self.settings.http_listen_host)
        self.dispatcher.start_ticking(self.settings.throttle.recovery_interval)
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
            ids = queries.seed_accounts(conn, [(a.name, a.balance)
                                               for a in self.settings.accounts])
            outbox.ensure_secrets(conn, ids.values(), signing.new_secret)  # issue 12
            return ids

    def _set_accounts(self, ids: dict[str, int]) -> None:
        """On the reactor thread: the token table the API reads."""
        self.accounts = {a.name: Account(ids[a.name], a.name) for a in self.settings.accounts}
        self.tokens.clear()
        self.tokens.update({token_digest(a.token): self.accounts[a.name]
                            for a in self.settings.accounts})
        self.inbound.configure(self.settings, ids, self.intake)
        self.reports.set_accounts(self.accounts)

    def _add_connector(self, smsc: SmscSettings) -> None:
        connector = Connector(connector_config(smsc), self.listener, self.reactor,
                              reconnect_backoff)
        self.connectors[smsc.name] = connector
        self.dispatcher.add_channel(Channel(smsc, connector, self.reactor.seconds(),
                                            self.settings.throttle))
        # At start the applier already has it; an SMSC a reload adds does not (it got
        # "all" until a restart, whatever its configuration said).
        self.applier.receipt_policy[smsc.name] = smsc.receipt_policy
        connector.start()

    def _retire_connector(self, name: str) -> None:
        """Unbind an SMSC a reload removed and forget it once its work is handed over;
        added back before that, it is a new connector with the same name."""
        connector = self.connectors[name]

        def gone(_: Any) -> None:
            if self.connectors.get(name) is connector:
                del self.connectors[name]
            log.info("smsc=%s removed: unbound", name)

        self.dispatcher.retire(name).addCallback(gone)

    def _reload_fragment(self, row: Any) -> None:
        concat = Concat(row.reference, row.total, row.number) if row.total else None
        fragment = MoFragment(row.source, row.destination, row.data_coding, row.payload, concat)
        self.listener.add_fragment(row.smsc, fragment, row.id, row.dedupe_key,
                                   row.received_at.replace(tzinfo=UTC).timestamp())

    def _purge(self) -> None:
        """Hourly: receipts that waited a week for a message that never came, and
        idempotency keys past their 24 h."""
        if self.cluster is not None and not self.cluster.holds("purge"):
            return  # another instance sweeps

        def done(purged: int) -> None:
            if purged:
                log.warning("store: %d receipts never matched a message in %d days; "
                            "removed", purged, PENDING_RECEIPT_DAYS)

        self.writer.put(ops.PurgePending(PENDING_RECEIPT_DAYS * 86400.0)).addCallbacks(
            done, lambda failure: log.error("store: purge failed: %s",
                                            failure.getErrorMessage()))
        self.writer.put(idempotency.PurgeKeys()).addErrback(  # Idempotency-Keys past 24 h
            lambda failure: log.error("store: purge of idempotency keys failed: %s",
                                      failure.getErrorMessage()))

    @property
    def http_port(self) -> int:
        return self.port.getHost().port

    # Threads -------------------------------------------------------------------------

    @staticmethod
    def _drains_apart(settings: Settings) -> bool:
        """The callback drainer in its own process (callbacks.process), unless the
        database is one only this process can open (in-memory SQLite)."""
        url = make_url(settings.database)
        in_memory = url.get_backend_name() == "sqlite" and url.database in (None, "",
                                                                            ":memory:")
        return settings.callbacks.process and not in_memory

    @staticmethod
    def _reader(settings: Settings, engine: Any) -> Any:
        """The engine of reads (`_read`). On SQLite its transactions begin deferred:
        the writer's engine begins IMMEDIATE, which took the write lock for every read
        too, so each API read, job page and drainer read queued behind the writer's
        batch and held the writer up in turn ("database is locked" under load). A
        read sees the last commit, as on PostgreSQL, where both are one engine. An
        in-memory database exists once per engine: there too, one engine."""
        url = make_url(settings.database)
        if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
            return engine
        return database.make_engine(settings.database, limits=settings.store,
                                    immediate=False)

    def _worker_spec(self, duty: bool) -> str:
        settings = self.settings
        # Alone on its database the worker is told when to read (_committed); with
        # several instances events also come from the others' writers, which do not
        # tell it: it polls as the drainer always did.
        poll = drainer.TICK if self.cluster is not None else process.NUDGED_POLL
        return worker.spec(settings.database, settings.callbacks, settings.store,
                           settings.log_level, duty, poll)

    def _committed(self, operations: int, seconds: float) -> None:
        """Each batch the writer commits (writer thread): its metrics, and a nudge to
        the callbacks' drainer process, whose events a batch may have written."""
        self.metrics.batch(operations, seconds)
        if self.callbacks.wants_nudges:
            self.reactor.callFromThread(self.callbacks.nudge)

    def _in_thread(self, fn: Any, *args: Any) -> defer.Deferred[Any]:
        return deferToThreadPool(self.reactor, self.pool, fn, *args)

    def _read(self, fn: Any, *args: Any) -> defer.Deferred[Any]:
        def run() -> Any:
            with self.reader.connect() as conn:
                return fn(conn, *args)
        return deferToThreadPool(self.reactor, self.pool, run)

    def _transaction(self, fn: Any, *args: Any) -> defer.Deferred[Any]:
        def run() -> Any:
            with self.engine.begin() as conn:
                return fn(conn, *args)
        return deferToThreadPool(self.reactor, self.pool, run)

    def _api_read(self, fn: Any, *args: Any) -> defer.Deferred[Any]:
        """A read for an API client, answered 503 after the store's answer timeout
        even while its thread still waits (a pooled connection's ping on a silent
        server, then a new connection, may take longer): a read changes nothing, so
        giving up on it is safe."""
        bound = self.settings.store.answer_timeout

        def timed_out(failure: Any) -> Any:
            failure.trap(defer.TimeoutError)
            raise StoreUnavailable(f"the database did not answer a read within {bound:g} s")

        return self._read(fn, *args).addTimeout(bound, self.reactor).addErrback(timed_out)

    def _load_queued(self, after_id: str, limit: int) -> defer.Deferred[Any]:
        owner = self.applier.memory.owner
        if self.cluster is not None:  # leased, not read by cursor (smppd.store.leases)
            if owner is None:
                return defer.succeed(([], None))  # registering again after a fence
            return self._transaction(leases.lease_singles, owner, limit)
        return self._read(queries.load_queued, after_id, limit)

    def _load_job_page(self, job_id: str, after_id: str, limit: int) -> defer.Deferred[Any]:
        owner = self.applier.memory.owner
        if self.cluster is not None:
            if owner is None:
                return defer.succeed(([], None))
            return self._transaction(leases.lease_job_page, owner, job_id, limit)
        return self._read(queries.load_job_queued, job_id, after_id, limit)

    # What the API calls ----------------------------------------------------------------

    def accept_message(self, account: Account, message: ValidMessage,
                       claim: idempotency.Claim | None = None, channel: str = "api",
                       sent_by: str | None = None) -> defer.Deferred[Any]:
        if not self.accepting:
            return defer.fail(ApiError(503, "smppd is shutting down; retry on another "
                                            "instance or later"))
        self.callbacks.check_callback(account.id, message.callback)
        prepared = self.intake.admission.prepare(
            account.id, message.sender, message.recipient, message.country, message.text,
            self.intake.references, self.reactor.seconds(), ref_id=message.ref_id,
            params=params_json(message.params), channel=channel, sent_by=sent_by,
            partner=message.partner, callback_id=message.callback,
            shorten_links=message.shorten_links)
        op, info = prepared.op, prepared.info
        answer = {"id": op.message_id, "status": Status.QUEUED, "parts": info.parts,
                  "encoding": info.encoding.value, "points": op.points}
        if claim is not None:  # the answer is kept with the message, in its transaction
            op = op._replace(idempotency=replace(claim, response=json_body(answer).decode()))
        metrics = self.metrics

        def stored(result: Any) -> Any:
            if isinstance(result, idempotency.Stored):
                metrics.api_message("replayed")
                return result  # the same key was committed first by another instance
            metrics.api_message("accepted")
            # A link code already taken was replaced in the store (same length).
            sent = op._replace(text=result.text) if isinstance(result, Recoded) else op
            self.dispatcher.accepted(queued(sent))
            return answer

        def failed(failure: Any) -> Any:
            metrics.api_message("insufficient_balance" if failure.check(
                ops.InsufficientBalance) else "unavailable")
            return refused(failure)

        return self.writer.put(op).addCallbacks(stored, failed)

    def get_message(self, account: Account, message_id: str) -> defer.Deferred[Any]:
        if not validation.looks_like_id(message_id):
            return defer.succeed(None)
        return self._api_read(callback_queries.message_with_links, account.id, message_id)

    def list_messages(self, account: Account, where: Any, cursor: str | None,
                      limit: int) -> defer.Deferred[Any]:
        return self._api_read(queries.list_messages, account.id, where, cursor, limit)

    def get_balance(self, account: Account) -> defer.Deferred[Any]:
        return self._api_read(queries.balance, account.id)

    def create_job(self, account: Account, read_job: Any, key: str | None = None,
                   channel: str = "api", sent_by: str | None = None) -> defer.Deferred[Any]:
        def checked() -> Any:  # on the pool thread, where the body is parsed
            # A job may name a contact group instead of recipients (issue 11).
            job = self.inbound.expand_group(self.engine, account.id, read_job())
            self.callbacks.check_callback(account.id, job.extras.callback)
            return job

        return self.jobs.create(account, checked, key, channel, sent_by)

    def find_idempotency_key(self, account: Account, key: str) -> defer.Deferred[Any]:
        return self._read(idempotency.lookup, account.id, key)

    def get_job(self, account: Account, job_id: str) -> defer.Deferred[Any]:
        def with_clicks(job: dict[str, Any] | None) -> Any:
            if job is None or not job.get("shorten_links"):
                return job
            return self._api_read(report_queries.links_of_jobs, account.id, [job_id]).addCallback(
                lambda stats: {**job, "links": stats})

        return self.jobs.get(account, job_id).addCallback(with_clicks)

    def job_action(self, account: Account, job_id: str, action: str) -> defer.Deferred[Any]:
        return self.jobs.act(account, job_id, action)

    def readiness(self) -> tuple[bool, dict[str, Any]]:
        smscs = {name: c.state() for name, c in self.connectors.items()}
        bound = any(c.bound for c in self.connectors.values())
        store = self.writer.available  # unavailable, or nothing committed for too long
        ready = self.accepting and bound and store
        detail = {"ready": ready, "smscs": smscs, "store": "ok" if store else "unavailable",
                  "accepting": self.accepting}
        if self.cluster is not None:  # issue 14: it sends only while its lease holds
            leased = self.cluster.lease_ok()
            detail["ready"] = ready = ready and leased
            detail["lease"] = "ok" if leased else "lapsed"
        return ready, detail

    def _state(self) -> dict[str, Any]:
        return {"connectors": self.connectors, "queue_depth": self.dispatcher.depth,
                "id_modes": {name: channel.ids for name, channel
                             in self.dispatcher.channels.items()},
                "store_backlog": self.writer.backlog, "unsettled": self.dispatcher.unsettled,
                "store_available": self.writer.available,
                "store_stalled": self.writer.stalled_for()}

    # Reload and stop -------------------------------------------------------------------

    def reload(self, settings: Settings) -> list[str]:
        """Apply what can change without a restart: log level, SMSC credentials and
        throughput (binds that did not change stay up), new SMSCs, routes, prices,
        accounts' tokens. Returns what was changed, for the log."""
        changes: list[str] = []
        if settings.database != self.settings.database:
            changes.append("database: needs a restart (ignored)")
            settings = replace(settings, database=self.settings.database)
        for key in ("store", "throttle"):
            if getattr(settings, key) != getattr(self.settings, key):
                changes.append(f"{key}: needs a restart (ignored)")
                settings = replace(settings, **{key: getattr(self.settings, key)})
        if (settings.http_listen_host, settings.http_listen_port) != (
                self.settings.http_listen_host, self.settings.http_listen_port):
            changes.append("http.listen: needs a restart (ignored)")
            settings = replace(settings, http_listen_host=self.settings.http_listen_host,
                               http_listen_port=self.settings.http_listen_port)
        if settings.ops_listen != self.settings.ops_listen:
            changes.append("http.ops_listen: needs a restart (ignored)")
            settings = replace(settings, ops_listen=self.settings.ops_listen)
        logs.set_level(settings.log_level)
        reconfigured: list[str] = []  # SMSCs whose rate now holds the whole contract
        for smsc in settings.smscs:
            connector = self.connectors.get(smsc.name)
            if connector is None:
                self._add_connector(smsc)
                changes.append(f"smsc {smsc.name}: added")
                continue
            channel = self.dispatcher.channels[smsc.name]
            if channel.retiring is not None:
                changes.append(f"smsc {smsc.name}: still unbinding after its removal; "
                               "reload again once it is down to add it back")
                continue
            if smsc != channel.settings:
                rebinding = connector.reload(connector_config(smsc))
                channel.reconfigure(smsc, self.reactor.seconds())
                reconfigured.append(smsc.name)
                self.applier.receipt_policy[smsc.name] = smsc.receipt_policy
                changes.append(f"smsc {smsc.name}: " + ("re-binding" if rebinding
                                                         else "updated, binds kept"))
        changes.extend(self._reload_http(settings))
        new_accounts = {a.name for a in settings.accounts} - set(self.accounts)
        self.settings = settings
        router = _router(self.settings)
        self.dispatcher.set_router(router)
        removed = set(self.connectors) - {s.name for s in settings.smscs}
        for name in sorted(removed):
            self._retire_connector(name)
            changes.append(f"smsc {name}: removed; unbinding, its queued messages take "
                           "their new routes")
        self.intake.configure(router, Tariff(settings.price_default, settings.price_by_prefix))
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
        if self.cluster is not None:  # a changed contract is split again at once
            self.cluster.reapply(reconfigured)
        self.dispatcher.pump_soon()
        for change in changes:
            log.info("reload: %s", change)
        return changes

    def _reload_http(self, settings: Settings) -> list[str]:
        """The http: limits and timeouts: new connections get the new ones."""
        if self.port is None:
            return []
        limits = http_limits(settings)
        factory = self.port.factory
        if limits == factory.limits and (self.lockout.max_failures, self.lockout.window) == (
                settings.http.auth_failures, settings.http.auth_window):
            return []
        factory.limits = limits
        factory.api.max_body, factory.api.max_job_body = limits.max_body, limits.max_job_body
        self.lockout.max_failures = settings.http.auth_failures
        self.lockout.window = settings.http.auth_window
        warning = ensure_descriptors(limits.max_connections)
        return ["http: limits updated (new connections)"] + ([warning] if warning else [])

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
        if self.links_port is not None:
            yield self.links_port.stopListening()
        self.dispatcher.stop()
        self.jobs.stop()
        if self.cluster is not None:
            self.cluster.stop()
        if self.job_sync is not None:
            self.job_sync.stop()
        self.inbound.stop()
        self.reports.stop()
        if self.portal is not None:
            self.portal.stop()
        self.listener.stop_expiry()
        if self._purger is not None and self._purger.running:
            self._purger.stop()
        yield defer.DeferredList([c.stop() for c in self.connectors.values()])
        waited = 0.0
        while self.dispatcher.unsettled > 0 and waited < drain_timeout:
            yield task.deferLater(self.reactor, 0.05, lambda: None)
            waited += 0.05
        yield self._in_thread(self.reports.join)  # issue 10
        yield self.callbacks.stop()  # its last results go through the writer
        self.agents.stop()
        if self.links is not None:
            yield self.links.stop()  # the clicks answered, to the writer
        yield self._in_thread(self.writer.stop)
        if self.cluster is not None:  # what it still holds goes back to the queue now
            yield self.cluster.retire()
        if self.ops_port is not None:  # scrapes go on while draining
            yield self.ops_port.stopListening()
        self.pool.stop()
        self.engine.dispose()
        if self.reader is not self.engine:
            self.reader.dispose()
        log.info("smppd stopped")
