"""Rows of the reports, report_schedules and campaigns tables: small transactions on a
pool thread (never the reactor, never the writer thread: none of this is message
state, and a report must never hold up sending)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, delete, func, or_, select, update

from ..store import schema as t

r = t.reports.c


def iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat(timespec="seconds") + "Z"


def report_view(row: Any) -> dict[str, Any]:
    """A report as the API shows it."""
    request = json.loads(row.request)
    view = {"id": row.id, "type": row.type, "format": row.format, "name": row.name,
            "state": row.state, "progress": round(float(row.progress), 3), "rows": row.rows,
            "timezone": row.timezone,
            "period": {"since": iso(row.period_start), "until": iso(row.period_end)}
            if row.period_start else None,
            "job": request.get("job"), "campaign": request.get("campaign"),
            "error": row.error, "file": f"/v1/reports/{row.id}/file"
            if row.state == "ready" else None,
            "file_name": row.file_name, "size": row.file_size,
            "email": json.loads(row.email) if row.email else [],
            "email_state": row.email_state, "email_attempts": row.email_attempts,
            "email_error": row.email_error, "schedule": row.schedule_id,
            "created_at": iso(row.created_at), "started_at": iso(row.started_at),
            "finished_at": iso(row.finished_at), "expires_at": iso(row.expires_at)}
    return view


def insert_report(conn: Connection, values: dict[str, Any]) -> None:
    conn.execute(t.reports.insert().values(**values))


def report_row(conn: Connection, report_id: str) -> Any:
    return conn.execute(select(t.reports).where(r.id == report_id)).first()


def get_report(conn: Connection, account_id: int, report_id: str) -> Any:
    return conn.execute(select(t.reports).where(r.id == report_id,
                                                r.account_id == account_id)).first()


def list_reports(conn: Connection, account_id: int, limit: int,
                 before: str | None) -> list[Any]:
    conditions = [r.account_id == account_id]
    if before is not None:
        conditions.append(r.id < before)
    return conn.execute(select(t.reports).where(and_(*conditions)).order_by(r.id.desc())
                        .limit(limit)).all()


def delete_report(conn: Connection, account_id: int, report_id: str) -> Any:
    row = get_report(conn, account_id, report_id)
    if row is not None:
        conn.execute(delete(t.reports).where(r.id == report_id))
    return row


def claim(conn: Connection, report_id: str, owner: str, now: datetime,
          lease_until: datetime) -> Any:
    """Take a queued report, or a running one whose daemon stopped renewing it; None
    when another daemon has it. A compare-and-set, so two daemons cannot both run it."""
    result = conn.execute(update(t.reports).where(
        r.id == report_id, or_(r.state == "queued",
                               and_(r.state == "running", r.lease_until < now)))
        .values(state="running", owner=owner, lease_until=lease_until, started_at=now,
                progress=0.0, rows=0, attempts=r.attempts + 1, error=None))
    if result.rowcount != 1:
        return None
    return conn.execute(select(t.reports).where(r.id == report_id)).first()


def renew(conn: Connection, report_id: str, owner: str, progress: float, rows: int,
          lease_until: datetime) -> bool:
    """Progress, and the lease with it; False when the report is no longer ours
    (deleted, or taken over after we looked dead)."""
    result = conn.execute(update(t.reports).where(
        r.id == report_id, r.owner == owner, r.state == "running").values(
        progress=progress, rows=rows, lease_until=lease_until))
    return result.rowcount == 1


def finish(conn: Connection, report_id: str, owner: str, values: dict[str, Any]) -> bool:
    result = conn.execute(update(t.reports).where(
        r.id == report_id, r.owner == owner, r.state == "running").values(**values))
    return result.rowcount == 1


def requeue_own(conn: Connection, owner: str) -> int:
    """At start: reports this daemon was running when it stopped are queued again."""
    return conn.execute(update(t.reports).where(r.state == "running", r.owner == owner)
                        .values(state="queued", owner=None, lease_until=None)).rowcount or 0


def runnable(conn: Connection, now: datetime, limit: int) -> list[str]:
    return list(conn.execute(select(r.id).where(or_(
        r.state == "queued", and_(r.state == "running", r.lease_until < now)))
        .order_by(r.id).limit(limit)).scalars())


def next_lease_end(conn: Connection) -> datetime | None:
    """When the first running report's lease runs out (it becomes runnable then,
    unless its daemon renews it first)."""
    return conn.execute(select(func.min(r.lease_until)).where(r.state == "running")).scalar()


def expired(conn: Connection, now: datetime) -> list[tuple[str, str | None]]:
    return [tuple(row) for row in conn.execute(select(r.id, r.file_path).where(
        r.expires_at < now))]


def delete_ids(conn: Connection, ids: list[str]) -> None:
    for start in range(0, len(ids), 500):
        conn.execute(delete(t.reports).where(r.id.in_(ids[start:start + 500])))


# E-mail outbox ------------------------------------------------------------------------------

def emails_due(conn: Connection, now: datetime, limit: int = 20) -> list[str]:
    return list(conn.execute(select(r.id).where(
        r.state == "ready", r.email_state == "pending", r.email_next_at <= now)
        .order_by(r.email_next_at).limit(limit)).scalars())


def next_email_at(conn: Connection) -> datetime | None:
    """When the first pending e-mail is due: a retry, or a claim whose attempt never
    finished (its daemon stopped mid-send)."""
    return conn.execute(select(func.min(r.email_next_at)).where(
        r.state == "ready", r.email_state == "pending")).scalar()


def claim_email(conn: Connection, report_id: str, now: datetime, until: datetime) -> Any:
    """Hold the e-mail for one attempt (a crash mid-send retries it after `until`)."""
    result = conn.execute(update(t.reports).where(
        r.id == report_id, r.email_state == "pending", r.email_next_at <= now).values(
        email_next_at=until, email_attempts=r.email_attempts + 1))
    if result.rowcount != 1:
        return None
    return conn.execute(select(t.reports).where(r.id == report_id)).first()


def email_result(conn: Connection, report_id: str, values: dict[str, Any]) -> None:
    conn.execute(update(t.reports).where(r.id == report_id).values(**values))


# Schedules ----------------------------------------------------------------------------------

s = t.report_schedules.c


def schedule_view(row: Any) -> dict[str, Any]:
    request = json.loads(row.request)
    return {"id": row.id, "every": row.every, "next_run": iso(row.next_run),
            "last_run": iso(row.last_run), "created_at": iso(row.created_at),
            **{k: v for k, v in request.items() if k not in ("every",)}}


def insert_schedule(conn: Connection, schedule_id: str, account_id: int, every: str,
                    request: str, next_run: datetime, now: datetime) -> Any:
    conn.execute(t.report_schedules.insert().values(
        id=schedule_id, account_id=account_id, every=every, request=request,
        next_run=next_run, created_at=now))
    return conn.execute(select(t.report_schedules).where(s.id == schedule_id)).first()


def list_schedules(conn: Connection, account_id: int) -> list[Any]:
    return conn.execute(select(t.report_schedules).where(s.account_id == account_id)
                        .order_by(s.id.desc())).all()


def delete_schedule(conn: Connection, account_id: int, schedule_id: str) -> bool:
    return bool(conn.execute(delete(t.report_schedules).where(
        s.id == schedule_id, s.account_id == account_id)).rowcount)


def due_schedules(conn: Connection, now: datetime, limit: int = 100) -> list[Any]:
    return conn.execute(select(t.report_schedules).where(s.next_run <= now)
                        .order_by(s.next_run).limit(limit)).all()


def first_next_run(conn: Connection) -> datetime | None:
    """When the earliest schedule is next due (None: there is none)."""
    return conn.execute(select(func.min(s.next_run))).scalar()


def advance_schedule(conn: Connection, schedule_id: str, seen: datetime, next_run: datetime,
                     now: datetime) -> bool:
    """Move next_run on, only if nobody else did (compare-and-set on the old value)."""
    result = conn.execute(update(t.report_schedules).where(
        s.id == schedule_id, s.next_run == seen).values(next_run=next_run, last_run=now))
    return result.rowcount == 1


# Campaigns ----------------------------------------------------------------------------------

c = t.campaigns.c


def campaign_row(conn: Connection, account_id: int, campaign_id: str) -> Any:
    return conn.execute(select(t.campaigns).where(c.id == campaign_id,
                                                  c.account_id == account_id)).first()


def campaign_jobs(conn: Connection, account_id: int, campaign_id: str) -> list[str]:
    j = t.jobs.c
    return list(conn.execute(select(j.id).where(
        j.account_id == account_id, j.campaign_id == campaign_id).order_by(j.id)).scalars())


def own_jobs(conn: Connection, account_id: int, job_ids: list[str]) -> set[str]:
    j = t.jobs.c
    found: set[str] = set()
    for start in range(0, len(job_ids), 500):
        found.update(conn.execute(select(j.id).where(
            j.account_id == account_id, j.id.in_(job_ids[start:start + 500]),
            j.state != "creating")).scalars())
    return found


def set_campaign(conn: Connection, account_id: int, job_ids: list[str],
                 campaign_id: str | None) -> None:
    j = t.jobs.c
    for start in range(0, len(job_ids), 500):
        conn.execute(update(t.jobs).where(j.account_id == account_id,
                                          j.id.in_(job_ids[start:start + 500]))
                     .values(campaign_id=campaign_id))


def insert_campaign(conn: Connection, campaign_id: str, account_id: int, name: str,
                    description: str | None, now: datetime) -> None:
    conn.execute(t.campaigns.insert().values(
        id=campaign_id, account_id=account_id, name=name, description=description,
        created_at=now, updated_at=now))


def delete_campaign(conn: Connection, campaign_id: str) -> None:
    conn.execute(delete(t.campaigns).where(c.id == campaign_id))


def list_campaigns(conn: Connection, account_id: int, name: str | None,
                   description: str | None, low: str | None, high: str | None,
                   limit: int, before: str | None) -> list[Any]:
    conditions = [c.account_id == account_id]
    if name:
        conditions.append(func.lower(c.name).contains(name.lower(), autoescape=True))
    if description:
        conditions.append(func.lower(c.description).contains(description.lower(),
                                                             autoescape=True))
    if low is not None:
        conditions.append(c.id >= low)
    if high is not None:
        conditions.append(c.id < high)
    if before is not None:
        conditions.append(c.id < before)
    return conn.execute(select(t.campaigns).where(and_(*conditions)).order_by(c.id.desc())
                        .limit(limit)).all()


def own_poll(conn: Connection, account_id: int, poll_id: str) -> bool:
    p = t.polls.c
    return conn.execute(select(p.id).where(p.id == poll_id,
                                           p.account_id == account_id)).first() is not None
