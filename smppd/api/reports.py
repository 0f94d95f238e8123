"""HTTP routes of issue 10: statuses, reports, report schedules, campaigns, the jobs list
and a job's number groups. http.py hands a request here first; None means "not one of
ours", and http.py carries on with its own routes."""

from __future__ import annotations

import json
import time
from typing import Any

from ..reports import periods
from ..reports import request as checks
from . import inbound_bodies
from .server import HttpRequest, HttpResponse
from .validation import ApiError, looks_like_id, parse_json_object

PREFIXES = ("/v1/statuses", "/v1/reports", "/v1/report-schedules", "/v1/campaigns")
INBOUND_REPORTS = "/v1/inbound/reports/"  # issue 11's CSV endpoints, made by the reports


def _created(body: Any) -> HttpResponse:
    return HttpResponse(201, json.dumps(body, ensure_ascii=False,
                                        separators=(",", ":")).encode())


def _found(what: str) -> Any:
    def check(value: Any) -> Any:
        return value if value is not None else ApiError(404, f"no such {what}", "id")
    return check


def _args(request: HttpRequest, allowed: set[str]) -> dict[str, str]:
    args = {}
    for name, values in request.query.items():
        if name not in allowed:
            raise ApiError(400, "unknown query parameter (expected: "
                           + ", ".join(sorted(allowed)) + ")", name)
        if len(values) != 1:
            raise ApiError(400, "give this parameter once", name)
        args[name] = values[0]
    return args


def _limit(args: dict[str, str], default: int = 100) -> int:
    text = args.get("limit", str(default))
    if not text.isdigit() or not 1 <= int(text) <= 1000:
        raise ApiError(400, "expected a whole number 1..1000", "limit")
    return int(text)


def _cursor(args: dict[str, str]) -> str | None:
    cursor = args.get("cursor")
    if cursor is not None and not looks_like_id(cursor):
        raise ApiError(400, "not a cursor this API gave out", "cursor")
    return cursor


def _moment(args: dict[str, str], name: str, tz: Any, end: bool = False) -> float | None:
    if name not in args:
        return None
    try:
        return periods.parse_moment(args[name], tz, end=end).timestamp()
    except periods.PeriodError as exc:
        raise ApiError(400, str(exc), name) from None


def _method(request: HttpRequest, *allowed: bytes) -> None:
    if request.method not in allowed:
        raise ApiError(405, "use " + " or ".join(m.decode() for m in allowed))


def route(app: Any, request: HttpRequest, account: Any, path: str) -> Any:
    """The response (or a Deferred) for an issue-10 path; None for any other path."""
    if path.startswith("/v1/jobs"):
        return _jobs(app, request, account, path)
    if path.startswith(INBOUND_REPORTS):
        return _inbound_csv(app, request, account, path[len(INBOUND_REPORTS):])
    if not path.startswith(PREFIXES):
        return None
    reports, method = app.reports, request.method
    if path == "/v1/statuses":
        _method(request, b"GET")
        return reports.statuses(account)
    if path == "/v1/reports":
        _method(request, b"GET", b"POST")
        if method == b"POST":
            wanted = checks.report(parse_json_object(request.body))
            return reports.create(account, wanted).addCallback(_created)
        args = _args(request, {"limit", "cursor"})
        return reports.list(account, _limit(args), _cursor(args)).addCallback(
            lambda found: {"reports": found,
                           "next_cursor": found[-1]["id"] if len(found) == _limit(args)
                           else None})
    if path.startswith("/v1/reports/"):
        report_id, _, rest = path[len("/v1/reports/"):].partition("/")
        if rest == "file":
            _method(request, b"GET")
            return reports.file(account, report_id).addCallback(_file_response)
        if rest:
            raise ApiError(404, "no such path")
        _method(request, b"GET", b"DELETE")
        action = reports.get if method == b"GET" else reports.delete
        return action(account, report_id).addCallback(_found("report"))
    if path == "/v1/report-schedules":
        _method(request, b"GET", b"POST")
        if method == b"POST":
            wanted = checks.schedule(parse_json_object(request.body))
            return reports.create_schedule(account, wanted).addCallback(_created)
        return reports.list_schedules(account).addCallback(
            lambda found: {"schedules": found})
    if path.startswith("/v1/report-schedules/"):
        _method(request, b"DELETE")
        return reports.delete_schedule(account, path.rsplit("/", 1)[1]).addCallback(
            _found("schedule"))
    return _campaigns(app, request, account, path)


