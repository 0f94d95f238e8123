"""What the pages need from the daemon, handed in by it (smppd.daemon.pages): the
same services the JSON API calls, the store's reader and writer for the portal's
own domain (users, sessions) and the reads the API has no route for, and the live
state the console shows. The portal never opens the database or an SMPP bind
itself."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, tzinfo
from typing import Any, Protocol

from twisted.internet import defer

from ..config import Settings
from .adapters import CallbacksPort, ReportsPort, UnavailableCallbacks, UnavailableReports


class ConsolePort(Protocol):
    """The operator's view of the binds and queues, and the bind buttons."""

    def smscs(self) -> list[dict[str, Any]]:
        """Per SMSC: name, state, links [{name, state, in_flight, last_error}],
        window_in_use, window_capacity, rate (submits/s, smoothed), throughput (the
        configured cap, 0 for none), suspended."""
        ...

    def queue(self) -> dict[str, int]:
        """queue_depth, store_backlog, unsettled."""
        ...

    def reconnect(self, name: str) -> bool: ...

    def suspend(self, name: str) -> bool: ...

    def resume(self, name: str) -> bool: ...


@dataclass
class Backend:
    # smppd.api.http.Application: accept_message, list_messages, get_message,
    # get_balance, create_job, get_job, job_action, inbound (the InboundService).
    app: Any
    read: Callable[..., defer.Deferred[Any]]  # (fn(conn, *args), *args) on the read pool
    put: Callable[[Any], defer.Deferred[Any]]  # the store's writer
    in_thread: Callable[..., defer.Deferred[Any]]  # CPU work off the reactor (argon2)
    clock: Callable[[], float]
    settings: Callable[[], Settings]
    admission: Callable[[], Any]  # the intake's Admission now: route, parts and price
    console: ConsolePort
    reports: ReportsPort = field(default_factory=UnavailableReports)
    callbacks: CallbacksPort = field(default_factory=UnavailableCallbacks)
    # An account's time zone (its `timezone`): the pages show and read times in it.
    zone: Callable[[int], tzinfo] = lambda account_id: UTC
