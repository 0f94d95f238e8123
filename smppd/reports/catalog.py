"""The report types (DESIGN.md, Reports: `type`): for each name, its builder, the
formats it comes in, what scopes it, and how many rows it is expected to read (the
estimate that decides whether a report runs while the client waits or is queued).

Adding a type is a line here and a builder (a function of a connection and a
Context that returns a Document): smppd.reports.documents for sent messages,
smppd.reports.inbound_documents for inbound messages and polls.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection

from . import documents as sent
from . import inbound_documents as inbound
from .documents import Context, Document
from .periods import Period

Builder = Callable[[Connection, Context], Document]
# (connection, account id, validated request, period) -> rows the report reads
Estimate = Callable[[Connection, int, dict[str, Any], Period | None], int]


@dataclass(frozen=True)
class ReportType:
    build: Builder
    formats: tuple[str, ...]
    needs_period: bool = True  # False: a job, campaign or poll gives the scope
    needs_job: bool = False
    takes_job: bool = True  # a job or campaign may scope it...
    job_is_period: bool = True  # ...in place of a period (else as well as one)
    needs_poll: bool = False
    inbound: bool = False  # about inbound messages: takes `number` and `sender`
    contacts: bool = False  # takes `include_contacts`
    estimate: Estimate | None = None  # None: messages in the period, or the job's


TABULAR = ("csv", "json", "xlsx", "pdf", "docx")
TYPES: dict[str, ReportType] = {
    "detailed": ReportType(sent.detailed, ("csv", "json", "xlsx", "pdf"), contacts=True),
    "daily": ReportType(sent.daily, TABULAR, takes_job=False),  # the account's rollups
    "jobs": ReportType(sent.jobs, TABULAR),
    "job": ReportType(sent.job, (*TABULAR, "xml"), needs_period=False, needs_job=True),
    "country": ReportType(sent.country, TABULAR),
    "customer": ReportType(sent.customer, TABULAR, job_is_period=False),  # per month
    "inbound": ReportType(inbound.detailed, TABULAR, takes_job=False, inbound=True,
                          contacts=True, estimate=inbound.estimate),
    "inbound-daily": ReportType(inbound.daily, TABULAR, takes_job=False, inbound=True,
                                estimate=inbound.estimate),
    "poll": ReportType(inbound.poll, TABULAR, needs_period=False, takes_job=False,
                       needs_poll=True, estimate=inbound.poll_estimate),
}
