"""The Reports tab: the generator (type, period presets or dates, format, content
and jobs included, e-mail addresses, name), the list of generated reports with
state, progress and download, and periodic schedules. Everything goes through
adapters.ReportsPort (see there for what is left to wire)."""

from __future__ import annotations

from typing import Any

from twisted.internet import defer

from ...api.validation import ApiError
from .. import adapters
from ..web import Page, PageError, Route, download

_ID = r"(?P<report_id>[A-Za-z0-9_-]{1,64})"


def fields(page: Page, with_period: bool = True) -> dict[str, Any]:
    """The form as the API's JSON body (DESIGN.md's field names)."""
    data: dict[str, Any] = {"type": page.field("type"), "format": page.field("format")}
    if with_period:
        if page.field("period") == "custom":
            # Dates as given: the reports service reads them in the account's zone.
            data.update({k: page.field(k) for k in ("since", "until") if page.field(k)})
        else:
            data["period"] = page.field("period")
    for name in ("name", "job", "poll"):
        if page.field(name):
            data[name] = page.field(name)
    for name in ("include_content", "include_jobs", "include_contacts"):
        data[name] = page.field(name) == "on"
    emails = [e.strip() for e in page.field("email").replace(";", ",").split(",") if e.strip()]
    if emails:
        data["email"] = emails
    data["async"] = True
    if not with_period:
        data["every"] = page.field("every")
    return data


@defer.inlineCallbacks
def overview(portal: Any, page: Page, error: Any = None, status: int = 200) -> Any:
    port = portal.backend.reports
    reports = yield port.list(page.account)
    schedules = yield port.schedules(page.account)
    return page.render("reports.html", status=status, available=port.available,
                       reports=reports, schedules=schedules, error=error,
                       types=adapters.REPORT_TYPES, formats=adapters.REPORT_FORMATS,
                       periods=adapters.PERIODS, every=adapters.SCHEDULE_EVERY,
                       job=page.query("job"), poll=page.query("poll"),
                       done=page.query("done"))


@defer.inlineCallbacks
def create(portal: Any, page: Page) -> Any:
    try:
        yield portal.backend.reports.create(page.account, fields(page))
    except (ApiError, PageError) as exc:
        return (yield overview(portal, page, exc, exc.status))
    return page.redirect("/portal/reports", done="queued")


@defer.inlineCallbacks
def file(portal: Any, page: Page, report_id: str) -> Any:
    found = yield portal.backend.reports.file(page.account, report_id)
    if found is None:
        raise PageError(404, page.gettext("There is no such report, or it is not ready."))
    path, content_type, name = found  # streamed from disk by the server
    return download(b"", name, content_type.encode() if isinstance(content_type, str)
                    else content_type, file=path)


@defer.inlineCallbacks
def delete(portal: Any, page: Page, report_id: str) -> Any:
    yield portal.backend.reports.delete(page.account, report_id)
    return page.redirect("/portal/reports", done="deleted")


@defer.inlineCallbacks
def schedule(portal: Any, page: Page) -> Any:
    try:
        yield portal.backend.reports.create_schedule(page.account, fields(page, False))
    except (ApiError, PageError) as exc:
        return (yield overview(portal, page, exc, exc.status))
    return page.redirect("/portal/reports", done="scheduled")


@defer.inlineCallbacks
def unschedule(portal: Any, page: Page, report_id: str) -> Any:
    yield portal.backend.reports.delete_schedule(page.account, report_id)
    return page.redirect("/portal/reports", done="unscheduled")


ROUTES = [
    Route(b"GET", r"/portal/reports", overview, "view"),
    Route(b"POST", r"/portal/reports", create, "send"),
    Route(b"GET", rf"/portal/reports/{_ID}/file", file, "view"),
    Route(b"POST", rf"/portal/reports/{_ID}/delete", delete, "send"),
    Route(b"POST", r"/portal/reports/schedules", schedule, "send"),
    Route(b"POST", rf"/portal/reports/schedules/{_ID}/delete", unschedule, "send"),
]
