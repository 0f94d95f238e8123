"""Producing one report's file from its row: the same code whether it runs on a
report thread of the daemon (small reports the client waits for) or in a worker
process (queued ones: smppd.reports.worker)."""

from __future__ import annotations

import json
import re
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from ..checks import ApiError
from ..store import inbound_queries as iq
from . import periods
from . import store as rs
from .catalog import TYPES
from .documents import Context
from .periods import Period
from .queries import jobs
from .render import render

LEASE_SECONDS = 60.0
PROGRESS_SECONDS = 1.0
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


class Cancelled(Exception):
    """The report was deleted, or taken over, while it ran; or the daemon is stopping."""


def wall() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def aware(value: datetime, tz: Any) -> datetime:
    return value.replace(tzinfo=UTC).astimezone(tz)


class Progress:
    """Called by a renderer every few thousand rows: writes progress and renews the
    lease at most once a second; raises Cancelled when the report is no longer ours."""

    def __init__(self, engine: Engine, report_id: str, owner: str,
                 stopping: Any = lambda: False) -> None:
        self.engine = engine
        self.report_id = report_id
        self.owner = owner
        self.stopping = stopping
        self.estimate = 1
        self.last = time.monotonic()

    def __call__(self, rows: int) -> None:
        if self.stopping():
            raise Cancelled()
        now = time.monotonic()
        if now - self.last < PROGRESS_SECONDS:
            return
        self.last = now
        with self.engine.begin() as conn:
            if not rs.renew(conn, self.report_id, self.owner, min(0.99, rows / self.estimate),
                            rows, wall() + timedelta(seconds=LEASE_SECONDS)):
                raise Cancelled()


def produce(reader: Engine, row: Any, account_name: str, path: Path,
            progress: Progress) -> tuple[int, str]:
    """Write the report of `row` to `path`: (rows written, the file name to offer)."""
    request = json.loads(row.request)
    tz = periods.zone(row.timezone)
    period = None
    if row.period_start is not None:
        period = Period(aware(row.period_start, tz), aware(row.period_end, tz), tz,
                        request.get("period") or "custom")
    with reader.connect() as conn:
        ctx = context(conn, row.account_id, account_name, request, period, tz)
        doc = TYPES[row.type].build(conn, ctx)
        progress.estimate = max(doc.estimate, 1)
        count = render(doc, row.format, path, progress, request)
    return count, file_name(row, account_name, period, ctx)


def context(conn: Any, account_id: int, account_name: str, request: dict[str, Any],
            period: Period | None, tz: Any) -> Context:
    ctx = Context(account_id, account_name, request, period, tz)
    if request.get("campaign"):
        campaign = rs.campaign_row(conn, account_id, request["campaign"])
        if campaign is None:
            raise ApiError(404, "the campaign no longer exists", "campaign")
        ctx.campaign = {"id": campaign.id, "name": campaign.name,
                        "description": campaign.description}
        ctx.job_ids = rs.campaign_jobs(conn, account_id, campaign.id)
        ctx.job_rows = jobs(conn, account_id, job_ids=ctx.job_ids) if ctx.job_ids else []
    elif request.get("job"):
        ctx.job_rows = jobs(conn, account_id, job_ids=[request["job"]])
        if not ctx.job_rows:
            raise ApiError(404, "the job no longer exists", "job")
        ctx.job_ids = [request["job"]]
    elif request.get("poll"):
        ctx.poll = iq.poll(conn, account_id, request["poll"])
        if ctx.poll is None:
            raise ApiError(404, "the poll no longer exists", "poll")
    elif request["type"] == "jobs":
        ctx.job_rows = jobs(conn, account_id, period.start_ts if period else None,
                            period.end_ts if period else None)
    return ctx


def file_name(row: Any, account: str, period: Period | None, ctx: Context) -> str:
    """type-account-period.ext, e.g. daily-acme-2026-11-01_2026-11-30.csv."""
    if period is not None:
        scope = period.slug()
    elif ctx.campaign is not None:
        scope = "campaign-" + ctx.campaign["name"]
    elif ctx.job_rows:
        scope = "job-" + ctx.job_rows[0].name
    elif ctx.poll is not None:
        scope = "poll-" + ctx.poll["name"]
    else:
        scope = "all"
    stem = _UNSAFE.sub("_", f"{row.type}-{account}-{scope}").strip("_")[:150]
    return f"{stem}.{row.format}"