def _inbound_csv(app: Any, request: HttpRequest, account: Any, kind: str) -> Any:
    """GET /v1/inbound/reports/detailed|daily?since=&until=&number=&sender= as CSV: the
    `inbound` and `inbound-daily` reports without a report row (see
    ReportService.inbound_csv)."""
    if kind not in ("detailed", "daily"):
        raise ApiError(404, "no such report (detailed or daily)")
    _method(request, b"GET")
    where = inbound_bodies.inbound_filter(_args(request, {"since", "until", "number",
                                                          "sender"}))
    name = f"inbound-{kind}.csv"

    def respond(file_path: Any) -> HttpResponse:
        return HttpResponse(200, b"", b"text/csv; charset=utf-8", [
            (b"Content-Disposition", f'attachment; filename="{name}"'.encode())],
            file=str(file_path), remove_file=True)

    return app.reports.inbound_csv(account, kind, where).addCallback(respond)


def _file_response(found: tuple[str, str, str]) -> HttpResponse:
    path, content_type, name = found
    return HttpResponse(200, b"", content_type.encode(), [
        (b"Content-Disposition", f'attachment; filename="{name}"'.encode())], file=path)


def _campaigns(app: Any, request: HttpRequest, account: Any, path: str) -> Any:
    campaigns, method = app.campaigns, request.method
    if path == "/v1/campaigns":
        _method(request, b"GET", b"POST")
        if method == b"POST":
            wanted = checks.campaign(parse_json_object(request.body))
            return campaigns.create(account, wanted).addCallback(_created)
        args = _args(request, {"name", "description", "since", "until", "limit", "cursor"})
        tz = app.reports.timezone(account.id)
        since, until = _moment(args, "since", tz), _moment(args, "until", tz, end=True)
        from ..ids import bound_for_time

        return campaigns.list(account, args.get("name"), args.get("description"),
                              bound_for_time(since) if since is not None else None,
                              bound_for_time(until) if until is not None else None,
                              _limit(args), _cursor(args))
    rest = path[len("/v1/campaigns/"):].split("/")
    campaign_id = rest[0]
    if len(rest) == 1:
        _method(request, b"GET", b"DELETE")
        action = campaigns.get if method == b"GET" else campaigns.delete
        return action(account, campaign_id).addCallback(_found("campaign"))
    if rest[1] != "jobs" or len(rest) > 3:
        raise ApiError(404, "no such path")
    if len(rest) == 2:
        _method(request, b"POST")
        body = parse_json_object(request.body)
        unknown = sorted(set(body) - {"jobs"})
        if unknown:
            raise ApiError(400, "unknown field (expected: jobs)", unknown[0])
        job_ids = checks.job_list(body.get("jobs"))
        if not job_ids:
            raise ApiError(400, "expected at least one job id", "jobs")
        return campaigns.group(account, campaign_id, job_ids).addCallback(
            _found("campaign"))
    _method(request, b"DELETE")
    return campaigns.ungroup(account, campaign_id, rest[2]).addCallback(_found("campaign"))


def _jobs(app: Any, request: HttpRequest, account: Any, path: str) -> Any:
    """GET /v1/jobs (find jobs) and GET /v1/jobs/{id}/numbers; None for the rest."""
    if path == "/v1/jobs" and request.method == b"GET":
        args = _args(request, {"name", "description", "campaign", "since", "until", "limit",
                               "cursor"})
        tz = app.reports.timezone(account.id)
        since, until = _moment(args, "since", tz), _moment(args, "until", tz, end=True)
        campaign = args.get("campaign")
        if campaign is not None and not looks_like_id(campaign):
            raise ApiError(400, "expected a campaign id", "campaign")
        return app.campaigns.list_jobs(
            account, args.get("name"), args.get("description"), campaign,
            since if since is not None else 0.0,
            until if until is not None else time.time() + 10 * 365 * 86400,
            _limit(args), _cursor(args), tz)
    parts = path.split("/")
    if len(parts) == 5 and parts[4] == "numbers":
        _method(request, b"GET")
        args = _args(request, {"group", "format"})
        group = args.get("group")
        if not group or len(group) > 32:
            raise ApiError(400, "expected a group: a status (delivered, undelivered...) or "
                           "an error code, as the job report lists them", "group")
        fmt = args.get("format", "csv")
        if fmt not in ("csv", "xml"):
            raise ApiError(400, "expected csv or xml", "format")
        content_type = b"text/csv; charset=utf-8" if fmt == "csv" else b"application/xml"
        name = f"numbers-{parts[3][:12]}-{group}.{fmt}".replace('"', "")

        def respond(file_path: Any) -> HttpResponse:
            return HttpResponse(200, b"", content_type, [
                (b"Content-Disposition", f'attachment; filename="{name}"'.encode())],
                file=str(file_path), remove_file=True)

        return app.reports.job_numbers(account, parts[3], group, fmt).addCallback(respond)
    return None

