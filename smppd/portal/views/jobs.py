"""Bulk jobs: the list, the creation form (a CSV upload or a contact group, {field}
placeholders, a start time and a rate cap) checked by the API's own validation and
created by the daemon's create_job, each job's page with live progress and rate,
and Pause, Resume and Stop (Stop asks first and says what comes back)."""

from __future__ import annotations

from datetime import tzinfo
from typing import Any

from twisted.internet import defer

from ...api import forms, validation
from ...api.validation import ApiError
from ...ids import looks_like_id
from ...status import JobState
from ...store import portal_queries as pq
from ..localtime import from_input
from ..web import Page, PageError, Route, json_response
from .dashboard import ACTIVE, progress

PAGE_SIZE = 50


@defer.inlineCallbacks
def job_list(portal: Any, page: Page) -> Any:
    cursor = page.query("cursor") or None
    if cursor is not None and not looks_like_id(cursor):
        cursor = None
    jobs, next_cursor = yield portal.backend.read(pq.jobs, page.account.id, None, cursor,
                                                  PAGE_SIZE)
    for job in jobs:
        if job["state"] in ACTIVE:
            found = yield portal.backend.app.get_job(page.account, job["id"])
            if found is not None:
                job.update(progress(found))
    return page.render("jobs.html", jobs=jobs, next_cursor=next_cursor)


@defer.inlineCallbacks
def new_form(portal: Any, page: Page) -> Any:
    groups = yield portal.backend.app.inbound.groups(page.account)
    return page.render("job_new.html", values={}, error=None, groups=groups["groups"])


def _start_at(value: str, zone: tzinfo) -> str | None:
    """<input type=datetime-local> gives '2026-11-22T10:00', the account's local time."""
    return from_input(value, zone, "start_at") if value else None


@defer.inlineCallbacks
def create(portal: Any, page: Page) -> Any:
    values = {name: page.field(name) for name in ("name", "from", "text", "start_at",
                                                  "throughput", "group")}
    values["text"] = page.form.get("text", "")
    upload = page.files.get("file", b"")
    groups = yield portal.backend.app.inbound.groups(page.account)
    try:
        fields: dict[str, Any] = {"name": values["name"], "from": values["from"],
                                  "text": values["text"],
                                  "start_at": _start_at(values["start_at"], page.zone),
                                  "throughput": values["throughput"] or None}
        if values["group"]:
            fields["group"] = values["group"]
            rows = None
        elif not forms.is_blank(upload):
            rows = forms.csv_rows(upload)
        else:
            raise ApiError(400, "upload a CSV file with a 'to' column, or choose a contact "
                           "group", "file")

        def read_job() -> validation.ValidJob:
            return validation.job(fields, rows) if rows is not None else validation.job(fields)

        summary = yield portal.backend.app.create_job(page.account, read_job, channel="portal",
                                                      sent_by=page.who)
    except ApiError as exc:
        return page.render("job_new.html", status=exc.status, values=values, error=exc,
                           groups=groups["groups"])
    return page.redirect(f"/portal/jobs/{summary['id']}", done="created")


@defer.inlineCallbacks
def _job(portal: Any, page: Page, job_id: str) -> Any:
    job = yield portal.backend.app.get_job(page.account, job_id)
    if job is None:
        raise PageError(404, page.gettext("There is no such job in this account."))
    return progress(job)


@defer.inlineCallbacks
def detail(portal: Any, page: Page, job_id: str) -> Any:
    job = yield _job(portal, page, job_id)
    return page.render("job.html", job=job, done=page.query("done"),
                       cancelled=page.query("cancelled"), refunded=page.query("refunded"),
                       reports=portal.backend.reports.available)


@defer.inlineCallbacks
def progress_json(portal: Any, page: Page, job_id: str) -> Any:
    job = yield _job(portal, page, job_id)
    return json_response({key: job[key] for key in (
        "id", "state", "counts", "messages", "done", "percent", "rate", "eta_seconds",
        "refunded")})


@defer.inlineCallbacks
def act(portal: Any, page: Page, job_id: str, action: str) -> Any:
    result = yield portal.backend.app.job_action(page.account, job_id, action)
    if result is None:
        raise PageError(404, page.gettext("There is no such job in this account."))
    if action == "stop":
        return page.redirect(f"/portal/jobs/{job_id}", done="stopped",
                             cancelled=result["cancelled"], refunded=result["refunded"])
    return page.redirect(f"/portal/jobs/{job_id}", done=result["state"])


@defer.inlineCallbacks
def confirm_stop(portal: Any, page: Page, job_id: str) -> Any:
    job = yield _job(portal, page, job_id)
    messages, points = yield portal.backend.read(pq.job_unsent, page.account.id, job_id)
    return page.render("job_stop.html", job=job, messages=messages, points=points,
                       stoppable=job["state"] not in (JobState.STOPPED, JobState.COMPLETED))


_ID = r"(?P<job_id>[0-9a-f]{32})"
ROUTES = [
    Route(b"GET", r"/portal/jobs", job_list, "view"),
    Route(b"GET", r"/portal/jobs/new", new_form, "send"),
    Route(b"POST", r"/portal/jobs", create, "send"),
    Route(b"GET", rf"/portal/jobs/{_ID}", detail, "view"),
    Route(b"GET", rf"/portal/jobs/{_ID}/progress", progress_json, "view", json=True),
    Route(b"GET", rf"/portal/jobs/{_ID}/stop", confirm_stop, "send"),
    Route(b"POST", rf"/portal/jobs/{_ID}/(?P<action>pause|resume|stop)", act, "send"),
]
