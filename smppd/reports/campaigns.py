"""Campaigns: named groups of bulk jobs, and finding jobs by name, description, date
or campaign. A campaign's report is any job-scoped report with `campaign` instead of
`job` (the service resolves it to the campaign's jobs)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from twisted.internet import defer

from ..checks import ApiError
from ..ids import looks_like_id, new_id
from . import store as rs
from .documents import LocalTime, _stack
from .queries import job_counts, jobs
from .store import iso


def job_view(row: Any, counts: dict[str, Any] | None) -> dict[str, Any]:
    entry = counts or {"by_status": {}, "parts": 0}
    return {"id": row.id, "name": row.name, "description": row.description,
            "campaign": row.campaign_id, "from": row.sender, "state": row.state,
            "messages": row.recipients, "counts": entry["by_status"],
            "points": row.points, "refunded": row.refunded,
            "created_at": iso(row.created_at)}


class Campaigns:
    def __init__(self, engine: Any, read: Any, write: Any) -> None:
        self.engine = engine
        self.read = read  # fn(conn, ...) on the read pool
        self.write = write  # fn(conn, ...) in a transaction on a pool thread

    def _owned(self, conn: Any, account_id: int, job_ids: list[str]) -> None:
        missing = sorted(set(job_ids) - rs.own_jobs(conn, account_id, job_ids))
        if missing:
            raise ApiError(404, f"no such job: {missing[0]}", "jobs")

    def create(self, account: Any, request: dict[str, Any]) -> defer.Deferred[Any]:
        campaign_id = new_id()

        def run(conn: Any) -> Any:
            self._owned(conn, account.id, request["jobs"])
            now = datetime.now(UTC).replace(tzinfo=None)
            rs.insert_campaign(conn, campaign_id, account.id, request["name"],
                               request.get("description"), now)
            rs.set_campaign(conn, account.id, request["jobs"], campaign_id)
            return self._view(conn, account.id, campaign_id)

        return self.write(run)

    def _view(self, conn: Any, account_id: int, campaign_id: str) -> dict[str, Any] | None:
        row = rs.campaign_row(conn, account_id, campaign_id)
        if row is None:
            return None
        job_rows = jobs(conn, account_id, campaign=campaign_id)
        counts = job_counts(conn, account_id, [j.id for j in job_rows])
        by_status: dict[str, int] = {}
        for entry in counts.values():
            for status, n in entry["by_status"].items():
                by_status[status] = by_status.get(status, 0) + n
        return {"id": row.id, "name": row.name, "description": row.description,
                "created_at": iso(row.created_at),
                "jobs": [job_view(j, counts.get(j.id)) for j in job_rows],
                "counts": by_status, "summary": _stack(by_status),
                "messages": sum(j.recipients for j in job_rows),
                "points": sum(j.points for j in job_rows),
                "refunded": sum(j.refunded for j in job_rows)}

    def get(self, account: Any, campaign_id: str) -> defer.Deferred[Any]:
        if not looks_like_id(campaign_id):
            return defer.succeed(None)
        return self.read(lambda conn: self._view(conn, account.id, campaign_id))

    def list(self, account: Any, name: str | None, description: str | None,
             low: str | None, high: str | None, limit: int,
             before: str | None) -> defer.Deferred[Any]:
        def run(conn: Any) -> Any:
            rows = rs.list_campaigns(conn, account.id, name, description, low, high,
                                     limit + 1, before)
            page = [{"id": r.id, "name": r.name, "description": r.description,
                     "created_at": iso(r.created_at),
                     "jobs": rs.campaign_jobs(conn, account.id, r.id)} for r in rows[:limit]]
            return {"campaigns": page,
                    "next_cursor": page[-1]["id"] if len(rows) > limit else None}
        return self.read(run)

    def group(self, account: Any, campaign_id: str, job_ids: list[str]) -> defer.Deferred[Any]:
        def run(conn: Any) -> Any:
            if rs.campaign_row(conn, account.id, campaign_id) is None:
                return None
            self._owned(conn, account.id, job_ids)
            rs.set_campaign(conn, account.id, job_ids, campaign_id)
            return self._view(conn, account.id, campaign_id)

        if not looks_like_id(campaign_id):
            return defer.succeed(None)
        return self.write(run)

    def ungroup(self, account: Any, campaign_id: str, job_id: str) -> defer.Deferred[Any]:
        def run(conn: Any) -> Any:
            if rs.campaign_row(conn, account.id, campaign_id) is None:
                return None
            if job_id not in rs.campaign_jobs(conn, account.id, campaign_id):
                raise ApiError(404, "that job is not in this campaign", "job")
            rs.set_campaign(conn, account.id, [job_id], None)
            return self._view(conn, account.id, campaign_id)

        if not looks_like_id(campaign_id) or not looks_like_id(job_id):
            return defer.succeed(None)
        return self.write(run)

    def delete(self, account: Any, campaign_id: str) -> defer.Deferred[Any]:
        """The campaign goes; its jobs stay, ungrouped."""
        def run(conn: Any) -> Any:
            if rs.campaign_row(conn, account.id, campaign_id) is None:
                return None
            rs.set_campaign(conn, account.id, rs.campaign_jobs(conn, account.id, campaign_id),
                            None)
            rs.delete_campaign(conn, campaign_id)
            return {"id": campaign_id, "deleted": True}

        if not looks_like_id(campaign_id):
            return defer.succeed(None)
        return self.write(run)

    def list_jobs(self, account: Any, name: str | None, description: str | None,
                  campaign: str | None, since: float | None, until: float | None,
                  limit: int, before: str | None, tz: Any) -> defer.Deferred[Any]:
        def run(conn: Any) -> Any:
            rows = jobs(conn, account.id, since, until, campaign, None, name, description,
                        limit + 1, before)
            counts = job_counts(conn, account.id, [j.id for j in rows[:limit]])
            local = LocalTime(tz)
            page = []
            for row in rows[:limit]:
                view = job_view(row, counts.get(row.id))
                created = local(row.created_at)
                view["created_local"] = created.isoformat(timespec="seconds") if created \
                    else None
                page.append(view)
            return {"jobs": page, "next_cursor": page[-1]["id"] if len(rows) > limit else None}
        return self.read(run)
