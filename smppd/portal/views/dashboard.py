"""The dashboard: balance, today's messages by status (the account's day), the running jobs
with their progress, and the latest jobs with what stopping them refunded."""

from __future__ import annotations

import time
from typing import Any

from twisted.internet import defer

from ...status import ALL, JobState
from ...store import portal_queries as pq
from ..localtime import today_start
from ..web import Page, Route

ACTIVE = (JobState.RUNNING, JobState.PAUSED, JobState.SCHEDULED)


def progress(job: dict[str, Any]) -> dict[str, Any]:
    """A job from the API's read (queries.get_job) with what a progress bar needs."""
    total = job["messages"] or 0
    unsent = job["counts"].get("queued", 0) + job["counts"].get("cancelled", 0)
    job["done"] = total - unsent  # sent (a stopped job's cancelled ones never were)
    job["percent"] = round(100.0 * job["done"] / total, 1) if total else 100.0
    return job


@defer.inlineCallbacks
def dashboard(portal: Any, page: Page) -> Any:
    backend, account = portal.backend, page.account
    balance = yield backend.app.get_balance(account)
    since = today_start(backend.clock() or time.time(), page.zone)
    counts = yield backend.read(pq.status_counts, account.id, since)
    running, _ = yield backend.read(pq.jobs, account.id, ACTIVE, None, 10)
    jobs = []
    for job in running:
        found = yield backend.app.get_job(account, job["id"])
        if found is not None:
            jobs.append(progress(found))
    recent, _ = yield backend.read(pq.jobs, account.id, None, None, 5)
    return page.render("dashboard.html", balance=balance, counts=counts, statuses=ALL,
                       total=sum(counts.values()), jobs=jobs, recent=recent)


ROUTES = [Route(b"GET", r"/portal/", dashboard, "view")]
