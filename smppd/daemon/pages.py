"""The portal and console wired to this daemon (issue 15): the Backend the pages
use (the daemon's own services, its reader and writer) and the console's view of
the binds and queues. The daemon's side of smppd.portal, as daemon/inbound.py is
smppd.inbound's."""

from __future__ import annotations

from typing import Any

from ..portal.app import Portal
from ..portal.backend import Backend
from .portal_ports import ServiceCallbacks, ServiceReports


class Console:
    """Binds and queues as the operator sees them; the bind buttons. A suspended
    SMSC stays down until resumed or until the daemon restarts."""

    def __init__(self, daemon: Any) -> None:
        self.daemon = daemon
        self.suspended: set[str] = set()

    def smscs(self) -> list[dict[str, Any]]:
        found = []
        for name, connector in self.daemon.connectors.items():
            channel = self.daemon.dispatcher.channels.get(name)
            links = [{"name": link.name, "state": link.state.value,
                      "in_flight": link.in_flight, "last_error": link.last_bind_error}
                     for link in connector.links]
            found.append({
                "name": name, "state": connector.state(), "links": links,
                "window_in_use": sum(link["in_flight"] for link in links),
                "window_capacity": connector.config.session.window
                * sum(1 for _ in connector.transmitters),
                "rate": round(channel.rate.meter.rate, 1) if channel is not None else 0.0,
                "throughput": channel.settings.throughput if channel is not None else 0.0,
                "suspended": name in self.suspended,
                "last_error": next((link["last_error"] for link in links
                                    if link["last_error"]), None)})
        return found

    def queue(self) -> dict[str, int]:
        return {"queue_depth": self.daemon.dispatcher.depth,
                "store_backlog": self.daemon.writer.backlog,
                "unsettled": self.daemon.dispatcher.unsettled}

    def reconnect(self, name: str) -> bool:
        connector = self.daemon.connectors.get(name)
        if connector is None:
            return False
        if name in self.suspended:
            return self.resume(name)
        connector.rebind("reconnect asked by the operator")
        return True

    def suspend(self, name: str) -> bool:
        connector = self.daemon.connectors.get(name)
        if connector is None:
            return False
        self.suspended.add(name)
        connector.stop()  # unbinds after the responses in flight
        return True

    def resume(self, name: str) -> bool:
        connector = self.daemon.connectors.get(name)
        if connector is None:
            return False
        self.suspended.discard(name)
        connector.start()
        return True


def make_portal(daemon: Any) -> Portal:
    """The portal over this daemon: its services, reader and writer, and the reports
    and callbacks ports (smppd.daemon.portal_ports)."""
    reports = ServiceReports(daemon.reports)
    callbacks = ServiceCallbacks(daemon.callbacks,
                                 lambda: {a.id: a.name for a in daemon.accounts.values()})
    backend = Backend(
        app=daemon, read=daemon._read, put=daemon.writer.put, in_thread=daemon._in_thread,
        clock=daemon.reactor.seconds, settings=lambda: daemon.settings,
        admission=lambda: daemon.intake.admission, console=Console(daemon),
        reports=reports, callbacks=callbacks, zone=daemon.reports.timezone)
    return Portal(backend)
