"""The portal's Reports tab and Callbacks pages over this daemon's reports and
callbacks services (smppd.portal.adapters says what a port is): the same calls,
checks and errors as `/v1/reports`, `/v1/report-schedules` and `/v1/callbacks`,
so a page and the API can never disagree about what is allowed."""

from __future__ import annotations

from typing import Any

from twisted.internet import defer

from ..callbacks.endpoints import parse_create
from ..reports import request as report_checks

REPORTS_SHOWN = 100  # the newest reports the tab lists


class ServiceReports:
    """ReportsPort over smppd.reports.service.ReportService."""

    available = True

    def __init__(self, service: Any) -> None:
        self.service = service

    def create(self, account: Any, fields: dict[str, Any]) -> defer.Deferred[Any]:
        return defer.maybeDeferred(report_checks.report, fields).addCallback(
            lambda wanted: self.service.create(account, wanted))

    def list(self, account: Any) -> defer.Deferred[Any]:
        return self.service.list(account, REPORTS_SHOWN, None)

    def file(self, account: Any, report_id: str) -> defer.Deferred[Any]:
        """(path, content type, file name): the page streams the file from disk, as
        the API does, instead of holding a report of millions of rows in memory."""
        return self.service.file(account, report_id)

    def delete(self, account: Any, report_id: str) -> defer.Deferred[Any]:
        return self.service.delete(account, report_id).addCallback(bool)

    def schedules(self, account: Any) -> defer.Deferred[Any]:
        return self.service.list_schedules(account)

    def create_schedule(self, account: Any, fields: dict[str, Any]) -> defer.Deferred[Any]:
        return defer.maybeDeferred(report_checks.schedule, fields).addCallback(
            lambda wanted: self.service.create_schedule(account, wanted))

    def delete_schedule(self, account: Any, schedule_id: str) -> defer.Deferred[Any]:
        return self.service.delete_schedule(account, schedule_id).addCallback(bool)


class ServiceCallbacks:
    """CallbacksPort over smppd.callbacks.service.CallbackService. `account_names`
    gives the console the account of each failed delivery."""

    available = True

    def __init__(self, service: Any, account_names: Any) -> None:
        self.service = service
        self.account_names = account_names

    def list(self, account: Any) -> defer.Deferred[Any]:
        return self.service.list(account.id).addCallback(lambda found: found["callbacks"])

    def create(self, account: Any, fields: dict[str, Any]) -> defer.Deferred[Any]:
        return defer.maybeDeferred(parse_create, fields).addCallback(
            lambda spec: self.service.create(account.id, spec))

    def delete(self, account: Any, callback_id: str) -> defer.Deferred[Any]:
        return self.service.delete(account.id, callback_id).addCallback(bool)

    def failed(self, account: Any | None, limit: int = 100) -> defer.Deferred[Any]:
        def named(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
            names = self.account_names()
            return [{**item, "account": names.get(item["account_id"], item["account_id"])}
                    for item in items]

        return self.service.failed(None if account is None else account.id, limit) \
            .addCallback(named)

    def resend(self, account: Any | None, delivery_id: str) -> defer.Deferred[Any]:
        return self.service.resend(None if account is None else account.id, delivery_id)
