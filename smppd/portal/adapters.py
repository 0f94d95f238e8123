"""What the Reports tab and the Callbacks pages need of their subsystems: two small
interfaces, so the pages depend on a shape, not on the reports and callbacks
packages (the daemon implements them over its services: smppd.daemon.portal_ports).
Every method takes the signed-in account (an api.http.Account; None for the
operator's cross-account reads) and returns a Deferred; field names are
DESIGN.md's. `Unavailable*` stand in where a portal is built without them (unit
tests): the pages then say so, and a POST is a 503."""

from __future__ import annotations

from typing import Any, Protocol

from twisted.internet import defer

from .i18n import N_
from .web import PageError

# DESIGN.md's values, each with the label a page shows (translated there).
REPORT_TYPES = {"detailed": N_("Detailed: every message"), "daily": N_("Per day"),
                "jobs": N_("Jobs"), "job": N_("One job"), "country": N_("Per country"),
                "customer": N_("Per end customer"), "inbound": N_("Inbound messages"),
                "inbound-daily": N_("Inbound per day"), "poll": N_("One poll")}
REPORT_FORMATS = ("csv", "json", "xlsx", "pdf", "docx")
PERIODS = {"today": N_("today"), "yesterday": N_("yesterday"),
           "last-7-days": N_("last 7 days"), "last-week": N_("last week"),
           "last-month": N_("last month"), "last-year": N_("last year")}
SCHEDULE_EVERY = {"day": N_("every day"), "week": N_("every week"),
                  "month": N_("every month")}
CALLBACK_EVENTS = {"status": N_("every status change"), "final": N_("final statuses only"),
                   "inbound": N_("inbound messages")}


class ReportsPort(Protocol):
    available: bool

    def create(self, account: Any, fields: dict[str, Any]) -> defer.Deferred[dict[str, Any]]:
        """POST /v1/reports: fields `type`, `format`, `period` or `since`+`until`,
        `name`?, `job`?, `poll`?, `include_content`?, `include_jobs`?, `email`?
        (list), `async`?. -> {"id", "state", "progress", "rows"}; ApiError naming
        the field for bad input."""
        ...

    def list(self, account: Any) -> defer.Deferred[list[dict[str, Any]]]:
        """GET /v1/reports, newest first: {"id", "name", "type", "format", "state",
        "progress", "rows", "created_at"}."""
        ...

    def file(self, account: Any, report_id: str) -> defer.Deferred[Any]:
        """GET /v1/reports/{id}/file -> (bytes, content type, file name), or None."""
        ...

    def delete(self, account: Any, report_id: str) -> defer.Deferred[bool]: ...

    def schedules(self, account: Any) -> defer.Deferred[list[dict[str, Any]]]:
        """GET /v1/report-schedules: {"id", "every", "type", "format", "next_run"}."""
        ...

    def create_schedule(self, account: Any,
                        fields: dict[str, Any]) -> defer.Deferred[dict[str, Any]]:
        """POST /v1/report-schedules: {"every", <report fields but the period>}."""
        ...

    def delete_schedule(self, account: Any, schedule_id: str) -> defer.Deferred[bool]: ...


class CallbacksPort(Protocol):
    available: bool

    def list(self, account: Any) -> defer.Deferred[list[dict[str, Any]]]:
        """GET /v1/callbacks: {"id", "url", "events", "default", "created_at"}; never
        the secret."""
        ...

    def create(self, account: Any, fields: dict[str, Any]) -> defer.Deferred[dict[str, Any]]:
        """POST /v1/callbacks {"url", "events", "secret"?, "default"?} -> {"id",
        "secret"}: the secret is shown once, on the page that answers the POST."""
        ...

    def delete(self, account: Any, callback_id: str) -> defer.Deferred[bool]: ...

    def failed(self, account: Any | None,
               limit: int = 100) -> defer.Deferred[list[dict[str, Any]]]:
        """Failed deliveries, newest first (`account` None: every account's, for the
        console): {"id", "callback", "url", "type", "attempts", "last_error", "at",
        "account"}."""
        ...

    def resend(self, account: Any | None, delivery_id: str) -> defer.Deferred[bool]:
        """Deliver again (same webhook-id); False when it is not that account's."""
        ...


def _missing(what: str) -> PageError:
    return PageError(503, f"{what} are not part of this build of smppd yet")


class UnavailableReports:
    """Until the reports subsystem is wired: pages show the generator and say so."""

    available = False

    def create(self, account: Any, fields: dict[str, Any]) -> defer.Deferred[Any]:
        return defer.fail(_missing("reports"))

    def list(self, account: Any) -> defer.Deferred[Any]:
        return defer.succeed([])

    def file(self, account: Any, report_id: str) -> defer.Deferred[Any]:
        return defer.succeed(None)

    def delete(self, account: Any, report_id: str) -> defer.Deferred[Any]:
        return defer.fail(_missing("reports"))

    def schedules(self, account: Any) -> defer.Deferred[Any]:
        return defer.succeed([])

    def create_schedule(self, account: Any, fields: dict[str, Any]) -> defer.Deferred[Any]:
        return defer.fail(_missing("report schedules"))

    def delete_schedule(self, account: Any, schedule_id: str) -> defer.Deferred[Any]:
        return defer.fail(_missing("report schedules"))


class UnavailableCallbacks:
    """Until the callbacks subsystem is wired."""

    available = False

    def list(self, account: Any) -> defer.Deferred[Any]:
        return defer.succeed([])

    def create(self, account: Any, fields: dict[str, Any]) -> defer.Deferred[Any]:
        return defer.fail(_missing("callbacks"))

    def delete(self, account: Any, callback_id: str) -> defer.Deferred[Any]:
        return defer.fail(_missing("callbacks"))

    def failed(self, account: Any | None, limit: int = 100) -> defer.Deferred[Any]:
        return defer.succeed([])

    def resend(self, account: Any | None, delivery_id: str) -> defer.Deferred[Any]:
        return defer.fail(_missing("callbacks"))
